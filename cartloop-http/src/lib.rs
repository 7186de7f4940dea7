//! # cartloop-http
//!
//! cartloop's HTTP API (SPEC §5, §7, §8) as an axum router over the core's ports. Serving
//! is the caller's business: build the router with [`router`] and hand it to `axum::serve`,
//! or drive it in tests with `tower::ServiceExt::oneshot`.
//!
//! # Layout
//! - [`router`], [`AppState`] and [`route_table`]: the routes, each with and without its
//!   trailing slash.
//! - [`error`]: [`ApiError`], the one error type; every error is
//!   `{"error":{"code","message",...}}`.
//! - [`extract`]: extractors whose rejections are `ApiError`s.
//! - [`metrics`]: [`Metrics`], the figures `GET /metrics` exports; the runtime records the
//!   dispatch figures into the same value.
//! - [`credentials`]: API keys, session tokens, password hashing (Argon2id) and webhook
//!   secrets: making them, and checking what a request presents.
//! - [`tokens`]: signed reply addresses and unsubscribe links ([`tokens::SignedLinks`]).
//! - [`openapi`]: the OpenAPI 3.1 document, generated from the handlers.
//! - [`SystemClock`]: the core's `Clock` on the system time and Tokio's timer.
//! - `pages`: the operator console's files and the security headers of every page.
//! - `chats`, `directory`, `email`, `ops`: the handlers; `api`: the JSON shapes.
//!
//! Around every request, matched or not: metrics and one log line, a panic guard (JSON
//! 500), the bearer token when one is configured (checked before routing: an unknown path
//! or method is 401 too), and the request timeout (408 when the body is what did not
//! arrive, 503 otherwise). Bodies are limited to [`BODY_LIMIT`] (413), raw emails to
//! [`INBOUND_BODY_LIMIT`].
//!
//! # Example
//! ```
//! use cartloop_core::testing::MemoryStorage;
//! use cartloop_http::{router, AppState};
//! use std::sync::Arc;
//!
//! let state = AppState::new(Arc::new(MemoryStorage::new()));
//! let metrics = state.metrics.clone(); // the runtime's dispatcher records into this
//! let app: axum::Router = router(state);
//! # let _ = (app, metrics);
//! ```

mod api;
mod chats;
mod clock;
pub mod credentials;
mod directory;
mod email;
pub mod error;
pub mod extract;
pub mod metrics;
mod middleware;
pub mod openapi;
mod ops;
mod pages;
pub mod tokens;

pub use clock::SystemClock;
pub use error::ApiError;
pub use metrics::Metrics;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
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
    /// Signs and checks reply addresses and unsubscribe links (SPEC §8); `None`: every
    /// unsubscribe token is refused and replies are matched by their references only.
    pub links: Option<Arc<dyn Links>>,
    /// Parses the raw emails of `POST /inbound/email/`; `None`: that route answers 501.
    pub inbound_parser: Option<InboundParser>,
    /// The figures `GET /metrics` exports.
    pub metrics: Metrics,
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
    /// A state with the system clock, default rules, no token, a 30 s request timeout, no
    /// links, no inbound parser and its own metrics.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            clock: Arc::new(SystemClock),
            rules: Arc::new(Rules::default()),
            api_token: None,
            request_timeout: Duration::from_secs(30),
            links: None,
            inbound_parser: None,
            metrics: Metrics::new(),
        }
    }
}

/// One route the router serves: a path template (its trailing-slash form; the router
/// serves it without the slash too) and a method. `HEAD` of a `GET` route is answered as
/// axum does, and not listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteInfo {
    /// E.g. `/conversation/{id}/`.
    pub path: &'static str,
    /// E.g. `GET`.
    pub method: Method,
}

/// Builds the router and, route by route, the table of what it serves.
struct Routes {
    router: Router<AppState>,
    table: Vec<RouteInfo>,
}

impl Routes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Serves `method path` (with and without its trailing slash) with `handler`.
    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        for variant in path_variants(path) {
            self.router = self.router.route(&variant, on(filter, handler.clone()));
        }
        self.table.push(RouteInfo { path, method });
        self
    }
}

/// `path` and the same path with its trailing slash toggled.
fn path_variants(path: &str) -> [String; 2] {
    let other = match path.strip_suffix('/') {
        Some(bare) => bare.to_owned(),
        None => format!("{path}/"),
    };
    [path.to_owned(), other]
}

fn routes() -> Routes {
    use Method as M;
    let mut routes = Routes::new()
        // §5
        .add(M::GET, "/healthz", ops::healthz)
        .add(M::GET, "/conversation/{id}/", chats::get_conversation)
        .add(M::POST, "/chat/", chats::post_chat_handler)
        .add(M::GET, "/import_data/", ops::import_data)
        .add(M::POST, "/import_data/", ops::import_data_post)
        // §7
        .add(M::POST, "/stores/", directory::create_store)
        .add(M::GET, "/store/{id}/", directory::get_store)
        .add(M::PATCH, "/store/{id}/", directory::patch_store)
        .add(M::POST, "/operators/", directory::create_operator)
        .add(M::POST, "/clients/", directory::create_client)
        .add(M::PATCH, "/client/{id}/", directory::patch_client)
        .add(M::POST, "/conversations/", directory::create_conversation)
        .add(M::GET, "/conversations/", directory::list_conversations)
        .add(
            M::PATCH,
            "/conversation/{id}/",
            directory::patch_conversation,
        )
        .add(M::GET, "/chat/{id}/", chats::get_chat)
        .add(M::DELETE, "/chat/{id}/", chats::cancel)
        .add(M::POST, "/chat/{id}/retry/", chats::retry)
        .add(M::POST, "/chat/preview/", chats::preview)
        .add(M::GET, "/openapi.json", ops::openapi_json)
        .add(M::GET, "/metrics", ops::metrics)
        // §8
        .add(M::GET, "/unsubscribe/{token}", email::unsubscribe_page)
        .add(M::POST, "/unsubscribe/{token}", email::unsubscribe)
        .add(M::POST, "/inbound/email/", email::inbound_email);
    // The operator console: its page, script and stylesheet, no token needed to load them
    // (its API calls need one).
    for path in pages::CONSOLE_PAGE_PATHS {
        routes.router = routes
            .router
            .route(path, axum::routing::get(pages::console_page));
    }
    routes.router = routes
        .router
        .route(
            pages::CONSOLE_JS_PATH,
            axum::routing::get(pages::console_js),
        )
        .route(
            pages::CONSOLE_CSS_PATH,
            axum::routing::get(pages::console_css),
        );
    for variant in path_variants("/import_data/") {
        routes.router = routes
            .router
            .route(&variant, on(MethodFilter::HEAD, ops::refuse_head));
    }
    routes
}

/// Every route [`router`] serves.
///
/// ```
/// let routes = cartloop_http::route_table();
/// assert!(routes.iter().any(|r| r.path == "/chat/" && r.method == "POST"));
/// ```
pub fn route_table() -> Vec<RouteInfo> {
    routes().table
}

/// `GET /metrics` alone, without the API token: for a separate metrics address that only
/// the scraper can reach (the bundled server's `METRICS_BIND`). Every other path is a JSON
/// 404. Requests to it are not counted in the figures it exports.
///
/// ```
/// let state = cartloop_http::AppState::new(std::sync::Arc::new(
///     cartloop_core::testing::MemoryStorage::new(),
/// ));
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
    routes()
        .router
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(mw::from_fn_with_state(state.clone(), middleware::deadline))
        .layer(mw::from_fn_with_state(state.clone(), middleware::authorize))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            middleware::panic_response,
        ))
        .layer(mw::from_fn_with_state(state.clone(), middleware::track))
        .with_state(state)
}
