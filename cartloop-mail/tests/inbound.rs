//! Replies as Gmail, Outlook and Apple Mail write them (full raw emails in
//! `tests/samples/`), read into only the client's new text; and no input makes the parser
//! panic.

use cartloop_core::inbound::InboundEmail;
use cartloop_mail::inbound::{parse_reply, InboundParseError};
use proptest::prelude::*;

const OUR_ID: &str = "cartloop.message.7.1795597200000@shop.example";
const OLDER_ID: &str = "cartloop.message.3.1795510800000@shop.example";
const REPLY_TO: &str = "reply+7.c29tZS1zaWduZWQtdG9rZW4@shop.example";

const SAMPLES: [(&str, &[u8]); 6] = [
    ("gmail", include_bytes!("samples/gmail.eml")),
    ("outlook", include_bytes!("samples/outlook.eml")),
    (
        "outlook_html_only",
        include_bytes!("samples/outlook_html_only.eml"),
    ),
    (
        "outlook_original_message",
        include_bytes!("samples/outlook_original_message.eml"),
    ),
    (
        "apple_mail_iphone",
        include_bytes!("samples/apple_mail_iphone.eml"),
    ),
    (
        "apple_mail_mac",
        include_bytes!("samples/apple_mail_mac.eml"),
    ),
];

fn sample(name: &str) -> InboundEmail {
    let (_, raw) = SAMPLES.iter().find(|(n, _)| *n == name).unwrap();
    parse_reply(raw).unwrap()
}

#[test]
fn gmail_multipart_quoted_printable_with_a_wrapped_attribution() {
    let reply = sample("gmail");
    assert_eq!(
        reply.message_id.as_deref(),
        Some("CAHx9wQ3vKp=7Jr0fXq+8Yb1nZ2uLmS3dT4eW5@mail.gmail.com")
    );
    assert_eq!(reply.recipients, [REPLY_TO]);
    assert_eq!(reply.references, [OUR_ID, OLDER_ID]);
    assert_eq!(
        reply.text,
        "Hi! Yes, size 42 please.\nCan it arrive before Friday? Danke schön!\n\nMia"
    );
}

#[test]
fn outlook_multipart_base64_with_its_header_block() {
    let reply = sample("outlook");
    assert_eq!(
        reply.message_id.as_deref(),
        Some("AM9PR07MB71216E1B2C3D4E5F6A7B8C9DA1B2C@AM9PR07MB7121.eurprd07.prod.outlook.com")
    );
    assert_eq!(reply.recipients, [REPLY_TO]);
    assert_eq!(reply.references, [OUR_ID]);
    assert_eq!(
        reply.text,
        "Hello,\n\nyes please, size 42 in black. Could you also check whether you have the \
         matching socks?\n\nKind regards\nMia Müller"
    );
}

#[test]
fn outlook_html_only_windows_1252_reads_the_html_part() {
    let reply = sample("outlook_html_only");
    assert_eq!(
        reply.message_id.as_deref(),
        Some("DB9PR07MB8904AB12CD34EF56@DB9PR07MB8904.eurprd07.prod.outlook.com")
    );
    // The visible To is the store; the address the mail server delivered to is the reply one.
    assert_eq!(reply.recipients, ["hello@shop.example", REPLY_TO]);
    assert_eq!(reply.references, [OUR_ID]);
    assert_eq!(
        reply.text,
        "Grüße! Could you send it to my office instead?\n\
         Müllerstraße 5, 10115 Berlin – 3rd floor\n\nThanks, Mia"
    );
}

#[test]
fn outlook_plain_text_original_message() {
    let reply = sample("outlook_original_message");
    assert_eq!(
        reply.message_id.as_deref(),
        Some("000001db3e9a$1f2e3d40$5d6c7b80$@contoso.example")
    );
    assert_eq!(reply.recipients, [REPLY_TO]);
    assert_eq!(reply.references, [OUR_ID]);
    assert_eq!(
        reply.text,
        "Thanks, that worked. I ordered the white ones.\n\nJohn"
    );
}

#[test]
fn apple_mail_on_an_iphone_quotes_its_attribution() {
    let reply = sample("apple_mail_iphone");
    assert_eq!(
        reply.message_id.as_deref(),
        Some("4B2E9F1C-3A7D-4C5E-9E8B-1F0A2D3C4B5E@icloud.example")
    );
    assert_eq!(reply.recipients, [REPLY_TO]);
    assert_eq!(reply.references, [OUR_ID]);
    assert_eq!(
        reply.text,
        "Perfect, thank you! Can I still change the colour to red?"
    );
}

#[test]
fn apple_mail_on_a_mac_with_a_signature() {
    let reply = sample("apple_mail_mac");
    assert_eq!(
        reply.message_id.as_deref(),
        Some("9D8C7B6A-5F4E-4D3C-B2A1-0F9E8D7C6B5A@example.in")
    );
    assert_eq!(reply.recipients, [REPLY_TO, "ravi@example.in"]);
    assert_eq!(reply.references, [OUR_ID]);
    assert_eq!(
        reply.text,
        "Namaste! Does the code also work for the sale items?\nDhanyavaad 🙏"
    );
}

#[test]
fn every_sample_is_a_full_email_with_crlf_line_ends() {
    for (name, raw) in SAMPLES {
        let text = std::str::from_utf8(raw).unwrap();
        assert!(!text.replace("\r\n", "").contains('\n'), "{name}: bare LF");
        assert!(text.contains("\r\n\r\n"), "{name}: no header block");
    }
}

#[test]
fn a_reply_with_lf_line_ends_reads_the_same() {
    for (name, raw) in SAMPLES {
        let lf = String::from_utf8(raw.to_vec())
            .unwrap()
            .replace("\r\n", "\n");
        let reply = parse_reply(lf.as_bytes()).unwrap();
        assert_eq!(reply, sample(name), "{name}");
    }
}

#[test]
fn garbage_is_an_error() {
    assert_eq!(parse_reply(b""), Err(InboundParseError::Empty));
    for garbage in [
        &b"\x00\x01\x02\x03"[..],
        b"<html><body>Not an email</body></html>",
        b"{\"json\": true}",
        b"Subject: no sender\r\n\r\nHello",
    ] {
        let error = parse_reply(garbage).unwrap_err();
        assert!(
            matches!(error, InboundParseError::NotAnEmail(_)),
            "{garbage:?}: {error}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_random_bytes(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_reply(&raw);
    }

    #[test]
    fn never_panics_on_mangled_samples(
        which in 0..SAMPLES.len(),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..12),
    ) {
        // Samples with bytes replaced, inserted or cut off: close to valid MIME, where a
        // parser's edge cases are.
        let mut raw = SAMPLES[which].1.to_vec();
        for (at, byte, op) in cuts {
            if raw.is_empty() {
                break;
            }
            let at = at.index(raw.len());
            match op {
                0 => raw[at] = byte,
                1 => raw.insert(at, byte),
                _ => raw.truncate(at),
            }
        }
        let _ = parse_reply(&raw);
    }

    #[test]
    fn new_text_is_trimmed_and_never_quoted(body in "[ -~\n>]{0,400}") {
        let raw = format!("From: mia@example.com\r\n\r\n{body}");
        let reply = parse_reply(raw.as_bytes()).unwrap();
        prop_assert_eq!(reply.text.trim(), reply.text.as_str());
        prop_assert!(reply.text.lines().all(|l| !l.trim_start().starts_with('>')));
    }
}
