//! Embedding cartloop's API in an axum app of your own: the app keeps its own routes and
//! its own sign-in, and mounts cartloop under `/api`; the dispatcher runs beside it.
//!
//! The host's auth layer decides who the request is and tells cartloop as a
//! [`Principal`](cartloop_core::access::Principal) in the request's extensions: cartloop
//! then applies its access rules to that principal (stores apart, operators writing as
//! themselves) as it does for its own keys and sessions.
//!
//! ```sh
//! cargo run --example embed_router
//! ```
//!
//! It starts on a free port, makes a few requests to itself to show the wiring, and exits.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use cartloop::server::Server;
use cartloop_core::access::{OperatorRole, Principal};
use cartloop_core::ids::{StoreId, UserId};

/// The host app's own auth: `X-Api-Key: demo-key` is its back office (a cartloop admin);
/// `X-User: dan` stands for its own session of Dan Brooks, an operator of store 1 (user
/// 24 in the demo data). Anything else is refused before cartloop sees it.
async fn host_auth(mut request: Request, next: Next) -> Result<Response, StatusCode> {
    let headers = request.headers();
    let principal = if headers.get("x-api-key").is_some_and(|k| k == "demo-key") {
        Principal::deployment_token()
    } else if headers.get("x-user").is_some_and(|u| u == "dan") {
        Principal::session(OperatorRole::Operator, StoreId(1), UserId(24))
    } else {
        return Err(StatusCode::UNAUTHORIZED);
    };
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let storage = cartloop::sqlx::connect(&url).await?;
    let mailer = cartloop::server::outbox_mailer(dir.path().join("outbox"))?;
    let cartloop = Server::builder(storage, mailer).build().await?;

    // The host app: its own page, cartloop's API under /api, one auth layer over both.
    let app = Router::new()
        .route("/", get(|| async { "the host app" }))
        .nest("/api", cartloop.router())
        .layer(middleware::from_fn(host_auth));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let (stop_dispatch, dispatch_stopped) = tokio::sync::oneshot::channel::<()>();
    let dispatching = tokio::spawn(async move {
        cartloop
            .run_dispatcher(async {
                let _ = dispatch_stopped.await;
            })
            .await
    });

    let client = reqwest::Client::new();
    let anonymous = client.get(format!("{base}/api/healthz")).send().await?;
    println!("GET /api/healthz without the key: {}", anonymous.status());
    assert_eq!(anonymous.status(), 401);
    for path in [
        "/",
        "/api/healthz",
        "/api/import_data/",
        "/api/conversation/1/",
    ] {
        let response = client
            .get(format!("{base}{path}"))
            .header("x-api-key", "demo-key")
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        println!(
            "GET {path}: {status} {}",
            body.chars().take(100).collect::<String>()
        );
        assert!(status.is_success(), "{path}: {status}");
    }

    // Dan, signed in to the host app: his store's conversation, not another store's; and
    // he writes as himself without saying who he is.
    for (path, expected) in [("/api/conversation/1/", 200), ("/api/conversation/5/", 404)] {
        let response = client
            .get(format!("{base}{path}"))
            .header("x-user", "dan")
            .send()
            .await?;
        println!("GET {path} as Dan: {}", response.status());
        assert_eq!(response.status(), expected, "{path}");
    }
    let posted = client
        .post(format!("{base}/api/chat/"))
        .header("x-user", "dan")
        .json(&serde_json::json!({"conversationId": 1, "chat": {"payload": "Hi << username >>"}}))
        .send()
        .await?;
    println!("POST /api/chat/ as Dan: {}", posted.status());
    assert_eq!(posted.status(), 201);

    let _ = stop.send(());
    let _ = stop_dispatch.send(());
    serving.await??;
    dispatching.await??;
    Ok(())
}
