//! A soak under faults, run by hand: real server binaries on one PostgreSQL
//! database, sending through a real SMTP server, while their database connections and SMTP
//! connections are cut at random moments. Not part of `cargo test`. See `RELIABILITY.md`.
//!
//! ```sh
//! cargo build --release --example server
//! cargo run --release --example soak -- [messages=50000] [servers=2] [timeout=60m]
//! ```
//!
//! It creates a fresh database (admin URL from `CARTLOOP_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`), starts an in-process [`SmtpSink`] and
//! `servers` copies of `target/release/examples/server` on that database (always-open
//! window, a 200 ms–2 s retry backoff), imports the demo data, and posts `messages` operator
//! messages across the servers, 64 in flight, each with an `Idempotency-Key` and retried on
//! 503 or a connection error. Every 0.5–3 s until every message is `sent` it cuts either
//! every server connection to the database (`pg_terminate_backend`) or every SMTP
//! connection (`SmtpSink::disconnect_all`, which can land mid-`DATA`: the server has sent
//! the message but hears nothing back). The sink records a message only once it has all of
//! it and then answers at once, so a plain cut never leaves it holding a message whose
//! sender heard nothing; half of the SMTP cuts are therefore preceded by 20 ms in which the
//! sink keeps each message and closes without answering (`SinkBehavior::close_after_data`),
//! the case that makes a duplicate. Then it stops the
//! servers with SIGTERM and checks: every message stored once and emailed at least once,
//! with its own text; each email received more than once explained by a send the server
//! logged as ambiguous (the SMTP server took the message but its answer was lost); no
//! message failed; the servers never exited and stopped cleanly. It exits non-zero when a
//! check fails, and keeps the database and the servers' logs (`target/soak/<run>/`).
//!
//! `SOAK_SEED=<n>` replays the same sequence of cuts (their moments still depend on timing);
//! `SOAK_CUT_EVERY=<min ms>-<max ms>` (default `500-3000`) changes how often they come.

use cartloop::mail::testing::{SinkBehavior, SmtpSink};
use futures::StreamExt;
use serde_json::{json, Value};
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests in flight at once, across the servers.
const IN_FLIGHT: usize = 64;
/// The soak's own connection to the database it checks; the cuts spare it.
const SOAK_APPLICATION: &str = "cartloop-soak";
/// How long, before half of the SMTP cuts, the sink takes messages without answering.
const LOST_ANSWERS: Duration = Duration::from_millis(20);
/// The log line a server writes for a send whose outcome it cannot know: the message and
/// its final `.` went out and no answer came back (`cartloop-mail`'s `classify.rs`).
const AMBIGUOUS: &str = "SMTP end of data failed";

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() {
    match run().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}

/// The command line: `[messages] [servers] [timeout]`.
struct Args {
    messages: usize,
    servers: usize,
    timeout: Duration,
}

fn args() -> Result<Args, Error> {
    let usage = "usage: soak [messages=50000] [servers=2] [timeout=60m]";
    let mut args = std::env::args().skip(1);
    let messages = args
        .next()
        .map_or(Ok(50_000), |a| a.parse())
        .map_err(|_| usage)?;
    let servers = args
        .next()
        .map_or(Ok(2), |a| a.parse())
        .map_err(|_| usage)?;
    let timeout = args
        .next()
        .map_or(Ok(Duration::from_secs(3600)), |a| {
            humantime::parse_duration(&a)
        })
        .map_err(|_| usage)?;
    if messages == 0 || servers == 0 {
        return Err(usage.into());
    }
    Ok(Args {
        messages,
        servers,
        timeout,
    })
}

/// What happened, counted as it happens.
#[derive(Default)]
struct Counters {
    posted: AtomicU64,
    post_retries: AtomicU64,
    client_503: AtomicU64,
    client_connection_errors: AtomicU64,
    client_unexpected: AtomicU64,
    pg_cuts: AtomicU64,
    pg_backends_killed: AtomicU64,
    smtp_cuts: AtomicU64,
    smtp_connections_cut: AtomicU64,
    smtp_lost_answer_windows: AtomicU64,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

async fn run() -> Result<bool, Error> {
    let Args {
        messages,
        servers: server_count,
        timeout,
    } = args()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = root.join("target/release/examples/server");
    if !binary.exists() {
        return Err(format!(
            "{} is missing: build it first with `cargo build --release --example server`",
            binary.display()
        )
        .into());
    }
    let admin = std::env::var("CARTLOOP_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let run_id = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let logs = root.join("target/soak").join(&run_id);
    std::fs::create_dir_all(&logs)?;
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64 | 1);

    let database = Database::create(&admin, &run_id.replace('-', "_")).await?;
    println!(
        "soak: {messages} messages, {server_count} servers, database {}, logs in {}, seed {seed}",
        database.name,
        logs.display()
    );
    let sink = Arc::new(SmtpSink::start().await);
    let mut servers = Servers::default();
    for i in 0..server_count {
        let log = logs.join(format!("server-{i}.log"));
        servers
            .start(&binary, &database.url, &sink.url(), &log)
            .await?;
    }
    println!("servers: {}", servers.bases.join(", "));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()?;
    let imported = client
        .get(format!("{}/import_data/", servers.bases[0]))
        .send()
        .await?;
    if imported.status() != 200 {
        return Err(format!("import_data answered {}", imported.status()).into());
    }
    let mut check = database.checker().await?;
    let conversations = check.open_conversations().await?;
    let first_id = check.max_message_id().await?;

    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let posting = tokio::spawn(post_all(
        client.clone(),
        servers.bases.clone(),
        conversations,
        messages,
        format!("soak-{run_id}"),
        counters.clone(),
    ));
    let done = Arc::new(AtomicBool::new(false));
    let last_cut = Arc::new(Mutex::new(None::<Instant>));
    let chaos = tokio::spawn(chaos(
        seed,
        database.clone_admin(),
        sink.clone(),
        counters.clone(),
        done.clone(),
        last_cut.clone(),
    ));

    // Until every message is sent, the time runs out, or a server dies.
    let mut posted: Option<(Vec<(usize, i64)>, Duration)> = None;
    let mut posting = Some(posting);
    let mut last_print = Instant::now();
    let failure: Option<String> = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if posting.as_ref().is_some_and(|t| t.is_finished()) {
            match posting.take().unwrap().await? {
                Ok(chats) => posted = Some((chats, started.elapsed())),
                Err(e) => break Some(format!("posting failed: {e}")),
            }
        }
        if let Some(dead) = servers.exited() {
            break Some(dead);
        }
        // A cut may hit this query too (it is spared, but may be mid-reconnect).
        let statuses = match check.statuses(first_id).await {
            Ok(statuses) => statuses,
            Err(_) => {
                check = database.checker().await?;
                continue;
            }
        };
        let sent = statuses.get("sent").copied().unwrap_or(0);
        if last_print.elapsed() >= Duration::from_secs(10) {
            last_print = Instant::now();
            println!(
                "{:>6.0}s posted {}/{messages} {statuses:?} cuts pg {} smtp {} client 503 {} conn errors {}",
                started.elapsed().as_secs_f64(),
                get(&counters.posted),
                get(&counters.pg_cuts),
                get(&counters.smtp_cuts),
                get(&counters.client_503),
                get(&counters.client_connection_errors),
            );
        }
        if posted.is_some() && sent == messages as u64 {
            break None;
        }
        if started.elapsed() > timeout {
            break Some(format!(
                "timed out after {}: {statuses:?}",
                humantime::format_duration(timeout)
            ));
        }
    };
    let finished = started.elapsed();
    done.store(true, Ordering::SeqCst);
    chaos.await?;
    if let Some(task) = posting {
        task.abort();
    }
    let last_cut = (*last_cut.lock().unwrap()).map(|at| started.elapsed() - at.elapsed());

    // Stopping every server ends every send in flight: what the sink has then is final.
    let stops = servers.stop_all().await;
    let mut report = Report::default();
    if let Some(failure) = failure {
        report.fail(failure);
    }
    for (i, stop) in stops.iter().enumerate() {
        match stop {
            Ok((status, took)) if status.success() => {
                println!("server {i} stopped on SIGTERM in {took:.1?}")
            }
            Ok((status, _)) => report.fail(format!("server {i} exited with {status}")),
            Err(e) => report.fail(format!("server {i}: {e}")),
        }
    }
    let Some((chats, post_time)) = posted else {
        report.print();
        println!(
            "kept database {} and logs in {}",
            database.name,
            logs.display()
        );
        return Ok(false);
    };

    let logs = ServerLogs::read(&servers.logs)?;
    let stored = check.count_from(first_id).await?;
    let db = check.summary(first_id).await?;
    report.analyze(&chats, stored, &sink, &logs);

    println!();
    println!("== soak: {messages} messages, {server_count} servers ==");
    println!(
        "posted in {:.1} s ({:.0} messages/s); all sent after {:.1} s ({:.0} emails/s end to end)",
        post_time.as_secs_f64(),
        messages as f64 / post_time.as_secs_f64(),
        finished.as_secs_f64(),
        messages as f64 / finished.as_secs_f64(),
    );
    println!(
        "cuts: {} PostgreSQL ({} server connections terminated), {} SMTP ({} connections closed, \
         {} of them after {} ms of answers lost); last cut at {:.1} s, {:.1} s before the end",
        get(&counters.pg_cuts),
        get(&counters.pg_backends_killed),
        get(&counters.smtp_cuts),
        get(&counters.smtp_connections_cut),
        get(&counters.smtp_lost_answer_windows),
        LOST_ANSWERS.as_millis(),
        last_cut.map_or(0.0, |at| at.as_secs_f64()),
        last_cut.map_or(0.0, |at| (finished - at).as_secs_f64()),
    );
    println!(
        "client: {} POST retries ({} answered 503, {} connection errors), {} unexpected answers",
        get(&counters.post_retries),
        get(&counters.client_503),
        get(&counters.client_connection_errors),
        get(&counters.client_unexpected),
    );
    println!(
        "database: {stored} messages stored for {messages} posted; attempts per message: \
         total {}, max {}, {} messages tried more than once; dispatch lag (sendAt to sentAt) \
         p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        db.attempts, db.max_attempts, db.retried, db.lag_p50, db.lag_p99, db.lag_max
    );
    println!(
        "servers' logs: {} emails sent, {} retries after a send failure ({} ambiguous: data sent, \
         no answer), {} given up, {} storage retries, {} storage failures, {} results not \
         recorded (claim lost), {} claims handed back, {} requests answered 503, {} other \
         warnings/errors",
        logs.sent,
        logs.retries,
        logs.ambiguous.values().sum::<usize>(),
        logs.given_up,
        logs.storage_retries,
        logs.storage_failures,
        logs.lost_claims,
        logs.released,
        logs.unavailable,
        logs.other_problems.len(),
    );
    println!(
        "SMTP sink: {} emails received over {} connections",
        report.received,
        sink.connections_total()
    );
    println!(
        "duplicates: {} emails received more than once ({} extra copies), {} explained by an \
         ambiguous send logged for that chat, {} unexplained",
        report.duplicated, report.extra_copies, report.explained, report.unexplained
    );
    for line in logs.other_problems.iter().take(20) {
        println!("  log: {line}");
    }
    report.print();
    if report.failures.is_empty() {
        database.drop().await;
        println!("PASS (logs kept in {})", logs_dir(&servers.logs).display());
        Ok(true)
    } else {
        println!(
            "FAIL (kept database {} and logs in {})",
            database.name,
            logs_dir(&servers.logs).display()
        );
        Ok(false)
    }
}

fn logs_dir(logs: &[PathBuf]) -> &Path {
    logs.first()
        .and_then(|l| l.parent())
        .unwrap_or(Path::new("."))
}

/// Posts `n` operator messages across the servers, [`IN_FLIGHT`] at once; returns each
/// message's number and chat id.
async fn post_all(
    client: reqwest::Client,
    bases: Vec<String>,
    conversations: Vec<(i64, i64)>,
    n: usize,
    key_prefix: String,
    counters: Arc<Counters>,
) -> Result<Vec<(usize, i64)>, String> {
    let (client, bases, conversations, key_prefix) = (&client, &bases, &conversations, &key_prefix);
    let counters = &counters;
    let results: Vec<Result<(usize, i64), String>> = futures::stream::iter(0..n)
        .map(|i| async move {
            let (conversation, operator) = conversations[i % conversations.len()];
            let body = json!({
                "conversationId": conversation,
                "chat": {"payload": payload(i), "userId": operator},
            });
            let key = format!("{key_prefix}-{i}");
            let mut attempt = 0usize;
            loop {
                // After a connection error, the next server: any of them can answer.
                let base = &bases[(i + attempt) % bases.len()];
                if attempt > 0 {
                    count(&counters.post_retries);
                    let backoff = Duration::from_millis((20 * attempt as u64).min(1000));
                    tokio::time::sleep(backoff).await;
                }
                attempt += 1;
                let response = client
                    .post(format!("{base}/chat/"))
                    .header("Idempotency-Key", &key)
                    .json(&body)
                    .send()
                    .await;
                let response = match response {
                    Ok(response) => response,
                    Err(_) => {
                        count(&counters.client_connection_errors);
                        continue;
                    }
                };
                let status = response.status().as_u16();
                let answer: Value = match response.json().await {
                    Ok(answer) => answer,
                    Err(_) => {
                        count(&counters.client_connection_errors);
                        continue;
                    }
                };
                match status {
                    201 => {
                        count(&counters.posted);
                        let chat = answer["chatId"]
                            .as_i64()
                            .ok_or_else(|| format!("no chatId in {answer}"))?;
                        return Ok((i, chat));
                    }
                    503 => count(&counters.client_503),
                    _ => {
                        count(&counters.client_unexpected);
                        return Err(format!("message {i}: {status} {answer}"));
                    }
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
}

/// The text of message number `i` (no placeholder, so any conversation takes it).
fn payload(i: usize) -> String {
    format!("Soak message {i}")
}

/// Cuts connections every 0.5–3 s until `done`: every server connection to the database,
/// or every SMTP connection, chosen at random.
async fn chaos(
    seed: u64,
    admin: Admin,
    sink: Arc<SmtpSink>,
    counters: Arc<Counters>,
    done: Arc<AtomicBool>,
    last_cut: Arc<Mutex<Option<Instant>>>,
) {
    let mut random = XorShift(seed);
    let every = cut_every();
    let mut admin_conn: Option<PgConnection> = None;
    while !done.load(Ordering::SeqCst) {
        let wait = Duration::from_millis(every.0 + random.next() % (every.1 - every.0 + 1));
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline && !done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if done.load(Ordering::SeqCst) {
            break;
        }
        if random.next() % 2 == 0 {
            if admin_conn.is_none() {
                admin_conn = PgConnection::connect(&admin.url).await.ok();
            }
            let Some(conn) = admin_conn.as_mut() else {
                continue;
            };
            match admin.terminate(conn).await {
                Ok(killed) => {
                    count(&counters.pg_cuts);
                    counters
                        .pg_backends_killed
                        .fetch_add(killed, Ordering::Relaxed);
                }
                Err(e) => {
                    eprintln!("soak: could not cut the database connections: {e}");
                    admin_conn = None;
                    continue;
                }
            }
        } else {
            if random.next() % 2 == 0 {
                // The sink keeps what arrives in this window and closes without answering:
                // what a cut right after the server took a message does.
                sink.set_behavior(SinkBehavior::close_after_data());
                tokio::time::sleep(LOST_ANSWERS).await;
                sink.set_behavior(SinkBehavior::default());
                count(&counters.smtp_lost_answer_windows);
            }
            counters
                .smtp_connections_cut
                .fetch_add(sink.open_connections() as u64, Ordering::Relaxed);
            sink.disconnect_all();
            count(&counters.smtp_cuts);
        }
        *last_cut.lock().unwrap() = Some(Instant::now());
    }
}

/// The shortest and longest wait between two cuts, in milliseconds (`SOAK_CUT_EVERY`).
fn cut_every() -> (u64, u64) {
    std::env::var("SOAK_CUT_EVERY")
        .ok()
        .and_then(|v| {
            let (min, max) = v.split_once('-')?;
            Some((min.trim().parse().ok()?, max.trim().parse().ok()?))
        })
        .filter(|&(min, max)| min <= max)
        .unwrap_or((500, 3000))
}

/// xorshift64: enough randomness for choosing cuts, and no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The fresh database of this run.
struct Database {
    admin: String,
    name: String,
    url: String,
}

/// What the chaos task needs to cut the servers' connections.
struct Admin {
    url: String,
    database: String,
}

impl Admin {
    /// Terminates every connection to the soak's database but the soak's own; returns how
    /// many.
    async fn terminate(&self, conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
        let killed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name <> $2",
        )
        .bind(&self.database)
        .bind(SOAK_APPLICATION)
        .fetch_one(conn)
        .await?;
        Ok(killed as u64)
    }
}

impl Database {
    async fn create(admin: &str, suffix: &str) -> Result<Self, Error> {
        let name = format!("cartloop_soak_{suffix}");
        let mut conn = PgConnection::connect(admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        Ok(Self {
            admin: admin.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    fn clone_admin(&self) -> Admin {
        Admin {
            url: self.admin.clone(),
            database: self.name.clone(),
        }
    }

    /// A connection to the soak's database that the cuts spare.
    async fn checker(&self) -> Result<Checker, Error> {
        let options: sqlx::postgres::PgConnectOptions = self.url.parse()?;
        let conn = options.application_name(SOAK_APPLICATION).connect().await?;
        Ok(Checker(conn))
    }

    async fn drop(&self) {
        if let Ok(mut conn) = PgConnection::connect(&self.admin).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
        }
    }
}

/// What the database says, read directly.
struct Checker(PgConnection);

/// Attempts and lag of the soak's messages.
struct DbSummary {
    attempts: i64,
    max_attempts: i32,
    retried: i64,
    lag_p50: f64,
    lag_p99: f64,
    lag_max: f64,
}

impl Checker {
    /// `(conversation, operator)` of each open demo conversation on the default window
    /// whose client is subscribed.
    async fn open_conversations(&mut self) -> Result<Vec<(i64, i64)>, Error> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT c.id, c.operator_id FROM conversations c \
             JOIN stores s ON s.id = c.store_id JOIN users u ON u.id = c.client_id \
             WHERE c.status = 'open' AND s.active_hours IS NULL AND u.unsubscribed_at IS NULL \
             ORDER BY c.id",
        )
        .fetch_all(&mut self.0)
        .await?;
        if rows.is_empty() {
            return Err("no open conversation in the demo data".into());
        }
        Ok(rows)
    }

    async fn max_message_id(&mut self) -> Result<i64, Error> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM messages")
            .fetch_one(&mut self.0)
            .await?;
        Ok(max.unwrap_or(0))
    }

    async fn statuses(&mut self, after: i64) -> Result<BTreeMap<String, u64>, Error> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM messages WHERE id > $1 GROUP BY status ORDER BY status",
        )
        .bind(after)
        .fetch_all(&mut self.0)
        .await?;
        Ok(rows.into_iter().map(|(s, n)| (s, n as u64)).collect())
    }

    async fn count_from(&mut self, after: i64) -> Result<u64, Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE id > $1")
            .bind(after)
            .fetch_one(&mut self.0)
            .await?;
        Ok(n as u64)
    }

    async fn summary(&mut self, after: i64) -> Result<DbSummary, Error> {
        let row: (i64, i32, i64, f64, f64, f64) = sqlx::query_as(
            "SELECT COALESCE(SUM(attempts), 0)::BIGINT, COALESCE(MAX(attempts), 0), \
                    COUNT(*) FILTER (WHERE attempts > 1), \
                    COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), 0), \
                    COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), 0), \
                    COALESCE(MAX(lag), 0) \
             FROM (SELECT attempts, EXTRACT(EPOCH FROM sent_at - send_at)::FLOAT8 AS lag \
                   FROM messages WHERE id > $1) m",
        )
        .bind(after)
        .fetch_one(&mut self.0)
        .await?;
        Ok(DbSummary {
            attempts: row.0,
            max_attempts: row.1,
            retried: row.2,
            lag_p50: row.3,
            lag_p99: row.4,
            lag_max: row.5,
        })
    }
}

/// The server processes, killed if the soak ends early.
#[derive(Default)]
struct Servers {
    children: Vec<Child>,
    bases: Vec<String>,
    logs: Vec<PathBuf>,
}

impl Servers {
    /// Starts one server logging to `log`, and waits for its address.
    async fn start(
        &mut self,
        binary: &Path,
        database: &str,
        smtp: &str,
        log: &Path,
    ) -> Result<(), Error> {
        let file = std::fs::File::create(log)?;
        let child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info,sqlx=warn")
            .env("BIND", "127.0.0.1:0")
            .env("DATABASE_URL", database)
            .env("SMTP_URL", smtp)
            .env("ACTIVE_HOURS", "00:00-24:00")
            .env("RETRY_BACKOFF", "200ms")
            .env("RETRY_BACKOFF_MAX", "2s")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        self.children.push(child);
        self.logs.push(log.to_owned());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(rest) = text.split("listening on http://").nth(1) {
                let address = rest.split_whitespace().next().unwrap_or_default();
                self.bases.push(format!("http://{address}"));
                return Ok(());
            }
            if let Some(dead) = self.exited() {
                return Err(format!("{dead}; see {}", log.display()).into());
            }
            if Instant::now() > deadline {
                return Err(format!("no address logged; see {}", log.display()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Which server exited, if one did.
    fn exited(&mut self) -> Option<String> {
        self.children.iter_mut().enumerate().find_map(|(i, c)| {
            c.try_wait()
                .ok()
                .flatten()
                .map(|status| format!("server {i} exited during the soak with {status}"))
        })
    }

    /// SIGTERM to each, then waits up to 60 s for each: its exit status and how long it
    /// took.
    async fn stop_all(&mut self) -> Vec<Result<(ExitStatus, Duration), String>> {
        let started = Instant::now();
        for child in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let mut results = Vec::new();
        for child in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(60);
            results.push(loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok((status, started.elapsed())),
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break Err("did not stop within 60 s of SIGTERM; killed".to_owned());
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(e) => break Err(e.to_string()),
                }
            });
        }
        results
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// What the servers logged about their emails.
#[derive(Default)]
struct ServerLogs {
    sent: usize,
    retries: usize,
    /// Sends logged as ambiguous, by chat.
    ambiguous: HashMap<i64, usize>,
    given_up: usize,
    storage_retries: usize,
    storage_failures: usize,
    lost_claims: usize,
    released: usize,
    /// Requests answered 503 because the database was unreachable.
    unavailable: usize,
    /// Every log line about a chat, by chat.
    by_chat: HashMap<i64, Vec<String>>,
    /// WARN and ERROR lines of no kind above.
    other_problems: Vec<String>,
}

impl ServerLogs {
    fn read(paths: &[PathBuf]) -> Result<Self, Error> {
        let mut logs = Self::default();
        for (i, path) in paths.iter().enumerate() {
            for line in std::fs::read_to_string(path)?.lines() {
                logs.line(i, line);
            }
        }
        Ok(logs)
    }

    fn line(&mut self, server: usize, line: &str) {
        let chat = field(line, "chat=");
        // "will retry", or "result not recorded" when the retry's record was lost.
        if let Some(chat) = chat.filter(|_| line.contains(AMBIGUOUS)) {
            *self.ambiguous.entry(chat).or_insert(0) += 1;
        }
        if let Some(chat) = chat {
            self.by_chat
                .entry(chat)
                .or_default()
                .push(format!("server {server}: {line}"));
        }
        let known = if line.contains("email sent") {
            self.sent += 1;
            true
        } else if line.contains("email failed; will retry") {
            self.retries += 1;
            true
        } else if line.contains("email failed; giving up") {
            self.given_up += 1;
            true
        } else if line.contains("storage failed; retrying") {
            self.storage_retries += 1;
            true
        } else if line.contains("storage failed") {
            self.storage_failures += 1;
            true
        } else if line.contains("result not recorded") {
            self.lost_claims += 1;
            true
        } else if line.contains("claim handed back") {
            self.released += 1;
            true
        } else if line.contains("cartloop_http::error: unavailable") {
            self.unavailable += 1;
            true
        } else {
            false
        };
        let problem = line.contains(" WARN ") || line.contains(" ERROR ") || line.contains("panic");
        // Warnings that come with a cut and are expected: sqlx finding a pooled connection
        // dead, the cross-server wake-up listener reconnecting.
        let expected = line.contains("sqlx_core::pool")
            || line.contains("listener lost its connection")
            || line.contains("cannot listen for due messages")
            || line.contains("could not announce due messages");
        if problem && !known && !expected {
            self.other_problems.push(format!("server {server}: {line}"));
        }
    }
}

/// The number after `name` in a log line (`chat=123`).
fn field(line: &str, name: &str) -> Option<i64> {
    let start = line.find(name)? + name.len();
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The checks and their failures.
#[derive(Default)]
struct Report {
    received: usize,
    duplicated: usize,
    extra_copies: usize,
    explained: usize,
    unexplained: usize,
    failures: Vec<String>,
}

impl Report {
    fn fail(&mut self, failure: String) {
        self.failures.push(failure);
    }

    fn analyze(&mut self, chats: &[(usize, i64)], stored: u64, sink: &SmtpSink, logs: &ServerLogs) {
        if stored != chats.len() as u64 {
            self.fail(format!(
                "{stored} messages stored for {} posted",
                chats.len()
            ));
        }
        let expected: HashMap<i64, usize> = chats.iter().map(|&(i, chat)| (chat, i)).collect();
        let mut copies: HashMap<i64, usize> = HashMap::new();
        let mut wrong_text = Vec::new();
        let mut unknown = 0usize;
        let received = sink.messages();
        self.received = received.len();
        for mail in &received {
            let email = mail.parse();
            let id = email
                .header("Message-ID")
                .and_then(cartloop::core::message_id::parse)
                .map(|(id, _)| id.0);
            let Some(number) = id.and_then(|id| expected.get(&id)) else {
                unknown += 1;
                continue;
            };
            let chat = id.unwrap_or_default();
            *copies.entry(chat).or_insert(0) += 1;
            if email.body_text().trim_end() != payload(*number) {
                wrong_text.push(chat);
            }
        }
        let missing: Vec<i64> = expected
            .keys()
            .filter(|chat| !copies.contains_key(chat))
            .copied()
            .collect();
        if !missing.is_empty() {
            self.fail(format!(
                "{} messages never emailed, e.g. chats {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            ));
        }
        if unknown > 0 {
            self.fail(format!("{unknown} emails for no message of the soak"));
        }
        if !wrong_text.is_empty() {
            self.fail(format!(
                "{} emails with another message's text, e.g. chats {:?}",
                wrong_text.len(),
                &wrong_text[..wrong_text.len().min(10)]
            ));
        }
        if logs.given_up > 0 {
            self.fail(format!("{} messages given up", logs.given_up));
        }
        let mut unexplained = String::new();
        let mut duplicated: Vec<(i64, usize)> =
            copies.into_iter().filter(|&(_, n)| n > 1).collect();
        duplicated.sort_unstable();
        for (chat, n) in duplicated {
            self.duplicated += 1;
            self.extra_copies += n - 1;
            let ambiguous = logs.ambiguous.get(&chat).copied().unwrap_or(0);
            if ambiguous >= n - 1 {
                self.explained += 1;
                continue;
            }
            self.unexplained += 1;
            if self.unexplained > 20 {
                continue;
            }
            let _ = writeln!(
                unexplained,
                "  chat {chat}: received {n} times, {ambiguous} ambiguous sends logged"
            );
            for line in logs.by_chat.get(&chat).into_iter().flatten() {
                let _ = writeln!(unexplained, "    {line}");
            }
        }
        if self.unexplained > 20 {
            unexplained.push_str("  (the first 20 shown)\n");
        }
        if self.unexplained > 0 {
            self.fail(format!(
                "{} unexplained duplicates:\n{unexplained}",
                self.unexplained
            ));
        }
    }

    fn print(&self) {
        for failure in &self.failures {
            println!("FAILED: {failure}");
        }
    }
}
