//! Following cartloop's events from the embedding program: [`Server::events`] is a
//! `Stream` of every event after an id, first those kept in the log and then live ones as
//! they are written (by this process or another server on the same database). It applies
//! no access rules: the embedder is trusted. `GET /events/` is the same for HTTP clients.
//!
//! ```sh
//! cargo run --example event_stream
//! ```
//!
//! It loads the demo data into a fresh SQLite file, follows the new chats' events, posts a
//! chat through the API, prints the events it gets, and exits.

use axum::body::Body;
use axum::http::Request;
use cartloop::server::Server;
use cartloop_core::event::EventType;
use cartloop_core::ports::EventFilter;
use futures::StreamExt;
use std::time::Duration;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let storage = cartloop::sqlx::connect(&url).await?;
    cartloop_core::ports::Admin::import(storage.as_ref(), &cartloop_core::demo::demo_data())
        .await?;
    // The import wrote events of its own: follow what comes after them.
    let head = cartloop_core::ports::EventLog::last_event_id(storage.as_ref()).await?;
    let mailer = cartloop::server::outbox_mailer(dir.path().join("outbox"))?;
    let server = Server::builder(storage, mailer).build().await?;

    // Every chat event after `head` (EventId(0) would be from the oldest kept), of every
    // store.
    let filter = EventFilter {
        types: Some(vec![EventType::ChatReceived, EventType::ChatCreated]),
        ..EventFilter::default()
    };
    let mut events = std::pin::pin!(server.events(head, filter));

    // A client writes in conversation 1 (client 27 of the demo data), through the API.
    let body = r#"{"conversationId":1,"chat":{"payload":"Is the blue one in stock?","userId":27}}"#;
    let request = Request::post("/chat/")
        .header("content-type", "application/json")
        .body(Body::from(body))?;
    let answer = server.router().oneshot(request).await?;
    println!("POST /chat/: {}", answer.status());
    assert!(answer.status().is_success());

    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await?
        .ok_or("the stream ended")??;
    println!("{} {}: {}", event.id, event.kind, event.to_json());
    assert_eq!(event.kind, EventType::ChatReceived);
    assert_eq!(event.data["payload"], "Is the blue one in stock?");
    Ok(())
}
