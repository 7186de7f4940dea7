//! The SMTP mailer against a real SMTP server on a local port ([`SmtpSink`]).

use cartloop_core::email_address::EmailAddress;
use cartloop_core::ids::MessageId;
use cartloop_core::ports::{Email, MailErrorKind, Mailer};
use cartloop_mail::testing::{Fault, ParsedEmail, SinkBehavior, SmtpSink};
use cartloop_mail::{OutboxMailer, SmtpMailer, SmtpOptions};
use chrono::{TimeZone, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn email(id: i64) -> Email {
    Email {
        message_id: MessageId(id),
        message_id_header: format!("cartloop.message.{id}@shop.example"),
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

fn address(address: &str) -> EmailAddress {
    EmailAddress::parse(address).unwrap()
}

fn mailer(url: &str, options: SmtpOptions) -> SmtpMailer {
    SmtpMailer::from_url_with(url, options).unwrap()
}

fn quick() -> SmtpOptions {
    SmtpOptions {
        timeout: Duration::from_millis(500),
        ..SmtpOptions::default()
    }
}

#[tokio::test]
async fn delivers_headers_and_utf8_body() {
    let sink = SmtpSink::start().await;
    let mailer = SmtpMailer::from_url(&sink.url()).unwrap();
    mailer.send(&email(7)).await.unwrap();

    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].from, "hello@shop.example");
    assert_eq!(received[0].recipients, ["mia@example.com"]);
    let parsed = received[0].parse();
    assert_eq!(
        parsed.decoded_header("From").unwrap(),
        "\"Sneaker Hub\" <hello@shop.example>"
    );
    // The non-ASCII name travels as an RFC 2047 encoded-word.
    let to = parsed.header("To").unwrap();
    assert!(to.starts_with("=?utf-8?b?") && to.is_ascii(), "{to}");
    assert_eq!(
        parsed.decoded_header("To").unwrap(),
        "Mia Müller <mia@example.com>"
    );
    assert_eq!(parsed.header("Subject"), Some("A message from Sneaker Hub"));
    assert_eq!(
        parsed.header("Message-ID"),
        Some("<cartloop.message.7@shop.example>")
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
        parsed.body_text(),
        "Hi Mia Müller,\r\nyour code is PROMO50\r\n"
    );
}

#[tokio::test]
async fn reuses_one_connection_for_sequential_sends() {
    let sink = SmtpSink::start().await;
    let mailer = SmtpMailer::from_url(&sink.url()).unwrap();
    for id in 1..=3 {
        mailer.send(&email(id)).await.unwrap();
    }
    assert_eq!(sink.wait_for(3, WAIT).await.len(), 3);
    assert_eq!(sink.connections_total(), 1);
    mailer.close().await;
    tokio::time::timeout(WAIT, async {
        while sink.open_connections() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("close() ends the idle connection");
}

#[tokio::test]
async fn idle_connections_expire() {
    let sink = SmtpSink::start().await;
    let options = SmtpOptions {
        idle_timeout: Duration::from_millis(50),
        ..SmtpOptions::default()
    };
    let mailer = mailer(&sink.url(), options);
    mailer.send(&email(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    mailer.send(&email(2)).await.unwrap();
    assert_eq!(sink.connections_total(), 2);
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced() {
    let sink = SmtpSink::start().await;
    let mailer = SmtpMailer::from_url(&sink.url()).unwrap();
    mailer.send(&email(1)).await.unwrap();
    sink.disconnect_all();
    tokio::time::timeout(WAIT, async {
        while sink.open_connections() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    mailer.send(&email(2)).await.unwrap();
    assert_eq!(sink.wait_for(2, WAIT).await.len(), 2);
    assert_eq!(sink.connections_total(), 2);
}

#[tokio::test]
async fn a_pooled_connection_idle_for_a_while_is_checked_before_use() {
    let sink = SmtpSink::start().await;
    let mailer = SmtpMailer::from_url(&sink.url()).unwrap();
    mailer.send(&email(1)).await.unwrap();
    // Past the 2 s within which a connection is reused without a `NOOP`.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    mailer.send(&email(2)).await.unwrap();
    assert_eq!(sink.connections_total(), 1, "the NOOP found it alive");
    sink.disconnect_all();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    mailer.send(&email(3)).await.unwrap();
    assert_eq!(sink.wait_for(3, WAIT).await.len(), 3);
    assert_eq!(sink.connections_total(), 2);
}

#[tokio::test]
async fn commands_are_pipelined_where_the_server_offers_it() {
    let sink = SmtpSink::start().await;
    let mailer = SmtpMailer::from_url(&sink.url()).unwrap();
    for id in 1..=3 {
        mailer.send(&email(id)).await.unwrap();
    }
    assert_eq!(sink.wait_for(3, WAIT).await.len(), 3);
    // `RCPT TO` and `DATA` of each email came before the reply to the command before them.
    assert_eq!(sink.pipelined_commands(), 6);
}

#[tokio::test]
async fn a_server_without_pipelining_gets_one_command_at_a_time() {
    let sink = SmtpSink::start_with(SinkBehavior::no_pipelining()).await;
    let mailer = SmtpMailer::from_url(&sink.url()).unwrap();
    for id in 1..=3 {
        mailer.send(&email(id)).await.unwrap();
    }
    assert_eq!(sink.wait_for(3, WAIT).await.len(), 3);
    assert_eq!(sink.pipelined_commands(), 0);
    sink.set_behavior(SinkBehavior {
        rcpt: Some(Fault::Reply("550 5.1.1 no such user".into())),
        refuse_pipelining: true,
        ..SinkBehavior::default()
    });
    let error = mailer.send(&email(4)).await.unwrap_err();
    assert_eq!(error.kind, MailErrorKind::Permanent, "{error}");
    assert!(error.message.contains("RCPT TO"), "{error}");
    assert_eq!(sink.pipelined_commands(), 0);
}

#[tokio::test]
async fn a_refusal_of_a_pipelined_command_names_its_step() {
    for (behavior, step) in [
        (
            SinkBehavior::reject_rcpt("550 5.1.1 no such user"),
            "RCPT TO",
        ),
        (
            SinkBehavior::reject_data("554 5.6.0 message refused"),
            "end of data",
        ),
    ] {
        let sink = SmtpSink::start_with(behavior).await;
        let mailer = SmtpMailer::from_url(&sink.url()).unwrap();
        let error = mailer.send(&email(1)).await.unwrap_err();
        assert_eq!(error.kind, MailErrorKind::Permanent, "{error}");
        assert!(error.message.contains(step), "{step}: {error}");
        assert!(sink.messages().is_empty());
        // The next email goes on a new connection, not one with replies left unread.
        sink.set_behavior(SinkBehavior::default());
        mailer.send(&email(2)).await.unwrap();
        assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
    }
}

#[tokio::test]
async fn a_4xx_reply_is_transient() {
    for behavior in [
        SinkBehavior::reject_rcpt("451 4.3.0 try later"),
        SinkBehavior::reject_data("451 4.3.0 try later"),
    ] {
        let sink = SmtpSink::start_with(behavior).await;
        let error = SmtpMailer::from_url(&sink.url())
            .unwrap()
            .send(&email(1))
            .await
            .unwrap_err();
        assert_eq!(error.kind, MailErrorKind::Transient, "{error}");
        assert!(error.message.contains("try later"), "{error}");
        assert!(sink.messages().is_empty());
    }
}

#[tokio::test]
async fn a_5xx_reply_is_permanent() {
    for behavior in [
        SinkBehavior::reject_rcpt("550 5.1.1 no such user"),
        SinkBehavior::reject_data("554 5.6.0 message refused"),
    ] {
        let sink = SmtpSink::start_with(behavior).await;
        let error = SmtpMailer::from_url(&sink.url())
            .unwrap()
            .send(&email(1))
            .await
            .unwrap_err();
        assert_eq!(error.kind, MailErrorKind::Permanent, "{error}");
        assert!(sink.messages().is_empty());
    }
}

#[tokio::test]
async fn a_rejected_connection_is_discarded_and_the_next_send_works() {
    let sink = SmtpSink::start_with(SinkBehavior::reject_rcpt("550 5.1.1 no such user")).await;
    let mailer = SmtpMailer::from_url(&sink.url()).unwrap();
    assert!(mailer.send(&email(1)).await.is_err());
    sink.set_behavior(SinkBehavior::default());
    mailer.send(&email(2)).await.unwrap();
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(
        received[0].parse().header("Message-ID"),
        Some("<cartloop.message.2@shop.example>")
    );
    assert_eq!(sink.connections_total(), 2);
}

#[tokio::test]
async fn a_closed_port_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mailer = mailer(&format!("smtp://127.0.0.1:{port}"), quick());
    let error = mailer.send(&email(1)).await.unwrap_err();
    assert_eq!(error.kind, MailErrorKind::Transient, "{error}");
}

#[tokio::test]
async fn a_silent_server_fails_within_the_timeout() {
    let sink = SmtpSink::start_with(SinkBehavior::silent()).await;
    let timeout = Duration::from_millis(300);
    let mailer = mailer(
        &sink.url(),
        SmtpOptions {
            timeout,
            ..SmtpOptions::default()
        },
    );
    let started = Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(5), mailer.send(&email(1)))
        .await
        .expect("the send must not hang")
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error.kind, MailErrorKind::Transient, "{error}");
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert!(
        elapsed < timeout + Duration::from_millis(1500),
        "{elapsed:?}"
    );
    assert_eq!(sink.connections_total(), 1);
}

#[tokio::test]
async fn a_lost_reply_after_the_data_is_ambiguous() {
    for behavior in [
        SinkBehavior::close_after_data(),
        SinkBehavior::hang_after_data(),
    ] {
        let sink = SmtpSink::start_with(behavior.clone()).await;
        let mailer = mailer(&sink.url(), quick());
        let error = mailer.send(&email(1)).await.unwrap_err();
        assert_eq!(
            error.kind,
            MailErrorKind::Ambiguous,
            "{behavior:?}: {error}"
        );
        // The server did get it: the retry the dispatcher makes delivers a duplicate with the
        // same Message-ID, which the receiver can drop.
        sink.set_behavior(SinkBehavior::default());
        mailer.send(&email(1)).await.unwrap();
        let received = sink.wait_for(2, WAIT).await;
        assert_eq!(received.len(), 2);
        assert_eq!(
            received[0].parse().header("Message-ID"),
            received[1].parse().header("Message-ID")
        );
    }
}

#[tokio::test]
async fn two_hundred_concurrent_sends_stay_within_the_pool() {
    let sink = SmtpSink::start().await;
    let mailer = Arc::new(mailer(
        &sink.url(),
        SmtpOptions {
            pool_size: 4,
            ..SmtpOptions::default()
        },
    ));
    let sends = (0..200).map(|id| {
        let mailer = mailer.clone();
        async move { mailer.send(&email(id)).await }
    });
    let results = futures::future::join_all(sends).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let received = sink.wait_for(200, WAIT).await;
    assert_eq!(received.len(), 200);
    let mut ids: Vec<String> = received
        .iter()
        .map(|m| m.parse().header("Message-ID").unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every email arrived once");
    assert!(
        sink.max_concurrent_connections() <= 4,
        "{} connections open at once",
        sink.max_concurrent_connections()
    );
    assert!(sink.connections_total() <= 4);
}

#[tokio::test]
async fn credentials_are_sent_percent_decoded() {
    let sink = SmtpSink::start().await;
    let url = format!("smtp://shop%40example.com:p%40ss%3Aword@{}", sink.addr());
    SmtpMailer::from_url(&url)
        .unwrap()
        .send(&email(1))
        .await
        .unwrap();
    assert_eq!(
        sink.logins(),
        [("shop@example.com".to_owned(), "p@ss:word".to_owned())]
    );
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn a_refused_login_is_transient() {
    let sink =
        SmtpSink::start_with(SinkBehavior::reject_auth("535 5.7.8 authentication failed")).await;
    let url = format!("smtp://user:wrong@{}", sink.addr());
    let error = SmtpMailer::from_url(&url)
        .unwrap()
        .send(&email(1))
        .await
        .unwrap_err();
    assert_eq!(error.kind, MailErrorKind::Transient, "{error}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn required_starttls_never_falls_back_to_plain_text() {
    // The sink does not offer STARTTLS.
    let sink = SmtpSink::start().await;
    let url = format!("{}?tls=starttls", sink.url());
    let error = mailer(&url, quick()).send(&email(1)).await.unwrap_err();
    assert_eq!(error.kind, MailErrorKind::Transient, "{error}");
    assert!(error.message.contains("STARTTLS"), "{error}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn an_unwritable_email_is_permanent_and_sends_nothing() {
    let sink = SmtpSink::start().await;
    let mut bad = email(1);
    bad.message_id_header = "no at sign".into();
    let error = SmtpMailer::from_url(&sink.url())
        .unwrap()
        .send(&bad)
        .await
        .unwrap_err();
    assert_eq!(error.kind, MailErrorKind::Permanent, "{error}");
    assert_eq!(sink.connections_total(), 0);
}

#[tokio::test]
async fn outbox_and_smtp_write_the_same_bytes() {
    let sink = SmtpSink::start().await;
    let smtp = SmtpMailer::from_url(&sink.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxMailer::new(dir.path()).unwrap();
    let names = ["Sneaker Hub", "Zoë's Shoes", "J. \"JJ\" Smith", "日本の店"];
    for (i, name) in names.into_iter().enumerate() {
        let mut email = email(i as i64);
        email.from_name = name.into();
        email.subject = format!("A message from {name}");
        email.body = format!(".\n{name} says hello\n. and a dot line");
        email.reply_to = Some(address("reply+abc@shop.example"));
        email.unsubscribe_url = Some(format!("https://shop.example/unsubscribe/{i}"));
        smtp.send(&email).await.unwrap();
        outbox.send(&email).await.unwrap();

        let sent = &sink.wait_for(i + 1, WAIT).await[i];
        let file = std::fs::read(outbox.path_for(email.message_id)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&sent.data),
            String::from_utf8_lossy(&file),
            "{name}"
        );
        let parsed = ParsedEmail::parse(&file);
        assert_eq!(
            parsed.decoded_header("From").unwrap(),
            format!("{} <hello@shop.example>", quoted(name))
        );
        assert_eq!(
            parsed.header("List-Unsubscribe"),
            Some(format!("<https://shop.example/unsubscribe/{i}>").as_str())
        );
    }
}

/// A display name as lettre writes it: quoted when it is ASCII.
fn quoted(name: &str) -> String {
    if name.is_ascii() {
        format!("\"{}\"", name.replace('"', "\\\""))
    } else {
        name.to_owned()
    }
}

#[test]
fn bad_urls_and_options_are_refused() {
    assert!(SmtpMailer::from_url("http://localhost").is_err());
    assert!(SmtpMailer::from_url("smtp://localhost?tls=maybe").is_err());
    let zero_pool = SmtpOptions {
        pool_size: 0,
        ..SmtpOptions::default()
    };
    assert!(SmtpMailer::from_url_with("smtp://localhost", zero_pool).is_err());
    let mailer = SmtpMailer::from_url("smtps://mail.example.com").unwrap();
    assert_eq!((mailer.host(), mailer.port()), ("mail.example.com", 465));
    let debug = format!(
        "{:?}",
        SmtpMailer::from_url("smtp://u:s3cret@localhost").unwrap()
    );
    assert!(!debug.contains("s3cret"), "{debug}");
}
