//! End-to-end: the server runtime (`cartloop::server`, exactly what the binary runs)
//! served in-process on a free port and talked to over HTTP, once on SQLite with the file
//! outbox and once on PostgreSQL with a real SMTP server; restarts, a message due later,
//! shutdown while a relay is slow, the token. `binary_smoke.rs` starts the binary itself.

mod common;

use cartloop::core::active_hours::ActiveHours;
use cartloop::core::demo::demo_data;
use cartloop::core::domain::ConversationStatus;
use cartloop::core::ports::Clock;
use cartloop::core::testing::ManualClock;
use cartloop::mail::testing::{ParsedEmail, SinkBehavior, SmtpSink};
use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Timelike, Utc};
use common::{postgres_admin_url, sqlite_and_outbox, wait_until, TestDatabase, TestServer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An open demo conversation whose client is inside (or outside) active hours now and for
/// the next 15 minutes, with its operator, client name, zone and discount code.
struct Pick {
    conversation: i64,
    operator: i64,
    client_name: String,
    zone: chrono_tz::Tz,
    code: Option<String>,
}

fn pick(inside: bool, now: DateTime<Utc>) -> Pick {
    let data = demo_data();
    let hours = ActiveHours::default();
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
                client_name: client.name.as_str().to_owned(),
                zone,
                code: c.discount_code.as_deref().map(str::to_owned),
            })
        })
        .expect("the demo zones span the day")
}

fn parse_time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp"))
        .unwrap()
        .with_timezone(&Utc)
}

/// Reads the conversations, for comparing before and after a restart.
async fn snapshot(server: &TestServer, conversations: &[i64]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in conversations {
        out.push(server.get(&format!("/conversation/{id}/")).await.1);
    }
    out
}

/// Import, read, write inside and outside active hours at `now` (the server's clock);
/// returns the two chat ids.
async fn exercise(server: &TestServer, now: DateTime<Utc>) -> ((i64, Pick), (i64, Pick)) {
    let (status, _) = server.get("/import_data/").await;
    assert_eq!(status, 200);
    let (status, again) = server.get("/import_data/").await;
    assert_eq!((status, &again["inserted"]), (200, &json!(0)));
    let (status, conversation) = server.get("/conversation/1/").await;
    assert_eq!(status, 200);
    assert_eq!(conversation["operatorId"], 24);
    assert_eq!(conversation["chats"].as_array().unwrap().len(), 3);

    let inside = pick(true, now);
    let payload = if inside.code.is_some() {
        "Hi << username >>, your code is {{ discountCode }}"
    } else {
        "Hi << username >>, your cart is waiting"
    };
    let (status, posted) = server
        .post_chat(inside.conversation, inside.operator, payload)
        .await;
    assert_eq!(status, 201, "{posted}");
    assert_eq!(posted["status"], "new");
    assert_eq!(parse_time(&posted["sendAt"]), now, "due at once");
    let inside_chat = posted["chatId"].as_i64().unwrap();

    let outside = pick(false, now);
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
    assert_eq!(send_at, expected);
    assert!(send_at > now);
    let outside_chat = posted["chatId"].as_i64().unwrap();
    ((inside_chat, inside), (outside_chat, outside))
}

/// Stops and restarts the server: the conversations read the same, the sent chat is still
/// `sent` and the waiting one still `new`. Gives the restarted server.
async fn restart_loses_nothing(
    server: TestServer,
    args: &[String],
    clock: &Arc<ManualClock>,
    (inside, inside_chat): (&Pick, i64),
    (outside, outside_chat): (&Pick, i64),
) -> TestServer {
    let conversations = [1, inside.conversation, outside.conversation];
    let before = snapshot(&server, &conversations).await;
    server.stop().await;
    let server = TestServer::start_with_clock(args, clock.clone()).await;
    assert_eq!(snapshot(&server, &conversations).await, before);
    assert_eq!(server.chat_status(inside_chat).await, "sent");
    assert_eq!(server.chat_status(outside_chat).await, "new");
    server
}

/// The email of chat `chat` carries its rendered text, its Message-ID and the §8 headers,
/// and the chat is (or soon becomes) `sent`.
async fn delivered_as_rendered(server: &TestServer, email: &ParsedEmail, pick: &Pick, chat: i64) {
    assert_eq!(email.body_text().trim_end(), expected_body(pick));
    let message_id = email.header("Message-ID").unwrap_or_default();
    assert!(
        message_id.contains(&format!("cartloop.message.{chat}.")),
        "{message_id}"
    );
    let reply_to = email.header("Reply-To").unwrap_or_default();
    assert!(reply_to.contains("reply+"), "Reply-To: {reply_to}");
    let unsubscribe = email.header("List-Unsubscribe").unwrap_or_default();
    assert!(unsubscribe.contains("/unsubscribe/"), "{unsubscribe}");
    assert_eq!(
        email.header("List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    wait_until("the chat to be sent", 15, || async {
        server.chat_status(chat).await == "sent"
    })
    .await;
}

fn expected_body(pick: &Pick) -> String {
    match &pick.code {
        Some(code) => format!("Hi {}, your code is {code}", pick.client_name),
        None => format!("Hi {}, your cart is waiting", pick.client_name),
    }
}

/// A fixed instant for the tests that drive the server's clock: a weekday afternoon in
/// Europe, when some demo clients are inside their window and some outside.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap(),
    ))
}

#[tokio::test]
async fn on_sqlite_with_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let args = sqlite_and_outbox(dir.path());
    let clock = clock();
    let server = TestServer::start_with_clock(&args, clock.clone()).await;
    let ((inside_chat, inside), (outside_chat, outside)) = exercise(&server, clock.now()).await;
    let sent = |outbox: &std::path::Path| std::fs::read_dir(outbox).map_or(0, |d| d.count());

    let file = outbox.join(format!("message-{inside_chat}.eml"));
    wait_until("the email in the outbox", 15, || {
        let file = file.clone();
        async move { file.exists() }
    })
    .await;
    let email = ParsedEmail::parse(&std::fs::read(&file).unwrap());
    delivered_as_rendered(&server, &email, &inside, inside_chat).await;
    // Every worker has made a pass since: the message outside its window is still waiting.
    server.settle(ChronoDuration::seconds(2)).await;
    assert_eq!(server.chat_status(outside_chat).await, "new");
    assert_eq!(sent(&outbox), 1, "only the due message was sent");

    // Restart: nothing lost, nothing sent twice.
    let server = restart_loses_nothing(
        server,
        &args,
        &clock,
        (&inside, inside_chat),
        (&outside, outside_chat),
    )
    .await;
    server.settle(ChronoDuration::seconds(2)).await;
    assert_eq!(sent(&outbox), 1);

    // Its window opens: it goes, once.
    let (_, chat) = server.get(&format!("/chat/{outside_chat}/")).await;
    clock.set(parse_time(&chat["sendAt"]));
    server.settle(ChronoDuration::seconds(2)).await;
    assert_eq!(server.chat_status(outside_chat).await, "sent");
    assert_eq!(sent(&outbox), 2);
    server.stop().await;
}

#[tokio::test]
async fn on_postgres_with_smtp() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let database = TestDatabase::create(&admin).await;
    let sink = SmtpSink::start().await;
    let args: Vec<String> = vec![
        "--database-url".into(),
        database.url.clone(),
        "--smtp-url".into(),
        sink.url(),
    ];
    let clock = clock();
    let server = TestServer::start_with_clock(&args, clock.clone()).await;
    let ((inside_chat, inside), (outside_chat, outside)) = exercise(&server, clock.now()).await;
    wait_until("the email at the SMTP server", 15, || {
        let sink = &sink;
        async move { !sink.messages().is_empty() }
    })
    .await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    let email = mails[0].parse();
    delivered_as_rendered(&server, &email, &inside, inside_chat).await;
    server.settle(ChronoDuration::seconds(2)).await;
    assert_eq!(sink.messages().len(), 1, "the outside message waits");

    let server = restart_loses_nothing(
        server,
        &args,
        &clock,
        (&inside, inside_chat),
        (&outside, outside_chat),
    )
    .await;
    server.settle(ChronoDuration::seconds(2)).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "nothing sent twice after a restart"
    );

    let (_, chat) = server.get(&format!("/chat/{outside_chat}/")).await;
    clock.set(parse_time(&chat["sendAt"]));
    server.settle(ChronoDuration::seconds(2)).await;
    assert_eq!(server.chat_status(outside_chat).await, "sent");
    assert_eq!(sink.messages().len(), 2);
    server.stop().await;
}

/// An open demo conversation, the instant `after` from now, and an `ACTIVE_HOURS` setting
/// whose window opens at that instant in the conversation's client's zone.
fn window_opening_in(
    after: ChronoDuration,
) -> (cartloop::core::domain::Conversation, DateTime<Utc>, String) {
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
/// window opens 4 s from now, the poll interval is a minute.
#[tokio::test]
async fn a_message_scheduled_for_later_is_sent_when_due() {
    let (conversation, opens, active_hours) = window_opening_in(ChronoDuration::seconds(4));
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let mut args = sqlite_and_outbox(dir.path());
    args.extend([
        "--active-hours".into(),
        active_hours,
        "--dispatch-interval".into(),
        "60s".into(),
    ]);
    let server = TestServer::start(&args).await;
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
    server.stop().await;
}

/// Shutdown while a relay is slow: the emails in flight finish, the rest of the claimed
/// batch is handed back (not sent by a server that is going away, not left waiting for its
/// lease), and the next start sends it. Every email arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_back_what_is_not_in_flight() {
    const POSTED: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let database = vec![
        "--database-url".to_owned(),
        format!("sqlite://{}", dir.path().join("cartloop.db").display()),
    ];
    // 2 s per email: one round of 8 in flight takes 2 s, the whole batch of 40 would take 10.
    let slow = SmtpSink::start_with(SinkBehavior::slow(Duration::from_secs(2))).await;
    // All fall due together when the window opens, so one pass claims them all.
    let (conversation, opens, active_hours) = window_opening_in(ChronoDuration::seconds(4));
    let mut args = database.clone();
    args.extend([
        "--smtp-url".into(),
        slow.url(),
        "--dispatch-workers".into(),
        "1".into(),
        "--dispatch-concurrency".into(),
        "8".into(),
        "--active-hours".into(),
        active_hours.clone(),
    ]);
    let server = TestServer::start(&args).await;
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
    server.stop().await;
    let took = stopping.elapsed();
    let first = slow.messages().len();
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    assert!(
        (1..POSTED).contains(&first),
        "{first} of {POSTED} sent before the stop"
    );

    let fast = SmtpSink::start().await;
    let mut args = database.clone();
    args.extend([
        "--smtp-url".into(),
        fast.url(),
        "--active-hours".into(),
        active_hours,
    ]);
    let server = TestServer::start(&args).await;
    let restarted = Instant::now();
    wait_until("the rest of the emails", 15, || {
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
        assert_eq!(server.chat_status(chat).await, "sent");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_token_guards_every_route_but_health_and_a_public_bind_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = sqlite_and_outbox(dir.path());
    args.extend(["--api-token".into(), "t0ken".into()]);
    let server = TestServer::start(&args).await;
    let anonymous = reqwest::Client::new();
    for path in ["/import_data/", "/no/such/route", "/conversations/"] {
        let response = anonymous
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let health = anonymous
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(server.get("/import_data/").await.0, 200);
    server.stop().await;

    // The same settings without a token on a public address: refused before serving.
    let settings = <cartloop::server::Settings as clap::Parser>::try_parse_from(
        std::iter::once("server".to_owned()).chain(sqlite_and_outbox(dir.path())),
    )
    .unwrap();
    let server = settings.server().await.unwrap();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let refused = server.serve(listener, std::future::pending()).await;
    assert!(
        matches!(
            refused,
            Err(cartloop::server::ServerError::PublicWithoutToken(_))
        ),
        "{refused:?}"
    );
}
