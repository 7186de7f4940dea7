//! Throughput of the SMTP mailer against an in-process SMTP server.
//!
//! ```text
//! cargo run -p cartloop-mail --release --example smtp_throughput --all-features -- [emails] [pool_size]
//! ```
//!
//! Starts an [`SmtpSink`] on a local port, sends `emails` (default 5,000) concurrently
//! through one [`SmtpMailer`] with `pool_size` connections (default 8), checks that every
//! email arrived, and prints emails per second.

use cartloop_core::email_address::EmailAddress;
use cartloop_core::ids::MessageId;
use cartloop_core::ports::{Email, Mailer};
use cartloop_mail::testing::SmtpSink;
use cartloop_mail::{SmtpMailer, SmtpOptions};
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let emails: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5_000);
    let pool_size: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);

    let sink = SmtpSink::start().await;
    let mailer = Arc::new(SmtpMailer::from_url_with(
        &sink.url(),
        SmtpOptions {
            pool_size,
            ..SmtpOptions::default()
        },
    )?);

    let started = Instant::now();
    let sends: Vec<_> = (0..emails)
        .map(|i| {
            let mailer = mailer.clone();
            tokio::spawn(async move { mailer.send(&email(i)).await })
        })
        .collect();
    let mut failed = 0;
    for send in sends {
        if send.await?.is_err() {
            failed += 1;
        }
    }
    let elapsed = started.elapsed();

    let received = sink.wait_for(emails, Duration::from_secs(10)).await.len();
    println!(
        "{emails} emails, pool of {pool_size}: {:.0} emails/s ({elapsed:.2?}); \
         {received} received, {failed} failed, {} connections opened",
        emails as f64 / elapsed.as_secs_f64(),
        sink.connections_total(),
    );
    if received != emails || failed != 0 {
        return Err("not every email arrived".into());
    }
    Ok(())
}

fn email(i: usize) -> Email {
    Email {
        message_id: MessageId(i as i64),
        message_id_header: format!("cartloop.message.{i}@shop.example"),
        from_name: "Sneaker Hub".into(),
        from_address: EmailAddress::parse("hello@shop.example").unwrap(),
        to_name: "Mia Müller".into(),
        to_address: EmailAddress::parse(&format!("client{i}@example.com")).unwrap(),
        reply_to: Some(EmailAddress::parse("reply+7.c29tZS10b2tlbg@shop.example").unwrap()),
        unsubscribe_url: Some(format!(
            "https://shop.example/unsubscribe/c29tZS10b2tlbg.{i}"
        )),
        subject: "A message from Sneaker Hub".into(),
        body: format!("Sure Mia Müller, here is your code PROMO{i}"),
        date: Utc::now(),
    }
}
