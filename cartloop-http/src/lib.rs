//! # cartloop-http
//!
//! cartloop's REST API (SPEC §5) as an axum router over the core's ports. Serving is the
//! caller's business: build the router with [`router`] and hand it to `axum::serve`, or
//! drive it in tests with `tower::ServiceExt::oneshot`.
//!
//! # Layout
//! - [`router`] and [`AppState`]: the routes, with and without a trailing slash:
//!   `GET /conversation/{id}/`, `POST /chat/`, `GET|POST /import_data/`, `GET /healthz`.
//! - [`error`]: [`ApiError`], the one error type; every error is
//!   `{"error":{"code","message"}}`.
//! - [`extract`]: extractors whose rejections are `ApiError`s.
//! - `api`: the JSON shapes.
//!
//! Around the routes: a 64 KiB body limit (413), a request timeout (503), bearer-token auth
//! on every route but `/healthz` when a token is configured (401), one log line per
//! request, and a panic guard that answers a JSON 500.
//!
//! # Example
//! ```
//! use cartloop_core::testing::MemoryStorage;
//! use cartloop_http::{router, AppState};
//! use std::sync::Arc;
//!
//! let app: axum::Router = router(AppState::new(Arc::new(MemoryStorage::new())));
//! ```

mod api;
pub mod error;
pub mod extract;

pub use error::ApiError;

use api::{ChatResponse, ConversationResponse, PostChatObject};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cartloop_core::chat::{conversation_view, post_chat, ChatRules, PostChat};
use cartloop_core::demo::demo_data;
use cartloop_core::ids::{ConversationId, MessageId, UserId};
use cartloop_core::ports::{Clock, Page, Storage, SystemClock};
use extract::{parse_id, JsonBody, PathId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Largest accepted request body, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Messages per page when `?limit` is not given.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest `?limit`; larger values are clamped.
pub const MAX_PAGE: u32 = 1000;
/// Longest an `Idempotency-Key` may be.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Conversations and messages.
    pub storage: Arc<dyn Storage>,
    /// The current instant.
    pub clock: Arc<dyn Clock>,
    /// Validation policy and active hours.
    pub rules: Arc<ChatRules>,
    /// When set, every route but `/healthz` requires `Authorization: Bearer <token>`.
    pub api_token: Option<Arc<str>>,
    /// Notified when a POST stores an operator's message, so the dispatcher sends it at
    /// once if it is due, and otherwise wakes when it is due rather than at its next poll.
    pub dispatch_wake: Option<Arc<Notify>>,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
}

impl AppState {
    /// A state with the system clock, default rules, no token and a 30 s request timeout.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            clock: Arc::new(SystemClock),
            rules: Arc::new(ChatRules::default()),
            api_token: None,
            dispatch_wake: None,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The API's router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/conversation/{id}", get(get_conversation))
        .route("/conversation/{id}/", get(get_conversation))
        .route("/chat", axum::routing::post(post_chat_handler))
        .route("/chat/", axum::routing::post(post_chat_handler))
        .route("/import_data", import_routes())
        .route("/import_data/", import_routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/healthz/", get(healthz))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(reject_declared_oversize))
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// `GET` and `POST` load the demo data. `HEAD` would too (axum answers it with the `GET`
/// handler), and a `HEAD` must not change anything: it is refused.
fn import_routes() -> axum::routing::MethodRouter<AppState> {
    get(import_data).post(import_data).head(|| async {
        let mut response = ApiError::MethodNotAllowed.into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET,POST"));
        response
    })
}

/// Answers 413 at once when the declared `Content-Length` is over the limit, before the body
/// is read (and before a client waiting on `Expect: 100-continue` is told to send it).
async fn reject_declared_oversize(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
        return ApiError::PayloadTooLarge(BODY_LIMIT).into_response();
    }
    next.run(request).await
}

async fn healthz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.storage.ping().await?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

async fn get_conversation(
    State(state): State<AppState>,
    PathId(id): PathId,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ConversationResponse>, ApiError> {
    let page = page(&query)?;
    let view = conversation_view(state.storage.as_ref(), ConversationId(id), page)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            code: "conversation_not_found",
            message: format!("conversation {id} not found"),
        })?;
    Ok(Json(ConversationResponse::from(&view)))
}

fn page(query: &HashMap<String, String>) -> Result<Page, ApiError> {
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| raw.parse::<u64>().ok())
            .flatten()
            .filter(|n| *n > 0)
            .map(|n| n.min(u64::from(MAX_PAGE)) as u32)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "invalid limit {}: expected an integer from 1 to {MAX_PAGE}",
                        extract::quoted(raw)
                    ),
                )
            })?,
    };
    let before = match query.get("before") {
        None => None,
        Some(raw) => Some(MessageId(parse_id(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "invalid before {}: expected a chat id (a positive integer)",
                    extract::quoted(raw)
                ),
            )
        })?)),
    };
    Ok(Page { limit, before })
}

async fn post_chat_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(PostChatObject(body)): JsonBody<PostChatObject>,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    let request = PostChat {
        conversation_id: ConversationId(body.conversation_id),
        user_id: UserId(body.chat.user_id),
        payload: body.chat.payload,
        idempotency_key,
    };
    let posted = post_chat(
        state.storage.as_ref(),
        state.clock.as_ref(),
        &state.rules,
        request,
    )
    .await?;
    let message = &posted.message;
    if posted.created {
        // A new operator's message changes when the next email is due: the dispatcher
        // sends it now if it is due, else re-reads how long to sleep.
        if message.send_at.is_some() {
            if let Some(wake) = &state.dispatch_wake {
                wake.notify_one();
            }
        }
        tracing::info!(chat = %message.id, conversation = %message.conversation_id, status = %message.status, send_at = ?message.send_at, "chat stored");
    }
    let answer = ChatResponse::new(message.id, posted.status, posted.send_at);
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    if !posted.created {
        response.headers_mut().insert(
            "idempotent-replayed",
            header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                ),
            )
        })?;
    Ok(Some(key.to_owned()))
}

async fn import_data(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let data = demo_data();
    let summary = state.storage.import(&data).await?;
    Ok(Json(serde_json::json!({
        "status": "ok",
        "inserted": summary.inserted,
        "stores": data.stores.len(),
        "operators": data.operators.len(),
        "clients": data.clients.len(),
        "conversations": data.conversations.len(),
        "chats": data.messages.len(),
    })))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound {
        code: "route_not_found",
        message: format!(
            "no route for {} {}",
            request.method(),
            extract::cut(request.uri().path())
        ),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.api_token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable("request timed out".to_owned()).into_response(),
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal("handler panicked".to_owned()).into_response()
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}
