//! The SMTP mailer against an SMTP server it shares no code with: Python's aiosmtpd
//! (`python3 -m pip install aiosmtpd`), storing what it receives in a maildir, read back
//! with Python's own `email` parser. `SmtpSink` (tests/smtp.rs) injects faults; this checks
//! that what the mailer writes is what an independent server and parser understand.
//!
//! Without aiosmtpd the test says so and is skipped, except in CI (`CI=true`), where
//! `.ci/run` installs it and the test must run.

use cartloop_core::email_address::EmailAddress;
use cartloop_core::ids::MessageId;
use cartloop_core::ports::{Email, Mailer};
use cartloop_mail::SmtpMailer;
use chrono::{TimeZone, Utc};
use serde_json::Value;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Prints each message of the maildir `argv[1]` as JSON: the envelope sender aiosmtpd
/// recorded, and the headers and body decoded by Python's `email` package.
const READ_MAILDIR: &str = r#"
import email, email.policy, json, mailbox, sys
def optional(header, read):
    return None if header is None else read(header)
out = []
for key, message in mailbox.Maildir(sys.argv[1], create=False).items():
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    out.append({
        "from": str(parsed["From"]),
        "to": str(parsed["To"]),
        "to_name": parsed["To"].addresses[0].display_name,
        "to_address": parsed["To"].addresses[0].addr_spec,
        "subject": str(parsed["Subject"]),
        "message_id": str(parsed["Message-ID"]),
        "reply_to": optional(parsed["Reply-To"], lambda h: [a.addr_spec for a in h.addresses]),
        "list_unsubscribe": optional(parsed["List-Unsubscribe"], str),
        "list_unsubscribe_post": optional(parsed["List-Unsubscribe-Post"], str),
        "date": parsed["Date"].datetime.isoformat(),
        "content_type": parsed.get_content_type(),
        "charset": parsed.get_content_charset(),
        "body": parsed.get_content(),
        "defects": [str(d) for d in parsed.defects],
    })
print(json.dumps(out))
"#;

struct Aiosmtpd {
    child: Child,
    port: u16,
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn aiosmtpd_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start(maildir: &Path) -> Aiosmtpd {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let server = Aiosmtpd { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn read_maildir(maildir: &Path) -> Vec<Value> {
    let output = Command::new("python3")
        .args(["-c", READ_MAILDIR])
        .arg(maildir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn email(id: i64, to_name: &str, body: &str) -> Email {
    Email {
        message_id: MessageId(id),
        message_id_header: format!("cartloop.message.{id}.1795597200000@shop.example"),
        from_name: "Sneaker Hub".into(),
        from_address: EmailAddress::parse("hello@shop.example").unwrap(),
        to_name: to_name.into(),
        to_address: EmailAddress::parse(&format!("client{id}@example.com")).unwrap(),
        // Every other email goes without the optional headers.
        reply_to: (id % 2 == 1)
            .then(|| EmailAddress::parse(&format!("reply+{id}.s1gn4ture@shop.example")).unwrap()),
        unsubscribe_url: (id % 2 == 1)
            .then(|| format!("https://shop.example/unsubscribe/{id}.s1gn4ture?x=1&y=2")),
        subject: "A message from Sneaker Hub".into(),
        body: body.into(),
        date: Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_server_and_parser_read_what_the_mailer_sends() {
    if !aiosmtpd_installed() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: aiosmtpd must be installed (python3 -m pip install aiosmtpd)"
        );
        eprintln!("skipped: aiosmtpd not installed (python3 -m pip install aiosmtpd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let server = start(&maildir);
    let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{}", server.port)).unwrap();

    let long_line = "word ".repeat(60);
    let sent = [
        email(
            1,
            "John Carter",
            "Sure John Carter. Here is your code PROMO50",
        ),
        email(2, "Mia Müller", "Hallo Mia Müller,\ndein Code: LESEN5"),
        email(3, "Sita Sharma", ".\n.. a line with dots\n.\nend"),
        email(4, "Chloe \"C\" Brown", &long_line),
    ];
    for email in &sent {
        mailer.send(email).await.unwrap();
    }

    let mut received = read_maildir(&maildir);
    received.sort_by_key(|m| m["message_id"].as_str().unwrap().to_owned());
    assert_eq!(received.len(), sent.len());
    for (email, got) in sent.iter().zip(&received) {
        assert_eq!(got["defects"], serde_json::json!([]), "{got}");
        assert_eq!(got["from"], "Sneaker Hub <hello@shop.example>");
        assert_eq!(got["to_name"], email.to_name.as_str(), "{got}");
        assert_eq!(got["to_address"], email.to_address.as_str());
        assert_eq!(got["subject"], "A message from Sneaker Hub");
        assert_eq!(
            got["message_id"],
            format!("<{}>", email.message_id_header).as_str()
        );
        assert_eq!(got["date"], "2026-11-25T09:00:00+00:00");
        match (&email.reply_to, &email.unsubscribe_url) {
            (Some(reply_to), Some(url)) => {
                assert_eq!(got["reply_to"], serde_json::json!([reply_to.as_str()]));
                assert_eq!(got["list_unsubscribe"], format!("<{url}>").as_str());
                assert_eq!(got["list_unsubscribe_post"], "List-Unsubscribe=One-Click");
            }
            _ => {
                assert_eq!(got["reply_to"], Value::Null, "{got}");
                assert_eq!(got["list_unsubscribe"], Value::Null, "{got}");
                assert_eq!(got["list_unsubscribe_post"], Value::Null, "{got}");
            }
        }
        assert_eq!(got["content_type"], "text/plain");
        assert_eq!(got["charset"], "utf-8");
        // Line ends travel as CRLF and come back as LF; a final newline may be added.
        let body = got["body"].as_str().unwrap().replace("\r\n", "\n");
        assert_eq!(body.trim_end(), email.body.trim_end(), "{got}");
    }
}
