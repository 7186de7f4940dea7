//! What the router tests share: an app over the in-memory storage with the demo data, at a
//! fixed instant, and helpers to send requests.
// Each test file uses a different part of this module.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use cartloop_core::testing::{ManualClock, MemoryStorage};
use cartloop_http::{router, AppState, Metrics};
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

/// 2026-11-25 15:00Z: 09:00 in Chicago (client 27), 00:00 in Tokyo (client 8).
pub fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap()
}

/// A router with its storage, clock and metrics at hand.
#[derive(Clone)]
pub struct App {
    pub router: Router,
    pub storage: Arc<MemoryStorage>,
    pub clock: Arc<ManualClock>,
    pub metrics: Metrics,
}

/// An app with the demo data, changed by `configure` before the router is built.
pub async fn app_with(configure: impl FnOnce(&mut AppState)) -> App {
    let app = empty_app_with(configure);
    cartloop_core::ports::Admin::import(app.storage.as_ref(), &cartloop_core::demo::demo_data())
        .await
        .unwrap();
    app
}

/// An app with the demo data.
pub async fn app() -> App {
    app_with(|_| {}).await
}

/// An app without data.
pub fn empty_app_with(configure: impl FnOnce(&mut AppState)) -> App {
    let storage = Arc::new(MemoryStorage::new());
    let clock = Arc::new(ManualClock::new(now()));
    let mut state = AppState::new(storage.clone());
    state.clock = clock.clone();
    configure(&mut state);
    let metrics = state.metrics.clone();
    App {
        router: router(state),
        storage,
        clock,
        metrics,
    }
}

impl App {
    /// Sends `method uri` with a JSON body (or none) and reads the JSON answer.
    pub async fn send(&self, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.send_with(Request::builder().method(method).uri(uri), body)
            .await
    }

    /// Sends a request built by `builder`, with `content-type: application/json`.
    pub async fn send_with(
        &self,
        builder: axum::http::request::Builder,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let request = builder
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        json_of(self.call(request).await).await
    }

    /// Sends a request as it is.
    pub async fn call(&self, request: Request<Body>) -> Response<Body> {
        self.router.clone().oneshot(request).await.unwrap()
    }
}

/// The status and JSON body of a response; panics when the body is not JSON.
pub async fn json_of(response: Response<Body>) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{status}: not JSON: {:?}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

/// The status, content type and text body of a response.
pub async fn text_of(response: Response<Body>) -> (StatusCode, String, String) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

/// A `POST /chat/` body.
pub fn chat(conversation: i64, user: i64, payload: &str) -> String {
    json!({"conversationId": conversation, "chat": {"payload": payload, "userId": user}})
        .to_string()
}

/// Asserts an error answer's code, and that it has a message.
pub fn assert_error(value: &Value, code: &str) {
    assert_eq!(value["error"]["code"], code, "{value}");
    assert!(
        value["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{value}"
    );
}
