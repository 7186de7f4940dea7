//! Webhooks through the router (SPEC §10): making and changing them per role, stores kept
//! apart, the secret shown once, refused URLs and events; a test send and the deliverer
//! against a real HTTP receiver on 127.0.0.1 that checks every signature with its own
//! HMAC, order per conversation while an earlier event is retried, 410, and SSRF.

mod common;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Request, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cartloop_core::ports::Clock as _;
use cartloop_core::webhook_url::AddressPolicy;
use cartloop_http::deliverer::{Deliverer, DelivererConfig, DeliveryMetrics};
use cartloop_http::webhook_client::WebhookClient;
use common::{app_with, assert_error, chat, json_of, App};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "deployment-token";

async fn app(allow_private: bool) -> App {
    app_with(|state| {
        state.api_token = Some(TOKEN.into());
        state.webhook_client = WebhookClient::new(AddressPolicy { allow_private });
    })
    .await
}

async fn call(
    app: &App,
    auth: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {auth}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(axum::body::Body::empty, |b| {
            axum::body::Body::from(b.to_string())
        }))
        .unwrap();
    json_of(app.call(request).await).await
}

async fn key(app: &App, body: Value) -> String {
    let (status, made) = call(app, TOKEN, "POST", "/api-keys/", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    made["key"].as_str().unwrap().to_owned()
}

/// What the receiver got: (webhook-id, body), and whether each signature checked out.
#[derive(Default)]
struct Received {
    deliveries: Vec<(String, Value)>,
    /// The webhook-id answered 500 (the first event of the failing type only).
    failed_once: Vec<String>,
}

struct Receiver {
    url: String,
    got: Arc<Mutex<Received>>,
    secret: Arc<Mutex<String>>,
}

/// An independent Standard Webhooks check: HMAC-SHA256 with the secret's decoded bytes.
fn signature_ok(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| STANDARD.decode(k).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", get("webhook-id"), get("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    get("webhook-signature").split(' ').any(|s| s == expected)
}

/// A receiver answering 2xx to everything signed right, except: 500 once to any event
/// whose body's `type` is `fail_type`, 410 to everything when `gone`.
async fn receiver(fail_type: Option<&'static str>, gone: bool) -> Receiver {
    let got: Arc<Mutex<Received>> = Arc::default();
    let secret: Arc<Mutex<String>> = Arc::default();
    let (g, s) = (got.clone(), secret.clone());
    let handler = move |headers: HeaderMap, body: Bytes| {
        let (got, secret) = (g.clone(), s.clone());
        async move {
            if !signature_ok(&secret.lock().unwrap(), &headers, &body) {
                return StatusCode::UNAUTHORIZED;
            }
            assert_eq!(headers["content-type"], "application/json");
            let id = headers["webhook-id"].to_str().unwrap().to_owned();
            let value: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(value["id"], id.as_str());
            let mut got = got.lock().unwrap();
            if gone {
                return StatusCode::GONE;
            }
            if fail_type.is_some_and(|t| value["type"] == t) && got.failed_once.is_empty() {
                got.failed_once.push(id);
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            got.deliveries.push((id, value));
            StatusCode::NO_CONTENT
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hook",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::Router::new().route("/hook", axum::routing::post(handler)),
        )
        .await
        .unwrap();
    });
    Receiver { url, got, secret }
}

async fn make(app: &App, by: &str, url: &str, events: Value) -> Value {
    let (status, made) = call(
        app,
        by,
        "POST",
        "/webhooks/",
        Some(json!({"url": url, "events": events, "storeId": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    made
}

#[tokio::test]
async fn roles_stores_and_the_secret_shown_once() {
    let app = app(false).await;
    let manager = key(&app, json!({"name": "m", "role": "manager", "storeId": 1})).await;
    let integration = key(
        &app,
        json!({"name": "i", "role": "integration", "storeId": 1}),
    )
    .await;
    let other = key(
        &app,
        json!({"name": "o", "role": "integration", "storeId": 2}),
    )
    .await;
    let operator = key(
        &app,
        json!({"name": "d", "role": "operator", "storeId": 1, "operatorId": 24}),
    )
    .await;

    // An integration makes one for its store (implied); the secret comes this once.
    let (status, made) = call(&app, &integration, "POST", "/webhooks/",
        Some(json!({"url": "https://93.184.216.34/hook", "events": ["chat.sent", "chat.sent", "client.created"]}))).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["storeId"], 1);
    assert_eq!(made["events"], json!(["chat.sent", "client.created"]));
    assert_eq!(made["enabled"], true);
    assert!(made["secret"].as_str().unwrap().starts_with("whsec_"));
    let id = made["webhookId"].as_i64().unwrap();
    let path = format!("/webhook/{id}/");

    let (status, seen) = call(&app, &manager, "GET", &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(seen.get("secret").is_none(), "{seen}");
    let (_, list) = call(&app, &manager, "GET", "/webhooks/", None).await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    assert!(list["webhooks"][0].get("secret").is_none());

    // Another store's principal: 404 as if unknown, and an empty list.
    for method in ["GET", "PATCH", "DELETE"] {
        let body = (method == "PATCH").then(|| json!({"enabled": false}));
        let (status, body) = call(&app, &other, method, &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert_error(&body, "webhook_not_found");
    }
    let (_, list) = call(&app, &other, "GET", "/webhooks/", None).await;
    assert_eq!(list["webhooks"], json!([]));
    let (status, _) = call(
        &app,
        &other,
        "GET",
        &format!("/webhook/{id}/deliveries/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // An operator of the store: 403 naming the permission.
    let (status, body) = call(&app, &operator, "GET", &path, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["permission"], "webhook.manage");
    let (status, _) = call(&app, &operator, "GET", "/webhooks/", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Deployment-wide: admins only.
    let (status, body) = call(
        &app,
        TOKEN,
        "POST",
        "/webhooks/",
        Some(json!({"url": "https://93.184.216.34/", "events": ["*"]})),
    )
    .await;
    assert_eq!(
        (status, &body["storeId"]),
        (StatusCode::CREATED, &Value::Null),
        "{body}"
    );
    let (status, _) = call(
        &app,
        &manager,
        "GET",
        &format!("/webhook/{}/", body["webhookId"]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, all) = call(&app, TOKEN, "GET", "/webhooks/", None).await;
    assert_eq!(all["webhooks"].as_array().unwrap().len(), 2);

    // Changed and deleted by the manager.
    let (status, changed) = call(
        &app,
        &manager,
        "PATCH",
        &path,
        Some(json!({"enabled": false, "events": ["*"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (changed["enabled"].clone(), changed["events"].clone()),
        (json!(false), json!(["*"]))
    );
    let (status, _) = call(&app, &manager, "DELETE", &path, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, &manager, "GET", &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_urls_and_events_are_422() {
    let app = app(false).await;
    for (url, events, code, field) in [
        (
            "https://93.184.216.34/",
            json!(["chat.sent", "chat.deleted"]),
            "invalid_events",
            "events",
        ),
        (
            "https://93.184.216.34/",
            json!([]),
            "invalid_events",
            "events",
        ),
        ("ftp://93.184.216.34/", json!(["*"]), "invalid_url", "url"),
        ("not a url", json!(["*"]), "invalid_url", "url"),
        (
            "http://127.0.0.1:9/",
            json!(["*"]),
            "url_not_allowed",
            "url",
        ),
        (
            "http://[::ffff:10.0.0.1]/",
            json!(["*"]),
            "url_not_allowed",
            "url",
        ),
        (
            "http://169.254.169.254/latest",
            json!(["*"]),
            "url_not_allowed",
            "url",
        ),
        (
            "http://localhost:9/",
            json!(["*"]),
            "url_not_allowed",
            "url",
        ),
    ] {
        let (status, body) = call(
            &app,
            TOKEN,
            "POST",
            "/webhooks/",
            Some(json!({"url": url, "events": events, "storeId": 1})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_error(&body, code);
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (_, body) = call(
        &app,
        TOKEN,
        "POST",
        "/webhooks/",
        Some(
            json!({"url": "https://93.184.216.34/", "events": ["chat.sent", "nope"], "storeId": 1}),
        ),
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("events[1]"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        TOKEN,
        "POST",
        "/webhooks/",
        Some(json!({"url": "https://93.184.216.34/", "events": ["*"], "storeId": 999})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn a_test_send_is_signed_answered_and_logged() {
    let app = app(true).await;
    let receiver = receiver(None, false).await;
    let made = make(&app, TOKEN, &receiver.url, json!(["*"])).await;
    *receiver.secret.lock().unwrap() = made["secret"].as_str().unwrap().to_owned();
    let id = made["webhookId"].as_i64().unwrap();
    let (status, attempt) = call(&app, TOKEN, "POST", &format!("/webhook/{id}/test/"), None).await;
    assert_eq!(status, StatusCode::OK, "{attempt}");
    assert_eq!(attempt["status"], "delivered", "{attempt}");
    assert_eq!(attempt["responseStatus"], 204);
    assert_eq!(attempt["type"], "webhook.test");
    let got = receiver.got.lock().unwrap().deliveries.clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["type"], "webhook.test");
    let (_, log) = call(
        &app,
        TOKEN,
        "GET",
        &format!("/webhook/{id}/deliveries/?limit=5"),
        None,
    )
    .await;
    assert_eq!(log["deliveries"][0]["status"], "delivered", "{log}");
    let (status, _) = call(
        &app,
        TOKEN,
        "GET",
        &format!("/webhook/{id}/deliveries/?limit=0"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A wrong secret at the receiver: the attempt fails with the receiver's 401.
    *receiver.secret.lock().unwrap() = "whsec_AAAA".into();
    let (_, attempt) = call(&app, TOKEN, "POST", &format!("/webhook/{id}/test/"), None).await;
    assert_eq!(
        (attempt["status"].clone(), attempt["responseStatus"].clone()),
        (json!("failed"), json!(401))
    );
}

/// The deliverer over the app's storage. The in-memory storage stamps events with the
/// system's time, so the manual clock is set to it first (deliveries are due from then).
fn deliverer(app: &App, allow_private: bool) -> Deliverer {
    if app.clock.now() < chrono::Utc::now() {
        app.clock
            .set(chrono::Utc::now() + chrono::Duration::seconds(1));
    }
    Deliverer::new(
        app.storage.clone(),
        app.clock.clone(),
        WebhookClient::new(AddressPolicy { allow_private }),
        DelivererConfig {
            poll: Duration::from_millis(50),
            ..DelivererConfig::default()
        },
        DeliveryMetrics::default(),
    )
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_conversation_waits_while_its_earlier_event_is_retried() {
    let app = app(true).await;
    // chat.created fails once; the conversation's chat after it must wait for it.
    let receiver = receiver(Some("chat.created"), false).await;
    let made = make(
        &app,
        TOKEN,
        &receiver.url,
        json!(["chat.created", "client.created"]),
    )
    .await;
    *receiver.secret.lock().unwrap() = made["secret"].as_str().unwrap().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(deliverer(&app, true).run(async move { drop(stopped.await) }));
    for payload in ["first", "second"] {
        let (status, body) = call(
            &app,
            TOKEN,
            "POST",
            "/chat/",
            Some(serde_json::from_str(&chat(1, 24, payload)).unwrap()),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, _) = call(
        &app,
        TOKEN,
        "POST",
        "/clients/",
        Some(json!({"storeId": 1, "name": "Zed", "email": "zed@example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // The client's event is not held back by the conversation's retry.
    eventually("client.created", || {
        receiver
            .got
            .lock()
            .unwrap()
            .deliveries
            .iter()
            .any(|(_, v)| v["type"] == "client.created")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !receiver
            .got
            .lock()
            .unwrap()
            .deliveries
            .iter()
            .any(|(_, v)| v["type"] == "chat.created"),
        "the second chat must wait for the first's retry"
    );
    // 5 s later (by the clock) the first is retried, then the second goes.
    app.clock.advance(chrono::Duration::seconds(6));
    eventually("both chats", || {
        receiver
            .got
            .lock()
            .unwrap()
            .deliveries
            .iter()
            .filter(|(_, v)| v["type"] == "chat.created")
            .count()
            == 2
    })
    .await;
    let got = receiver.got.lock().unwrap().deliveries.clone();
    let chats: Vec<&str> = got
        .iter()
        .filter(|(_, v)| v["type"] == "chat.created")
        .map(|(_, v)| v["data"]["payload"].as_str().unwrap())
        .collect();
    assert_eq!(chats, ["first", "second"]);
    let id = made["webhookId"].as_i64().unwrap();
    let (_, log) = call(
        &app,
        TOKEN,
        "GET",
        &format!("/webhook/{id}/deliveries/"),
        None,
    )
    .await;
    let statuses: Vec<(i64, String)> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "chat.created")
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&(1, "retrying".into())) && statuses.contains(&(2, "delivered".into())),
        "{log}"
    );
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_410_disables_and_a_loopback_host_fails_without_allow_private() {
    let app = app(true).await;
    let gone = receiver(None, true).await;
    let made = make(&app, TOKEN, &gone.url, json!(["client.created"])).await;
    *gone.secret.lock().unwrap() = made["secret"].as_str().unwrap().to_owned();
    let gone_id = made["webhookId"].as_i64().unwrap();
    // Made while private addresses were allowed; the deliverer refuses them (DNS → loopback).
    let open = receiver(None, false).await;
    let local = open.url.replace("127.0.0.1", "localhost");
    let made = make(&app, TOKEN, &local, json!(["client.created"])).await;
    *open.secret.lock().unwrap() = made["secret"].as_str().unwrap().to_owned();
    let local_id = made["webhookId"].as_i64().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(deliverer(&app, false).run(async move { drop(stopped.await) }));
    let (status, _) = call(
        &app,
        TOKEN,
        "POST",
        "/clients/",
        Some(json!({"storeId": 1, "name": "Zed", "email": "zed@example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // 127.0.0.1 literal: refused without connecting; localhost: refused after DNS.
    for id in [gone_id, local_id] {
        let mut log = Value::Null;
        for _ in 0..200 {
            log = call(
                &app,
                TOKEN,
                "GET",
                &format!("/webhook/{id}/deliveries/"),
                None,
            )
            .await
            .1;
            if !log["deliveries"].as_array().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let attempt = &log["deliveries"][0];
        assert_eq!(attempt["status"], "retrying", "{log}");
        assert!(
            attempt["error"].as_str().unwrap().contains("public"),
            "{log}"
        );
    }
    assert!(open.got.lock().unwrap().deliveries.is_empty());
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    // With private addresses allowed, the 410 turns its webhook off, reason shown.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(deliverer(&app, true).run(async move { drop(stopped.await) }));
    app.clock.advance(chrono::Duration::seconds(6));
    let mut hook = Value::Null;
    for _ in 0..200 {
        hook = call(&app, TOKEN, "GET", &format!("/webhook/{gone_id}/"), None)
            .await
            .1;
        if hook["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(hook["enabled"], false, "{hook}");
    assert!(
        hook["disabledReason"].as_str().unwrap().contains("410"),
        "{hook}"
    );
    for _ in 0..100 {
        if !open.got.lock().unwrap().deliveries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = call(
        &app,
        TOKEN,
        "GET",
        &format!("/webhook/{local_id}/deliveries/"),
        None,
    )
    .await
    .1;
    assert_eq!(open.got.lock().unwrap().deliveries.len(), 1, "{log}");
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}
