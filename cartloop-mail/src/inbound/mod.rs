//! A client's reply by email, read: the raw RFC 822 bytes a mail server pipes to
//! `POST /inbound/email/` become the core's [`InboundEmail`], which
//! [`cartloop_core::inbound::receive_reply`] matches to its conversation and stores.
//!
//! MIME is parsed by `mail-parser`. The text kept is the client's new words only: the
//! text/plain part (else the HTML part as text, see `html.rs`) without the quoted original
//! and the signature (see `quotes.rs`, which knows how Gmail, Outlook and Apple Mail quote).

mod html;
mod quotes;

use cartloop_core::inbound::InboundEmail;
use mail_parser::{HeaderValue, Message, MessageParser, PartType};

/// Headers whose addresses may hold the `reply+<token>@` address: the visible recipients,
/// and those mail servers add for the address the message was really delivered to (the
/// visible ones may be a list or a Bcc).
const RECIPIENT_HEADERS: [&str; 5] = ["To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To"];

/// Why raw bytes are not a reply that can be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundParseError {
    /// No bytes, or only whitespace.
    #[error("the email is empty")]
    Empty,
    /// The bytes are not an RFC 5322 message.
    #[error("not an email: {0}")]
    NotAnEmail(&'static str),
}

/// Reads a reply: its `Message-ID`, every recipient address, the ids it answers, and its
/// new text.
///
/// - `message_id`: the reply's own id, without angle brackets.
/// - `recipients`: the addresses of `To`, `Cc`, `Delivered-To`, `X-Original-To` and
///   `Envelope-To`, in that order, each once.
/// - `references`: the ids of `In-Reply-To`, then those of `References` newest first,
///   each once, without angle brackets.
/// - `text`: the text/plain part(s) — else the HTML part turned to text (tags removed,
///   entities decoded, a line break at each block element, `<blockquote>` as `> ` lines) —
///   without the quoted original (`On … wrote:` with `>` lines, Outlook's `From:`/`Sent:`
///   block or `-----Original Message-----`, `>` lines anywhere), the `-- ` signature and a
///   closing `Sent from my iPhone`. It may be empty: the core refuses an empty reply.
///
/// Never panics, whatever the bytes.
///
/// # Errors
/// [`InboundParseError::Empty`] for no bytes; [`InboundParseError::NotAnEmail`] when the
/// bytes have no `From` header (every email has one) or cannot be parsed as MIME.
///
/// ```
/// use cartloop_mail::inbound::parse_reply;
///
/// let raw = b"From: Mia <mia@example.com>\r\n\
///     To: Sneaker Hub <reply+t0k3n@shop.example>\r\n\
///     Message-ID: <CAF1@mail.gmail.com>\r\n\
///     In-Reply-To: <cartloop.message.7.1795597200000@shop.example>\r\n\
///     Subject: Re: A message from Sneaker Hub\r\n\
///     \r\n\
///     Size 42, please!\r\n\
///     \r\n\
///     On Tue, Nov 24, 2026 at 3:00 PM Sneaker Hub <hello@shop.example> wrote:\r\n\
///     > Which size do you need?\r\n";
/// let reply = parse_reply(raw)?;
/// assert_eq!(reply.message_id.as_deref(), Some("CAF1@mail.gmail.com"));
/// assert_eq!(reply.recipients, ["reply+t0k3n@shop.example"]);
/// assert_eq!(reply.references, ["cartloop.message.7.1795597200000@shop.example"]);
/// assert_eq!(reply.text, "Size 42, please!");
/// # Ok::<(), cartloop_mail::inbound::InboundParseError>(())
/// ```
pub fn parse_reply(raw: &[u8]) -> Result<InboundEmail, InboundParseError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(InboundParseError::Empty);
    }
    // mail-parser releases before 0.11.6 (0.11.3 is the newest that builds on Rust 1.85)
    // panic on some corrupt input (upstream issues #120, #155). A reply is untrusted input
    // from anyone on the Internet: a parser bug must refuse the email, not take the request
    // down.
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .map_err(|_| InboundParseError::NotAnEmail("the MIME parser could not read it"))?;
    let message = parsed.ok_or(InboundParseError::NotAnEmail("it has no header"))?;
    let has_from = message
        .headers()
        .iter()
        .any(|h| h.name.as_str().eq_ignore_ascii_case("From"));
    if !has_from {
        return Err(InboundParseError::NotAnEmail("it has no From header"));
    }
    Ok(InboundEmail {
        message_id: message
            .message_id()
            .map(|id| unbracket(id).to_owned())
            .filter(|id| !id.is_empty()),
        recipients: recipients(&message),
        references: references(&message),
        text: quotes::new_text(&body_text(&message)),
    })
}

fn recipients(message: &Message<'_>) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for name in RECIPIENT_HEADERS {
        let values = message
            .headers()
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .map(|h| &h.value);
        for value in values {
            for address in addresses(value) {
                let address = address.trim();
                let known = found.iter().any(|f| f.eq_ignore_ascii_case(address));
                if address.contains('@') && !known {
                    found.push(address.to_owned());
                }
            }
        }
    }
    found
}

/// The addresses in a header: parsed ones, or, for headers mail-parser keeps as text
/// (`Delivered-To` and the like), each comma-separated `addr` or `Name <addr>`.
fn addresses<'a>(value: &'a HeaderValue<'_>) -> Vec<&'a str> {
    match value {
        HeaderValue::Address(list) => list.iter().filter_map(|a| a.address()).collect(),
        HeaderValue::Text(text) => text.split(',').map(angle_content).collect(),
        HeaderValue::TextList(texts) => texts
            .iter()
            .flat_map(|t| t.split(','))
            .map(angle_content)
            .collect(),
        _ => Vec::new(),
    }
}

/// `addr` out of `Name <addr>`, or the trimmed text.
fn angle_content(text: &str) -> &str {
    match (text.find('<'), text.rfind('>')) {
        (Some(start), Some(end)) if start < end => text[start + 1..end].trim(),
        _ => text.trim(),
    }
}

fn unbracket(id: &str) -> &str {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
}

/// `In-Reply-To` ids, then `References` ids newest (last) first; each once.
fn references(message: &Message<'_>) -> Vec<String> {
    let mut references = ids(message.in_reply_to());
    references.extend(ids(message.references()).into_iter().rev());
    let mut unique: Vec<String> = Vec::with_capacity(references.len());
    for id in references {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    unique
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    let texts: Vec<&str> = match value {
        HeaderValue::Text(text) => vec![text.as_ref()],
        HeaderValue::TextList(texts) => texts.iter().map(AsRef::as_ref).collect(),
        _ => Vec::new(),
    };
    texts
        .into_iter()
        .flat_map(str::split_whitespace)
        .map(unbracket)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The text/plain parts, joined; else the HTML parts as text. A blank text part (some
/// clients send one beside the real HTML) counts as absent.
fn body_text(message: &Message<'_>) -> String {
    let plain: Vec<&str> = message
        .text_bodies()
        .filter_map(|part| match &part.body {
            PartType::Text(text) => Some(text.as_ref()),
            _ => None,
        })
        .collect();
    if plain.iter().any(|text| !text.trim().is_empty()) {
        return plain.join("\n");
    }
    message
        .html_bodies()
        .filter_map(|part| match &part.body {
            PartType::Html(html) => Some(html::to_text(html)),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> InboundEmail {
        parse_reply(raw.as_bytes()).unwrap()
    }

    #[test]
    fn reads_every_recipient_header_once() {
        let reply = parse(
            "From: mia@example.com\r\n\
             To: \"Sneaker Hub\" <hello@shop.example>, team@shop.example\r\n\
             Cc: Undisclosed:;\r\n\
             Delivered-To: reply+abc@shop.example\r\n\
             X-Original-To: <reply+abc@shop.example>\r\n\
             Envelope-To: other@shop.example, HELLO@shop.example\r\n\
             \r\n\
             Yes\r\n",
        );
        assert_eq!(
            reply.recipients,
            [
                "hello@shop.example",
                "team@shop.example",
                "reply+abc@shop.example",
                "other@shop.example"
            ]
        );
    }

    #[test]
    fn references_are_in_reply_to_then_newest_first() {
        let reply = parse(
            "From: mia@example.com\r\n\
             Message-ID: <own@mail.example>\r\n\
             In-Reply-To: <c@x.example>\r\n\
             References: <a@x.example> <b@x.example>\r\n <c@x.example>\r\n\
             \r\n\
             Yes\r\n",
        );
        assert_eq!(reply.message_id.as_deref(), Some("own@mail.example"));
        assert_eq!(
            reply.references,
            ["c@x.example", "b@x.example", "a@x.example"]
        );
    }

    #[test]
    fn a_reply_without_ids_has_none() {
        let reply = parse("From: mia@example.com\r\n\r\nYes\r\n");
        assert_eq!(reply.message_id, None);
        assert!(reply.references.is_empty() && reply.recipients.is_empty());
        assert_eq!(reply.text, "Yes");
    }

    #[test]
    fn a_blank_text_part_yields_to_the_html_one() {
        let reply = parse(
            "From: mia@example.com\r\n\
             Content-Type: multipart/alternative; boundary=\"b\"\r\n\
             \r\n\
             --b\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             \r\n\
             \r\n\
             --b\r\n\
             Content-Type: text/html; charset=utf-8\r\n\
             \r\n\
             <div>Size&nbsp;42</div>\r\n\
             --b--\r\n",
        );
        assert_eq!(reply.text, "Size 42");
    }

    #[test]
    fn the_html_part_of_each_multipart_sample_reads_as_its_text_part() {
        let samples: [&[u8]; 3] = [
            include_bytes!("../../tests/samples/gmail.eml"),
            include_bytes!("../../tests/samples/outlook.eml"),
            include_bytes!("../../tests/samples/apple_mail_iphone.eml"),
        ];
        for raw in samples {
            let message = MessageParser::default().parse(raw).unwrap();
            let html = message
                .html_bodies()
                .find_map(|part| match &part.body {
                    PartType::Html(html) => Some(html.as_ref()),
                    _ => None,
                })
                .unwrap();
            let from_html = quotes::new_text(&html::to_text(html));
            let from_text = parse_reply(raw).unwrap().text;
            assert!(!from_text.is_empty());
            assert_eq!(from_html, from_text);
        }
    }

    #[test]
    fn refuses_what_is_not_an_email() {
        assert_eq!(parse_reply(b""), Err(InboundParseError::Empty));
        assert_eq!(parse_reply(b" \r\n\t"), Err(InboundParseError::Empty));
        for garbage in [
            &b"just some text"[..],
            b"\xff\xfe\x00\x01binary",
            b"To: mia@example.com\r\n\r\nno sender",
        ] {
            assert!(
                matches!(parse_reply(garbage), Err(InboundParseError::NotAnEmail(_))),
                "{garbage:?}"
            );
        }
    }
}
