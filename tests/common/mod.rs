//! The end-to-end harness: the server runtime (`cartloop::server`, the code the binary
//! runs) served in-process on `127.0.0.1:0`, talked to over real HTTP; SQLite in a
//! temporary directory or a fresh PostgreSQL database; emails to the outbox or to a real
//! SMTP server (`SmtpSink`).
#![allow(dead_code)]

use cartloop::core::testing::ManualClock;
use cartloop::server::{ServerError, Settings};
use clap::Parser;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
    /// The clock it runs on, when a test drives it, and its dispatcher workers.
    clock: Option<(Arc<ManualClock>, usize)>,
}

impl TestServer {
    /// Starts a server with these settings (flags as the binary takes them, e.g.
    /// `["--database-url", url]`); `DISPATCH_INTERVAL` defaults to 1 s.
    pub async fn start(args: &[String]) -> Self {
        Self::start_on(args, None).await
    }

    /// Starts a server that reads time from `clock` only: its dispatcher moves when the
    /// test moves the clock (see [`settle`](Self::settle)).
    pub async fn start_with_clock(args: &[String], clock: Arc<ManualClock>) -> Self {
        Self::start_on(args, Some(clock)).await
    }

    async fn start_on(args: &[String], clock: Option<Arc<ManualClock>>) -> Self {
        let mut argv = vec!["server".to_owned()];
        if !args.iter().any(|a| a == "--dispatch-interval") {
            argv.extend(["--dispatch-interval".to_owned(), "1s".to_owned()]);
        }
        argv.extend(args.iter().cloned());
        let settings = Settings::try_parse_from(&argv).expect("valid settings");
        let token = settings.api_token.clone();
        let workers = usize::from(settings.dispatch_workers);
        let mut builder = settings.builder().await.expect("the server opens");
        if let Some(clock) = &clock {
            builder = builder.clock(clock.clone());
        }
        let server = builder.build().await.expect("the server builds");
        let clock = clock.map(|clock| (clock, workers));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        let server = Self {
            base,
            client: reqwest::Client::new(),
            token,
            stop: Some(stop),
            task: Some(task),
            clock,
        };
        server.wait_healthy().await;
        if server.clock.is_some() {
            server.wait_idle().await;
        }
        server
    }

    /// Moves the server's clock by `by` (at least its dispatch interval, so that every
    /// worker wakes) and waits until every dispatcher worker has made a pass and sleeps on
    /// the clock again: whatever was due by then has been handled, and nothing more will
    /// happen until the clock moves again. No wall-clock pause proves anything here.
    pub async fn settle(&self, by: chrono::Duration) {
        let (clock, _) = self.clock.as_ref().expect("a server started with a clock");
        clock.advance(by);
        self.wait_idle().await;
    }

    /// Waits until every dispatcher worker sleeps on the clock until its next pass (at most
    /// the 1 s dispatch interval away; a pass still sending has a heartbeat further off).
    async fn wait_idle(&self) {
        let (clock, workers) = self.clock.as_ref().expect("a server started with a clock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while clock.sleepers_within(chrono::Duration::seconds(1)) < *workers {
            assert!(Instant::now() < deadline, "the dispatcher never went idle");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = self
                .client
                .get(format!("{}/healthz", self.base))
                .send()
                .await
            {
                if response.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "server did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks the server to stop (as SIGTERM does) and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the server stops within 30 s")
            .unwrap()
            .expect("the server stops cleanly");
    }

    /// Stops the server abruptly, as a crash would: no hand-back, no drain.
    pub fn kill(mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::PATCH, path).json(body))
            .await
    }

    /// POSTs `body` as it is, with this `Content-Type` (and the bearer token, if any).
    pub async fn post_bytes(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let request = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send(request).await
    }

    pub async fn post_chat(&self, conversation: i64, user: i64, payload: &str) -> (u16, Value) {
        self.post(
            "/chat/",
            &serde_json::json!({"conversationId": conversation, "chat": {"payload": payload, "userId": user}}),
        )
        .await
    }

    /// The status of chat `chat`.
    pub async fn chat_status(&self, chat: i64) -> String {
        let (_, body) = self.get(&format!("/chat/{chat}/")).await;
        body["status"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Waits until `check` holds, at most `secs` seconds.
pub async fn wait_until<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The settings of a server keeping its data in `dir`: `cartloop.db` and `outbox/`.
pub fn sqlite_and_outbox(dir: &std::path::Path) -> Vec<String> {
    vec![
        "--database-url".into(),
        format!("sqlite://{}", dir.join("cartloop.db").display()),
        "--outbox-dir".into(),
        dir.join("outbox").display().to_string(),
    ]
}

/// The PostgreSQL server's admin URL for tests, or `None` (skip) outside CI without one.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("CARTLOOP_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            Some("postgres://postgres@127.0.0.1:5432/test".to_owned())
        }
        _ => {
            eprintln!("skipped: set CARTLOOP_TEST_POSTGRES_URL to run the PostgreSQL tests");
            None
        }
    }
}

/// Where a test's server keeps its data: SQLite in a temporary directory, or a fresh
/// PostgreSQL database.
pub enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Backend {
    /// SQLite, and PostgreSQL unless [`postgres_admin_url`] says to skip it.
    pub async fn all() -> Vec<Backend> {
        let mut backends = vec![Backend::sqlite()];
        if let Some(backend) = Backend::postgres().await {
            backends.push(backend);
        }
        backends
    }

    pub fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh PostgreSQL database, or `None` (skip) as [`postgres_admin_url`] says.
    pub async fn postgres() -> Option<Backend> {
        let admin = postgres_admin_url()?;
        Some(Backend::Postgres(TestDatabase::create(&admin).await))
    }

    /// The `--database-url` of this backend.
    pub fn database_url(&self) -> String {
        match self {
            Backend::Sqlite(dir) => {
                format!("sqlite://{}", dir.path().join("cartloop.db").display())
            }
            Backend::Postgres(db) => db.url.clone(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// A fresh PostgreSQL database, dropped with the value.
pub struct TestDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create(admin: &str) -> Self {
        use sqlx::Connection;
        let name = format!("cartloop_e2e_{}_{}", std::process::id(), rand_suffix());
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .expect("PostgreSQL is up");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        Self {
            admin: admin.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// Terminates every connection to this database but the caller's (a blip).
    pub async fn terminate_connections(&self) -> u64 {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Dropped from a runtime that may be shutting down: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)
}
