//! Reading received emails in tests: headers (unfolded, RFC 2047-decoded) and the body
//! (transfer encoding undone).

use super::base64_decode;

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

/// An RFC 5322 message split into headers and body, for assertions.
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
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl ParsedEmail {
    /// Splits `raw` at the first empty line; header lines are unfolded. Never fails: text
    /// that is not a header is ignored.
    pub fn parse(raw: &[u8]) -> Self {
        let (head, body) = split_head(raw);
        let head = String::from_utf8_lossy(head);
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim_start().to_owned()));
            }
        }
        Self {
            headers,
            body: body.to_vec(),
        }
    }

    /// All headers, in order, as `(name, unfolded value)`.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first header called `name` (case-insensitive), unfolded, still encoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// [`header`](Self::header) with its RFC 2047 encoded-words decoded.
    pub fn decoded_header(&self, name: &str) -> Option<String> {
        self.header(name).map(decode_encoded_words)
    }

    /// The body as sent (still transfer-encoded).
    pub fn raw_body(&self) -> &[u8] {
        &self.body
    }

    /// The body with its `Content-Transfer-Encoding` (quoted-printable, base64) undone, as
    /// UTF-8 text (invalid bytes replaced).
    pub fn body_text(&self) -> String {
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or("7bit")
            .trim()
            .to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(&self.body),
            "base64" => base64_decode(&String::from_utf8_lossy(&self.body))
                .unwrap_or_else(|| self.body.clone()),
            _ => self.body.clone(),
        };
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn split_head(raw: &[u8]) -> (&[u8], &[u8]) {
    for (separator, len) in [(&b"\r\n\r\n"[..], 4), (&b"\n\n"[..], 2)] {
        if let Some(i) = raw.windows(len).position(|w| w == separator) {
            return (&raw[..i], &raw[i + len..]);
        }
    }
    (raw, &[])
}

/// Decodes the RFC 2047 encoded-words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`) in a header
/// value; whitespace between two encoded-words is dropped. Words in charsets other than
/// UTF-8 and US-ASCII are left as they are.
pub fn decode_encoded_words(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut after_word = false;
    while let Some(i) = rest.find("=?") {
        let (before, candidate) = rest.split_at(i);
        match decode_word(candidate) {
            Some((decoded, len)) => {
                if !(after_word && before.chars().all(char::is_whitespace)) {
                    out.push_str(before);
                }
                out.push_str(&decoded);
                rest = &candidate[len..];
                after_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &candidate[2..];
                after_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One `=?charset?encoding?text?=` at the start of `s`: the text and the word's length.
fn decode_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, rest) = inner.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let text = &rest[..end];
    if text.contains(char::is_whitespace) {
        return None;
    }
    let name = charset.split('*').next().unwrap_or("").to_ascii_lowercase();
    if !matches!(name.as_str(), "utf-8" | "us-ascii") {
        return None;
    }
    let bytes = match encoding {
        "b" | "B" => base64_decode(text)?,
        "q" | "Q" => decode_quoted_printable(text.replace('_', " ").as_bytes()),
        _ => return None,
    };
    let len = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    Some((String::from_utf8(bytes).ok()?, len))
}

/// Undoes quoted-printable: `=XX` escapes and `=` soft line breaks.
fn decode_quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'=' {
            let rest = &input[i + 1..];
            if rest.starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2;
                continue;
            }
            let hex = rest
                .get(..2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(byte) = hex {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_b_and_q_words_and_joins_adjacent_ones() {
        assert_eq!(
            decode_encoded_words("=?UTF-8?B?TWlh?= =?utf-8?q?_M=C3=BCller?= <mia@example.com>"),
            "Mia Müller <mia@example.com>"
        );
        assert_eq!(decode_encoded_words("plain =? text"), "plain =? text");
        assert_eq!(
            decode_encoded_words("=?iso-8859-1?q?caf=E9?="),
            "=?iso-8859-1?q?caf=E9?="
        );
    }

    #[test]
    fn parses_headers_and_quoted_printable_bodies() {
        let email = ParsedEmail::parse(
            b"Subject: one\r\n two\r\nX-Empty:\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\nsoft=\r\nbreak =3D ok\r\n",
        );
        assert_eq!(email.header("SUBJECT"), Some("one two"));
        assert_eq!(email.header("x-empty"), Some(""));
        assert_eq!(email.header("missing"), None);
        assert_eq!(email.body_text(), "softbreak = ok\r\n");
    }

    #[test]
    fn survives_garbage() {
        let email = ParsedEmail::parse(b"\xff\xfe no colon\r\n\r\n=Z=");
        assert!(email.headers().is_empty());
        assert_eq!(email.raw_body(), b"=Z=");
    }
}
