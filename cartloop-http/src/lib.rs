//! # cartloop-http
//!
//! cartloop's HTTP API — conversations and chats, the operator API, email both ways — as
//! an axum router over the core's ports. Serving
//! is the caller's business: build the router with [`router`] and hand it to `axum::serve`,
//! or drive it in tests with `tower::ServiceExt::oneshot`.
//!
//! # Layout
//! - `routes`: the one list of routes, each added by its OpenAPI annotation; from it come
//!   [`router`] (every path with and without its trailing slash), [`route_table`] and
//!   [`openapi_document`]. [`AppState`]: what the handlers share.
//! - [`error`]: [`ApiError`], the one error type; every error is
//!   `{"error":{"code","message",...}}`.
//! - [`extract`]: extractors whose rejections are `ApiError`s.
//! - [`metrics`]: [`Metrics`], the request figures and `GET /metrics`, served from a
//!   `prometheus-client` registry the runtime may hand in with figures of its own.
//! - [`auth`]: who makes each request ([`auth::Caller`]), from a key, the deployment token,
//!   a session cookie, or a `Principal` an embedder resolved; [`audit`]: the audit log.
//! - [`credentials`]: API keys, session tokens, password hashing (Argon2id) and webhook
//!   secrets: making them, and checking what a request presents.
//! - `openapi`: what the OpenAPI 3.1 document says of the whole API (description, tags,
//!   errors, security); `console`: the operator console's page, script and stylesheet;
//!   `pages`: the security headers of every page (console and unsubscribe).
//! - [`hub`]: [`hub::Hub`], the server's one reader of the event log, fanning events out to
//!   the live streams; `stream`: `GET /events/`, the live stream as Server-Sent Events.
//! - `middleware`: what runs around every request (below).
//! - `chats`, `directory`, `email`, `ops`, `accounts` (signing in, operators' accounts, API
//!   keys): the handlers; `api`: the JSON shapes.
//! - `webhooks`: the webhook routes (SPEC §10); [`webhook_client`]: sending one attempt,
//!   signed, through a resolver that refuses private addresses; [`deliverer`]: the loop
//!   that claims queued deliveries, sends them and records the results.
//!
//! Around every request, matched or not: metrics and one log line, a panic guard (JSON
//! 500), the caller's credentials (checked before routing: an unknown path or method is
//! 401 too) with the audit log, and the request timeout (408 when the body is what did not
//! arrive, 503 otherwise). Bodies are limited to [`BODY_LIMIT`] (413), raw emails to
//! [`INBOUND_BODY_LIMIT`].
//!
//! # Example
//! ```
//! use cartloop_core::testing::{ManualClock, MemoryStorage};
//! use cartloop_http::{router, AppState};
//! use chrono::Utc;
//! use std::sync::Arc;
//!
//! let state = AppState::new(Arc::new(MemoryStorage::new()), Arc::new(ManualClock::new(Utc::now())));
//! let app: axum::Router = router(state);
//! # let _ = app;
//! ```

mod accounts;
mod api;
pub mod audit;
pub mod auth;
mod chats;
mod console;
pub mod credentials;
pub mod deliverer;
mod directory;
mod email;
pub mod error;
pub mod extract;
pub mod hub;
pub mod metrics;
mod middleware;
mod openapi;
mod ops;
mod pages;
mod routes;
mod stream;
pub mod webhook_client;
mod webhooks;

pub use error::ApiError;
pub use metrics::Metrics;
pub use routes::RouteInfo;

use axum::{middleware as mw, Router};
use cartloop_core::inbound::InboundEmail;
use cartloop_core::ports::{Clock, Links, Storage};
use cartloop_core::rules::Rules;
use std::sync::Arc;
use std::time::Duration;

/// Largest accepted request body, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Largest raw email `POST /inbound/email/` accepts, in bytes.
pub const INBOUND_BODY_LIMIT: usize = 1024 * 1024;
/// Messages per page of `GET /conversation/{id}/` when `?limit` is not given.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest `?limit` of `GET /conversation/{id}/`; larger values are clamped.
pub const MAX_PAGE: u32 = 1000;
/// Longest an `Idempotency-Key` may be.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Reads a raw email (`message/rfc822`) into the core's [`InboundEmail`]; the error says
/// why it could not. The runtime sets `cartloop_mail::inbound::parse_reply`.
pub type InboundParser = Arc<dyn Fn(&[u8]) -> Result<InboundEmail, String> + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Stores, operators, clients, conversations and messages.
    pub storage: Arc<dyn Storage>,
    /// The current instant.
    pub clock: Arc<dyn Clock>,
    /// Validation and the default delivery window.
    pub rules: Arc<Rules>,
    /// When set, every route but `/healthz` and `/unsubscribe/{token}` requires
    /// `Authorization: Bearer <token>`.
    pub api_token: Option<Arc<str>>,
    /// Longest a request may take: a body still arriving then is answered 408, anything
    /// else 503.
    pub request_timeout: Duration,
    /// Signs and checks reply addresses and unsubscribe links; `None`: every
    /// unsubscribe token is refused and replies are matched by their references only.
    pub links: Option<Arc<dyn Links>>,
    /// Parses the raw emails of `POST /inbound/email/`; `None`: that route answers 501.
    pub inbound_parser: Option<InboundParser>,
    /// The figures `GET /metrics` exports.
    pub metrics: Metrics,
    /// The server's address as browsers reach it (`PUBLIC_URL`): the origin a change made
    /// with the session cookie must come from (`None`: the request's own `Host`), and
    /// whether the cookie is `Secure`.
    pub public_url: Option<Arc<str>>,
    /// Where audit entries go.
    pub audit: audit::AuditSink,
    /// Keys and sessions recently found (off unless the storage is this process's alone).
    pub credentials: Arc<auth::CredentialCache>,
    /// Password hashes checked or made at once at most (each takes ~19 MiB and tens of
    /// milliseconds of one core): sign-in storms queue here, not on the async workers.
    pub hashing: Arc<tokio::sync::Semaphore>,
    /// Sends webhook test events, and resolves a new webhook's host to check its
    /// addresses (private ones refused unless its policy allows them).
    pub webhook_client: webhook_client::WebhookClient,
    /// The live stream's one reader of the event log (`GET /events/`); a server shares
    /// one among its routers and closes it when it stops.
    pub hub: hub::Hub,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("rules", &self.rules)
            .field("api_token", &self.api_token.as_ref().map(|_| "<set>"))
            .field("request_timeout", &self.request_timeout)
            .field("links", &self.links.is_some())
            .field("inbound_parser", &self.inbound_parser.is_some())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// A state over `storage` and `clock` (the runtime's is `cartloop::server::SystemClock`;
    /// tests use the core's `testing::ManualClock`), with default rules, no token, a 30 s
    /// request timeout, no links, no inbound parser and its own metrics.
    pub fn new(storage: Arc<dyn Storage>, clock: Arc<dyn Clock>) -> Self {
        Self {
            storage: storage.clone(),
            clock: clock.clone(),
            rules: Arc::new(Rules::default()),
            api_token: None,
            request_timeout: Duration::from_secs(30),
            links: None,
            inbound_parser: None,
            metrics: Metrics::new(),
            public_url: None,
            audit: audit::AuditSink::new(storage.clone(), clock.clone(), audit::DEFAULT_RETENTION),
            hashing: Arc::new(tokio::sync::Semaphore::new(default_hashing_permits())),
            credentials: Arc::new(auth::CredentialCache::default()),
            webhook_client: webhook_client::WebhookClient::default(),
            hub: hub::Hub::new(storage, hub::HubSettings::default()),
        }
    }
}

/// Half the cores (at least one): password hashing never takes all of them.
pub(crate) fn default_hashing_permits() -> usize {
    credentials::hashing_parallelism()
}

/// Every route [`router`] serves.
///
/// ```
/// let routes = cartloop_http::route_table();
/// assert!(routes.iter().any(|r| r.path == "/chat/" && r.method == "POST"));
/// ```
pub fn route_table() -> Vec<RouteInfo> {
    routes::routes().table
}

/// The OpenAPI 3.1 document of every route [`router`] serves (what `GET /openapi.json`
/// answers).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::document_with(routes::paths())
}

/// `GET /metrics` alone, without the API token: for a separate metrics address that only
/// the scraper can reach (the bundled server's `METRICS_BIND`). Every other path is a JSON
/// 404. Requests to it are not counted in the figures it exports.
///
/// ```
/// use cartloop_core::testing::{ManualClock, MemoryStorage};
/// use std::sync::Arc;
/// let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
/// let state = cartloop_http::AppState::new(Arc::new(MemoryStorage::new()), clock);
/// let _metrics: axum::Router = cartloop_http::metrics_router(state);
/// ```
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(ops::metrics))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            middleware::panic_response,
        ))
        .with_state(state)
}

/// The API's router: every route of [`route_table`], and the layers the crate docs
/// describe.
pub fn router(state: AppState) -> Router {
    routes::routes()
        .router
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(mw::from_fn_with_state(state.clone(), middleware::deadline))
        .layer(mw::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            middleware::panic_response,
        ))
        .layer(mw::from_fn_with_state(state.clone(), middleware::track))
        .with_state(state)
}
