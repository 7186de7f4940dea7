//! The outbox mailer: one `.eml` file per message, written atomically.

use cartloop_core::email_address::EmailAddress;
use cartloop_core::ids::MessageId;
use cartloop_core::ports::{Email, MailErrorKind, Mailer};
use cartloop_mail::testing::ParsedEmail;
use cartloop_mail::OutboxMailer;
use chrono::{TimeZone, Utc};
use std::path::Path;
use std::sync::Arc;

fn email(id: i64) -> Email {
    Email {
        message_id: MessageId(id),
        message_id_header: format!("cartloop.message.{id}@shop.example"),
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

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn writes_one_file_per_message_with_headers_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxMailer::new(dir.path().join("nested/outbox")).unwrap();
    assert_eq!(outbox.dir(), dir.path().join("nested/outbox"));
    outbox.send(&email(1)).await.unwrap();
    outbox.send(&email(2)).await.unwrap();
    assert_eq!(files(outbox.dir()), ["message-1.eml", "message-2.eml"]);

    let raw = std::fs::read(outbox.path_for(MessageId(1))).unwrap();
    let parsed = ParsedEmail::parse(&raw);
    assert_eq!(
        parsed.header("From"),
        Some("\"Sneaker Hub\" <hello@shop.example>")
    );
    assert_eq!(
        parsed.decoded_header("To").unwrap(),
        "Mia Müller <mia@example.com>"
    );
    assert!(parsed.header("To").unwrap().is_ascii());
    assert_eq!(parsed.header("Subject"), Some("A message from Sneaker Hub"));
    assert_eq!(
        parsed.header("Message-ID"),
        Some("<cartloop.message.1@shop.example>")
    );
    assert_eq!(
        parsed.header("Date"),
        Some("Thu, 05 Nov 2026 15:00:00 +0000")
    );
    assert_eq!(
        parsed.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        parsed.header("Content-Transfer-Encoding"),
        Some("quoted-printable")
    );
    assert_eq!(
        parsed.body_text(),
        "Hi Mia Müller,\r\nyour code is PROMO50\r\n"
    );
}

#[tokio::test]
async fn sending_again_replaces_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxMailer::new(dir.path()).unwrap();
    outbox.send(&email(5)).await.unwrap();
    let mut again = email(5);
    again.body = "second version".into();
    outbox.send(&again).await.unwrap();
    assert_eq!(files(dir.path()), ["message-5.eml"]);
    let parsed = ParsedEmail::parse(&std::fs::read(outbox.path_for(MessageId(5))).unwrap());
    assert_eq!(parsed.body_text(), "second version\r\n");
}

#[tokio::test]
async fn concurrent_sends_of_one_message_leave_one_file_and_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(OutboxMailer::new(dir.path()).unwrap());
    let sends = (0..50).map(|i| {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.send(&email(i % 3)).await })
    });
    for send in futures::future::join_all(sends).await {
        send.unwrap().unwrap();
    }
    assert_eq!(
        files(dir.path()),
        ["message-0.eml", "message-1.eml", "message-2.eml"]
    );
}

#[tokio::test]
async fn an_unwritable_email_is_permanent_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxMailer::new(dir.path()).unwrap();
    let mut bad = email(1);
    bad.message_id_header = "cartloop.message.1 at shop.example".into();
    let error = outbox.send(&bad).await.unwrap_err();
    assert_eq!(error.kind, MailErrorKind::Permanent, "{error}");
    assert!(files(dir.path()).is_empty());
}

#[tokio::test]
async fn an_io_error_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxMailer::new(dir.path().join("outbox")).unwrap();
    // The directory is replaced by a file: every write fails.
    std::fs::remove_dir(outbox.dir()).unwrap();
    std::fs::write(outbox.dir(), b"not a directory").unwrap();
    let error = outbox.send(&email(1)).await.unwrap_err();
    assert_eq!(error.kind, MailErrorKind::Transient, "{error}");
    assert_eq!(files(dir.path()), ["outbox"]);
}

#[test]
fn new_fails_when_the_directory_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(OutboxMailer::new(file.join("outbox")).is_err());
}
