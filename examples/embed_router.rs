//! Embedding cartloop's API in an axum app of your own: the app keeps its own routes and
//! its own auth layer, and mounts cartloop under `/api`; the dispatcher runs beside it.
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

/// The host app's own auth: every request needs `X-Api-Key: demo-key`.
async fn require_api_key(request: Request, next: Next) -> Result<Response, StatusCode> {
    match request.headers().get("x-api-key") {
        Some(key) if key == "demo-key" => Ok(next.run(request).await),
        _ => Err(StatusCode::UNAUTHORIZED),
    }
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
        .layer(middleware::from_fn(require_api_key));

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

    let _ = stop.send(());
    let _ = stop_dispatch.send(());
    serving.await??;
    dispatching.await??;
    Ok(())
}
