//! Throughput of webhook delivery (SPEC §10): the real server's deliverer sends `events`
//! queued events to a local HTTP receiver that answers 204 at once, from a real database.
//!
//! ```text
//! cargo run --release --example webhook_throughput -- [events] [conversations] [concurrency]
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/cartloop_bench cargo run --release --example webhook_throughput
//! ```
//!
//! Defaults: 20,000 events over 500 conversations, 64 attempts in flight
//! (`WEBHOOK_CONCURRENCY`), on a fresh SQLite file. The events are clients' chats
//! (`chat.received`) posted through the API before the deliverer starts, so the figure is
//! the drain alone: deliveries per second from the first claim to the last answer. Events
//! of one conversation go one at a time, in order, so the conversations bound how many can
//! be in flight. It checks that every event arrived, signed, and counts repeats (there
//! should be none: no attempt goes unanswered).
//!
//! On PostgreSQL point `DATABASE_URL` at an empty database: the example writes into it.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use cartloop::server::Server;
use cartloop_http::deliverer::DelivererConfig;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut next = |default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(args
            .next()
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let events = next(20_000)?;
    let conversations = next(500)?.clamp(1, events.max(1));
    let concurrency = next(64)?;

    let dir = tempfile::tempdir()?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let storage = cartloop::sqlx::connect(&url).await?;
    cartloop_core::ports::Admin::import(storage.as_ref(), &cartloop_core::demo::demo_data())
        .await?;
    let mailer = cartloop::server::outbox_mailer(dir.path().join("outbox"))?;
    let server = Server::builder(storage, mailer)
        .webhook_allow_private(true)
        .webhooks(DelivererConfig {
            concurrency,
            ..DelivererConfig::default()
        })
        .build()
        .await?;
    let router = server.router();

    let received = Receiver::default();
    let receiver_url = received.clone().serve().await?;
    let webhook = post(
        &router,
        "/webhooks/",
        json!({"url": receiver_url, "events": ["chat.received"], "storeId": 1}),
    )
    .await?;
    println!("webhook {} -> {receiver_url}", webhook["webhookId"]);

    // The demo store's operator 24 talks with one new client per conversation.
    let mut clients = Vec::new();
    for n in 0..conversations {
        let client = post(
            &router,
            "/clients/",
            json!({"name": format!("Client {n}"), "email": format!("client{n}@example.com"),
                   "timeZone": "America/Chicago", "storeId": 1}),
        )
        .await?["clientId"]
            .clone();
        let conversation = post(
            &router,
            "/conversations/",
            json!({"storeId": 1, "operatorId": 24, "clientId": client}),
        )
        .await?["conversationId"]
            .clone();
        clients.push((client, conversation));
    }
    let started = Instant::now();
    let posted: Vec<Result<Value, String>> = futures::stream::iter(0..events)
        .map(|n| {
            let (client, conversation) = clients[n % clients.len()].clone();
            let router = router.clone();
            async move {
                post(
                    &router,
                    "/chat/",
                    json!({"conversationId": conversation,
                           "chat": {"payload": format!("Question {n}"), "userId": client}}),
                )
                .await
                .map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    if let Some(Err(e)) = posted.iter().find(|p| p.is_err()) {
        return Err(e.clone().into());
    }
    println!(
        "{events} events written over {conversations} conversations in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = server.run_dispatcher(async move {
        let _ = stopped.await;
    });
    let measure = async {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(600);
        while received.unique() < events && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed();
        // A moment for late repeats to show.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = stop.send(());
        elapsed
    };
    let (ran, elapsed) = tokio::join!(run, measure);
    ran?;
    let (unique, total, unsigned) = received.counts();
    println!(
        "{unique} of {events} delivered in {:.2} s: {:.0} deliveries/s \
         ({concurrency} in flight at most, {} repeats, {unsigned} unsigned)",
        elapsed.as_secs_f64(),
        unique as f64 / elapsed.as_secs_f64(),
        total - unique,
    );
    if unique != events || unsigned != 0 {
        return Err(format!("{unique} of {events} events arrived, {unsigned} unsigned").into());
    }
    Ok(())
}

/// POSTs `body` to the in-process router and returns the JSON answer (a 201).
async fn post(
    router: &axum::Router,
    path: &str,
    body: Value,
) -> Result<Value, Box<dyn std::error::Error>> {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))?;
    let answer = router.clone().oneshot(request).await?;
    let status = answer.status();
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20).await?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status != StatusCode::CREATED {
        return Err(format!("POST {path}: {status} {value}").into());
    }
    Ok(value)
}

/// The local receiver: answers 204 and notes each `webhook-id`.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Seen>>);

#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    total: usize,
    unsigned: usize,
}

impl Receiver {
    async fn serve(self) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap| {
                let seen = self.clone();
                async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let signed = headers
                        .get("webhook-signature")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.starts_with("v1,"));
                    let mut seen = seen.0.lock().unwrap_or_else(|e| e.into_inner());
                    seen.total += 1;
                    seen.unsigned += usize::from(!signed);
                    seen.ids.insert(id);
                    StatusCode::NO_CONTENT
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(format!("http://{address}/hook"))
    }

    fn unique(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).ids.len()
    }

    fn counts(&self) -> (usize, usize, usize) {
        let seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (seen.ids.len(), seen.total, seen.unsigned)
    }
}
