//! A custom [`Mailer`]: instead of SMTP, each email is POSTed as JSON to a webhook (a
//! transactional-email provider's API, a chat bridge, ...). The dispatcher does not care:
//! it claims, renders, retries and records the same way.
//!
//! ```sh
//! cargo run --example webhook_mailer
//! ```
//!
//! It starts a webhook receiver on a free port, writes a message to the demo data's
//! conversation 1 and runs a dispatch pass; the receiver gets the rendered email.

use async_trait::async_trait;
use axum::routing::post;
use axum::{Json, Router};
use cartloop::core::chat::{post_chat, PostChat};
use cartloop::core::demo::demo_data;
use cartloop::core::ids::{ConversationId, UserId};
use cartloop::core::ports::{Email, MailError, Mailer};
use cartloop::core::rules::Rules;
use cartloop::server::Server;
use std::sync::{Arc, Mutex};

/// Posts each email to `url`. A 2xx is delivered; a 4xx will never work (permanent); a 5xx
/// or a connection failure may work later (transient): the dispatcher retries it.
struct WebhookMailer {
    client: reqwest::Client,
    url: String,
}

#[async_trait]
impl Mailer for WebhookMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let body = serde_json::json!({
            "messageId": email.message_id_header,
            "from": email.from_address.as_str(),
            "to": email.to_address.as_str(),
            "subject": email.subject,
            "text": email.body,
        });
        let response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| MailError::transient(format!("webhook unreachable: {e}")))?;
        match response.status() {
            s if s.is_success() => Ok(()),
            s if s.is_client_error() => Err(MailError::permanent(format!("webhook said {s}"))),
            s => Err(MailError::transient(format!("webhook said {s}"))),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The webhook receiver: keeps what it is sent.
    let received = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let hook = Router::new().route(
        "/hook",
        post({
            let received = received.clone();
            move |Json(email): Json<serde_json::Value>| async move {
                received.lock().unwrap().push(email);
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, hook).await });

    let dir = tempfile::tempdir()?;
    let storage =
        cartloop::sqlx::connect(&format!("sqlite://{}", dir.path().join("app.db").display()))
            .await?;
    storage.import(&demo_data()).await?;
    let mailer = Arc::new(WebhookMailer {
        client: reqwest::Client::new(),
        url,
    });
    // Always inside the window, so the example does not depend on the time of day.
    let rules = Rules {
        active_hours: "00:00-24:00".parse()?,
        ..Rules::default()
    };
    let server = Server::builder(storage.clone(), mailer)
        .rules(rules.clone())
        .build()
        .await?;
    let dispatcher = server.dispatcher();

    let posted = post_chat(
        storage.as_ref(),
        &cartloop::server::SystemClock,
        &rules,
        PostChat {
            conversation_id: ConversationId(1),
            principal: cartloop_core::access::Principal::deployment_token(),
            user_id: Some(UserId(24)),
            payload: "Hi << username >>, your code << discountCode >> is waiting.".into(),
            idempotency_key: None,
            send_at: None,
        },
    )
    .await?;
    println!("stored chat {} due {:?}", posted.message.id, posted.send_at);
    let report = dispatcher.run_once().await?;
    println!("dispatch pass: {report:?}");
    assert_eq!(report.sent, 1);
    let received = received.lock().unwrap().clone();
    println!(
        "webhook received: {}",
        serde_json::to_string_pretty(&received)?
    );
    assert_eq!(
        received[0]["text"],
        "Hi John Carter, your code PROMO50 is waiting."
    );
    Ok(())
}
