//! An [`Email`] as RFC 5322 text, written by hand so that the outbox needs no mail library.
//!
//! The headers are the ones the SMTP mailer sends, in the same order: `From`, `To`,
//! `Subject`, `Message-ID`, `Date`, `MIME-Version`, `Content-Type`,
//! `Content-Transfer-Encoding`.
//!
//! - A display name is written as a quoted string when it is printable ASCII
//!   (`"J. Smith"`), and as RFC 2047 encoded-words (UTF-8, base64) otherwise. The subject is
//!   written as it is or encoded. Control characters always force the encoded form, so no
//!   value can inject a header line.
//! - The body is UTF-8 `text/plain` with CRLF line ends: `7bit` when it is ASCII, `8bit`
//!   otherwise (the file stays readable), and quoted-printable if a line is longer than the
//!   998 octets RFC 5322 allows.

use crate::base64;
use cartloop_core::ports::Email;
use std::fmt::Write as _;

/// Longest line RFC 5322 allows, without its CRLF.
const MAX_LINE: usize = 998;

/// Most UTF-8 bytes in one encoded-word: 36 bytes are 48 base64 characters, so a word is
/// 60 characters long, within RFC 2047's 75.
const WORD_BYTES: usize = 36;

/// The email as an RFC 5322 message with CRLF line ends.
///
/// # Errors
/// A description of the problem when an address or the `Message-ID` is not valid; the
/// email cannot be delivered as it is.
pub(crate) fn format(email: &Email) -> Result<Vec<u8>, String> {
    check_address(&email.from_address).map_err(|e| format!("invalid sender address: {e}"))?;
    check_address(&email.to_address).map_err(|e| format!("invalid recipient address: {e}"))?;
    check_message_id(&email.message_id_header)?;

    let (encoding, body) = encode_body(&email.body);
    let mut out = String::with_capacity(512 + body.len());
    push_header(
        &mut out,
        "From",
        &mailbox(&email.from_name, &email.from_address),
    );
    push_header(&mut out, "To", &mailbox(&email.to_name, &email.to_address));
    push_header(&mut out, "Subject", &unstructured(&email.subject));
    push_header(
        &mut out,
        "Message-ID",
        &format!("<{}>", email.message_id_header),
    );
    push_header(
        &mut out,
        "Date",
        &email.date.format("%a, %d %b %Y %H:%M:%S +0000").to_string(),
    );
    push_header(&mut out, "MIME-Version", "1.0");
    push_header(&mut out, "Content-Type", "text/plain; charset=utf-8");
    push_header(&mut out, "Content-Transfer-Encoding", encoding);
    out.push_str("\r\n");
    out.push_str(&body);
    Ok(out.into_bytes())
}

fn push_header(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "{name}: {value}\r\n");
}

/// `Name <address>`, or the bare address when the name is blank.
fn mailbox(name: &str, address: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        address.to_owned()
    } else {
        format!("{} <{address}>", phrase(name))
    }
}

/// A display name (RFC 5322 `phrase`): quoted, as lettre writes it, or encoded.
fn phrase(name: &str) -> String {
    if name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        let mut quoted = String::with_capacity(name.len() + 2);
        quoted.push('"');
        for c in name.chars() {
            if c == '"' || c == '\\' {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        quoted
    } else {
        encoded_words(name)
    }
}

/// An unstructured value (the subject): as it is when it is printable ASCII that cannot be
/// mistaken for an encoded-word and fits on a line, encoded otherwise.
fn unstructured(text: &str) -> String {
    let plain = text.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !text.contains("=?")
        && text.len() <= 900;
    if plain {
        text.to_owned()
    } else {
        encoded_words(text)
    }
}

/// RFC 2047 `=?utf-8?b?...?=` words, split on character boundaries and folded one per line.
fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        if i + c.len_utf8() - start > WORD_BYTES {
            words.push(&text[start..end]);
            start = i;
        }
        end = i + c.len_utf8();
    }
    if start < end || words.is_empty() {
        words.push(&text[start..end]);
    }
    words
        .into_iter()
        .map(|w| format!("=?utf-8?b?{}?=", base64::encode(w.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// RFC 5322 `atext`.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// The body with CRLF line ends, and its transfer encoding.
fn encode_body(body: &str) -> (&'static str, String) {
    let mut lines: Vec<&str> = body
        .split("\r\n")
        .flat_map(|l| l.split(['\r', '\n']))
        .collect();
    if lines.len() > 1 && lines.last() == Some(&"") {
        lines.pop();
    }
    if lines.iter().any(|l| l.len() > MAX_LINE) {
        return ("quoted-printable", quoted_printable(&lines));
    }
    let text: String = lines.iter().flat_map(|l| [*l, "\r\n"]).collect();
    let encoding = if text.is_ascii() { "7bit" } else { "8bit" };
    (encoding, text)
}

/// Quoted-printable (RFC 2045 §6.7) of CRLF-separated lines, with soft breaks at 76.
fn quoted_printable(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines {
        let bytes = line.as_bytes();
        let mut width = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal = ((b'!'..=b'~').contains(&b) && b != b'=') || (b == b' ' && !last);
            let piece_len = if literal { 1 } else { 3 };
            if width + piece_len > 75 {
                out.push_str("=\r\n");
                width = 0;
            }
            if literal {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "={b:02X}");
            }
            width += piece_len;
        }
        out.push_str("\r\n");
    }
    out
}

/// A pragmatic check of `local@domain`: what a mail server would accept, without quoted
/// local parts or comments. Non-ASCII is allowed (RFC 6531).
pub(crate) fn check_address(address: &str) -> Result<(), String> {
    let (local, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| format!("{address:?} has no '@'"))?;
    let is_dot_atom = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|part| !part.is_empty() && part.bytes().all(|b| is_atext(b) || b >= 0x80))
    };
    if local.len() > 64 || !is_dot_atom(local) {
        return Err(format!("{address:?} has an invalid local part"));
    }
    let label = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80)
    };
    let literal = domain
        .strip_prefix('[')
        .and_then(|d| d.strip_suffix(']'))
        .is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    if domain.len() > 253 || !(literal || domain.split('.').all(label)) {
        return Err(format!("{address:?} has an invalid domain"));
    }
    Ok(())
}

/// The `Message-ID` (without angle brackets) must be `left@right` of visible ASCII.
pub(crate) fn check_message_id(id: &str) -> Result<(), String> {
    let visible = id
        .bytes()
        .all(|b| (b'!'..=b'~').contains(&b) && !b"<>\"\\".contains(&b));
    match id.split_once('@') {
        Some((left, right)) if visible && !left.is_empty() && !right.is_empty() => Ok(()),
        _ => Err(format!("invalid Message-ID {id:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartloop_core::ids::MessageId;
    use chrono::{TimeZone, Utc};

    fn email() -> Email {
        Email {
            message_id: MessageId(7),
            message_id_header: "cartloop.message.7@shop.example".into(),
            from_name: "Sneaker Hub".into(),
            from_address: "hello@shop.example".into(),
            to_name: "Mia Müller".into(),
            to_address: "mia@example.com".into(),
            subject: "A message from Sneaker Hub".into(),
            body: "Hi Mia Müller,\nyour code is PROMO50".into(),
            date: Utc.with_ymd_and_hms(2026, 11, 5, 15, 0, 0).unwrap(),
        }
    }

    fn text(email: &Email) -> String {
        String::from_utf8(format(email).unwrap()).unwrap()
    }

    #[test]
    fn writes_headers_and_body() {
        let text = text(&email());
        let expected = "From: \"Sneaker Hub\" <hello@shop.example>\r\n\
             To: =?utf-8?b?TWlhIE3DvGxsZXI=?= <mia@example.com>\r\n\
             Subject: A message from Sneaker Hub\r\n\
             Message-ID: <cartloop.message.7@shop.example>\r\n\
             Date: Thu, 05 Nov 2026 15:00:00 +0000\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\
             \r\n\
             Hi Mia Müller,\r\nyour code is PROMO50\r\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn ascii_body_is_7bit() {
        let mut email = email();
        email.body = "plain\r\ntext".into();
        let text = text(&email);
        assert!(text.contains("Content-Transfer-Encoding: 7bit\r\n"));
        assert!(text.ends_with("\r\n\r\nplain\r\ntext\r\n"));
    }

    #[test]
    fn names_are_bare_quoted_or_encoded() {
        assert_eq!(phrase("John Carter"), "\"John Carter\"");
        assert_eq!(phrase("O'Brien"), "\"O'Brien\"");
        assert_eq!(phrase("J. \"JJ\" Smith"), r#""J. \"JJ\" Smith""#);
        assert_eq!(phrase("a  b"), "\"a  b\"");
        assert_eq!(phrase("Zoë"), "=?utf-8?b?Wm/Dqw==?=");
        assert_eq!(mailbox("  ", "a@b.example"), "a@b.example");
    }

    #[test]
    fn control_characters_cannot_inject_headers() {
        let mut email = email();
        email.to_name = "Eve\r\nBcc: victim@example.com".into();
        email.subject = "Hi\r\nX-Evil: 1".into();
        let text = text(&email);
        assert!(!text.contains("\r\nBcc:"));
        assert!(!text.contains("\r\nX-Evil:"));
        assert!(text.contains("Subject: =?utf-8?b?"));
    }

    #[test]
    fn long_values_are_split_into_words_on_char_boundaries() {
        let name = "Ünïcödé ".repeat(10);
        let encoded = encoded_words(name.trim());
        let words: Vec<&str> = encoded.split("\r\n ").collect();
        assert!(words.len() > 1);
        let mut decoded = Vec::new();
        for word in &words {
            assert!(word.len() <= 75, "{word}");
            let b64 = word
                .strip_prefix("=?utf-8?b?")
                .unwrap()
                .strip_suffix("?=")
                .unwrap();
            let part = base64::decode(b64).unwrap();
            assert!(
                std::str::from_utf8(&part).is_ok(),
                "word splits a character"
            );
            decoded.extend(part);
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), name.trim());
    }

    #[test]
    fn subject_that_looks_encoded_is_encoded() {
        assert_eq!(unstructured("plain"), "plain");
        assert!(unstructured("=?utf-8?b?x?=").starts_with("=?utf-8?b?"));
    }

    #[test]
    fn overlong_lines_use_quoted_printable() {
        let mut email = email();
        email.body = format!("{}ü=\nnext ", "x".repeat(1200));
        let text = text(&email);
        assert!(text.contains("Content-Transfer-Encoding: quoted-printable\r\n"));
        let body = text.split_once("\r\n\r\n").unwrap().1;
        assert!(body.lines().all(|l| l.len() <= 76));
        assert!(body.contains("=C3=BC=3D\r\n"));
        assert!(body.ends_with("next=20\r\n"));
    }

    #[test]
    fn rejects_bad_addresses_and_ids() {
        for bad in [
            "",
            "no-at",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@exa mple.com",
            "a@-x.example",
            "a..b@example.com",
            "a@example..com",
            "<a@example.com>",
            "a@example.com\r\nBcc: x@y.z",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
        for good in [
            "a@example.com",
            "first.last+tag@sub.example.co",
            "müller@bücher.example",
            "x@[127.0.0.1]",
            "x@localhost",
        ] {
            assert!(check_address(good).is_ok(), "{good:?}");
        }
        assert!(check_message_id("cartloop.message.7@example.com").is_ok());
        for bad in ["", "no-at", "a b@c", "<a@b>", "a@b\r\nX: y", "@b", "a@"] {
            assert!(check_message_id(bad).is_err(), "{bad:?}");
        }

        let mut email = email();
        email.to_address = "not an address".into();
        assert!(format(&email).unwrap_err().contains("recipient"));
    }
}
