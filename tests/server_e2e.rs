//! End-to-end: start the real server binary (`examples/server.rs`, built by `cargo test`)
//! and talk HTTP to it, once on SQLite with the file outbox and once on PostgreSQL with a
//! real SMTP server.

use cartloop::core::active_hours::ActiveHours;
use cartloop::core::demo::demo_data;
use cartloop::core::domain::ConversationStatus;
use cartloop::mail::testing::ParsedEmail;
use chrono::{DateTime, Duration as ChronoDuration, Timelike, Utc};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The server binary, built first with this test's profile, so a filtered run
/// (`cargo test --test server_e2e`) never starts a stale binary: cargo builds examples for
/// `cargo test`, but not for a filtered test target. Built as the README's test command
/// builds it (`--workspace --all-features`), so after that command this is a no-op.
fn server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // target/<profile>/deps/server_e2e-<hash> -> target/<profile>/examples/server
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(Path::parent).unwrap();
            let mut build = Command::new(env!("CARGO"));
            // Without the variables cargo sets for this test process: some build scripts
            // (ring's) rerun when one of them changes, which would rebuild half the tree.
            for (name, _) in std::env::vars_os() {
                let name = name.to_string_lossy();
                if name.starts_with("CARGO_PKG_")
                    || name.starts_with("CARGO_MANIFEST_")
                    || [
                        "CARGO_CRATE_NAME",
                        "CARGO_BIN_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "CARGO_RUSTC_CURRENT_DIR",
                        "OUT_DIR",
                    ]
                    .contains(&name.as_ref())
                {
                    build.env_remove(name.as_ref());
                }
            }
            build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
                "build",
                "--quiet",
                "--workspace",
                "--all-features",
                "--example",
                "server",
            ]);
            if profile_dir
                .file_name()
                .is_some_and(|name| name == "release")
            {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "building the server failed");
            let binary = profile_dir.join("examples").join("server");
            assert!(binary.exists(), "{} is missing", binary.display());
            binary
        })
        .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts the server on a port the system picks (`BIND=127.0.0.1:0`), reads the address
    /// from its start-up log line, and waits until it answers `/healthz`. Picking the port
    /// in the server itself leaves no gap in which another process could take it.
    async fn start(envs: &[(&str, String)]) -> Self {
        let mut command = Command::new(server_binary());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND", "127.0.0.1:0")
            .env("DISPATCH_INTERVAL", "1s")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start the server binary");
        let stdout = child.stdout.take().unwrap();
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        // Reads the log to its end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or_default();
                    let _ = address_tx.send(address.to_owned());
                }
            }
        });
        let address = match address_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!("the server did not report its address: {:?}", child.wait());
            }
        };
        let server = Self {
            child,
            base: format!("http://{address}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = reqwest::get(format!("{}/healthz", server.base)).await {
                if response.status() == 200 {
                    return server;
                }
            }
            assert!(Instant::now() < deadline, "server did not become healthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "server exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn post_chat(&self, conversation: i64, user: i64, payload: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/chat/", self.base))
            .json(&json!({"conversationId": conversation, "chat": {"payload": payload, "userId": user}}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An open demo conversation whose client is inside (or outside) active hours now and for
/// the next 15 minutes, with its operator, client name, zone and discount code.
struct Pick {
    conversation: i64,
    operator: i64,
    client_name: String,
    zone: chrono_tz::Tz,
    code: Option<String>,
}

fn pick(inside: bool) -> Pick {
    let data = demo_data();
    let hours = ActiveHours::default();
    let now = Utc::now();
    data.conversations
        .iter()
        .filter(|c| c.status == ConversationStatus::Open)
        .find_map(|c| {
            let client = data.clients.iter().find(|x| x.id == c.client_id)?;
            let store = data.stores.iter().find(|s| s.id == c.store_id)?;
            let zone = client.time_zone.unwrap_or(store.time_zone);
            let steady = [0, 5, 10, 15]
                .iter()
                .all(|m| hours.contains(now + ChronoDuration::minutes(*m), zone) == inside);
            steady.then(|| Pick {
                conversation: c.id.0,
                operator: c.operator_id.0,
                client_name: client.name.clone(),
                zone,
                code: c.discount_code.clone(),
            })
        })
        .expect("the demo zones span the day")
}

fn parse_time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp"))
        .unwrap()
        .with_timezone(&Utc)
}

async fn chat_status(server: &Server, conversation: i64, chat: i64) -> String {
    let (_, body) = server.get(&format!("/conversation/{conversation}/")).await;
    body["chats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chatId"] == chat)
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn snapshot(server: &Server, conversations: &[i64]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in conversations {
        out.push(server.get(&format!("/conversation/{id}/")).await.1);
    }
    out
}

/// Import, read, write inside and outside active hours; returns the two chat ids.
async fn exercise(server: &Server) -> ((i64, Pick), (i64, Pick)) {
    let (status, _) = server.get("/import_data/").await;
    assert_eq!(status, 200);
    let (status, again) = server.get("/import_data/").await;
    assert_eq!((status, &again["inserted"]), (200, &json!(0)));
    let (status, conversation) = server.get("/conversation/1/").await;
    assert_eq!(status, 200);
    assert_eq!(conversation["operatorId"], 24);
    assert_eq!(conversation["chats"].as_array().unwrap().len(), 3);

    let inside = pick(true);
    let payload = if inside.code.is_some() {
        "Hi << username >>, your code is {{ discountCode }}"
    } else {
        "Hi << username >>, your cart is waiting"
    };
    let before = Utc::now() - ChronoDuration::seconds(1);
    let (status, posted) = server
        .post_chat(inside.conversation, inside.operator, payload)
        .await;
    assert_eq!(status, 201, "{posted}");
    assert_eq!(posted["status"], "new");
    let send_at = parse_time(&posted["sendAt"]);
    assert!(send_at >= before && send_at <= Utc::now() + ChronoDuration::seconds(1));
    let inside_chat = posted["chatId"].as_i64().unwrap();

    let outside = pick(false);
    let now = Utc::now();
    let (status, posted) = server
        .post_chat(
            outside.conversation,
            outside.operator,
            "See you soon << username >>",
        )
        .await;
    assert_eq!(status, 201, "{posted}");
    let expected = ActiveHours::default().next_send_instant(now, outside.zone);
    let send_at = parse_time(&posted["sendAt"]);
    assert!(
        (send_at - expected).num_seconds().abs() <= 1,
        "{send_at} vs {expected}"
    );
    assert!(send_at > Utc::now());
    let outside_chat = posted["chatId"].as_i64().unwrap();
    ((inside_chat, inside), (outside_chat, outside))
}

/// Stops and restarts the server: the conversations read the same, the sent chat is still
/// `sent` and the waiting one still `new`. Gives the restarted server.
async fn restart_loses_nothing(
    server: Server,
    envs: &[(&str, String)],
    (inside, inside_chat): (&Pick, i64),
    (outside, outside_chat): (&Pick, i64),
) -> Server {
    let conversations = [1, inside.conversation, outside.conversation];
    let before = snapshot(&server, &conversations).await;
    server.stop();
    let server = Server::start(envs).await;
    assert_eq!(snapshot(&server, &conversations).await, before);
    assert_eq!(
        chat_status(&server, inside.conversation, inside_chat).await,
        "sent"
    );
    assert_eq!(
        chat_status(&server, outside.conversation, outside_chat).await,
        "new"
    );
    server
}

/// The email of chat `chat` carries its rendered text and its Message-ID, and the chat is
/// (or soon becomes) `sent`.
async fn delivered_as_rendered(server: &Server, email: &ParsedEmail, pick: &Pick, chat: i64) {
    assert_eq!(email.body_text().trim_end(), expected_body(pick));
    let message_id = email.header("Message-ID").unwrap_or_default();
    assert!(
        message_id.contains(&format!("cartloop.message.{chat}.")),
        "{message_id}"
    );
    wait_until("the chat to be sent", || async {
        chat_status(server, pick.conversation, chat).await == "sent"
    })
    .await;
}

fn expected_body(pick: &Pick) -> String {
    match &pick.code {
        Some(code) => format!("Hi {}, your code is {code}", pick.client_name),
        None => format!("Hi {}, your cart is waiting", pick.client_name),
    }
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The settings of a server keeping its data in `dir`: `cartloop.db` and `outbox/`.
fn sqlite_and_outbox_settings(dir: &Path) -> [(&'static str, String); 2] {
    [
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("cartloop.db").display()),
        ),
        ("OUTBOX_DIR", dir.join("outbox").display().to_string()),
    ]
}

#[tokio::test]
async fn sqlite_and_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let envs = sqlite_and_outbox_settings(dir.path());
    let server = Server::start(&envs).await;
    let ((inside_chat, inside), (outside_chat, outside)) = exercise(&server).await;

    let file = outbox.join(format!("message-{inside_chat}.eml"));
    wait_until("the email in the outbox", || {
        let file = file.clone();
        async move { file.exists() }
    })
    .await;
    let email = ParsedEmail::parse(&std::fs::read(&file).unwrap());
    delivered_as_rendered(&server, &email, &inside, inside_chat).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!outbox.join(format!("message-{outside_chat}.eml")).exists());
    assert_eq!(
        chat_status(&server, outside.conversation, outside_chat).await,
        "new"
    );
    let files = std::fs::read_dir(&outbox).unwrap().count();
    assert_eq!(files, 1, "only the due message was sent");

    // Restart: nothing lost, nothing sent twice.
    let server = restart_loses_nothing(
        server,
        &envs,
        (&inside, inside_chat),
        (&outside, outside_chat),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 1);
    server.stop();
}

/// An open demo conversation, the instant `after` from now, and an `ACTIVE_HOURS` setting
/// whose window opens at that instant in the conversation's client's zone. The server
/// binary is built first, so that `after` is not spent building it.
fn window_opening_in(
    after: ChronoDuration,
) -> (cartloop::core::domain::Conversation, DateTime<Utc>, String) {
    server_binary();
    let data = demo_data();
    let now = Utc::now();
    // A client whose local day is far from midnight, so the window fits in it.
    let (conversation, zone) = data
        .conversations
        .into_iter()
        .filter(|c| c.status == ConversationStatus::Open)
        .find_map(|c| {
            let client = data.clients.iter().find(|x| x.id == c.client_id)?;
            let zone = client.time_zone?;
            let hour = now.with_timezone(&zone).hour();
            (1..=21).contains(&hour).then_some((c, zone))
        })
        .expect("the demo zones span the day");
    // ACTIVE_HOURS is to the second: the window opens at the whole second.
    let opens = DateTime::from_timestamp((now + after).timestamp(), 0).unwrap();
    let opens_local = opens.with_timezone(&zone).format("%H:%M:%S");
    (conversation, opens, format!("{opens_local}-23:59:00"))
}

/// A message scheduled for later goes out when it falls due, not at the next poll: the
/// window opens 8 s from now, the poll interval is a minute.
#[tokio::test]
async fn a_message_scheduled_for_later_is_sent_when_due() {
    let (conversation, opens, active_hours) = window_opening_in(ChronoDuration::seconds(8));
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let mut envs = sqlite_and_outbox_settings(dir.path()).to_vec();
    envs.push(("ACTIVE_HOURS", active_hours));
    envs.push(("DISPATCH_INTERVAL", "60s".to_owned()));
    let server = Server::start(&envs).await;
    server.get("/import_data/").await;
    let (status, posted) = server
        .post_chat(conversation.id.0, conversation.operator_id.0, "We open now")
        .await;
    assert_eq!(status, 201, "{posted}");
    let send_at = parse_time(&posted["sendAt"]);
    assert_eq!(send_at.timestamp(), opens.timestamp(), "{posted}");
    assert!(Utc::now() < send_at, "posted before the window opened");

    let chat = posted["chatId"].as_i64().unwrap();
    let file = outbox.join(format!("message-{chat}.eml"));
    let deadline = send_at + ChronoDuration::seconds(3);
    while !file.exists() {
        assert!(
            Utc::now() < deadline,
            "not sent within 3 s of {send_at}: the dispatcher waited for its poll"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(Utc::now() >= send_at, "sent before the window opened");
    server.stop();
}

/// SIGTERM while a relay is slow: the emails in flight finish, the rest of the claimed
/// batch is handed back (not sent by a server that is going away, not left waiting for its
/// lease), and the next start sends it. Every email arrives once.
// Multi-threaded: the SMTP sinks run in this process and must keep answering while
// `Server::stop` blocks its thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_what_is_not_in_flight() {
    use cartloop::mail::testing::{SinkBehavior, SmtpSink};
    const POSTED: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let database = [(
        "DATABASE_URL",
        format!("sqlite://{}", dir.path().join("cartloop.db").display()),
    )];
    // 2 s per email: one round of 8 in flight takes 2 s, the whole batch of 40 would take 10.
    let slow = SmtpSink::start_with(SinkBehavior::slow(Duration::from_secs(2))).await;
    // All fall due together when the window opens, so one pass claims them all.
    let (conversation, opens, active_hours) = window_opening_in(ChronoDuration::seconds(6));
    let mut envs = database.to_vec();
    envs.push(("SMTP_URL", slow.url()));
    envs.push(("DISPATCH_WORKERS", "1".to_owned()));
    envs.push(("ACTIVE_HOURS", active_hours.clone()));
    let server = Server::start(&envs).await;
    server.get("/import_data/").await;
    let mut chats = Vec::new();
    for n in 0..POSTED {
        let (status, posted) = server
            .post_chat(
                conversation.id.0,
                conversation.operator_id.0,
                &format!("Message {n}"),
            )
            .await;
        assert_eq!(status, 201, "{posted}");
        chats.push(posted["chatId"].as_i64().unwrap());
    }
    assert!(Utc::now() < opens, "posted before the window opened");
    let until_open = (opens - Utc::now()).to_std().unwrap();
    tokio::time::sleep(until_open + Duration::from_millis(700)).await;
    let stopping = Instant::now();
    server.stop();
    let took = stopping.elapsed();
    let first = slow.messages().len();
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    assert!(
        (1..POSTED).contains(&first),
        "{first} of {POSTED} sent before the stop"
    );

    let fast = SmtpSink::start().await;
    let mut envs = database.to_vec();
    envs.push(("SMTP_URL", fast.url()));
    envs.push(("ACTIVE_HOURS", active_hours));
    let server = Server::start(&envs).await;
    let restarted = Instant::now();
    wait_until("the rest of the emails", || {
        let fast = &fast;
        async move { first + fast.messages().len() >= POSTED }
    })
    .await;
    assert!(
        restarted.elapsed() < Duration::from_secs(10),
        "the handed-back messages waited for a lease"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ids: Vec<String> = slow
        .messages()
        .iter()
        .chain(fast.messages().iter())
        .map(|m| {
            m.parse()
                .header("Message-ID")
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), POSTED, "each email exactly once");
    for chat in chats {
        assert_eq!(chat_status(&server, conversation.id.0, chat).await, "sent");
    }
    server.stop();
}

fn postgres_admin_url() -> Option<String> {
    match std::env::var("CARTLOOP_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            Some("postgres://postgres@127.0.0.1:5432/test".to_owned())
        }
        Err(_) => None,
    }
}

#[tokio::test]
async fn postgres_and_smtp() {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("skipped: set CARTLOOP_TEST_POSTGRES_URL to run the PostgreSQL end-to-end test");
        return;
    };
    let name = format!(
        "cartloop_e2e_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    );
    let url = create_database(&admin, &name).await;
    let sink = cartloop::mail::testing::SmtpSink::start().await;
    let envs = [("DATABASE_URL", url), ("SMTP_URL", sink.url())];

    let server = Server::start(&envs).await;
    let ((inside_chat, inside), (outside_chat, outside)) = exercise(&server).await;
    wait_until("the email at the SMTP server", || {
        let sink = &sink;
        async move { !sink.messages().is_empty() }
    })
    .await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    let email = mails[0].parse();
    delivered_as_rendered(&server, &email, &inside, inside_chat).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.messages().len(), 1, "the outside message waits");

    let server = restart_loses_nothing(
        server,
        &envs,
        (&inside, inside_chat),
        (&outside, outside_chat),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "nothing sent twice after a restart"
    );
    server.stop();
    drop_database(&admin, &name).await;
}

async fn create_database(admin: &str, name: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
    format!("{base}/{name}")
}

async fn drop_database(admin: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

#[tokio::test]
async fn refuses_public_bind_without_token_and_guards_routes_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(server_binary())
        .env("BIND", format!("0.0.0.0:{}", free_port()))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("db").display()),
        )
        .env("OUTBOX_DIR", dir.path().join("outbox"))
        .env_remove("CARTLOOP_API_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CARTLOOP_API_TOKEN"), "{stderr}");

    let envs = [
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("db").display()),
        ),
        (
            "OUTBOX_DIR",
            dir.path().join("outbox").display().to_string(),
        ),
        ("CARTLOOP_API_TOKEN", "t0ken".to_owned()),
    ];
    let server = Server::start(&envs).await;
    let (status, body) = server.get("/import_data/").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let response = reqwest::Client::new()
        .get(format!("{}/import_data/", server.base))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.stop();
}
