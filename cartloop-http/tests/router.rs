//! The original API's routes, status codes and JSON shapes, and what holds for every route: auth,
//! time limits, unknown routes, metrics and the OpenAPI document. Driven with `oneshot`.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{app, app_with, assert_error, chat, empty_app_with, now, App};
use futures::StreamExt;
use prom_text_format_parser::{Metric, Scrape, Type, ValueType};
use serde_json::{json, Value};

#[tokio::test]
async fn get_conversation_has_the_spec_shape() {
    let app = app().await;
    let (status, body) = app.send("GET", "/conversation/1/", None).await;
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
            "createdAt": "2020-12-03T15:25:00Z", "sendAt": "2020-12-03T15:25:00Z", "sentAt": "2020-12-03T15:25:00Z",
            "waitingFor": null
        })
    );
    assert_eq!(chats[1]["status"], "received");
    assert_eq!(chats[1]["sendAt"], Value::Null);
    // Without the trailing slash too.
    let (status, again) = app.send("GET", "/conversation/1", None).await;
    assert_eq!((status, &again), (StatusCode::OK, &body));
}

#[tokio::test]
async fn client_without_zone_falls_back_to_the_store_zone() {
    let app = app().await;
    let (_, body) = app.send("GET", "/conversation/14/", None).await;
    assert_eq!(body["clientTimeZone"], "Europe/Berlin");
}

#[tokio::test]
async fn unknown_and_bad_conversation_ids() {
    let app = app().await;
    let (status, body) = app.send("GET", "/conversation/999/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "conversation_not_found");
    for bad in ["abc", "1.5", "-1", "0", "99999999999999999999999"] {
        let (status, body) = app
            .send("GET", &format!("/conversation/{bad}/"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_error(&body, "invalid_id");
    }
}

#[tokio::test]
async fn paging_backwards_from_the_newest() {
    let app = app().await;
    for n in 0..5 {
        let (status, _) = app
            .send("POST", "/chat/", Some(&chat(1, 27, &format!("msg {n}"))))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, body) = app.send("GET", "/conversation/1/?limit=2", None).await;
    let ids: Vec<i64> = body["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chatId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "oldest first");
    let (_, older) = app
        .send(
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
    let (_, all) = app.send("GET", "/conversation/1/", None).await;
    assert_eq!(all["chats"].as_array().unwrap().len(), 8);
    for bad in ["limit=0", "limit=abc", "limit=-1", "limit=%2B2", "before=x"] {
        let (status, body) = app
            .send("GET", &format!("/conversation/1/?{bad}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_error(&body, "invalid_query");
    }
    let (status, _) = app.send("GET", "/conversation/1/?limit=5000", None).await;
    assert_eq!(status, StatusCode::OK, "limit is clamped to 1000");
}

#[tokio::test]
async fn post_operator_message_inside_hours() {
    let app = app().await;
    let (status, body) = app
        .send(
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
        json!({"chatId": 6, "status": "new", "sendAt": "2026-11-25T15:00:00Z", "waitingFor": null})
    );
    let (_, conversation) = app.send("GET", "/conversation/1/", None).await;
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
    let (status, body) = app
        .send("POST", "/chat", Some(&chat(9, 23, "Hello << username >>")))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["sendAt"], "2026-11-26T00:00:00Z");
    assert_eq!(body["status"], "new");
}

#[tokio::test]
async fn client_message_is_received() {
    let app = app().await;
    let (status, body) = app
        .send("POST", "/chat/", Some(&chat(1, 27, "Thanks!")))
        .await;
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
        let (status, value) = app.send("POST", "/chat/", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_error(&value, code);
    }
    let (_, value) = app
        .send(
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
    // Valid JSON with a value of the wrong kind is not "invalid JSON", even where serde_json
    // reports it as such (`null` for an enum).
    for body in [r#"{"status":null}"#, r#"{"status":1}"#, r#"{"status":[]}"#] {
        let (status, value) = app.send("PATCH", "/conversation/1/", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_error(&value, "invalid_request");
    }
}

#[tokio::test]
async fn conversation_rules_map_to_statuses() {
    let app = app().await;
    let (status, body) = app.send("POST", "/chat/", Some(&chat(999, 24, "hi"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "conversation_not_found");
    let (status, body) = app.send("POST", "/chat/", Some(&chat(1, 21, "hi"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden");
    let (status, body) = app.send("POST", "/chat/", Some(&chat(24, 22, "hi"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "conversation_resolved");
}

#[tokio::test]
async fn validation_errors_are_422_with_position_and_store_nothing() {
    let app = app().await;
    let (_, before) = app.send("GET", "/conversation/1/", None).await;
    let cases = [
        ("Merci caf\u{e9}", "invalid_character", Some(9)),
        (&*"a".repeat(300), "payload_too_long", None),
        ("", "empty_payload", None),
        ("Hi {{ username", "unclosed_placeholder", Some(3)),
        ("Hi << coupon >>", "unknown_placeholder", Some(3)),
        ("tab\t", "invalid_character", Some(3)),
    ];
    for (payload, code, position) in cases {
        let (status, body) = app
            .send("POST", "/chat/", Some(&chat(1, 24, payload)))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{payload:?}");
        assert_error(&body, code);
        assert_eq!(
            body["error"]["position"].as_u64().map(|p| p as usize),
            position,
            "{body}"
        );
    }
    let (_, body) = app
        .send("POST", "/chat/", Some(&chat(1, 24, "Merci caf\u{e9}")))
        .await;
    assert_eq!(
        body["error"]["message"],
        "invalid character '\u{e9}' at position 9"
    );
    // Conversation 4 has no discount code.
    let (status, body) = app
        .send(
            "POST",
            "/chat/",
            Some(&chat(4, 21, "code << discountCode >>")),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "missing_value");
    let (_, after) = app.send("GET", "/conversation/1/", None).await;
    assert_eq!(before, after);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = app().await;
    let big = chat(1, 24, &"a".repeat(70 * 1024));
    let (status, body) = app.send("POST", "/chat/", Some(&big)).await;
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
    let response = tokio::time::timeout(std::time::Duration::from_secs(5), app.call(request))
        .await
        .expect("answered without reading the body");
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
    let (status, first) = app.send_with(request(), Some(&chat(1, 24, "once"))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, second) = app.send_with(request(), Some(&chat(1, 24, "once"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first, second);
    let (_, conversation) = app.send("GET", "/conversation/1/", None).await;
    assert_eq!(conversation["chats"].as_array().unwrap().len(), 4);
    let (status, body) = app
        .send_with(request(), Some(&chat(1, 24, "different")))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "idempotency_key_reused");
}

#[tokio::test]
async fn a_replay_answers_as_the_first_request_after_the_email_went_out() {
    let app = app().await;
    let storage = app.storage.clone();
    let request = || {
        Request::builder()
            .method("POST")
            .uri("/chat/")
            .header("idempotency-key", "sent-in-between")
    };
    let (status, first) = app.send_with(request(), Some(&chat(1, 24, "once"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["status"], "new");

    // The dispatcher sends it before the client retries.
    use cartloop_core::ports::prelude::*;
    use cartloop_core::ports::ClaimLimit;
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

    let (status, second) = app.send_with(request(), Some(&chat(1, 24, "once"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first, second);
    let (_, conversation) = app.send("GET", "/conversation/1/", None).await;
    assert_eq!(conversation["chats"][3]["status"], "sent");
}

#[tokio::test]
async fn import_is_idempotent() {
    let app = empty_app_with(|_| {});
    let (status, first) = app.send("POST", "/import_data", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(first["inserted"].as_u64().unwrap() > 0);
    let (_, before) = app.send("GET", "/conversation/1/", None).await;
    let (status, second) = app.send("GET", "/import_data/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["inserted"], 0);
    let (_, after) = app.send("GET", "/conversation/1/", None).await;
    assert_eq!(before, after);
}

#[tokio::test]
async fn head_does_not_import() {
    let app = empty_app_with(|_| {});
    for uri in ["/import_data/", "/import_data"] {
        let request = Request::builder()
            .method("HEAD")
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = app.call(request).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{uri}");
        assert_eq!(response.headers()["allow"], "GET,POST");
    }
    let (status, body) = app.send("GET", "/conversation/1/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing imported: {body}");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let app = app().await;
    let (status, body) = app.send("GET", "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "route_not_found");
    assert_eq!(body["error"]["message"], "no route for GET /nope");
    // A long path is not echoed back whole.
    let long = format!("/{}", "z".repeat(60_000));
    let (status, body) = app.send("GET", &long, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.len() < 100 && message.ends_with("..."), "{message}");
    let (status, body) = app.send("DELETE", "/chat/", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "method_not_allowed");
    let (status, body) = app.send("GET", "/healthz", None).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "ok", "storage": "ok"}))
    );
}

#[tokio::test]
async fn bearer_token_guards_every_route_but_healthz() {
    let app = token_app().await;
    let (status, _) = app.send("GET", "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    for (method, uri, body) in [
        ("GET", "/import_data/", None),
        ("GET", "/conversation/1/", None),
        ("POST", "/chat/", Some(chat(1, 24, "hi"))),
    ] {
        let (status, value) = app.send(method, uri, body.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_error(&value, "unauthorized");
        let wrong = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", "Bearer nope");
        let (status, _) = app.send_with(wrong, body.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let ok = |method, uri| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", "Bearer s3cret")
    };
    let (status, _) = app.send_with(ok("GET", "/import_data/"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.send_with(ok("GET", "/conversation/1/"), None).await;
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
        let (status, _) = app.send_with(request, None).await;
        assert_eq!(status, expected, "{header}");
    }
}

/// An app with the demo data whose API token is `s3cret`.
async fn token_app() -> App {
    app_with(|state| state.api_token = Some("s3cret".into())).await
}

fn authorized(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", "Bearer s3cret")
}

#[tokio::test]
async fn without_the_token_nothing_is_mapped() {
    let app = token_app().await;
    // Unknown paths and wrong methods are 401 too: no route can be discovered without it.
    for (method, uri) in [
        ("GET", "/nope"),
        ("GET", "/conversation/1/extra"),
        ("DELETE", "/chat/"),
        ("PUT", "/conversations/"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("POST", "/inbound/email/"),
    ] {
        let (status, body) = app.send(method, uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_error(&body, "unauthorized");
    }
    // With it, they are what they are.
    let (status, body) = app.send_with(authorized("GET", "/nope"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "route_not_found");
    let (status, body) = app.send_with(authorized("DELETE", "/chat/"), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "method_not_allowed");
    // The health check and the unsubscribe links need no token.
    for uri in ["/healthz", "/healthz/"] {
        let (status, _) = app.send("GET", uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    // (A bad unsubscribe link answers a page to GET, so only the POST is JSON.)
    let (status, body) = app.send("POST", "/unsubscribe/u1-00", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "invalid_token");
}

#[tokio::test]
async fn two_authorization_headers_are_400() {
    let app = token_app().await;
    for (first, second) in [
        ("Bearer s3cret", "Bearer s3cret"),
        ("Bearer s3cret", "Bearer nope"),
        ("Bearer nope", "Bearer s3cret"),
    ] {
        let request = Request::builder()
            .method("GET")
            .uri("/conversation/1/")
            .header("authorization", first)
            .header("authorization", second);
        let (status, body) = app.send_with(request, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{first} / {second}");
        assert_error(&body, "invalid_authorization");
    }
}

#[tokio::test]
async fn every_route_answers_with_and_without_the_trailing_slash() {
    let app = app().await;
    for route in cartloop_http::route_table() {
        let path = route.path.replace("{id}", "1").replace("{token}", "u1-00");
        let other = match path.strip_suffix('/') {
            Some(bare) => bare.to_owned(),
            None => format!("{path}/"),
        };
        for uri in [&path, &other] {
            let request = Request::builder()
                .method(route.method.as_str())
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            let response = app.call(request).await;
            // The event stream's body does not end: its answer is its head.
            let streaming = response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            if streaming {
                assert!(response.status().is_success(), "{} {uri}", route.method);
                continue;
            }
            let (status, _, text) = common::text_of(response).await;
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let code = body["error"]["code"].as_str().unwrap_or("");
            assert!(
                code != "route_not_found" && code != "method_not_allowed",
                "{} {uri}: {status} {text}",
                route.method
            );
            assert!(
                !status.is_server_error(),
                "{} {uri}: {status}",
                route.method
            );
        }
    }
}

#[tokio::test]
async fn a_body_that_stalls_is_408_not_503() {
    let app = app_with(|state| state.request_timeout = std::time::Duration::from_millis(200)).await;
    // Part of the body, then nothing: the client's fault.
    let first =
        futures::stream::iter([Ok::<_, std::io::Error>(b"{\"conversationId\":1,".to_vec())]);
    let stalled = first.chain(futures::stream::pending());
    let request = Request::builder()
        .method("POST")
        .uri("/chat/")
        .header("content-length", "60")
        .body(Body::from_stream(stalled))
        .unwrap();
    let response = app.call(request).await;
    assert_eq!(response.headers()["connection"], "close");
    let (status, body) = common::json_of(response).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_error(&body, "request_timeout");
    // No byte at all.
    let request = Request::builder()
        .method("POST")
        .uri("/clients/")
        .body(Body::from_stream(futures::stream::pending::<
            Result<Vec<u8>, std::io::Error>,
        >()))
        .unwrap();
    let (status, body) = common::json_of(app.call(request).await).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_error(&body, "request_timeout");
}

/// Parses the text with a strict parser of the exposition format: a malformed line fails.
fn scrape(text: &str) -> Scrape {
    Scrape::parse(text).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

fn metric<'a>(scrape: &'a Scrape, name: &str, kind: Type) -> &'a Metric {
    let metric = scrape
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"));
    assert_eq!(metric.kind, kind, "{name}");
    metric
}

fn samples<'a>(
    metric: &'a Metric,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a prom_text_format_parser::Sample> {
    metric.samples.iter().filter(|sample| {
        labels
            .iter()
            .all(|(k, v)| sample.labels.iter().any(|l| l.key == *k && l.value == *v))
    })
}

/// A counter's value (the sum over the matching samples); 0 when the family has no samples
/// yet, and so is not shown.
fn counter(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    if !scrape.metrics.iter().any(|m| m.name == name) {
        return 0.0;
    }
    samples(metric(scrape, name, Type::Counter), labels)
        .map(|s| s.value.value.as_f64())
        .sum()
}

fn gauge(scrape: &Scrape, name: &str) -> f64 {
    let metric = metric(scrape, name, Type::Gauge);
    assert_eq!(metric.samples.len(), 1, "{name}");
    metric.samples[0].value.value.as_f64()
}

/// The cumulative bucket counts of a histogram, by upper bound.
fn buckets(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    samples(metric(scrape, name, Type::Histogram), labels)
        .filter(|s| s.value.value_type == ValueType::Sample)
        .map(|s| {
            let le = s.labels.iter().find(|l| l.key == "le").unwrap();
            let bound = if le.value == "+Inf" {
                f64::INFINITY
            } else {
                le.value.parse().unwrap()
            };
            (bound, s.value.value.as_f64())
        })
        .collect()
}

async fn metrics_text(app: &App) -> String {
    let response = app
        .call(authorized("GET", "/metrics").body(Body::empty()).unwrap())
        .await;
    let (status, content_type, text) = common::text_of(response).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    text
}

#[tokio::test]
async fn metrics_parse_and_their_counters_move() {
    // The runtime hands in a registry with the dispatcher's figures; they are served with
    // the request figures. A stand-in for them here: one counter and one histogram.
    let mut registry = prometheus_client::registry::Registry::default();
    let sent = prometheus_client::metrics::counter::Counter::<u64>::default();
    registry.register("cartloop_emails_sent", "Emails accepted", sent.clone());
    let lag = prometheus_client::metrics::histogram::Histogram::new([0.1, 5.0]);
    registry.register("cartloop_dispatch_lag_seconds", "Lag", lag.clone());
    let app = app_with(|state| {
        state.api_token = Some("s3cret".into());
        state.metrics = cartloop_http::Metrics::with_registry(registry);
    })
    .await;
    let before = scrape(&metrics_text(&app).await);
    let route = [
        ("route", "/conversation/{id}/"),
        ("method", "GET"),
        ("status", "200"),
    ];
    assert_eq!(
        counter(&before, "cartloop_http_requests_total", &route),
        0.0
    );
    assert_eq!(gauge(&before, "cartloop_messages_waiting"), 0.0);

    for uri in ["/conversation/1/", "/conversation/2", "/conversation/3/"] {
        let (status, _) = app.send_with(authorized("GET", uri), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    app.send_with(authorized("GET", "/nowhere"), None).await;
    app.send("GET", "/conversation/1/", None).await; // 401
                                                     // 15:00Z: 09:00 in Chicago, so due now; 00:00 in Tokyo (conversation 9), due at 00:00Z.
    app.send_with(authorized("POST", "/chat/"), Some(&chat(1, 24, "now")))
        .await;
    app.send_with(authorized("POST", "/chat/"), Some(&chat(9, 23, "later")))
        .await;
    app.clock.advance(chrono::Duration::seconds(90));
    sent.inc_by(2);
    lag.observe(3.0);
    lag.observe(0.02);

    let after = scrape(&metrics_text(&app).await);
    assert_eq!(counter(&after, "cartloop_http_requests_total", &route), 3.0);
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    assert_eq!(
        counter(&after, "cartloop_http_requests_total", &unmatched),
        1.0
    );
    let refused = [("route", "/conversation/{id}/"), ("status", "401")];
    assert_eq!(
        counter(&after, "cartloop_http_requests_total", &refused),
        1.0
    );
    let posted = [("route", "/chat/"), ("method", "POST"), ("status", "201")];
    assert_eq!(
        counter(&after, "cartloop_http_requests_total", &posted),
        2.0
    );
    assert_eq!(counter(&after, "cartloop_emails_sent_total", &[]), 2.0);
    let lag = buckets(&after, "cartloop_dispatch_lag_seconds", &[]);
    let le = |bound: f64| lag.iter().find(|(b, _)| *b == bound).unwrap().1;
    assert_eq!((le(0.1), le(5.0), le(f64::INFINITY)), (1.0, 2.0, 2.0));
    let latency = buckets(
        &after,
        "cartloop_http_request_duration_seconds",
        &[("route", "/conversation/{id}/"), ("method", "GET")],
    );
    assert_eq!(
        latency.last(),
        Some(&(f64::INFINITY, 4.0)),
        "3 answered + 1 refused"
    );
    // Both messages wait; the first has been due for the 90 s the clock moved.
    assert_eq!(gauge(&after, "cartloop_messages_waiting"), 2.0);
    assert_eq!(
        gauge(&after, "cartloop_oldest_due_message_age_seconds"),
        90.0
    );
}

#[tokio::test]
async fn routers_in_one_process_keep_their_own_figures() {
    let (one, two) = (app().await, app().await);
    one.send("GET", "/healthz", None).await;
    let text = metrics_text(&two).await;
    assert!(!text.contains("route=\"/healthz\""), "{text}");
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let app = app().await;
    let (status, doc) = app.send("GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(move |method| (path.clone(), method.to_uppercase()))
        })
        .collect();
    let mut served: Vec<(String, String)> = cartloop_http::route_table()
        .into_iter()
        .map(|r| (r.path.to_owned(), r.method.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    // Every operation answers errors in the one shape.
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert!(error["properties"]["error"].is_object(), "{error}");
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.contains_key("default"), "{method} {path}");
        }
    }
    // Public routes say so; the rest inherit the requirement: a bearer credential (an API
    // key or the deployment token) or an operator's session cookie.
    assert_eq!(doc["security"], json!([{"bearer": []}, {"session": []}]));
    assert_eq!(paths["/healthz"]["get"]["security"], json!([{}]));
    assert_eq!(paths["/login"]["post"]["security"], json!([{}]));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let session = &doc["components"]["securitySchemes"]["session"];
    assert_eq!(
        (&session["type"], &session["in"], &session["name"]),
        (
            &json!("apiKey"),
            &json!("cookie"),
            &json!("cartloop_session")
        ),
        "{session}"
    );
    // Every schema an operation refers to is in the document.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut dangling: Vec<&str> = text
        .split("\"#/components/schemas/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| !schemas.contains_key(*name))
        .collect();
    dangling.dedup();
    assert!(dangling.is_empty(), "unresolved schemas: {dangling:?}");
    assert!(schemas.contains_key("ConversationResponse"), "{schemas:?}");
    // Clients belong to a store: shown on every client; a store principal's own is implied
    // when making one, so the body may leave it out.
    let required = |name: &str| schemas[name]["required"].as_array().unwrap().clone();
    assert!(schemas["CreateClientBody"]["properties"]["storeId"].is_object());
    assert!(required("ClientResponse").contains(&json!("storeId")));
    let clients = &paths["/clients/"]["post"]["responses"];
    assert!(clients["404"].is_object(), "unknown store: {clients}");
    let conversations = paths["/conversations/"]["post"]["responses"]["422"]["description"]
        .as_str()
        .unwrap();
    assert!(
        conversations.contains("client_not_in_store"),
        "{conversations}"
    );
}

#[tokio::test]
async fn nested_under_a_prefix_the_rules_still_hold() {
    let app = token_app().await;
    let outer = App {
        router: axum::Router::new().nest("/api", app.router.clone()),
        ..app.clone()
    };
    let (status, _) = outer.send("GET", "/api/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "public without the token");
    let (status, _) = outer.send("GET", "/api/conversation/1/", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = outer
        .send_with(authorized("GET", "/api/conversation/1"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Counted under the route, not under its prefixed path (the figures are shared).
    let after = scrape(&metrics_text(&app).await);
    let route = [("route", "/conversation/{id}/"), ("status", "200")];
    assert_eq!(counter(&after, "cartloop_http_requests_total", &route), 1.0);
}
