//! SPEC §11 end to end on the real server, SQLite and PostgreSQL: the README's five examples
//! (a store closed on Sunday, a Christmas closure, send later, a cap of 3 per 24 h, a reply
//! at 19:58) on a manual clock, and the cap held by two servers on one PostgreSQL against a
//! burst for one client.
//!
//! Demo conversation 1: store 1, operator 24, client 27 in America/Chicago (UTC-6 in
//! November and December).

mod common;

use cartloop::core::testing::ManualClock;
use cartloop::mail::testing::SmtpSink;
use chrono::{DateTime, Utc};
use common::{postgres_admin_url, wait_until, Backend, TestDatabase, TestServer};
use serde_json::{json, Value};
use std::sync::Arc;

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Posts an operator message to conversation 1, with `sendAt` if given; the 201's body.
async fn post(server: &TestServer, payload: &str, send_at: Option<&str>) -> Value {
    let mut chat = json!({"payload": payload, "userId": 24});
    if let Some(at) = send_at {
        chat["sendAt"] = json!(at);
    }
    let (status, body) = server
        .post("/chat/", &json!({"conversationId": 1, "chat": chat}))
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn chat(server: &TestServer, posted: &Value) -> Value {
    server.get(&format!("/chat/{}/", posted["chatId"])).await.1
}

/// Moves the server's clock to `at` and lets the dispatcher run.
async fn at(server: &TestServer, clock: &ManualClock, instant: &str) {
    clock.set(utc(instant) - chrono::Duration::seconds(1));
    server.settle(chrono::Duration::seconds(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_work_as_printed() {
    for backend in Backend::all().await {
        let name = backend.name();
        let outbox = tempfile::tempdir().unwrap();
        let args = vec![
            "--database-url".to_owned(),
            backend.database_url(),
            "--outbox-dir".into(),
            outbox.path().display().to_string(),
        ];
        // Sunday 29 November 2026, 10:00 in Chicago.
        let clock = Arc::new(ManualClock::new(utc("2026-11-29T16:00:00Z")));
        let server = TestServer::start_with_clock(&args, clock.clone()).await;
        server.get("/import_data/").await;

        // 1. A store closed on Sunday: the message waits for Monday 09:00 local.
        let week = json!({"activeHours": {"mon": ["09:00-20:00"], "tue": ["09:00-20:00"],
            "wed": ["09:00-20:00"], "thu": ["09:00-20:00"], "fri": ["09:00-20:00"],
            "sat": ["10:00-16:00"]}});
        let (status, store) = server.patch("/store/1/", &week).await;
        assert_eq!(status, 200, "{name}: {store}");
        let sunday = post(&server, "We are closed today, back tomorrow", None).await;
        assert_eq!(sunday["chatId"], 6, "{name}: the README's ids");
        assert_eq!(sunday["sendAt"], "2026-11-30T15:00:00Z", "{name}");
        assert_eq!(sunday["waitingFor"], "active_hours", "{name}");
        server.settle(chrono::Duration::seconds(1)).await;
        assert_eq!(chat(&server, &sunday).await["status"], "new", "{name}");
        at(&server, &clock, "2026-11-30T15:00:00Z").await;
        let sent = chat(&server, &sunday).await;
        assert_eq!(
            (sent["status"].clone(), sent["sentAt"].clone()),
            (json!("sent"), json!("2026-11-30T15:00:00Z")),
            "{name}"
        );

        // 2. A Christmas closure: Friday 25 December waits for Saturday's window, 10:00.
        let closures = json!([{"date": "2026-12-25"}]);
        let (status, body) = server
            .send(
                server
                    .client
                    .put(format!("{}/store/1/closures/", server.base))
                    .json(&closures),
            )
            .await;
        assert_eq!((status, body), (200, closures.clone()), "{name}");
        at(&server, &clock, "2026-12-25T16:00:00Z").await;
        let christmas = post(&server, "Merry Christmas", None).await;
        assert_eq!(christmas["sendAt"], "2026-12-26T16:00:00Z", "{name}");
        assert_eq!(christmas["waitingFor"], "closure", "{name}");
        assert_eq!(chat(&server, &christmas).await["waitingFor"], "closure");
        at(&server, &clock, "2026-12-26T16:00:00Z").await;
        assert_eq!(chat(&server, &christmas).await["status"], "sent", "{name}");

        // 3. Send later: Saturday 13:00 local; then it goes, not before.
        let later = post(
            &server,
            "Your order ships today",
            Some("2026-12-26T19:00:00Z"),
        )
        .await;
        assert_eq!(
            (later["sendAt"].clone(), later["waitingFor"].clone()),
            (json!("2026-12-26T19:00:00Z"), json!("send_at")),
            "{name}"
        );
        at(&server, &clock, "2026-12-26T18:59:59Z").await;
        assert_eq!(chat(&server, &later).await["status"], "new", "{name}");
        at(&server, &clock, "2026-12-26T19:00:00Z").await;
        assert_eq!(chat(&server, &later).await["status"], "sent", "{name}");

        // 4. A cap of 3 per 24 h: Monday 28 December 10:00, four messages; three go, the
        // fourth waits a day after the first.
        at(&server, &clock, "2026-12-28T16:00:00Z").await;
        let cap = json!({"maxPerClient": {"count": 3, "per": "24h"}});
        let (status, store) = server.patch("/store/1/", &cap).await;
        assert_eq!(status, 200, "{name}: {store}");
        let mut burst = Vec::new();
        for n in 1..=4 {
            burst.push(post(&server, &format!("Offer {n}"), None).await);
        }
        server.settle(chrono::Duration::seconds(1)).await;
        let mut statuses = Vec::new();
        for posted in &burst {
            statuses.push(chat(&server, posted).await);
        }
        let sent: Vec<_> = statuses.iter().filter(|c| c["status"] == "sent").collect();
        let held: Vec<_> = statuses.iter().filter(|c| c["status"] == "new").collect();
        assert_eq!((sent.len(), held.len()), (3, 1), "{name}: {statuses:?}");
        assert_eq!(held[0]["waitingFor"], "frequency_cap", "{name}");
        let first_sent = sent
            .iter()
            .map(|c| utc(c["sentAt"].as_str().unwrap()))
            .min()
            .unwrap();
        assert_eq!(
            utc(held[0]["sendAt"].as_str().unwrap()),
            first_sent + chrono::Duration::hours(24),
            "{name}: held until the first send is a day old"
        );
        clock.set(first_sent + chrono::Duration::hours(24) - chrono::Duration::seconds(2));
        server.settle(chrono::Duration::seconds(1)).await;
        let id = held[0]["chatId"].as_i64().unwrap();
        assert_eq!(server.chat_status(id).await, "new", "{name}: not early");
        server.settle(chrono::Duration::seconds(2)).await;
        assert_eq!(server.chat_status(id).await, "sent", "{name}");

        // 5. A reply at 19:58: the client wrote at 19:50; the answer goes at once, cap or
        // not. The next message, at 20:18, is no reply and waits for the morning.
        at(&server, &clock, "2026-12-30T01:50:00Z").await;
        let (status, _) = server.post_chat(1, 27, "Is the blue one in stock?").await;
        assert_eq!(status, 201);
        at(&server, &clock, "2026-12-30T01:58:00Z").await;
        let reply = post(&server, "Yes, in every size", None).await;
        assert_eq!(
            (reply["sendAt"].clone(), reply["waitingFor"].clone()),
            (json!("2026-12-30T01:58:00Z"), Value::Null),
            "{name}"
        );
        server.settle(chrono::Duration::seconds(1)).await;
        assert_eq!(chat(&server, &reply).await["status"], "sent", "{name}");
        at(&server, &clock, "2026-12-30T02:18:00Z").await;
        let late = post(&server, "Anything else?", None).await;
        assert_eq!(late["chatId"], 15, "{name}: the README's ids");
        assert_eq!(
            (late["sendAt"].clone(), late["waitingFor"].clone()),
            (json!("2026-12-30T15:00:00Z"), json!("active_hours")),
            "{name}"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_never_exceed_the_cap_together() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let database = TestDatabase::create(&admin).await;
    let sink = SmtpSink::start().await;
    let args = vec![
        "--database-url".to_owned(),
        database.url.clone(),
        "--smtp-url".into(),
        sink.url(),
        "--active-hours".into(),
        "00:00-24:00".into(),
        "--dispatch-interval".into(),
        "200ms".into(),
    ];
    let first = TestServer::start(&args).await;
    let second = TestServer::start(&args).await;
    first.get("/import_data/").await;
    let cap = json!({"maxPerClient": {"count": 3, "per": "24h"}});
    assert_eq!(first.patch("/store/1/", &cap).await.0, 200);

    // A burst of 24 for one client, written through both servers at once.
    let posts = (0..24).map(|n| {
        let server = if n % 2 == 0 { &first } else { &second };
        async move { post(server, &format!("Burst {n}"), None).await }
    });
    let posted = futures::future::join_all(posts).await;
    wait_until("every message to be sent or held", 30, || async {
        let mut settled = 0;
        for p in &posted {
            let view = chat(&first, p).await;
            let held = view["status"] == "new" && view["waitingFor"] == "frequency_cap";
            if view["status"] == "sent" || held {
                settled += 1;
            }
        }
        settled == posted.len()
    })
    .await;
    // A few more passes of both dispatchers change nothing.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut sent = 0;
    let now = Utc::now();
    for p in &posted {
        let view = chat(&second, p).await;
        if view["status"] == "sent" {
            sent += 1;
        } else {
            assert_eq!(view["status"], "new", "{view}");
            assert_eq!(view["waitingFor"], "frequency_cap", "{view}");
            let due = utc(view["sendAt"].as_str().unwrap());
            assert!(
                due > now + chrono::Duration::hours(23),
                "held for a day: {view}"
            );
        }
    }
    assert_eq!(sent, 3, "the cap, across both servers");
    assert_eq!(sink.messages().len(), 3, "three emails reached the relay");
    first.stop().await;
    second.stop().await;
}
