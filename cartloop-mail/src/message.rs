//! The one email writer: an [`Email`] as a lettre [`Message`]. The SMTP mailer sends its
//! bytes and the outbox writes the same bytes to a file, so what a developer reads in the
//! outbox is what a client would receive.

use cartloop_core::email_address::EmailAddress;
use cartloop_core::ports::{Email, MailError};
use chrono::Datelike;
use lettre::message::header::{ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0};
use lettre::message::Mailbox;
use lettre::{Address, Message};
use std::time::SystemTime;

/// Longest unsubscribe URL accepted: its header line must stay within RFC 5322's 998 octets.
const MAX_URL_LEN: usize = 900;

/// Builds the email's message:
///
/// - `From: <from_name> <from_address>` and `To: <to_name> <to_address>` (a blank name is
///   left out; a non-ASCII or special one is quoted or RFC 2047-encoded by lettre; control
///   characters in names and the subject become spaces, so no value can inject a header
///   line);
/// - `Reply-To: <reply_to>` when set;
/// - `Subject`, `Message-ID: <message_id_header>`, `Date`;
/// - when `unsubscribe_url` is set, `List-Unsubscribe: <url>` and
///   `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058 one-click);
/// - `MIME-Version: 1.0`, `Content-Type: text/plain; charset=utf-8`, and the body with CRLF
///   line ends in the transfer encoding lettre finds best: `7bit` for short-lined ASCII,
///   else quoted-printable or base64, so the message is plain ASCII and needs no `8BITMIME`.
///
/// [`Message::formatted`] gives its bytes (the mailers end the last line with CRLF if it is
/// open); [`Message::envelope`] its SMTP envelope.
///
/// # Errors
/// [`MailError::permanent`] when the email cannot be written as it is: an address lettre
/// refuses, a `Message-ID` that is not `left@right` of visible ASCII, an unsubscribe URL
/// that is not printable ASCII (or longer than 900 characters), or a date outside
/// 1970–9999. No retry can fix them.
///
/// ```
/// use cartloop_core::email_address::EmailAddress;
/// use cartloop_core::ids::MessageId;
/// use cartloop_core::ports::Email;
/// use chrono::{TimeZone, Utc};
///
/// let address = |a: &str| EmailAddress::parse(a).unwrap();
/// let email = Email {
///     message_id: MessageId(7),
///     message_id_header: "cartloop.message.7.1795597200000@shop.example".into(),
///     from_name: "Sneaker Hub".into(),
///     from_address: address("hello@shop.example"),
///     to_name: "Mia".into(),
///     to_address: address("mia@example.com"),
///     reply_to: Some(address("reply+abc@shop.example")),
///     unsubscribe_url: Some("https://shop.example/unsubscribe/abc".into()),
///     subject: "A message from Sneaker Hub".into(),
///     body: "Your code is PROMO50".into(),
///     date: Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap(),
/// };
/// let bytes = cartloop_mail::build_message(&email)?.formatted();
/// let text = String::from_utf8(bytes)?;
/// assert!(text.contains("Reply-To: reply+abc@shop.example\r\n"));
/// assert!(text.contains("List-Unsubscribe: <https://shop.example/unsubscribe/abc>\r\n"));
/// assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
/// assert!(text.ends_with("\r\n\r\nYour code is PROMO50"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn build_message(email: &Email) -> Result<Message, MailError> {
    check_message_id(&email.message_id_header)?;
    let year = email.date.year();
    if !(1970..=9999).contains(&year) {
        // lettre's date formatting panics outside this range.
        return Err(MailError::permanent(format!(
            "cannot write the date {}: the year must be 1970 to 9999",
            email.date
        )));
    }
    let mut builder = Message::builder()
        .from(mailbox(&email.from_name, &email.from_address, "sender")?)
        .to(mailbox(&email.to_name, &email.to_address, "recipient")?);
    if let Some(reply_to) = &email.reply_to {
        builder = builder.reply_to(mailbox("", reply_to, "Reply-To")?);
    }
    builder = builder
        .subject(without_controls(&email.subject))
        .message_id(Some(format!("<{}>", email.message_id_header)))
        .date(SystemTime::from(email.date));
    if let Some(url) = &email.unsubscribe_url {
        check_url(url)?;
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
    }
    builder
        .header(MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN)
        .body(email.body.clone())
        .map_err(|e| MailError::permanent(format!("cannot build the email: {e}")))
}

/// The bytes both mailers write: the [`build_message`] message, formatted, its last line
/// ended with CRLF when lettre left it open (a body without a final line break, or
/// base64). SMTP then sends exactly these bytes before its final `.` line (RFC 5321
/// §4.1.1.4), so a receiver stores what the outbox writes.
pub(crate) fn wire_bytes(message: &Message) -> Vec<u8> {
    let mut bytes = message.formatted();
    if !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes
}

/// `text` with each control character (CR, LF, tab, …) made a space: a name or subject
/// is one line, and lettre panics on a line break in a display name.
fn without_controls(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn mailbox(name: &str, address: &EmailAddress, role: &str) -> Result<Mailbox, MailError> {
    let address: Address = address.as_str().parse().map_err(|e| {
        MailError::permanent(format!(
            "invalid {role} address {:?}: {e}",
            address.as_str()
        ))
    })?;
    let name = without_controls(name);
    let name = Some(name.trim())
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    Ok(Mailbox::new(name, address))
}

/// The `Message-ID` (without angle brackets) must be `left@right` of visible ASCII:
/// lettre would encode anything else instead of refusing it.
fn check_message_id(id: &str) -> Result<(), MailError> {
    let visible = id
        .bytes()
        .all(|b| (b'!'..=b'~').contains(&b) && !b"<>\"\\".contains(&b));
    match id.split_once('@') {
        Some((left, right)) if visible && !left.is_empty() && !right.is_empty() => Ok(()),
        _ => Err(MailError::permanent(format!("invalid Message-ID {id:?}"))),
    }
}

/// A URL inside `<...>` must be visible ASCII without spaces or angle brackets (RFC 2369).
fn check_url(url: &str) -> Result<(), MailError> {
    let visible = url
        .bytes()
        .all(|b| (b'!'..=b'~').contains(&b) && b != b'<' && b != b'>');
    if url.is_empty() || url.len() > MAX_URL_LEN || !visible {
        return Err(MailError::permanent(format!(
            "invalid unsubscribe URL {:?}: it must be 1 to {MAX_URL_LEN} visible ASCII characters without spaces or angle brackets",
            cartloop_core::text::cut(url, 80)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartloop_core::ids::MessageId;
    use cartloop_core::ports::MailErrorKind;
    use chrono::{TimeZone, Utc};

    fn address(a: &str) -> EmailAddress {
        EmailAddress::parse(a).unwrap()
    }

    fn email() -> Email {
        Email {
            message_id: MessageId(7),
            message_id_header: "cartloop.message.7@shop.example".into(),
            from_name: "Sneaker Hub".into(),
            from_address: address("hello@shop.example"),
            to_name: "Mia Müller".into(),
            to_address: address("mia@example.com"),
            reply_to: None,
            unsubscribe_url: None,
            subject: "A message from Sneaker Hub".into(),
            body: "Hi Mia Müller,\nyour code is PROMO50".into(),
            date: Utc.with_ymd_and_hms(2026, 11, 5, 15, 0, 0).unwrap(),
        }
    }

    fn text(email: &Email) -> String {
        String::from_utf8(wire_bytes(&build_message(email).unwrap())).unwrap()
    }

    #[test]
    fn writes_every_header_in_order_and_an_ascii_body() {
        let mut email = email();
        email.reply_to = Some(address("reply+t0k3n@shop.example"));
        email.unsubscribe_url = Some("https://shop.example/unsubscribe/t0k3n".into());
        let expected = "From: \"Sneaker Hub\" <hello@shop.example>\r\n\
             To: =?utf-8?b?TWlhIE3DvGxsZXI=?= <mia@example.com>\r\n\
             Reply-To: reply+t0k3n@shop.example\r\n\
             Subject: A message from Sneaker Hub\r\n\
             Message-ID: <cartloop.message.7@shop.example>\r\n\
             Date: Thu, 05 Nov 2026 15:00:00 +0000\r\n\
             List-Unsubscribe: <https://shop.example/unsubscribe/t0k3n>\r\n\
             List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\
             \r\n\
             Hi Mia M=C3=BCller,\r\nyour code is PROMO50\r\n";
        assert_eq!(text(&email), expected);
        // A body that ends with a line break gets no second one.
        email.body.push('\n');
        assert_eq!(text(&email), expected);
    }

    #[test]
    fn leaves_out_the_optional_headers_when_unset() {
        let text = text(&email());
        for absent in ["Reply-To:", "List-Unsubscribe:", "List-Unsubscribe-Post:"] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
    }

    #[test]
    fn ascii_bodies_are_7bit_with_crlf() {
        let mut email = email();
        email.body = "plain\ntext\r\nhere".into();
        let text = text(&email);
        assert!(
            text.contains("Content-Transfer-Encoding: 7bit\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("\r\n\r\nplain\r\ntext\r\nhere\r\n"),
            "{text}"
        );
    }

    #[test]
    fn control_characters_cannot_inject_headers() {
        let mut email = email();
        email.to_name = "Eve\r\nBcc: victim@example.com".into();
        email.from_name = "Shop\nX-Evil: 1".into();
        email.subject = "Hi\r\nX-Evil: 2".into();
        let text = text(&email);
        let head = text.split("\r\n\r\n").next().unwrap();
        for line in head.split("\r\n") {
            let name = line.split(':').next().unwrap();
            assert!(
                !["Bcc", "X-Evil"].contains(&name),
                "injected {line:?} in\n{text}"
            );
        }
        assert!(text.is_ascii());
        let parsed = crate::testing::ParsedEmail::parse(text.as_bytes());
        assert_eq!(
            parsed.decoded_header("Subject").as_deref(),
            Some("Hi  X-Evil: 2")
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_stays_ascii(
            name in "\\PC{0,40}|[\\x00-\\x7f]{0,40}",
            subject in "\\PC{0,80}|[\\x00-\\x7f]{0,80}",
            body in "\\PC{0,300}|[\\x00-\\x7f]{0,300}",
        ) {
            let mut email = email();
            email.to_name = name.clone();
            email.from_name = name;
            email.subject = subject;
            email.body = body;
            let bytes = wire_bytes(&build_message(&email).unwrap());
            proptest::prop_assert!(bytes.is_ascii());
            proptest::prop_assert!(bytes.ends_with(b"\r\n"));
        }
    }

    #[test]
    fn the_envelope_is_sender_and_client() {
        let mut email = email();
        email.reply_to = Some(address("reply+x@shop.example"));
        let message = build_message(&email).unwrap();
        let envelope = message.envelope();
        assert_eq!(
            envelope.from().map(ToString::to_string).as_deref(),
            Some("hello@shop.example")
        );
        let to: Vec<String> = envelope.to().iter().map(ToString::to_string).collect();
        assert_eq!(to, ["mia@example.com"]);
    }

    #[test]
    fn unwritable_emails_are_permanent_errors() {
        let mut bad_id = email();
        bad_id.message_id_header = "no angle <brackets>".into();
        let mut no_at = email();
        no_at.message_id_header = "cartloop.message.7".into();
        let mut spaced_url = email();
        spaced_url.unsubscribe_url = Some("https://x.example/a b".into());
        let mut injected_url = email();
        injected_url.unsubscribe_url = Some("https://x.example/\r\nBcc: x@y.z".into());
        let mut bracket_url = email();
        bracket_url.unsubscribe_url = Some("https://x.example/>".into());
        let mut long_url = email();
        long_url.unsubscribe_url = Some(format!("https://x.example/{}", "a".repeat(900)));
        let mut early = email();
        early.date = Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap();
        for email in [
            bad_id,
            no_at,
            spaced_url,
            injected_url,
            bracket_url,
            long_url,
            early,
        ] {
            assert_eq!(
                build_message(&email).unwrap_err().kind,
                MailErrorKind::Permanent
            );
        }
    }
}
