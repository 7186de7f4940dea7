"""Schemathesis hooks for cartloop's fuzz run: how to send a `message/rfc822` body."""
import schemathesis


@schemathesis.serializer("message/rfc822")
def rfc822(ctx, value):
    # The document says the body is a string (the raw email); send its bytes as they are.
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")
