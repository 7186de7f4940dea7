//! The lettre message for an [`Email`]: headers, envelope and encoded body.

use cartloop_core::ports::{Email, MailError};
use lettre::address::Envelope;
use lettre::message::header::{ContentType, MIME_VERSION_1_0};
use lettre::message::Mailbox;
use lettre::{Address, Message};
use std::time::SystemTime;

/// An email ready for the SMTP transaction.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// `MAIL FROM` and `RCPT TO`.
    pub(crate) envelope: Envelope,
    /// What follows the `DATA` command: the RFC 5322 message dot-stuffed (a line starting with `.`
    /// gets a second one), then the final `CRLF.CRLF`.
    pub(crate) data: String,
    /// The envelope holds a non-ASCII address: the server must offer `SMTPUTF8`.
    pub(crate) needs_smtputf8: bool,
    /// The message holds 8-bit data: the server must offer `8BITMIME`.
    pub(crate) needs_8bitmime: bool,
}

/// Builds the message: `From: from_name <from_address>`, `To: to_name <to_address>`,
/// `Subject`, `Message-ID: <message_id_header>`, `Date`, and the body as UTF-8
/// `text/plain` (lettre picks `7bit` or quoted-printable). Names are RFC 2047-encoded when
/// needed.
///
/// # Errors
/// [`MailError::permanent`] for an invalid address or `Message-ID`: no retry can fix them.
pub(crate) fn prepare(email: &Email) -> Result<Prepared, MailError> {
    let from = mailbox(&email.from_name, &email.from_address, "sender")?;
    let to = mailbox(&email.to_name, &email.to_address, "recipient")?;
    crate::rfc5322::check_message_id(&email.message_id_header).map_err(MailError::permanent)?;
    let needs_smtputf8 = !from.email.to_string().is_ascii() || !to.email.to_string().is_ascii();
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(email.subject.as_str())
        .message_id(Some(format!("<{}>", email.message_id_header)))
        .date(SystemTime::from(email.date))
        .header(MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN)
        .body(email.body.clone())
        .map_err(|e| MailError::permanent(format!("cannot build the email: {e}")))?;
    let bytes = message.formatted();
    let data = dot_stuffed(&bytes)?;
    Ok(Prepared {
        envelope: message.envelope().clone(),
        needs_8bitmime: !bytes.is_ascii(),
        data,
        needs_smtputf8,
    })
}

/// The `DATA` content (RFC 5321 §4.5.2), as lettre's `message()` would write it.
fn dot_stuffed(message: &[u8]) -> Result<String, MailError> {
    let text = std::str::from_utf8(message)
        .map_err(|_| MailError::permanent("the formatted email is not UTF-8"))?;
    let mut data = String::with_capacity(text.len() + 16);
    if text.starts_with('.') {
        data.push('.');
    }
    data.push_str(&text.replace("\r\n.", "\r\n.."));
    data.push_str("\r\n.\r\n");
    Ok(data)
}

fn mailbox(name: &str, address: &str, role: &str) -> Result<Mailbox, MailError> {
    let address: Address = address
        .parse()
        .map_err(|e| MailError::permanent(format!("invalid {role} address {address:?}: {e}")))?;
    let name = Some(name.trim())
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    Ok(Mailbox::new(name, address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartloop_core::ids::MessageId;
    use cartloop_core::ports::MailErrorKind;
    use chrono::{TimeZone, Utc};

    pub(crate) fn email() -> Email {
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

    #[test]
    fn builds_headers_and_envelope() {
        let prepared = prepare(&email()).unwrap();
        let text = prepared.data.strip_suffix("\r\n.\r\n").unwrap();
        assert!(text.is_ascii(), "names and body are encoded: {text}");
        assert!(!prepared.needs_8bitmime && !prepared.needs_smtputf8);
        for line in [
            "From: \"Sneaker Hub\" <hello@shop.example>\r\n",
            "Subject: A message from Sneaker Hub\r\n",
            "Message-ID: <cartloop.message.7@shop.example>\r\n",
            "Date: Thu, 05 Nov 2026 15:00:00 +0000\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "Content-Transfer-Encoding: quoted-printable\r\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("To: =?utf-8?b?"), "{text}");
        assert!(
            text.ends_with("Hi Mia M=C3=BCller,\r\nyour code is PROMO50"),
            "{text}"
        );
        assert_eq!(
            prepared.envelope.from().map(|a| a.to_string()),
            Some("hello@shop.example".to_owned())
        );
        let to: Vec<String> = prepared
            .envelope
            .to()
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(to, ["mia@example.com"]);
    }

    #[test]
    fn data_is_dot_stuffed_and_terminated() {
        assert_eq!(
            dot_stuffed(b"a\r\n.b\r\n..c").unwrap(),
            "a\r\n..b\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b".x\r\ny.").unwrap(), "..x\r\ny.\r\n.\r\n");
        let mut email = email();
        email.body = ".\nline".into();
        let prepared = prepare(&email).unwrap();
        assert!(
            prepared.data.ends_with("\r\n..\r\nline\r\n.\r\n"),
            "{}",
            prepared.data
        );
    }

    #[test]
    fn invalid_addresses_and_ids_are_permanent() {
        let mut bad_to = email();
        bad_to.to_address = "not an address".into();
        let mut bad_from = email();
        bad_from.from_address = "@nowhere".into();
        let mut bad_id = email();
        bad_id.message_id_header = "no angle <brackets>".into();
        for email in [bad_to, bad_from, bad_id] {
            assert_eq!(prepare(&email).unwrap_err().kind, MailErrorKind::Permanent);
        }
    }

    #[test]
    fn international_addresses_need_smtputf8() {
        let mut email = email();
        email.to_address = "müller@bücher.example".into();
        assert!(prepare(&email).unwrap().needs_smtputf8);
    }
}
