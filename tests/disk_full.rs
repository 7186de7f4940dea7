//! The embedded default (SQLite + outbox) served in-process while its database fills up and
//! then gets space back, the same server throughout: every POST is answered 201 or
//! `503 storage_full` with `Retry-After` (never 500), reads and `/healthz` go on and say
//! the storage is degraded, and once there is room the same process sends every message
//! answered 201, each once.
//!
//! The database is made full on demand with `PRAGMA max_page_count` on every connection
//! (no root needed) and a filler table that takes the room left; deleting the filler gives
//! the space back.

mod common;

use cartloop::server::Server;
use cartloop::sqlx::SqliteStorage;
use common::wait_until;
use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

async fn post(client: &reqwest::Client, base: &str, n: usize) -> (u16, Option<String>, Value) {
    let response = client
        .post(format!("{base}/chat/"))
        .header("Idempotency-Key", format!("k{n}"))
        .json(&json!({"conversationId": 1, "chat": {"payload": format!("Message {n}"), "userId": 24}}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_rides_out_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cartloop.db").display());
    {
        let setup = SqliteStorage::connect(&url).await.unwrap();
        cartloop::core::ports::Admin::import(&setup, &cartloop::core::demo::demo_data())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE filler (b BLOB)")
            .execute(setup.pool())
            .await
            .unwrap();
        setup.pool().close().await;
    }
    // A limit of 150 pages (600 kB) for the database file, on every connection.
    let options = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .pragma("max_page_count", "150");
    let storage = Arc::new(SqliteStorage::connect_with(options).await.unwrap());
    let outbox = dir.path().join("outbox");
    let mailer = cartloop::server::outbox_mailer(&outbox).unwrap();
    let rules = cartloop::core::rules::Rules {
        active_hours: "00:00-24:00".parse().unwrap(),
        ..Default::default()
    };
    let dispatch = cartloop::core::dispatch::DispatchConfig {
        poll_interval: Duration::from_millis(200),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(500),
        ..Default::default()
    };
    let server = Server::builder(storage.clone(), mailer)
        .rules(rules)
        .dispatch(dispatch)
        .build()
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    // Load until the disk is full, then more.
    let mut created = HashSet::new();
    let mut refused = Vec::new();
    let mut n = 0;
    while refused.len() < 100 {
        assert!(n < 50_000, "the database never filled up");
        let (status, retry_after, body) = post(&client, &base, n).await;
        match status {
            201 => {
                created.insert(body["chatId"].as_i64().unwrap());
            }
            503 => {
                assert_eq!(body["error"]["code"], "storage_full", "{body}");
                assert_eq!(retry_after.as_deref(), Some("30"));
                refused.push(n);
            }
            _ => panic!("POST {n}: {status} {body}"),
        }
        n += 1;
        if created.len() % 50 == 49 {
            // Fill what the messages left, a little at a time, so that the disk fills up
            // while POSTs and the dispatcher go on.
            let _ = sqlx::query("INSERT INTO filler VALUES (randomblob(20000))")
                .execute(storage.pool())
                .await;
        }
    }
    // Reads go on; the health check says what is wrong; the metrics count it.
    let (status, text) = get(&client, format!("{base}/conversation/1/")).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = get(&client, format!("{base}/healthz")).await;
    assert_eq!(status, 200, "{text}");
    let health: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["storage"], "full", "{health}");
    let (_, metrics) = get(&client, format!("{base}/metrics")).await;
    assert!(
        metrics.contains("cartloop_storage_degraded 1\n"),
        "{metrics}"
    );
    let faults: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cartloop_storage_disk_faults_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        faults >= refused.len() as u64,
        "{faults} < {}",
        refused.len()
    );

    // Space comes back: the refused POSTs are retried (same keys) and go through.
    sqlx::query("DELETE FROM filler")
        .execute(storage.pool())
        .await
        .unwrap();
    for m in refused {
        let (status, _, body) = post(&client, &base, m).await;
        assert_eq!(status, 201, "POST {m} after: {body}");
        created.insert(body["chatId"].as_i64().unwrap());
    }
    assert_eq!(created.len(), n, "each POST stored once");
    let (_, text) = get(&client, format!("{base}/healthz")).await;
    let health: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(health, json!({"status": "ok", "storage": "ok"}));

    // The same process sends every message, each to its own file.
    let files = || {
        std::fs::read_dir(&outbox)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.strip_prefix("message-")?
                    .strip_suffix(".eml")?
                    .parse::<i64>()
                    .ok()
            })
            .collect::<HashSet<i64>>()
    };
    wait_until("every message sent", 60, || {
        let done = created.iter().all(|id| files().contains(id));
        async move { done }
    })
    .await;
    let unsent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE status <> 'sent' AND payload LIKE 'Message %'",
    )
    .fetch_one(storage.pool())
    .await
    .unwrap();
    assert_eq!(unsent, 0);
    let leftovers: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".eml"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
