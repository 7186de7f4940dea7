//! An email ready for the SMTP transaction: the one message's bytes (those the outbox
//! writes), its envelope, and what the server must support to take it.

use cartloop_core::ports::{Email, MailError};
use lettre::address::Envelope;

/// An email ready for the SMTP transaction.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// `MAIL FROM` and `RCPT TO`.
    pub(crate) envelope: Envelope,
    /// What follows the `DATA` command: the message's bytes (exactly what the outbox
    /// writes) dot-stuffed (a line starting with `.` gets a second one), then the final
    /// `CRLF.CRLF`.
    pub(crate) data: String,
    /// The envelope holds a non-ASCII address: the server must offer `SMTPUTF8`. (The core's
    /// `EmailAddress` is ASCII only today; this keeps the mailer right for any envelope.)
    pub(crate) needs_smtputf8: bool,
    /// The message holds 8-bit data (a non-ASCII address in a header): the server must
    /// offer `8BITMIME`.
    pub(crate) needs_8bitmime: bool,
}

/// Builds the message and its `DATA`.
///
/// # Errors
/// [`MailError::permanent`] when the email cannot be written (see
/// [`build_message`](crate::build_message)).
pub(crate) fn prepare(email: &Email) -> Result<Prepared, MailError> {
    let message = crate::build_message(email)?;
    let envelope = message.envelope().clone();
    let ascii = |address: &lettre::Address| AsRef::<str>::as_ref(address).is_ascii();
    let needs_smtputf8 = !envelope.from().is_none_or(ascii) || !envelope.to().iter().all(ascii);
    let bytes = crate::message::wire_bytes(&message);
    Ok(Prepared {
        needs_8bitmime: !bytes.is_ascii(),
        data: dot_stuffed(&bytes)?,
        envelope,
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
    if !data.ends_with("\r\n") {
        data.push_str("\r\n");
    }
    data.push_str(".\r\n");
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartloop_core::email_address::EmailAddress;
    use cartloop_core::ids::MessageId;
    use chrono::{TimeZone, Utc};

    fn email() -> Email {
        Email {
            message_id: MessageId(7),
            message_id_header: "cartloop.message.7@shop.example".into(),
            from_name: "Sneaker Hub".into(),
            from_address: EmailAddress::parse("hello@shop.example").unwrap(),
            to_name: "Mia Müller".into(),
            to_address: EmailAddress::parse("mia@example.com").unwrap(),
            reply_to: None,
            unsubscribe_url: None,
            subject: "A message from Sneaker Hub".into(),
            body: "Hi Mia Müller,\nyour code is PROMO50".into(),
            date: Utc.with_ymd_and_hms(2026, 11, 5, 15, 0, 0).unwrap(),
        }
    }

    #[test]
    fn data_is_the_message_dot_stuffed_and_terminated() {
        let email = email();
        let prepared = prepare(&email).unwrap();
        let bytes = crate::message::wire_bytes(&crate::build_message(&email).unwrap());
        assert_eq!(
            prepared.data,
            format!("{}.\r\n", String::from_utf8(bytes).unwrap())
        );
        assert!(!prepared.needs_8bitmime && !prepared.needs_smtputf8);
        assert_eq!(
            dot_stuffed(b"a\r\n.b\r\n..c").unwrap(),
            "a\r\n..b\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b".x\r\ny.").unwrap(), "..x\r\ny.\r\n.\r\n");
    }

    #[test]
    fn a_body_line_of_dots_is_stuffed() {
        let mut email = email();
        email.body = ".\nline".into();
        let prepared = prepare(&email).unwrap();
        assert!(
            prepared.data.ends_with("\r\n..\r\nline\r\n.\r\n"),
            "{}",
            prepared.data
        );
    }
}
