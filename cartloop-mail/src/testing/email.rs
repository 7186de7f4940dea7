//! Reading received emails in tests, with `mail-parser`: headers (unfolded, RFC
//! 2047-decoded) and the body (transfer encoding undone).

use super::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{HeaderName, MessageParser};

/// One email an [`SmtpSink`](super::SmtpSink) accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The `MAIL FROM` address, without angle brackets (empty for the null sender `<>`).
    pub from: String,
    /// The `RCPT TO` addresses, without angle brackets.
    pub recipients: Vec<String>,
    /// The message as received after `DATA`: dot-unstuffed, lines ending in CRLF, without
    /// the final `.` line.
    pub data: Vec<u8>,
    /// Which connection it came on: 1 for the sink's first connection, and so on.
    pub connection: usize,
}

impl ReceivedMail {
    /// The message's headers and body.
    pub fn parse(&self) -> ParsedEmail {
        ParsedEmail::parse(&self.data)
    }
}

/// An RFC 5322 message split into headers and body, for assertions. `mail-parser` reads
/// it; this keeps the few questions tests ask (a header as sent, a header decoded, the body
/// as text) one call each.
///
/// ```
/// use cartloop_mail::testing::ParsedEmail;
///
/// let raw = b"To: =?utf-8?b?TWlhIE3DvGxsZXI=?= <mia@example.com>\r\n\
///     Subject: Hello\r\n  again\r\n\
///     Content-Transfer-Encoding: quoted-printable\r\n\
///     \r\n\
///     Gr=C3=BC=C3=9Fe\r\n";
/// let email = ParsedEmail::parse(raw);
/// assert_eq!(email.header("subject"), Some("Hello  again"));
/// assert_eq!(email.decoded_header("To").unwrap(), "Mia Müller <mia@example.com>");
/// assert_eq!(email.body_text(), "Grüße\r\n");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEmail {
    /// `(name, unfolded value, still encoded)`.
    headers: Vec<(String, String)>,
    /// Each header's value with its encoded-words decoded (`None`: the parser found no text).
    decoded: Vec<Option<String>>,
    body: Vec<u8>,
}

impl ParsedEmail {
    /// Splits `raw` into its headers and its body. Never fails: what is not an email has no
    /// headers, and its body is the input.
    pub fn parse(raw: &[u8]) -> Self {
        // Every header as unstructured text: tests compare what a reader sees, so address
        // headers are wanted as one decoded string too, not as parsed addresses. (With no
        // header named, the parser falls back to its built-in parsers: naming one keeps
        // the default for all the others.)
        let parser = MessageParser::new()
            .default_header_text()
            .header_text(HeaderName::Subject);
        let Some(message) = parser.parse(raw) else {
            return Self {
                headers: Vec::new(),
                decoded: Vec::new(),
                body: raw.to_vec(),
            };
        };
        let (headers, decoded) = message
            .headers()
            .iter()
            .map(|header| {
                let value = &raw[header.offset_start as usize..header.offset_end as usize];
                let unfolded = String::from_utf8_lossy(value)
                    .replace(['\r', '\n'], "")
                    .trim()
                    .to_owned();
                (
                    (header.name.as_str().to_owned(), unfolded),
                    header.value.as_text().map(str::to_owned),
                )
            })
            .unzip();
        let body_start = (message.root_part().raw_body_offset() as usize).min(raw.len());
        Self {
            headers,
            decoded,
            body: raw[body_start..].to_vec(),
        }
    }

    /// All headers, in order, as `(name, unfolded value)`.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The first header called `name` (case-insensitive), unfolded, still encoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.headers[i].1.as_str())
    }

    /// [`header`](Self::header) with its RFC 2047 encoded-words decoded.
    pub fn decoded_header(&self, name: &str) -> Option<String> {
        let i = self.position(name)?;
        Some(self.decoded[i].clone().unwrap_or_default())
    }

    /// The body as sent (still transfer-encoded).
    pub fn raw_body(&self) -> &[u8] {
        &self.body
    }

    /// The body with its `Content-Transfer-Encoding` (quoted-printable, base64) undone, as
    /// UTF-8 text (invalid bytes replaced); a body that does not decode is taken as it is.
    pub fn body_text(&self) -> String {
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or("7bit")
            .to_ascii_lowercase();
        let decoded = match encoding.as_str() {
            "quoted-printable" => quoted_printable_decode(&self.body),
            "base64" => base64_decode(&String::from_utf8_lossy(&self.body)),
            _ => None,
        };
        String::from_utf8_lossy(decoded.as_deref().unwrap_or(&self.body)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_b_and_q_words_and_joins_adjacent_ones() {
        let email = ParsedEmail::parse(
            b"To: =?UTF-8?B?TWlh?= =?utf-8?q?_M=C3=BCller?= <mia@example.com>\r\n\
              X-Plain: plain =? text\r\n\r\n",
        );
        assert_eq!(
            email.decoded_header("to").unwrap(),
            "Mia M\u{fc}ller <mia@example.com>"
        );
        assert_eq!(email.decoded_header("X-Plain").unwrap(), "plain =? text");
    }

    #[test]
    fn parses_headers_and_quoted_printable_bodies() {
        let email = ParsedEmail::parse(
            b"Subject: one\r\n two\r\nX-Empty:\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\nsoft=\r\nbreak =3D ok\r\n",
        );
        assert_eq!(email.header("SUBJECT"), Some("one two"));
        assert_eq!(email.header("x-empty"), Some(""));
        assert_eq!(email.header("missing"), None);
        assert_eq!(email.headers().len(), 3);
        assert_eq!(email.body_text(), "softbreak = ok\r\n");
    }

    #[test]
    fn base64_bodies_and_bodies_that_do_not_decode() {
        let email =
            ParsedEmail::parse(b"Content-Transfer-Encoding: base64\r\n\r\nR3LDvMOfZQ==\r\n");
        assert_eq!(email.body_text(), "Gr\u{fc}\u{df}e");
        let email = ParsedEmail::parse(b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=Z=");
        assert_eq!(email.body_text(), "=Z=");
    }

    #[test]
    fn survives_garbage() {
        let email = ParsedEmail::parse(b"\xff\xfe no colon\r\n\r\n=Z=");
        assert!(email.headers().is_empty());
        assert!(email.raw_body().ends_with(b"=Z="));
    }
}
