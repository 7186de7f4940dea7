//! The operator API end to end, on SQLite and on PostgreSQL: a deployment built from
//! nothing over the API, cancel racing the dispatcher, a store window changed while
//! messages wait (both on a clock the test moves), and paging through 1,000 conversations
//! while chats arrive.

mod common;

use cartloop::core::ports::Clock;
use cartloop::core::testing::ManualClock;
use chrono::{DateTime, TimeZone, Utc};
use common::{wait_until, Backend, TestServer};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The settings of a server on `backend` writing emails to `outbox`.
fn args(backend: &Backend, outbox: &Path) -> Vec<String> {
    vec![
        "--database-url".into(),
        backend.database_url(),
        "--outbox-dir".into(),
        outbox.display().to_string(),
    ]
}

async fn created(server: &TestServer, path: &str, body: Value) -> Value {
    let (status, answer) = server.post(path, &body).await;
    assert_eq!(status, 201, "POST {path} {body}: {answer}");
    answer
}

fn id(value: &Value, key: &str) -> i64 {
    value[key]
        .as_i64()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
}

/// A store always open, with an operator, a client and a conversation; returns
/// (conversation, operator, client).
async fn deployment(server: &TestServer, window: &str) -> (i64, i64, i64) {
    let store = created(
        server,
        "/stores/",
        json!({"name": "Nova Shoes", "timeZone": "Europe/Paris", "senderEmail": "hello@nova.example.com", "activeHours": window}),
    )
    .await;
    let operator = created(
        server,
        "/operators/",
        json!({"name": "Oscar", "storeId": id(&store, "storeId"), "group": "sales"}),
    )
    .await;
    let client = created(
        server,
        "/clients/",
        json!({"name": "Clara", "email": format!("clara.{}@example.com", Utc::now().timestamp_micros()), "timeZone": "America/Chicago", "storeId": id(&store, "storeId")}),
    )
    .await;
    let conversation = created(
        server,
        "/conversations/",
        json!({"storeId": id(&store, "storeId"), "operatorId": id(&operator, "operatorId"), "clientId": id(&client, "clientId"), "discountCode": "NOVA10"}),
    )
    .await;
    (
        id(&conversation, "conversationId"),
        id(&operator, "operatorId"),
        id(&client, "clientId"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_built_from_nothing_chats() {
    for backend in Backend::all().await {
        let outbox = tempfile::tempdir().unwrap();
        let server = TestServer::start(&args(&backend, outbox.path())).await;
        let (conversation, operator, client) = deployment(&server, "00:00-24:00").await;

        // The same email again: 409 naming the client.
        let (_, first) = server.get(&format!("/conversation/{conversation}/")).await;
        assert_eq!(first["clientTimeZone"], "America/Chicago", "{first}");
        let (status, body) = server.get("/conversations/?status=open&limit=500").await;
        assert_eq!(status, 200);
        assert!(body["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["conversationId"] == conversation));

        let (status, preview) = server
            .post(
                "/chat/preview/",
                &json!({"conversationId": conversation, "chat": {"payload": "Hi << username >>, use << discountCode >>", "userId": operator}}),
            )
            .await;
        assert_eq!(status, 200, "{preview}");
        assert_eq!(preview["renderedText"], "Hi Clara, use NOVA10");
        let (status, posted) = server
            .post_chat(
                conversation,
                operator,
                "Hi << username >>, use << discountCode >>",
            )
            .await;
        assert_eq!(status, 201, "{posted}");
        let chat = id(&posted, "chatId");
        wait_until("the email", 15, || async {
            server.chat_status(chat).await == "sent"
        })
        .await;
        let (_, view) = server.get(&format!("/chat/{chat}/")).await;
        assert_eq!(view["renderedText"], "Hi Clara, use NOVA10", "{view}");
        assert_eq!(view["attempts"], 1, "{view}");
        assert!(outbox.path().join(format!("message-{chat}.eml")).exists());

        // The client moves to Tokyo; the conversation is resolved, then reopened.
        let (status, moved) = server
            .patch(
                &format!("/client/{client}/"),
                &json!({"timeZone": "Asia/Tokyo"}),
            )
            .await;
        assert_eq!(
            (status, &moved["timeZone"]),
            (200, &json!("Asia/Tokyo")),
            "{moved}"
        );
        let (status, resolved) = server
            .patch(
                &format!("/conversation/{conversation}/"),
                &json!({"status": "resolved"}),
            )
            .await;
        assert_eq!(
            (status, &resolved["status"]),
            (200, &json!("resolved")),
            "{resolved}"
        );
        let (status, refused) = server.post_chat(conversation, operator, "hello?").await;
        assert_eq!(status, 409, "{refused}");
        assert_eq!(refused["error"]["code"], "conversation_resolved");
        server
            .patch(
                &format!("/conversation/{conversation}/"),
                &json!({"status": "open"}),
            )
            .await;
        assert_eq!(
            server.post_chat(conversation, operator, "hello!").await.0,
            201
        );
        server.stop().await;
        eprintln!("{}: ok", backend.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_dispatcher_is_never_sent() {
    for backend in Backend::all().await {
        let outbox = tempfile::tempdir().unwrap();
        let mut args = args(&backend, outbox.path());
        args.extend(["--dispatch-interval".into(), "10ms".into()]);
        let clock = clock();
        let server = TestServer::start_with_clock(&args, clock.clone()).await;
        // The store opens 3 s from now: every message falls due at that instant, and the
        // cancels are sent just as the clock gets there, racing the dispatcher's claims.
        let (opens, local) = paris_in(&clock, 3);
        let (conversation, operator, _) = deployment(&server, &format!("{local}-23:59:59")).await;
        let (_, conv) = server.get(&format!("/conversation/{conversation}/")).await;
        let store = conv["storeId"].as_i64().unwrap();
        let (status, client) = server
            .post("/clients/", &json!({"name": "Race", "email": format!("race.{}@example.com", Utc::now().timestamp_micros()), "storeId": store}))
            .await;
        assert_eq!(status, 201, "{client}");
        let conversation = id(
            &created(&server, "/conversations/", json!({"storeId": store, "operatorId": operator, "clientId": id(&client, "clientId")})).await,
            "conversationId",
        );
        let mut chats = Vec::new();
        for n in 0..80 {
            let (status, posted) = server
                .post_chat(conversation, operator, &format!("Offer {n}"))
                .await;
            assert_eq!(status, 201, "{posted}");
            chats.push(id(&posted, "chatId"));
        }
        // The cancels go at once; when the first answers come back the clock reaches the
        // window, so the rest race the claims of the woken dispatchers.
        let answered = std::sync::atomic::AtomicUsize::new(0);
        let cancels = futures::future::join_all(chats.iter().map(|chat| {
            let (server, answered) = (&server, &answered);
            async move {
                let answer = server.delete(&format!("/chat/{chat}/")).await;
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                answer
            }
        }));
        let open = async {
            while answered.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
            clock.set(opens);
        };
        let (answers, ()) = futures::future::join(cancels, open).await;
        let mut cancelled = Vec::new();
        let mut kept = Vec::new();
        for (chat, (status, body)) in chats.iter().zip(answers) {
            match status {
                200 => {
                    assert_eq!(body["status"], "cancelled", "{body}");
                    cancelled.push(*chat);
                }
                409 => {
                    assert_eq!(body["error"]["code"], "not_cancellable", "{body}");
                    kept.push(*chat);
                }
                other => panic!("DELETE answered {other}: {body}"),
            }
        }
        assert!(!cancelled.is_empty(), "no cancel won");
        for chat in &kept {
            wait_until("a kept message to go", 15, || async {
                server.chat_status(*chat).await == "sent"
            })
            .await;
        }
        server.settle(chrono::Duration::seconds(2)).await;
        for chat in &cancelled {
            assert_eq!(server.chat_status(*chat).await, "cancelled");
            assert!(
                !outbox.path().join(format!("message-{chat}.eml")).exists(),
                "cancelled chat {chat} was emailed"
            );
        }
        server.stop().await;
        eprintln!(
            "{}: {} cancelled, {} kept",
            backend.name(),
            cancelled.len(),
            kept.len()
        );
    }
}

/// The fixed instant the clock-driven tests start at: 16:00 in Paris, far from midnight.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap(),
    ))
}

/// `HH:MM:SS` in Paris, `secs` seconds after `clock`'s now.
fn paris_in(clock: &ManualClock, secs: i64) -> (DateTime<Utc>, String) {
    let at = clock.now() + chrono::Duration::seconds(secs);
    let local = at
        .with_timezone(&chrono_tz::Europe::Paris)
        .format("%H:%M:%S")
        .to_string();
    (at, local)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_follow_a_store_window_changed_while_they_wait() {
    for backend in Backend::all().await {
        let outbox = tempfile::tempdir().unwrap();
        let clock = clock();
        let server =
            TestServer::start_with_clock(&args(&backend, outbox.path()), clock.clone()).await;
        let (opens, local) = paris_in(&clock, 3);
        let (conversation, operator, _) = deployment(&server, &format!("{local}-23:59:59")).await;
        let (_, conv) = server.get(&format!("/conversation/{conversation}/")).await;
        let store = conv["storeId"].as_i64().unwrap();
        // The client has no zone of its own: the store's (Paris) applies.
        let (status, client) = server
            .post("/clients/", &json!({"name": "Zed", "email": format!("zed.{}@example.com", Utc::now().timestamp_micros()), "storeId": store}))
            .await;
        assert_eq!(status, 201, "{client}");
        let created = created(
            &server,
            "/conversations/",
            json!({"storeId": store, "operatorId": operator, "clientId": id(&client, "clientId")}),
        )
        .await;
        let conversation = id(&created, "conversationId");
        let (status, posted) = server
            .post_chat(conversation, operator, "We open soon")
            .await;
        assert_eq!(status, 201, "{posted}");
        let scheduled = DateTime::parse_from_rfc3339(posted["sendAt"].as_str().unwrap()).unwrap();
        assert_eq!(scheduled.timestamp(), opens.timestamp(), "{posted}");
        // While it waits, the store now opens 6 s from now: at its sendAt the dispatcher
        // re-checks and waits for the new window.
        let (later, later_local) = paris_in(&clock, 6);
        let (status, store_now) = server
            .patch(
                &format!("/store/{store}/"),
                &json!({"activeHours": format!("{later_local}-23:59:59")}),
            )
            .await;
        assert_eq!(status, 200, "{store_now}");
        let chat = id(&posted, "chatId");
        clock.set(opens);
        server.settle(chrono::Duration::seconds(1)).await;
        assert_eq!(
            server.chat_status(chat).await,
            "new",
            "sent in the old window"
        );
        clock.set(later);
        server.settle(chrono::Duration::seconds(1)).await;
        assert_eq!(server.chat_status(chat).await, "sent");
        let (_, sent) = server.get(&format!("/chat/{chat}/")).await;
        let sent_at = DateTime::parse_from_rfc3339(sent["sentAt"].as_str().unwrap()).unwrap();
        assert!(
            sent_at.timestamp() >= later.timestamp(),
            "sent at {sent_at}, window opened {later}"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_a_thousand_conversations_while_chats_arrive_skips_and_repeats_nothing() {
    for backend in Backend::all().await {
        let outbox = tempfile::tempdir().unwrap();
        let server = TestServer::start(&args(&backend, outbox.path())).await;
        let store = created(
            &server,
            "/stores/",
            json!({"name": "Big", "timeZone": "UTC", "senderEmail": "big@big.example.com"}),
        )
        .await;
        let store = id(&store, "storeId");
        let operator = created(
            &server,
            "/operators/",
            json!({"name": "Op", "storeId": store, "group": "support"}),
        )
        .await;
        let operator = id(&operator, "operatorId");
        let mut conversations = Vec::new();
        for n in 0..1000 {
            let client = created(
                &server,
                "/clients/",
                json!({"name": format!("Client {n}"), "email": format!("c{n}@big.example.com"), "storeId": store}),
            )
            .await;
            let client_id = id(&client, "clientId");
            let conversation = created(
                &server,
                "/conversations/",
                json!({"storeId": store, "operatorId": operator, "clientId": client_id}),
            )
            .await;
            let conversation = id(&conversation, "conversationId");
            // Every other one gets a chat, so both orders (by activity, by id) are exercised.
            if n % 2 == 0 {
                assert_eq!(
                    server.post_chat(conversation, client_id, "Hello").await.0,
                    201
                );
            }
            conversations.push((conversation, client_id));
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut page = 0;
        loop {
            let path = match &cursor {
                None => format!("/conversations/?storeId={store}&limit=37"),
                Some(c) => format!("/conversations/?storeId={store}&limit=37&cursor={c}"),
            };
            let (status, body) = server.get(&path).await;
            assert_eq!(status, 200, "{body}");
            for row in body["conversations"].as_array().unwrap() {
                seen.push(row["conversationId"].as_i64().unwrap());
            }
            // Between pages, chats arrive in conversations already listed, not yet listed,
            // and with none before.
            for k in 0..5 {
                let (conversation, client) =
                    conversations[(page * 131 + k * 197) % conversations.len()];
                assert_eq!(
                    server.post_chat(conversation, client, "More news").await.0,
                    201
                );
            }
            page += 1;
            match body["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "a conversation was listed twice");
        assert_eq!(unique.len(), 1000, "a conversation was skipped");
        server.stop().await;
        eprintln!("{}: {page} pages", backend.name());
    }
}

/// Parses `/metrics` as fetched over HTTP, with a strict parser of the exposition format.
async fn scrape(server: &TestServer) -> prom_text_format_parser::Scrape {
    let (status, text) = server.get("/metrics").await;
    assert_eq!(status, 200);
    let text = text
        .as_str()
        .expect("metrics are text, not JSON")
        .to_owned();
    prom_text_format_parser::Scrape::parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

/// The sum of a family's samples that carry `labels`; 0 before it has any.
fn sum(scrape: &prom_text_format_parser::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .metrics
        .iter()
        .filter(|m| m.name == name)
        .flat_map(|m| &m.samples)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|l| l.key == *k && l.value == *v))
        })
        .map(|s| s.value.value.as_f64())
        .sum()
}

/// A relay that refuses the address for good fails the message with its reason
/// (`GET /chat/{id}/`); `POST /chat/{id}/retry/` sends it once the relay takes it, and a
/// second retry is 409; `/metrics`, scraped over HTTP, counted the failure, the send and the
/// requests; `GET /store/{id}/` and `GET /openapi.json` answer. Real SMTP, both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_message_is_retried_sent_and_counted() {
    use cartloop::mail::testing::{SinkBehavior, SmtpSink};
    for backend in Backend::all().await {
        let sink = SmtpSink::start_with(SinkBehavior::reject_rcpt("550 5.1.1 no such user")).await;
        let server = TestServer::start(&[
            "--database-url".into(),
            backend.database_url(),
            "--smtp-url".into(),
            sink.url(),
        ])
        .await;
        let (conversation, operator, _) = deployment(&server, "00:00-24:00").await;
        let before = scrape(&server).await;

        let (status, posted) = server
            .post_chat(
                conversation,
                operator,
                "Hello {{ username }}, your code {{ discountCode }}",
            )
            .await;
        assert_eq!(status, 201, "{}: {posted}", backend.name());
        let chat = id(&posted, "chatId");
        wait_until("the failure", 20, || async {
            server.chat_status(chat).await == "failed"
        })
        .await;
        let (_, failed) = server.get(&format!("/chat/{chat}/")).await;
        assert_eq!(failed["attempts"], 1, "{failed}");
        assert!(
            failed["lastError"].as_str().unwrap().contains("550"),
            "{failed}"
        );
        assert_eq!(
            failed["renderedText"], "Hello Clara, your code NOVA10",
            "{failed}"
        );

        sink.set_behavior(SinkBehavior::default());
        let (status, retried) = server
            .post(&format!("/chat/{chat}/retry/"), &json!({}))
            .await;
        assert_eq!(
            (status, retried["status"].as_str()),
            (200, Some("new")),
            "{retried}"
        );
        wait_until("the email", 20, || async {
            server.chat_status(chat).await == "sent"
        })
        .await;
        let emails = sink.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(emails.len(), 1);
        let (status, again) = server
            .post(&format!("/chat/{chat}/retry/"), &json!({}))
            .await;
        assert_eq!(
            (status, again["error"]["code"].as_str()),
            (409, Some("not_retryable")),
            "{again}"
        );

        let after = scrape(&server).await;
        let moved = |name: &str, labels: &[(&str, &str)]| {
            sum(&after, name, labels) - sum(&before, name, labels)
        };
        assert_eq!(
            moved("cartloop_emails_failed_total", &[]),
            1.0,
            "{}",
            backend.name()
        );
        assert_eq!(
            moved("cartloop_emails_sent_total", &[]),
            1.0,
            "{}",
            backend.name()
        );
        let retry = [("route", "/chat/{id}/retry/"), ("method", "POST")];
        assert_eq!(
            moved(
                "cartloop_http_requests_total",
                &[retry[0], retry[1], ("status", "200")]
            ),
            1.0
        );
        assert_eq!(
            moved(
                "cartloop_http_requests_total",
                &[retry[0], retry[1], ("status", "409")]
            ),
            1.0
        );
        // The lag histogram: its +Inf bucket counts every send.
        assert_eq!(
            moved("cartloop_dispatch_lag_seconds", &[("le", "+Inf")]),
            1.0
        );

        let (_, page) = server.get(&format!("/conversation/{conversation}/")).await;
        let store = id(&page, "storeId");
        let (status, got) = server.get(&format!("/store/{store}/")).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(
            (
                got["name"].as_str(),
                got["timeZone"].as_str(),
                got["activeHours"].as_str()
            ),
            (
                Some("Nova Shoes"),
                Some("Europe/Paris"),
                Some("00:00-24:00")
            ),
            "{got}"
        );
        let (status, document) = server.get("/openapi.json").await;
        assert_eq!(status, 200);
        assert!(
            document["openapi"].as_str().unwrap().starts_with("3.1"),
            "{document}"
        );
        assert!(document["paths"]["/chat/{id}/retry/"]["post"].is_object());
        server.stop().await;
    }
}
