//! The one list of routes: each handler is added once, by its OpenAPI annotation, which
//! gives its path and method. From that list come the router (every path with and without
//! its trailing slash), [`route_table`](crate::route_table) and the OpenAPI document's
//! paths, so they cannot drift apart.

use crate::{accounts, chats, console, directory, email, openapi, ops, stream, webhooks, AppState};
use axum::body::Bytes;
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};
use utoipa::__dev::SchemaReferences;
use utoipa::openapi::path::{HttpMethod, Paths, PathsBuilder};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

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

/// Builds the router, the table of what it serves and the OpenAPI paths, route by route.
pub(crate) struct Routes {
    pub(crate) router: Router<AppState>,
    pub(crate) table: Vec<RouteInfo>,
    paths: PathsBuilder,
    /// The schemas the documented operations refer to.
    schemas: Vec<(String, RefOr<Schema>)>,
}

/// `path` as a `&'static str`, each distinct path kept once however often the routes are
/// built (every router built makes the table again).
fn interned(path: String) -> &'static str {
    static PATHS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut paths = PATHS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = paths.get(path.as_str()) {
        return known;
    }
    let path: &'static str = Box::leak(path.into_boxed_str());
    paths.insert(path);
    path
}

fn method_of(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

impl Routes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
            paths: PathsBuilder::new(),
            schemas: Vec::new(),
        }
    }

    /// Serves `handler` at the path and method of its OpenAPI annotation `P` (with and
    /// without its trailing slash), and documents it with the schemas it refers to (the
    /// annotation lists them as `utoipa-axum` reads them).
    fn add<P: utoipa::Path + SchemaReferences, H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let path = interned(P::path());
        for method in P::methods() {
            let method = method_of(&method);
            let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
            for variant in path_variants(path) {
                self.router = self.router.route(&variant, on(filter, handler.clone()));
            }
            self.table.push(RouteInfo { path, method });
        }
        self.paths = self.paths.path_from::<P>();
        P::schemas(&mut self.schemas);
        self
    }

    /// Serves `handler` at `path` without documenting it (pages for people, not the API).
    fn page<H, T>(mut self, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, axum::routing::get(handler));
        self
    }
}

/// `path` and the same path with its trailing slash toggled.
pub(crate) fn path_variants(path: &str) -> [String; 2] {
    let other = match path.strip_suffix('/') {
        Some(bare) => bare.to_owned(),
        None => format!("{path}/"),
    };
    [path.to_owned(), other]
}

/// Every route, once.
pub(crate) fn routes() -> Routes {
    let mut routes = Routes::new()
        // Conversations and chats.
        .add::<ops::__path_healthz, _, _>(ops::healthz)
        .add::<chats::__path_get_conversation, _, _>(chats::get_conversation)
        .add::<chats::__path_post_chat_handler, _, _>(chats::post_chat_handler)
        .add::<ops::__path_import_data, _, _>(ops::import_data)
        .add::<ops::__path_import_data_post, _, _>(ops::import_data_post)
        // The operator API.
        .add::<directory::__path_create_store, _, _>(directory::create_store)
        .add::<directory::__path_get_store, _, _>(directory::get_store)
        .add::<directory::__path_patch_store, _, _>(directory::patch_store)
        .add::<directory::__path_get_closures, _, _>(directory::get_closures)
        .add::<directory::__path_put_closures, _, _>(directory::put_closures)
        .add::<accounts::__path_create_operator, _, _>(accounts::create_operator)
        .add::<accounts::__path_list_operators, _, _>(accounts::list_operators)
        .add::<accounts::__path_patch_operator, _, _>(accounts::patch_operator)
        .add::<directory::__path_create_client, _, _>(directory::create_client)
        .add::<directory::__path_patch_client, _, _>(directory::patch_client)
        .add::<directory::__path_create_conversation, _, _>(directory::create_conversation)
        .add::<directory::__path_list_conversations, _, _>(directory::list_conversations)
        .add::<directory::__path_patch_conversation, _, _>(directory::patch_conversation)
        .add::<chats::__path_get_chat, _, _>(chats::get_chat)
        .add::<chats::__path_cancel, _, _>(chats::cancel)
        .add::<chats::__path_retry, _, _>(chats::retry)
        .add::<chats::__path_preview, _, _>(chats::preview)
        .add::<__path_openapi_json, _, _>(openapi_json)
        .add::<ops::__path_metrics, _, _>(ops::metrics)
        // Access: signing in, API keys, the audit log.
        .add::<accounts::__path_login, _, _>(accounts::login)
        .add::<accounts::__path_logout, _, _>(accounts::logout)
        .add::<accounts::__path_me, _, _>(accounts::me)
        .add::<accounts::__path_create_key, _, _>(accounts::create_key)
        .add::<accounts::__path_list_keys, _, _>(accounts::list_keys)
        .add::<accounts::__path_revoke_key, _, _>(accounts::revoke_key)
        .add::<accounts::__path_list_audit, _, _>(accounts::list_audit)
        // Email, both ways.
        .add::<email::__path_unsubscribe_page, _, _>(email::unsubscribe_page)
        .add::<email::__path_unsubscribe, _, _>(email::unsubscribe)
        .add::<email::__path_inbound_email, _, _>(email::inbound_email)
        // Webhooks (SPEC §10).
        .add::<webhooks::__path_create_webhook, _, _>(webhooks::create_webhook)
        .add::<webhooks::__path_list_webhooks, _, _>(webhooks::list_webhooks)
        .add::<webhooks::__path_get_webhook, _, _>(webhooks::get_webhook)
        .add::<webhooks::__path_patch_webhook, _, _>(webhooks::patch_webhook)
        .add::<webhooks::__path_delete_webhook, _, _>(webhooks::delete_webhook)
        .add::<webhooks::__path_list_deliveries, _, _>(webhooks::list_deliveries)
        .add::<webhooks::__path_test_webhook, _, _>(webhooks::test_webhook)
        // The live stream.
        .add::<stream::__path_events, _, _>(stream::events);
    // The operator console: its page, script and stylesheet, no token needed to load them
    // (its API calls need one).
    for path in console::PATHS {
        routes = routes.page(path, console::page);
    }
    routes = routes
        .page(console::JS_PATH, console::script)
        .page(console::CSS_PATH, console::stylesheet);
    for variant in path_variants("/import_data/") {
        routes.router = routes
            .router
            .route(&variant, on(MethodFilter::HEAD, ops::refuse_head));
    }
    routes
}

/// The OpenAPI paths of every route, and the schemas they refer to.
pub(crate) fn paths() -> (Paths, Vec<(String, RefOr<Schema>)>) {
    let routes = routes();
    (routes.paths.build(), routes.schemas)
}

/// The document as JSON, built once (clones share the bytes).
pub(crate) fn document_json() -> Bytes {
    static JSON: OnceLock<Bytes> = OnceLock::new();
    JSON.get_or_init(|| {
        Bytes::from(
            openapi::document_with(paths())
                .to_json()
                .expect("the OpenAPI document serializes"),
        )
    })
    .clone()
}

/// This API's OpenAPI 3.1 document, generated from the code.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses((status = 200, description = "OpenAPI 3.1 document", body = serde_json::Value, content_type = "application/json"))
)]
pub(crate) async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document_json(),
    )
        .into_response()
}
