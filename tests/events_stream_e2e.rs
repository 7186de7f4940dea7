//! The live stream across servers: two servers on one database, an event written through
//! server A reaches a stream open on server B within a second (SPEC §10). On PostgreSQL
//! (LISTEN/NOTIFY) and on one SQLite file (the storage's 200 ms poll of the log head).
//! Also prints the write-on-A → arrival-on-B latency (p50/p99) over a few dozen chats, the
//! figures of BENCHMARKS.md.

mod common;

use common::{Backend, TestServer};
use std::time::{Duration, Instant};

/// Reads SSE messages of `response` until one with `event: chat.received` whose data holds
/// `marker`; returns when it came.
async fn wait_for(response: &mut reqwest::Response, buffer: &mut String, marker: &str) -> Instant {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if block.contains("event: chat.received") && block.contains(marker) {
                return Instant::now();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("an event within 5 s")
            .expect("the stream reads")
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

async fn across_servers(backend: Backend) {
    let outbox = tempfile::tempdir().unwrap();
    let args = |n: usize| {
        vec![
            "--database-url".to_owned(),
            backend.database_url(),
            "--outbox-dir".to_owned(),
            outbox
                .path()
                .join(format!("outbox{n}"))
                .display()
                .to_string(),
        ]
    };
    let a = TestServer::start(&args(1)).await;
    let b = TestServer::start(&args(2)).await;
    let (status, _) = a.get("/import_data/").await;
    assert_eq!(status, 200);
    let mut stream = b
        .client
        .get(format!("{}/events/?types=chat.received", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut buffer = String::new();
    let mut latencies = Vec::new();
    for n in 0..40 {
        let marker = format!("cross-server {n}");
        let sent = Instant::now();
        let (status, body) = a.post_chat(1, 27, &marker).await;
        assert_eq!(status, 201, "{body}");
        let arrived = wait_for(&mut stream, &mut buffer, &marker).await;
        let latency = arrived - sent;
        assert!(
            latency < Duration::from_secs(1),
            "{}: event {n} took {latency:?} from server A to a stream on B",
            backend.name()
        );
        latencies.push(latency);
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{}: write on A -> stream on B, {} chats: p50 {:?}, p99 {:?}, max {:?}",
        backend.name(),
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.last().unwrap()
    );
    drop(stream);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_written_on_one_postgres_server_reaches_a_stream_on_another_within_a_second() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    across_servers(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_written_on_one_sqlite_server_reaches_a_stream_on_another_within_a_second() {
    across_servers(Backend::sqlite()).await;
}

/// A stream outlives the keep-alive timeout: the connection is busy while its answer is
/// being written, so the sweeper that closes idle connections leaves it open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stays_open_past_the_keep_alive_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = common::sqlite_and_outbox(dir.path());
    args.extend(["--keep-alive-timeout".to_owned(), "1s".to_owned()]);
    let server = TestServer::start(&args).await;
    let (status, _) = server.get("/import_data/").await;
    assert_eq!(status, 200);
    let mut stream = server
        .client
        .get(format!("{}/events/?types=chat.received", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut buffer = String::new();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = server.post_chat(1, 27, "three seconds on").await;
    assert_eq!(status, 201, "{body}");
    wait_for(&mut stream, &mut buffer, "three seconds on").await;
    drop(stream);
    server.stop().await;
}
