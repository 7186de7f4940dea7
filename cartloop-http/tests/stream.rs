//! `GET /events/` through the router: the SSE framing, filters and access, resuming with
//! `Last-Event-ID` (none missed, none twice), the cut-off of a lagging client, the
//! keep-alive and the reset after pruning.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use cartloop_http::hub::{Hub, HubSettings};
use common::{app_with, assert_error, chat, json_of, App};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::time::Duration;

const TOKEN: &str = "deployment-token";

async fn app() -> App {
    app_with(|state| state.api_token = Some(TOKEN.into())).await
}

/// An app whose hub cuts off at `capacity` and sends keep-alives every `keep_alive`.
async fn app_with_hub(capacity: usize, keep_alive: Duration) -> App {
    app_with(|state| {
        state.api_token = Some(TOKEN.into());
        state.hub = Hub::new(
            state.storage.clone(),
            HubSettings {
                capacity,
                keep_alive,
            },
        );
    })
    .await
}

fn get(uri: &str, auth: &str) -> axum::http::request::Builder {
    Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {auth}"))
}

/// Posts a chat as `user` (`0`: the conversation's operator).
async fn post_chat(app: &App, conversation: i64, user: i64, text: &str) -> Value {
    let user = if user == 0 {
        use cartloop_core::ports::Conversations;
        let id = cartloop_core::ids::ConversationId(conversation);
        let found = app.storage.conversation(id).await.unwrap().unwrap();
        found.conversation.operator_id.get()
    } else {
        user
    };
    let body = chat(conversation, user, text);
    let request = Request::post("/chat/")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let (status, body) = json_of(app.call(request).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// One parsed SSE message: its fields, or a comment.
#[derive(Debug, Clone, PartialEq, Default)]
struct Message {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    comment: Option<String>,
}

impl Message {
    fn json(&self) -> Value {
        serde_json::from_str(self.data.as_deref().unwrap()).unwrap()
    }
}

/// An open stream: its body, and what was read of it but not parsed yet.
struct Sse {
    body: Body,
    buffer: String,
    ended: bool,
}

impl Sse {
    async fn open(app: &App, request: Request<Body>) -> Self {
        let response = app.call(request).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        Self {
            body: response.into_body(),
            buffer: String::new(),
            ended: false,
        }
    }

    /// The next message (comments included), or `None` when the stream ended or nothing
    /// came within `wait`.
    async fn next_within(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message::default();
                for line in block.lines().filter(|line| !line.is_empty()) {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                    match field {
                        "" => message.comment = Some(value),
                        "id" => message.id = Some(value),
                        "event" => message.event = Some(value),
                        "data" => message.data = Some(value),
                        other => panic!("unexpected field {other:?} in {block:?}"),
                    }
                }
                return Some(message);
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) => self.ended = true,
                Ok(Some(frame)) => {
                    if let Ok(data) = frame.unwrap().into_data() {
                        self.buffer.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
            }
        }
    }

    /// The next event, skipping comments; panics when none comes within 5 s.
    async fn event(&mut self) -> Message {
        loop {
            let message = self
                .next_within(Duration::from_secs(5))
                .await
                .expect("an event within 5 s");
            if message.comment.is_none() {
                return message;
            }
        }
    }

    /// Whether another event comes within `wait` (comments skipped).
    async fn quiet_for(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                None => return true,
                Some(m) if m.comment.is_some() => continue,
                Some(m) => panic!("unexpected event {m:?}"),
            }
        }
    }
}

async fn key(app: &App, body: Value) -> String {
    let request = Request::post("/api-keys/")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, made) = json_of(app.call(request).await).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    made["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_event_is_framed_with_its_id_type_and_json() {
    let app = app().await;
    let mut stream = Sse::open(&app, get("/events/", TOKEN).body(Body::empty()).unwrap()).await;
    let posted = post_chat(&app, 1, 27, "Is it in stock?").await;
    let event = stream.event().await;
    assert_eq!(event.event.as_deref(), Some("chat.received"), "{event:?}");
    let data = event.json();
    assert_eq!(data["id"].as_str(), event.id.as_deref());
    assert!(data["id"].as_str().unwrap().starts_with("evt_"), "{data}");
    assert_eq!(data["type"], "chat.received");
    assert_eq!(data["storeId"], 1);
    assert_eq!(data["data"]["chatId"], posted["chatId"], "{data} {posted}");
    assert_eq!(data["data"]["payload"], "Is it in stock?");
    assert!(
        app.metrics
            .render(None)
            .contains("cartloop_event_streams_open 1\n"),
        "{}",
        app.metrics.render(None)
    );
    assert!(app
        .metrics
        .render(None)
        .contains("cartloop_events_streamed_total 1\n"));
    drop(stream);
    assert!(app
        .metrics
        .render(None)
        .contains("cartloop_event_streams_open 0\n"));
}

#[tokio::test]
async fn bad_filters_are_refused_before_the_stream_starts() {
    let app = app().await;
    for (uri, status, code) in [
        (
            "/events/?types=chat.received,chat.deleted",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_event_type",
        ),
        (
            "/events/?types=webhook.test",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_event_type",
        ),
        (
            "/events/?conversationId=abc",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/events/?conversationId=999999",
            StatusCode::NOT_FOUND,
            "conversation_not_found",
        ),
        (
            "/events/?lastEventId=yesterday",
            StatusCode::BAD_REQUEST,
            "invalid_last_event_id",
        ),
    ] {
        let (got, body) =
            json_of(app.call(get(uri, TOKEN).body(Body::empty()).unwrap()).await).await;
        assert_eq!(got, status, "{uri}: {body}");
        assert_error(&body, code);
    }
    let request = get("/events/", TOKEN)
        .header("last-event-id", "evt_x")
        .body(Body::empty())
        .unwrap();
    let (got, body) = json_of(app.call(request).await).await;
    assert_eq!(got, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_last_event_id");
    let (got, _) = json_of(
        app.call(Request::get("/events/").body(Body::empty()).unwrap())
            .await,
    )
    .await;
    assert_eq!(got, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_store_sees_only_its_own_events_and_filters_narrow_them() {
    let app = app().await;
    let store1 = key(
        &app,
        json!({"name": "shop", "role": "integration", "storeId": 1}),
    )
    .await;
    // Another store's conversation (5 is store 2's) is unknown, as one that does not exist.
    let (status, body) = json_of(
        app.call(
            get("/events/?conversationId=5", &store1)
                .body(Body::empty())
                .unwrap(),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "conversation_not_found");
    let (status, _) = json_of(
        app.call(
            get("/events/?storeId=2", &store1)
                .body(Body::empty())
                .unwrap(),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mut mine = Sse::open(&app, get("/events/", &store1).body(Body::empty()).unwrap()).await;
    let mut one = Sse::open(
        &app,
        get("/events/?conversationId=2", &store1)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let mut received = Sse::open(
        &app,
        get("/events/?types=chat.received", TOKEN)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let mut admin = Sse::open(&app, get("/events/", TOKEN).body(Body::empty()).unwrap()).await;
    post_chat(&app, 5, 0, "store 2, by its operator").await;
    post_chat(&app, 1, 27, "store 1, conversation 1").await;
    post_chat(&app, 2, 0, "store 1, conversation 2").await;

    let first = admin.event().await.json();
    assert_eq!(first["storeId"], 2, "the admin sees every store: {first}");
    let event = mine.event().await.json();
    assert_eq!(event["storeId"], 1, "{event}");
    assert_eq!(event["data"]["conversationId"], 1, "{event}");
    let event = mine.event().await.json();
    assert_eq!(event["data"]["conversationId"], 2, "{event}");
    let event = one.event().await.json();
    assert_eq!(event["data"]["conversationId"], 2, "{event}");
    let event = received.event().await.json();
    assert_eq!(event["type"], "chat.received", "{event}");
    assert!(mine.quiet_for(Duration::from_millis(300)).await);
    assert!(one.quiet_for(Duration::from_millis(100)).await);
    assert!(received.quiet_for(Duration::from_millis(100)).await);
}

#[tokio::test]
async fn resuming_with_last_event_id_misses_none_and_repeats_none() {
    let app = app().await;
    let mut first = Sse::open(&app, get("/events/", TOKEN).body(Body::empty()).unwrap()).await;
    for n in 0..5 {
        post_chat(&app, 1, 27, &format!("before {n}")).await;
    }
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(first.event().await.id.unwrap());
    }
    drop(first);
    // Written while no stream was open.
    for n in 0..3 {
        post_chat(&app, 1, 27, &format!("while away {n}")).await;
    }
    let request = get("/events/", TOKEN)
        .header("last-event-id", seen.last().unwrap().as_str())
        .body(Body::empty())
        .unwrap();
    let mut resumed = Sse::open(&app, request).await;
    // Written while the stream catches up: live, and maybe in the backlog too.
    for n in 0..3 {
        post_chat(&app, 1, 27, &format!("live {n}")).await;
    }
    for _ in 0..9 {
        seen.push(resumed.event().await.id.unwrap());
    }
    assert!(resumed.quiet_for(Duration::from_millis(300)).await);
    let expected: Vec<String> = (1..=11).map(|n| format!("evt_{n:012}")).collect();
    assert_eq!(seen, expected);
    // `?lastEventId=` for clients without EventSource.
    let mut by_query = Sse::open(
        &app,
        get("/events/?lastEventId=evt_000000000010", TOKEN)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        by_query.event().await.id.as_deref(),
        Some("evt_000000000011")
    );
}

#[tokio::test]
async fn a_lagging_client_is_cut_off_with_the_id_to_resume_from() {
    let app = app_with_hub(2, Duration::from_secs(15)).await;
    let mut stream = Sse::open(&app, get("/events/", TOKEN).body(Body::empty()).unwrap()).await;
    post_chat(&app, 1, 27, "one").await;
    let first = stream.event().await;
    assert_eq!(first.id.as_deref(), Some("evt_000000000001"));
    // Caught up with the log: it now waits on the hub.
    assert_eq!(stream.next_within(Duration::from_millis(200)).await, None);
    // Five more while the client reads nothing: more than the hub keeps for it.
    for n in 0..5 {
        post_chat(&app, 1, 27, &format!("flood {n}")).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cut = stream.event().await;
    assert_eq!(cut.event.as_deref(), Some("cutoff"), "{cut:?}");
    assert_eq!(cut.id.as_deref(), Some("evt_000000000001"));
    assert_eq!(cut.json()["lastEventId"], "evt_000000000001");
    assert_eq!(stream.next_within(Duration::from_secs(1)).await, None);
    assert!(stream.ended, "the stream ends after its cut-off");
    // Resuming from there gives the rest.
    let request = get("/events/", TOKEN)
        .header("last-event-id", "evt_000000000001")
        .body(Body::empty())
        .unwrap();
    let mut resumed = Sse::open(&app, request).await;
    for n in 2..=6 {
        assert_eq!(resumed.event().await.id, Some(format!("evt_{n:012}")));
    }
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments() {
    let app = app_with_hub(16, Duration::from_millis(100)).await;
    let mut stream = Sse::open(&app, get("/events/", TOKEN).body(Body::empty()).unwrap()).await;
    let message = stream.next_within(Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        message.comment.as_deref(),
        Some("keep-alive"),
        "{message:?}"
    );
}

#[tokio::test]
async fn a_pruned_last_event_id_is_reset_to_the_oldest_kept() {
    use cartloop_core::ports::EventLog;
    let app = app().await;
    for n in 0..4 {
        post_chat(&app, 1, 27, &format!("old {n}")).await;
    }
    // Everything but the newest is pruned.
    let far = common::now() + chrono::Duration::days(3650);
    app.storage.prune_events(far).await.unwrap();
    let request = get("/events/", TOKEN)
        .header("last-event-id", "evt_000000000001")
        .body(Body::empty())
        .unwrap();
    let mut stream = Sse::open(&app, request).await;
    let reset = stream.event().await;
    assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
    assert_eq!(reset.json()["oldestEventId"], "evt_000000000004");
    assert_eq!(stream.event().await.id.as_deref(), Some("evt_000000000004"));
}
