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

/// A tmpfs of `size` on a new temporary directory, unmounted when dropped; `None` (the
/// reason printed) where this process may not mount. Under `CI=true` as root it must work.
struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Self { dir }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                let root = std::fs::read_to_string("/proc/self/status")
                    .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")));
                assert!(
                    !(root && std::env::var("CI").as_deref() == Ok("true")),
                    "CI as root must be able to mount a tmpfs: {why}"
                );
                eprintln!("skipped: cannot mount a small tmpfs here ({why})");
                None
            }
        }
    }

    fn remount(&self, mode: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A full outbox disk, then a read-only one, fail sends transiently and leave no file, not
/// even a partial one; once there is room again the same outbox writes.
#[tokio::test]
async fn a_full_or_read_only_outbox_is_transient_and_leaves_no_partial_file() {
    let Some(fs) = SmallFilesystem::mount("256k") else {
        return;
    };
    let outbox = OutboxMailer::new(fs.dir.path().join("outbox")).unwrap();
    let filler = fs.dir.path().join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        for chunk in [4096, 64, 1] {
            while file.write_all(&vec![0u8; chunk]).is_ok() {}
        }
    }
    let mut big = email(1);
    big.body = "x".repeat(20_000);
    let error = outbox.send(&big).await.unwrap_err();
    assert_eq!(error.kind, MailErrorKind::Transient, "{error}");
    assert!(error.message.contains("disk is full"), "{error}");
    assert!(files(outbox.dir()).is_empty(), "{:?}", files(outbox.dir()));

    std::fs::remove_file(&filler).unwrap();
    outbox.send(&big).await.unwrap();
    assert_eq!(files(outbox.dir()), ["message-1.eml"]);

    fs.remount("ro");
    let error = outbox.send(&email(2)).await.unwrap_err();
    fs.remount("rw");
    assert_eq!(error.kind, MailErrorKind::Transient, "{error}");
    assert_eq!(files(outbox.dir()), ["message-1.eml"]);
    outbox.send(&email(2)).await.unwrap();
    assert_eq!(files(outbox.dir()), ["message-1.eml", "message-2.eml"]);
}

/// The temporary file of a write a killed process never finished is removed when an
/// outbox opens the directory again, once it is old enough; a fresh one is left alone.
#[test]
fn stale_temporary_files_are_removed_when_the_outbox_opens() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join(".message-3.eml.4242-0.tmp");
    let fresh = dir.path().join(".message-4.eml.4242-1.tmp");
    std::fs::write(&stale, b"half an em").unwrap();
    std::fs::write(&fresh, b"half an em").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();
    OutboxMailer::new(dir.path()).unwrap();
    assert_eq!(
        files(dir.path()),
        [".message-4.eml.4242-1.tmp", "notes.txt"]
    );
}
