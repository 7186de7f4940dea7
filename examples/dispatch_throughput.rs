//! Throughput of the whole dispatch path: claim from a real database, render, send over
//! SMTP to a real (in-process) SMTP server that takes `delay` per email, record `sent`.
//!
//! ```text
//! cargo run --release --example dispatch_throughput -- [emails] [delay_ms] [concurrency] [workers] [pool]
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/cartloop_bench cargo run --release --example dispatch_throughput
//! ```
//!
//! Defaults: 2,000 emails, 20 ms per email at the server, 8 emails in flight per pass,
//! 4 dispatcher tasks, as many SMTP connections as emails in flight (`concurrency` times
//! `workers`), on a fresh SQLite file. Prints emails per
//! second and checks that every email arrived exactly once. `MAX_PER_CLIENT=1000/24h`
//! sets the store's frequency cap (SPEC §11), so that every send also reserves its place
//! under it (one more write each; at most 1,000 emails then, the largest cap); by default
//! the demo store has none.

use cartloop::core::rules::Rules;
use cartloop::core::validate::{Payload, ValidationPolicy};
use cartloop_core::demo::demo_data;
use cartloop_core::dispatch::{DispatchConfig, Dispatcher};
use cartloop_core::domain::{MessageStatus, NewMessage, StoreChanges};
use cartloop_core::frequency_cap::FrequencyCap;
use cartloop_core::ids::{ConversationId, StoreId, UserId};
use cartloop_core::testing::ManualClock;
use cartloop_mail::testing::{SinkBehavior, SmtpSink};
use cartloop_mail::{SmtpMailer, SmtpOptions};
use chrono::{TimeZone, Utc};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut next = |default: u64| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(args
            .next()
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let emails = next(2_000)?;
    let delay = Duration::from_millis(next(20)?);
    let concurrency = next(8)? as usize;
    let workers = next(4)? as usize;
    let pool = next((concurrency * workers) as u64)? as usize;

    let dir = tempfile::tempdir()?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let storage = cartloop_sqlx::connect(&url).await?;
    storage.import(&demo_data()).await?;
    let cap = std::env::var("MAX_PER_CLIENT").ok();
    if let Some(cap) = &cap {
        let (count, per) = cap.split_once('/').ok_or("MAX_PER_CLIENT: count/per")?;
        let changes = StoreChanges {
            max_per_client: Some(Some(FrequencyCap::new(count.parse()?, per)?)),
            ..StoreChanges::default()
        };
        storage.update_store(StoreId(1), changes).await?;
    }

    // 15:00Z is 09:00 in Chicago, where conversation 1's client lives: inside the window.
    let nine = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
    for n in 0..emails {
        storage
            .insert_message(NewMessage {
                conversation_id: ConversationId(1),
                author_id: UserId(24),
                payload: Payload::parse(
                    &format!("Hi << username >>, message {n}, your code {{{{ discountCode }}}}"),
                    &ValidationPolicy::default(),
                )?,
                status: MessageStatus::New,
                created_at: nine,
                send_at: Some(nine),
                idempotency_key: None,
                not_before: None,
                last_received: None,
                waiting_for: None,
            })
            .await?;
    }

    let sink = SmtpSink::start_with(SinkBehavior::slow(delay)).await;
    let options = SmtpOptions {
        pool_size: pool,
        ..SmtpOptions::default()
    };
    let mailer = Arc::new(SmtpMailer::from_url_with(&sink.url(), options)?);
    let clock = Arc::new(ManualClock::new(nine));
    let config = DispatchConfig {
        concurrency,
        ..DispatchConfig::default()
    };
    let dispatcher = Dispatcher::new(
        storage.clone().into_queue(),
        mailer,
        clock,
        Arc::new(Rules::default()),
        config,
    );

    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let dispatcher = dispatcher.clone();
            tokio::spawn(async move {
                let mut sent = 0;
                loop {
                    let report = dispatcher.run_once().await.expect("a pass");
                    if report.claimed == 0 {
                        return sent;
                    }
                    sent += u64::from(report.sent);
                }
            })
        })
        .collect();
    let mut sent = 0;
    for task in tasks {
        sent += task.await?;
    }
    let elapsed = started.elapsed();

    let received = sink.messages();
    let unique: HashSet<_> = received
        .iter()
        .map(|m| m.parse().header("Message-ID").map(str::to_owned))
        .collect();
    assert_eq!(sent, emails, "every message recorded sent");
    assert_eq!(received.len() as u64, emails, "every email arrived");
    assert_eq!(unique.len() as u64, emails, "no email twice");
    println!(
        "{emails} emails, {} ms per email at the server, concurrency {concurrency}, {workers} workers, pool {pool}, {}{}: {:.0} emails/s ({elapsed:.2?})",
        delay.as_millis(),
        url.split(':').next().unwrap_or(""),
        cap.map(|cap| format!(", cap {cap}")).unwrap_or_default(),
        emails as f64 / elapsed.as_secs_f64(),
    );
    Ok(())
}
