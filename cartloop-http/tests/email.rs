//! Email both ways over HTTP: one-click unsubscribe and clients' replies by email.
//!
//! The server parses raw emails with `cartloop_mail::inbound::parse_reply`; these tests
//! plug in a small stand-in that reads a few headers and takes the rest as the text, since
//! what is under test here is the route: matching, storing, and the answers.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cartloop_core::ids::{ConversationId, MessageId, UserId};
use cartloop_core::inbound::InboundEmail;
use cartloop_core::message_id;
use cartloop_core::ports::prelude::*;
use cartloop_core::ports::Links;
use cartloop_http::tokens::{SignedLinks, TokenKey};
use cartloop_http::InboundParser;
use common::{app_with, assert_error, chat, json_of, text_of, App};
use serde_json::json;
use std::sync::Arc;

fn links() -> SignedLinks {
    SignedLinks {
        key: TokenKey::new(b"test secret, 32 bytes or so long"),
        public_url: "https://chat.example.com".to_owned(),
        reply_domain: None,
    }
}

/// Headers `To`, `Message-ID`, `In-Reply-To` up to the first blank line, then the text.
/// A body starting with `garbage` is refused, as a real parser refuses what is no email.
fn stand_in_parser(raw: &[u8]) -> Result<InboundEmail, String> {
    let raw = std::str::from_utf8(raw).map_err(|e| e.to_string())?;
    if raw.starts_with("garbage") {
        return Err("no header section".to_owned());
    }
    let (head, text) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let mut email = InboundEmail {
        text: text.to_owned(),
        ..InboundEmail::default()
    };
    for line in head.lines() {
        let (name, value) = line.split_once(':').ok_or("bad header")?;
        let value = value.trim().to_owned();
        match name.to_ascii_lowercase().as_str() {
            "to" => email.recipients.push(value),
            "message-id" => email.message_id = Some(value.trim_matches(['<', '>']).to_owned()),
            "in-reply-to" => email
                .references
                .push(value.trim_matches(['<', '>']).to_owned()),
            _ => {}
        }
    }
    Ok(email)
}

async fn email_app() -> App {
    app_with(|state| {
        state.links = Some(Arc::new(links()));
        let parser: InboundParser = Arc::new(stand_in_parser);
        state.inbound_parser = Some(parser);
        state.api_token = Some("s3cret".into());
    })
    .await
}

async fn context(app: &App, id: i64) -> cartloop_core::domain::ConversationContext {
    app.storage
        .conversation(ConversationId(id))
        .await
        .unwrap()
        .unwrap()
}

fn unsubscribe_path(client: i64) -> String {
    format!(
        "/unsubscribe/{}",
        links().key.unsubscribe_token(UserId(client))
    )
}

async fn unsubscribed(app: &App, client: i64) -> bool {
    app.storage
        .client(UserId(client))
        .await
        .unwrap()
        .unwrap()
        .unsubscribed_at
        .is_some()
}

// ---- unsubscribe --------------------------------------------------------------------------

#[tokio::test]
async fn get_shows_a_confirm_page_and_changes_nothing() {
    let app = email_app().await;
    let path = unsubscribe_path(27);
    for uri in [path.clone(), format!("{path}/")] {
        let request = Request::get(&uri).body(Body::empty()).unwrap();
        let response = app.call(request).await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
        let (status, content_type, html) = text_of(response).await;
        assert_eq!(status, StatusCode::OK, "{uri}: no bearer token needed");
        assert!(content_type.starts_with("text/html"), "{content_type}");
        assert!(html.contains("<form method=\"post\">"), "{html}");
        assert!(html.contains("name=\"List-Unsubscribe\" value=\"One-Click\""));
    }
    assert!(!unsubscribed(&app, 27).await, "a GET changes nothing");
}

#[tokio::test]
async fn one_click_post_unsubscribes() {
    let app = email_app().await;
    // RFC 8058: the mail program posts `List-Unsubscribe=One-Click`, form-encoded.
    let request = Request::post(unsubscribe_path(27))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("List-Unsubscribe=One-Click"))
        .unwrap();
    let (status, content_type, html) = text_of(app.call(request).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"));
    assert!(html.contains("unsubscribed"), "{html}");
    assert!(unsubscribed(&app, 27).await);

    // Operator messages are refused from now on.
    let request = Request::post("/chat/").header("authorization", "Bearer s3cret");
    let (status, body) = app.send_with(request, Some(&chat(1, 24, "hi"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "client_unsubscribed");

    // The page now says so, without a button; a second POST is harmless.
    let request = Request::get(unsubscribe_path(27))
        .body(Body::empty())
        .unwrap();
    let (_, _, html) = text_of(app.call(request).await).await;
    assert!(!html.contains("<form"), "{html}");
    let request = Request::post(format!("{}/", unsubscribe_path(27)))
        .header("accept", "application/json")
        .body(Body::empty())
        .unwrap();
    let (status, body) = json_of(app.call(request).await).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "unsubscribed"}))
    );
}

#[tokio::test]
async fn forged_or_foreign_tokens_are_404() {
    let app = email_app().await;
    let good = links().key.unsubscribe_token(UserId(27));
    let other_key = TokenKey::new(b"another deployment").unsubscribe_token(UserId(27));
    let reply = links().key.reply_token(ConversationId(1));
    let unknown_client = links().key.unsubscribe_token(UserId(999));
    let altered = format!("{}0", &good[..good.len() - 1]);
    for token in [
        altered,
        good.replacen("u27-", "u26-", 1),
        other_key,
        reply,
        unknown_client,
        "nothing".to_owned(),
    ] {
        let request = Request::post(format!("/unsubscribe/{token}"))
            .body(Body::empty())
            .unwrap();
        let (status, body) = json_of(app.call(request).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "POST {token}");
        assert_error(&body, "invalid_token");
        // A person follows the GET in a browser: a page that says so.
        let request = Request::get(format!("/unsubscribe/{token}"))
            .body(Body::empty())
            .unwrap();
        let (status, content_type, page) = text_of(app.call(request).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {token}");
        assert!(content_type.starts_with("text/html"), "{content_type}");
        assert!(page.contains("not valid"), "{page}");
    }
    assert!(!unsubscribed(&app, 27).await);
    assert!(!unsubscribed(&app, 26).await);
}

#[tokio::test]
async fn without_signed_links_no_token_is_valid() {
    let app = app_with(|_| {}).await;
    let request = Request::post(unsubscribe_path(27))
        .body(Body::empty())
        .unwrap();
    let (status, body) = json_of(app.call(request).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "invalid_token");
}

// ---- inbound ------------------------------------------------------------------------------

async fn inbound(
    app: &App,
    content_type: Option<&str>,
    raw: impl Into<Body>,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::post("/inbound/email/").header("authorization", "Bearer s3cret");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    json_of(app.call(request.body(raw.into()).unwrap()).await).await
}

async fn chats_of(app: &App, conversation: i64) -> Vec<serde_json::Value> {
    let request = Request::get(format!("/conversation/{conversation}/"))
        .header("authorization", "Bearer s3cret");
    let (_, body) = app.send_with(request, None).await;
    body["chats"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_reply_to_our_address_lands_in_its_conversation_once() {
    let app = email_app().await;
    let reply_to = links().reply_to(&context(&app, 1).await).unwrap();
    assert!(reply_to.as_str().ends_with("@sneakerhub.example.com"));
    let raw = format!("To: {reply_to}\nMessage-ID: <abc@mail.example.net>\n\nYes, size 42 please.");
    let (status, body) = inbound(&app, Some("message/rfc822"), raw.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, json!({"chatId": 6, "conversationId": 1}));
    let chats = chats_of(&app, 1).await;
    let last = chats.last().unwrap();
    assert_eq!(
        (
            last["chatId"].clone(),
            last["userId"].clone(),
            last["status"].clone(),
            last["payload"].clone()
        ),
        (
            json!(6),
            json!(27),
            json!("received"),
            json!("Yes, size 42 please.")
        )
    );
    // The same email delivered again: stored once, answered 200.
    let (status, again) = inbound(&app, Some("Message/RFC822; charset=utf-8"), raw).await;
    assert_eq!((status, again), (StatusCode::OK, body));
    assert_eq!(chats_of(&app, 1).await.len(), 4);
}

#[tokio::test]
async fn a_reply_is_matched_by_the_message_id_it_answers() {
    for links in [true, false] {
        let app = app_with(|state| {
            if links {
                state.links = Some(Arc::new(self::links()));
            }
            let parser: InboundParser = Arc::new(stand_in_parser);
            state.inbound_parser = Some(parser);
            state.api_token = Some("s3cret".into());
        })
        .await;
        let ours = app.storage.message(MessageId(3)).await.unwrap().unwrap();
        let id = message_id::format(ours.id, ours.created_at, "hello@sneakerhub.example.com");
        let raw = format!("To: hello@sneakerhub.example.com\nIn-Reply-To: <{id}>\n\nThanks!");
        let (status, body) = inbound(&app, Some("message/rfc822"), raw).await;
        assert_eq!(status, StatusCode::CREATED, "links: {links}: {body}");
        assert_eq!(body["conversationId"], 1);
    }
}

#[tokio::test]
async fn unmatched_empty_and_unreadable_emails() {
    let app = email_app().await;
    let reply_to = links()
        .reply_to(&context(&app, 1).await)
        .unwrap()
        .to_string();
    let forged = reply_to.replacen("reply+c1-", "reply+c2-", 1);
    let foreign = reply_to.replace(
        &links().key.reply_token(ConversationId(1)),
        &TokenKey::new(b"other").reply_token(ConversationId(1)),
    );
    for to in [forged, foreign, "shop@sneakerhub.example.com".to_owned()] {
        let raw = format!("To: {to}\n\nhello");
        let (status, body) = inbound(&app, Some("message/rfc822"), raw).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{to}");
        assert_error(&body, "unmatched_reply");
    }
    let (status, body) = inbound(
        &app,
        Some("message/rfc822"),
        format!("To: {reply_to}\n\n  \n"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "empty_reply");
    let (status, body) = inbound(&app, Some("message/rfc822"), "garbage").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_email_message");
    assert_eq!(chats_of(&app, 1).await.len(), 3, "nothing stored");
}

#[tokio::test]
async fn content_type_size_and_token() {
    let app = email_app().await;
    let reply_to = links().reply_to(&context(&app, 1).await).unwrap();
    for content_type in [Some("application/json"), Some("text/plain"), None] {
        let (status, body) = inbound(&app, content_type, format!("To: {reply_to}\n\nhi")).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_error(&body, "unsupported_media_type");
    }
    // Emails may be larger than other bodies (64 KiB), up to 1 MiB.
    let long = format!("To: {reply_to}\n\n{}", "a".repeat(200 * 1024));
    let (status, _) = inbound(&app, Some("message/rfc822"), long).await;
    assert_eq!(status, StatusCode::CREATED);
    let huge = format!("To: {reply_to}\n\n{}", "a".repeat(1024 * 1024));
    let (status, body) = inbound(&app, Some("message/rfc822"), huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");
    // The bearer token is needed.
    let request = Request::post("/inbound/email/")
        .header("content-type", "message/rfc822")
        .body(Body::from(format!("To: {reply_to}\n\nhi")))
        .unwrap();
    let (status, _) = json_of(app.call(request).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn without_a_parser_the_route_says_so() {
    let app = app_with(|_| {}).await;
    let request = Request::post("/inbound/email")
        .header("content-type", "message/rfc822")
        .body(Body::from("To: x@example.com\n\nhi"))
        .unwrap();
    let (status, body) = json_of(app.call(request).await).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert_error(&body, "not_configured");
}
