//! Every route, status code and JSON shape of SPEC §5, driven with `oneshot`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use cartloop_core::testing::{ManualClock, MemoryStorage};
use cartloop_http::{router, AppState};
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

/// 2026-11-25 15:00Z: 09:00 in Chicago (client 27), 00:00 in Tokyo (client 8).
fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap()
}

fn state() -> AppState {
    let mut state = AppState::new(Arc::new(MemoryStorage::new()));
    state.clock = Arc::new(ManualClock::new(now()));
    state
}

async fn app() -> Router {
    let app = router(state());
    let (status, _) = send(&app, "GET", "/import_data/", None).await;
    assert_eq!(status, StatusCode::OK);
    app
}

async fn send(app: &Router, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    send_with(app, Request::builder().method(method).uri(uri), body).await
}

async fn send_with(
    app: &Router,
    builder: axum::http::request::Builder,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let request = builder
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{status}: not JSON: {:?}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

fn chat(conversation: i64, user: i64, payload: &str) -> String {
    json!({"conversationId": conversation, "chat": {"payload": payload, "userId": user}})
        .to_string()
}

fn assert_error(value: &Value, code: &str) {
    assert_eq!(value["error"]["code"], code, "{value}");
    assert!(
        value["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{value}"
    );
}

#[tokio::test]
async fn get_conversation_has_the_spec_shape() {
    let app = app().await;
    let (status, body) = send(&app, "GET", "/conversation/1/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["conversationId"], 1);
    assert_eq!(body["storeId"], 1);
    assert_eq!(body["operatorId"], 24);
    assert_eq!(body["clientId"], 27);
    assert_eq!(body["operatorGroup"], "sales");
    assert_eq!(body["status"], "open");
    assert_eq!(body["clientTimeZone"], "America/Chicago");
    let chats = body["chats"].as_array().unwrap();
    assert_eq!(chats.len(), 3);
    assert_eq!(
        chats[2],
        json!({
            "chatId": 3, "userId": 24,
            "payload": "Sure {{ username }}. Here is your code {{ discountCode }}",
            "status": "sent",
            "createdAt": "2020-12-03T15:25:00Z", "sendAt": "2020-12-03T15:25:00Z", "sentAt": "2020-12-03T15:25:00Z"
        })
    );
    assert_eq!(chats[1]["status"], "received");
    assert_eq!(chats[1]["sendAt"], Value::Null);
    // Without the trailing slash too.
    let (status, again) = send(&app, "GET", "/conversation/1", None).await;
    assert_eq!((status, &again), (StatusCode::OK, &body));
}

#[tokio::test]
async fn client_without_zone_falls_back_to_the_store_zone() {
    let app = app().await;
    let (_, body) = send(&app, "GET", "/conversation/14/", None).await;
    assert_eq!(body["clientTimeZone"], "Europe/Berlin");
}

#[tokio::test]
async fn unknown_and_bad_conversation_ids() {
    let app = app().await;
    let (status, body) = send(&app, "GET", "/conversation/999/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "conversation_not_found");
    for bad in ["abc", "1.5", "-1", "0", "99999999999999999999999"] {
        let (status, body) = send(&app, "GET", &format!("/conversation/{bad}/"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_error(&body, "invalid_id");
    }
}

#[tokio::test]
async fn paging_backwards_from_the_newest() {
    let app = app().await;
    for n in 0..5 {
        let (status, _) = send(
            &app,
            "POST",
            "/chat/",
            Some(&chat(1, 27, &format!("msg {n}"))),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, body) = send(&app, "GET", "/conversation/1/?limit=2", None).await;
    let ids: Vec<i64> = body["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chatId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "oldest first");
    let (_, older) = send(
        &app,
        "GET",
        &format!("/conversation/1/?limit=3&before={}", ids[0]),
        None,
    )
    .await;
    let older: Vec<i64> = older["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chatId"].as_i64().unwrap())
        .collect();
    assert_eq!(older.len(), 3);
    assert_eq!(*older.last().unwrap(), ids[0] - 1);
    let (_, all) = send(&app, "GET", "/conversation/1/", None).await;
    assert_eq!(all["chats"].as_array().unwrap().len(), 8);
    for bad in ["limit=0", "limit=abc", "limit=-1", "limit=%2B2", "before=x"] {
        let (status, body) = send(&app, "GET", &format!("/conversation/1/?{bad}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_error(&body, "invalid_query");
    }
    let (status, _) = send(&app, "GET", "/conversation/1/?limit=5000", None).await;
    assert_eq!(status, StatusCode::OK, "limit is clamped to 1000");
}

#[tokio::test]
async fn post_operator_message_inside_hours() {
    let app = app().await;
    let (status, body) = send(
        &app,
        "POST",
        "/chat/",
        Some(&chat(
            1,
            24,
            "Sure {{ username }}. Here is your code {{ discountCode }}",
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body,
        json!({"chatId": 6, "status": "new", "sendAt": "2026-11-25T15:00:00Z"})
    );
    let (_, conversation) = send(&app, "GET", "/conversation/1/", None).await;
    let last = conversation["chats"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["chatId"], 6);
    assert_eq!(last["userId"], 24);
    assert_eq!(last["status"], "new");
    assert_eq!(last["createdAt"], "2026-11-25T15:00:00Z");
    assert_eq!(last["sentAt"], Value::Null);
}

#[tokio::test]
async fn post_outside_hours_waits_for_the_next_window() {
    let app = app().await;
    // Conversation 9 is client 8 in Tokyo: 00:00 local, window opens 09:00 JST = 00:00Z.
    let (status, body) = send(
        &app,
        "POST",
        "/chat",
        Some(&chat(9, 23, "Hello << username >>")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["sendAt"], "2026-11-26T00:00:00Z");
    assert_eq!(body["status"], "new");
}

#[tokio::test]
async fn client_message_is_received() {
    let app = app().await;
    let (status, body) = send(&app, "POST", "/chat/", Some(&chat(1, 27, "Thanks!"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["status"], "received");
    assert_eq!(body["sendAt"], Value::Null);
}

#[tokio::test]
async fn malformed_bodies_are_400_json() {
    let app = app().await;
    for (body, code) in [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        ("[]", "invalid_request"),
        (r#"{"conversationId":1}"#, "invalid_request"),
        (
            r#"{"conversationId":"1","chat":{"payload":"x","userId":24}}"#,
            "invalid_request",
        ),
        (
            r#"{"conversationId":1,"chat":{"payload":5,"userId":24}}"#,
            "invalid_request",
        ),
        (
            r#"{"conversationId":1,"chat":{"payload":"x"}}"#,
            "invalid_request",
        ),
        (
            r#"{"conversationId":1,"chat":{"payload":"x","userId":null}}"#,
            "invalid_request",
        ),
        // serde would take a struct's fields as an array, in order: not here.
        (r#"[1,["x",24]]"#, "invalid_request"),
        (r#"{"conversationId":1,"chat":["x",24]}"#, "invalid_request"),
    ] {
        let (status, value) = send(&app, "POST", "/chat/", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_error(&value, code);
    }
    let (_, value) = send(
        &app,
        "POST",
        "/chat/",
        Some(r#"{"conversationId":1,"chat":{"payload":"x"}}"#),
    )
    .await;
    assert!(
        value["error"]["message"]
            .as_str()
            .unwrap()
            .contains("userId"),
        "{value}"
    );
}

#[tokio::test]
async fn conversation_rules_map_to_statuses() {
    let app = app().await;
    let (status, body) = send(&app, "POST", "/chat/", Some(&chat(999, 24, "hi"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "conversation_not_found");
    let (status, body) = send(&app, "POST", "/chat/", Some(&chat(1, 21, "hi"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden");
    let (status, body) = send(&app, "POST", "/chat/", Some(&chat(24, 22, "hi"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "conversation_resolved");
}

#[tokio::test]
async fn validation_errors_are_422_with_position_and_store_nothing() {
    let app = app().await;
    let (_, before) = send(&app, "GET", "/conversation/1/", None).await;
    let cases = [
        ("Merci caf\u{e9}", "invalid_character", Some(9)),
        (&*"a".repeat(300), "payload_too_long", None),
        ("", "empty_payload", None),
        ("Hi {{ username", "unclosed_placeholder", Some(3)),
        ("Hi << coupon >>", "unknown_placeholder", Some(3)),
        ("tab\t", "invalid_character", Some(3)),
    ];
    for (payload, code, position) in cases {
        let (status, body) = send(&app, "POST", "/chat/", Some(&chat(1, 24, payload))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{payload:?}");
        assert_error(&body, code);
        assert_eq!(
            body["error"]["position"].as_u64().map(|p| p as usize),
            position,
            "{body}"
        );
    }
    let (_, body) = send(
        &app,
        "POST",
        "/chat/",
        Some(&chat(1, 24, "Merci caf\u{e9}")),
    )
    .await;
    assert_eq!(
        body["error"]["message"],
        "invalid character '\u{e9}' at position 9"
    );
    // Conversation 4 has no discount code.
    let (status, body) = send(
        &app,
        "POST",
        "/chat/",
        Some(&chat(4, 21, "code << discountCode >>")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "missing_value");
    let (_, after) = send(&app, "GET", "/conversation/1/", None).await;
    assert_eq!(before, after);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = app().await;
    let big = chat(1, 24, &"a".repeat(70 * 1024));
    let (status, body) = send(&app, "POST", "/chat/", Some(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");

    // A declared length over the limit is refused before the body is read: this body
    // never ends, and the answer still comes.
    let endless = Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>());
    let request = Request::builder()
        .method("POST")
        .uri("/chat/")
        .header("content-length", "100000")
        .header("expect", "100-continue")
        .body(endless)
        .unwrap();
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.clone().oneshot(request),
    )
    .await
    .expect("answered without reading the body")
    .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn idempotency_key_returns_the_first_result() {
    let app = app().await;
    let request = || {
        Request::builder()
            .method("POST")
            .uri("/chat/")
            .header("idempotency-key", "abc-123")
    };
    let (status, first) = send_with(&app, request(), Some(&chat(1, 24, "once"))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, second) = send_with(&app, request(), Some(&chat(1, 24, "once"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first, second);
    let (_, conversation) = send(&app, "GET", "/conversation/1/", None).await;
    assert_eq!(conversation["chats"].as_array().unwrap().len(), 4);
    let (status, body) = send_with(&app, request(), Some(&chat(1, 24, "different"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "idempotency_key_reused");
}

#[tokio::test]
async fn a_replay_answers_as_the_first_request_after_the_email_went_out() {
    let storage = Arc::new(MemoryStorage::new());
    let mut state = AppState::new(storage.clone());
    state.clock = Arc::new(ManualClock::new(now()));
    let app = router(state);
    send(&app, "GET", "/import_data/", None).await;
    let request = || {
        Request::builder()
            .method("POST")
            .uri("/chat/")
            .header("idempotency-key", "sent-in-between")
    };
    let (status, first) = send_with(&app, request(), Some(&chat(1, 24, "once"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["status"], "new");

    // The dispatcher sends it before the client retries.
    use cartloop_core::ports::{ClaimLimit, Storage};
    let claim = storage
        .claim_due(
            now(),
            std::time::Duration::from_secs(60),
            ClaimLimit::batch(1),
        )
        .await
        .unwrap()
        .remove(0);
    assert!(storage.mark_sent(claim.token, now()).await.unwrap());

    let (status, second) = send_with(&app, request(), Some(&chat(1, 24, "once"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first, second);
    let (_, conversation) = send(&app, "GET", "/conversation/1/", None).await;
    assert_eq!(conversation["chats"][3]["status"], "sent");
}

#[tokio::test]
async fn import_is_idempotent() {
    let app = router(state());
    let (status, first) = send(&app, "POST", "/import_data", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(first["inserted"].as_u64().unwrap() > 0);
    let (_, before) = send(&app, "GET", "/conversation/1/", None).await;
    let (status, second) = send(&app, "GET", "/import_data/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["inserted"], 0);
    let (_, after) = send(&app, "GET", "/conversation/1/", None).await;
    assert_eq!(before, after);
}

#[tokio::test]
async fn head_does_not_import() {
    let app = router(state());
    for uri in ["/import_data/", "/import_data"] {
        let request = Request::builder()
            .method("HEAD")
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{uri}");
        assert_eq!(response.headers()["allow"], "GET,POST");
    }
    let (status, body) = send(&app, "GET", "/conversation/1/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing imported: {body}");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let app = app().await;
    let (status, body) = send(&app, "GET", "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "route_not_found");
    assert_eq!(body["error"]["message"], "no route for GET /nope");
    // A long path is not echoed back whole.
    let long = format!("/{}", "z".repeat(60_000));
    let (status, body) = send(&app, "GET", &long, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.len() < 100 && message.ends_with("..."), "{message}");
    let (status, body) = send(&app, "DELETE", "/chat/", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "method_not_allowed");
    let (status, body) = send(&app, "GET", "/healthz", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn bearer_token_guards_every_route_but_healthz() {
    let mut state = state();
    state.api_token = Some("s3cret".into());
    let app = router(state);
    let (status, _) = send(&app, "GET", "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    for (method, uri, body) in [
        ("GET", "/import_data/", None),
        ("GET", "/conversation/1/", None),
        ("POST", "/chat/", Some(chat(1, 24, "hi"))),
    ] {
        let (status, value) = send(&app, method, uri, body.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_error(&value, "unauthorized");
        let wrong = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", "Bearer nope");
        let (status, _) = send_with(&app, wrong, body.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let ok = |method, uri| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", "Bearer s3cret")
    };
    let (status, _) = send_with(&app, ok("GET", "/import_data/"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send_with(&app, ok("GET", "/conversation/1/"), None).await;
    assert_eq!(status, StatusCode::OK);
    // The scheme is case-insensitive; the token is not.
    for (header, expected) in [
        ("bearer s3cret", StatusCode::OK),
        ("BEARER s3cret", StatusCode::OK),
        ("Bearer S3CRET", StatusCode::UNAUTHORIZED),
        ("Basic s3cret", StatusCode::UNAUTHORIZED),
        ("s3cret", StatusCode::UNAUTHORIZED),
    ] {
        let request = Request::builder()
            .method("GET")
            .uri("/conversation/1/")
            .header("authorization", header);
        let (status, _) = send_with(&app, request, None).await;
        assert_eq!(status, expected, "{header}");
    }
}

#[tokio::test]
async fn due_post_wakes_the_dispatcher() {
    let mut state = state();
    let wake = Arc::new(tokio::sync::Notify::new());
    state.dispatch_wake = Some(wake.clone());
    let app = router(state);
    send(&app, "GET", "/import_data/", None).await;
    send(&app, "POST", "/chat/", Some(&chat(1, 24, "now"))).await;
    tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified())
        .await
        .expect("a due message wakes the dispatcher");
    // 15:00Z is midnight in Tokyo (client 8, conversation 9): due at 09:00 local. The
    // dispatcher is woken too, to sleep until then rather than until its next poll.
    let (status, body) = send(&app, "POST", "/chat/", Some(&chat(9, 23, "later"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["sendAt"], "2026-11-26T00:00:00Z");
    tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified())
        .await
        .expect("a message due later wakes the dispatcher");
    // A client's message is never emailed: no wake.
    send(&app, "POST", "/chat/", Some(&chat(1, 27, "thanks"))).await;
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), wake.notified())
            .await
            .is_err(),
        "a client's message does not wake the dispatcher"
    );
}
