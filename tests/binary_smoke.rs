//! A smoke test of the real binary (`examples/server.rs`): it starts with the README's
//! settings, answers, refuses a public address without a token, and stops on SIGTERM. The
//! other end-to-end tests run the same runtime in-process (`tests/common`).

use serde_json::Value;
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

/// Starts the binary with `envs` on `BIND=127.0.0.1:0`; returns it and its base URL, read
/// from its start-up log line.
/// The running server; killed if the test ends without stopping it (a failed assertion), so
/// it never outlives the test holding its output pipe.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn start(envs: &[(&str, String)]) -> (Server, String) {
    let (child, base, _) = start_logging(envs, "listening on http://", None);
    (child, base)
}

/// [`start`], also waiting for the log line that holds `http://<address>` after `marker`;
/// returns that address too.
/// With `open_files`, the server runs under that limit of open files (`ulimit -n`).
fn start_logging(
    envs: &[(&str, String)],
    marker: &'static str,
    open_files: Option<u32>,
) -> (Server, String, String) {
    let mut command = match open_files {
        None => Command::new(server_binary()),
        Some(limit) => {
            let mut shell = Command::new("sh");
            shell
                .arg("-c")
                .arg(format!("ulimit -n {limit} && exec \"$0\""))
                .arg(server_binary());
            shell
        }
    };
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start the server binary");
    let stdout = child.stdout.take().unwrap();
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (marked_tx, marked_rx) = std::sync::mpsc::channel();
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
            if let Some(rest) = line.split(marker).nth(1) {
                let address = rest.split(['/', ' ']).next().unwrap_or_default();
                let _ = marked_tx.send(address.to_owned());
            }
        }
    });
    let addresses = address_rx
        .recv_timeout(Duration::from_secs(60))
        .and_then(|address| Ok((address, marked_rx.recv_timeout(Duration::from_secs(10))?)));
    match addresses {
        Ok((address, marked)) => (
            Server(child),
            format!("http://{address}"),
            format!("http://{marked}"),
        ),
        Err(_) => {
            let _ = child.kill();
            panic!("the server did not report its address: {:?}", child.wait());
        }
    }
}

fn sigterm_and_wait(mut server: Server) {
    let child = &mut server.0;
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "server exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The settings of a server keeping its data in `dir`: `cartloop.db` and `outbox/`.
fn sqlite_envs(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("cartloop.db").display()),
        ),
        ("OUTBOX_DIR", dir.join("outbox").display().to_string()),
    ]
}

/// Waits (at most 20 s) until the server at `base` answers `/healthz` with 200.
async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(client, format!("{base}/healthz")).await.0 != 200 {
        assert!(Instant::now() < deadline, "not healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_binary_serves_sends_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let envs = [
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("cartloop.db").display()),
        ),
        ("OUTBOX_DIR", outbox.display().to_string()),
        // Always open, so the message goes whatever the hour.
        ("ACTIVE_HOURS", "00:00-24:00".to_owned()),
    ];
    let (child, base) = start(&envs);
    let client = reqwest::Client::new();
    wait_healthy(&client, &base).await;
    assert_eq!(get(&client, format!("{base}/import_data/")).await.0, 200);
    let (status, conversation) = get(&client, format!("{base}/conversation/1/")).await;
    assert_eq!(status, 200);
    assert_eq!(conversation["chats"].as_array().unwrap().len(), 3);
    let response = client
        .post(format!("{base}/chat/"))
        .json(&serde_json::json!({"conversationId": 1, "chat": {"payload": "Sure {{ username }}. Here is your code {{ discountCode }}", "userId": 24}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let chat = response.json::<Value>().await.unwrap()["chatId"]
        .as_i64()
        .unwrap();
    let file = outbox.join(format!("message-{chat}.eml"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "the email never reached the outbox"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let email = String::from_utf8(std::fs::read(&file).unwrap()).unwrap();
    assert!(
        email.contains("Sure John Carter. Here is your code PROMO50"),
        "{email}"
    );
    sigterm_and_wait(child);
}

#[test]
fn the_binary_refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(server_binary())
        .env("BIND", "0.0.0.0:0")
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
}

/// `METRICS_BIND`: `/metrics` without the token on its own address, and only there; the
/// API's `/metrics` stays behind the token.
#[tokio::test]
async fn metrics_bind_serves_the_figures_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = sqlite_envs(dir.path());
    envs.extend([
        ("CARTLOOP_API_TOKEN", "metrics-test-token".to_owned()),
        ("METRICS_BIND", "127.0.0.1:0".to_owned()),
    ]);
    let (child, base, metrics) = start_logging(&envs, "metrics on http://", None);
    let client = reqwest::Client::new();
    wait_healthy(&client, &base).await;
    // A request to the API, to see it counted.
    let response = client
        .get(format!("{base}/conversation/1/"))
        .bearer_auth("metrics-test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let response = client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"cartloop_http_requests_total{route="/conversation/{id}/",method="GET",status="404"} 1"#),
        "{text}"
    );
    // Only the figures there.
    let (status, body) = get(&client, format!("{metrics}/conversation/1/")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("route_not_found")),
        "{body}"
    );
    // The API's own `/metrics` still wants the token.
    let (status, _) = get(&client, format!("{base}/metrics")).await;
    assert_eq!(status, 401);
    sigterm_and_wait(child);
}

/// At the limit of open files, `accept` fails (EMFILE): the server closes the connection
/// idle the longest and goes on accepting, so a client is answered long before the idle
/// connections would time out (`HEADER_READ_TIMEOUT`, 10 s).
#[tokio::test]
async fn at_the_open_files_limit_the_server_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let envs = sqlite_envs(dir.path());
    let (child, base, _) = start_logging(&envs, "listening on http://", Some(100));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    wait_healthy(&client, &base).await;
    assert_eq!(get(&client, format!("{base}/import_data/")).await.0, 200);
    // 150 connections that never send a byte: more than the server has file descriptors.
    let address = base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..150 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            get(&client, format!("{base}/conversation/1/")),
        )
        .await
        .expect("answered while idle connections hold every file descriptor");
        assert_eq!(answer.0, 200, "{:?}", answer.1);
        eprintln!("answered in {:?}", started.elapsed());
    }
    drop(idle);
    sigterm_and_wait(child);
}

/// The open demo conversations of the server at `base`, with their operators.
async fn open_conversations(client: &reqwest::Client, base: &str) -> Vec<(i64, i64)> {
    let (_, list) = get(
        client,
        format!("{base}/conversations/?status=open&limit=500"),
    )
    .await;
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let id = |name: &str| c[name].as_i64().unwrap();
            (id("conversationId"), id("operatorId"))
        })
        .collect()
}

/// A POST answered 201: the chat id, when it was sent and when its answer came.
#[derive(Debug, Clone, Copy)]
struct Created {
    chat: i64,
    sent: Instant,
    answered: Instant,
}

/// POSTs from `tasks` clients at once to the server at `base`, each to one of the
/// `conversations` as its operator, until a connection error or `stop`; the POSTs answered
/// 201.
fn post_load(
    base: &str,
    tasks: usize,
    conversations: &[(i64, i64)],
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinSet<Vec<Created>> {
    let client = reqwest::Client::new();
    let mut load = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let (client, base, stop) = (client.clone(), base.to_owned(), stop.clone());
        let (conversation, operator) = conversations[task % conversations.len()];
        load.spawn(async move {
            let mut created = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = serde_json::json!({"conversationId": conversation, "chat": {"payload": format!("load {task} {n}"), "userId": operator}});
                n += 1;
                let sent = Instant::now();
                let Ok(response) = client.post(format!("{base}/chat/")).json(&body).send().await
                else {
                    break;
                };
                match response.status().as_u16() {
                    201 => {}
                    // Busy: a passing answer, the message is not stored.
                    503 => continue,
                    status => panic!("POST: {status} {:?}", response.text().await),
                }
                match response.json::<Value>().await {
                    Ok(body) => created.push(Created {
                        chat: body["chatId"].as_i64().unwrap(),
                        sent,
                        answered: Instant::now(),
                    }),
                    Err(_) => break,
                }
            }
            created
        });
    }
    load
}

/// Every POST the `load` tasks saw answered 201, once they have all ended.
async fn created(mut load: tokio::task::JoinSet<Vec<Created>>) -> Vec<Created> {
    let mut created = Vec::new();
    while let Some(posts) = load.join_next().await {
        created.extend(posts.unwrap());
    }
    created
}

/// The ids of the messages in the SQLite database at `path`, and its integrity check.
async fn stored_messages(path: &Path) -> (std::collections::HashSet<i64>, String) {
    use sqlx::sqlite::SqliteConnectOptions;
    let options = SqliteConnectOptions::new().filename(path);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM messages")
        .fetch_all(&pool)
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    (ids.into_iter().collect(), check)
}

/// A server killed with SIGKILL in the middle of heavy writes loses no message it answered
/// 201: the same binary restarts on the file, and every one of them is there, the database
/// intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_message_it_answered_201() {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = sqlite_envs(dir.path());
    // The dispatcher sends meanwhile: its writes are in flight too.
    envs.push(("ACTIVE_HOURS", "00:00-24:00".to_owned()));
    let (mut child, base) = start(&envs);
    let client = reqwest::Client::new();
    wait_healthy(&client, &base).await;
    assert_eq!(get(&client, format!("{base}/import_data/")).await.0, 200);
    let conversations = open_conversations(&client, &base).await;
    assert!(conversations.len() >= 20);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = post_load(&base, 64, &conversations, stop);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let created: Vec<i64> = created(load).await.iter().map(|c| c.chat).collect();
    assert!(created.len() > 200, "only {} POSTs answered", created.len());

    let (child, base) = start(&envs);
    wait_healthy(&client, &base).await;
    let (stored, check) = stored_messages(&dir.path().join("cartloop.db")).await;
    assert_eq!(check, "ok");
    let lost: Vec<&i64> = created.iter().filter(|id| !stored.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered 201 are lost: {lost:?}",
        lost.len(),
        created.len()
    );
    eprintln!(
        "{} messages answered 201 before the kill, all there",
        created.len()
    );
    sigterm_and_wait(child);
}

/// The `backup` command copies the database while the server takes POSTs: restored (the
/// server stopped, the copy put in place of the file, its `-wal` and `-shm` removed), it
/// holds every message answered 201 before the backup started and none posted after it
/// ended, intact, and the server starts on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_message_answered_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = sqlite_envs(dir.path());
    envs.push(("ACTIVE_HOURS", "00:00-24:00".to_owned()));
    let (child, base) = start(&envs);
    let client = reqwest::Client::new();
    wait_healthy(&client, &base).await;
    assert_eq!(get(&client, format!("{base}/import_data/")).await.0, 200);
    let conversations = open_conversations(&client, &base).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = post_load(&base, 32, &conversations, stop.clone());
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let copy = dir.path().join("cartloop-backup.db");
    let database_url = envs[0].1.clone();
    let backup = {
        let copy = copy.clone();
        move || {
            Command::new(server_binary())
                .env_clear()
                .env("DATABASE_URL", database_url)
                .arg("backup")
                .arg(copy)
                .output()
                .unwrap()
        }
    };
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(backup.clone()).await.unwrap();
    let ended = Instant::now();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let created = created(load).await;
    // A second backup to the same file is refused: a backup never replaces a file.
    let again = tokio::task::spawn_blocking(backup).await.unwrap();
    assert!(!again.status.success());
    sigterm_and_wait(child);

    let before: Vec<i64> = created
        .iter()
        .filter(|c| c.answered < started)
        .map(|c| c.chat)
        .collect();
    let during = created
        .iter()
        .filter(|c| c.answered >= started && c.answered < ended)
        .count();
    let after: Vec<i64> = created
        .iter()
        .filter(|c| c.sent > ended)
        .map(|c| c.chat)
        .collect();
    eprintln!(
        "{stdout}in {:?}; POSTs answered 201: {} before, {during} during, {} sent after",
        ended - started,
        before.len(),
        after.len()
    );
    assert!(before.len() > 100 && !after.is_empty(), "too little load");
    assert!(during > 0, "no POST answered while the backup ran");

    let db = dir.path().join("cartloop.db");
    std::fs::rename(&copy, &db).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("cartloop.db{suffix}")));
    }
    let (child, base) = start(&envs);
    wait_healthy(&client, &base).await;
    let (stored, check) = stored_messages(&db).await;
    assert_eq!(check, "ok");
    assert!(
        stdout.contains(&format!(" {} messages", stored.len())),
        "{stdout}: {} restored",
        stored.len()
    );
    let lost: Vec<&i64> = before.iter().filter(|id| !stored.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered before the backup are missing: {lost:?}",
        lost.len(),
        before.len()
    );
    assert!(
        after.iter().all(|id| !stored.contains(id)),
        "the restored database is not the backup"
    );
    let last = before.iter().max().unwrap();
    let (status, chat) = get(&client, format!("{base}/chat/{last}/")).await;
    assert_eq!(
        (status, chat["chatId"].as_i64()),
        (200, Some(*last)),
        "{chat}"
    );
    sigterm_and_wait(child);
}
