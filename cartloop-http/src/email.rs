//! Email both ways: one-click unsubscribe and clients' replies.
//!
//! - `GET /unsubscribe/{token}` shows a page with a confirm button and changes nothing
//!   (link scanners follow GETs); `POST` unsubscribes. No bearer token: the signed token is
//!   the credential. `POST` takes any body, among them RFC 8058's
//!   `List-Unsubscribe=One-Click`.
//! - `POST /inbound/email/` takes a raw email (`message/rfc822`, at most
//!   [`INBOUND_BODY_LIMIT`](crate::INBOUND_BODY_LIMIT) bytes) and stores the client's reply.

use crate::api::{ReplyStored, Unsubscribed};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{read_body, PathText};
use crate::{AppState, INBOUND_BODY_LIMIT};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use cartloop_core::directory::{self, DirectoryError};
use cartloop_core::domain::ConversationContext;
use cartloop_core::email_address::EmailAddress;
use cartloop_core::ids::{ConversationId, UserId};
use cartloop_core::inbound::receive_reply;
use cartloop_core::ports::Links;

fn invalid_token() -> ApiError {
    ApiError::not_found(
        "invalid_token",
        "this unsubscribe link is not valid; use the link of an email you received",
    )
}

/// The client a token names, if the deployment signs links and the signature holds.
fn client_of(state: &AppState, token: &str) -> Result<UserId, ApiError> {
    state
        .links
        .as_deref()
        .and_then(|links| links.client_of_unsubscribe(token))
        .ok_or_else(invalid_token)
}

/// The confirm page: asks before unsubscribing.
///
/// Shows a button that posts to the same address; changes nothing.
#[utoipa::path(
    get,
    path = "/unsubscribe/{token}",
    tag = "email",
    security(()),
    params(("token" = String, Path, description = "The signed token of the email's List-Unsubscribe URL")),
    responses(
        (status = 200, description = "The confirm page", body = String, content_type = "text/html"),
        (status = 404, description = "The link is not valid (a page saying so)", body = String, content_type = "text/html"),
    )
)]
pub(crate) async fn unsubscribe_page(
    State(state): State<AppState>,
    PathText(token): PathText,
) -> Result<Response, ApiError> {
    // A person follows this link in a browser: a bad one gets a page, not JSON.
    let not_valid = || {
        let mut response = page(
            "This link is not valid",
            "<p>This unsubscribe link is not valid. Use the link of an email you received.</p>",
        );
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
    };
    let Ok(id) = client_of(&state, &token) else {
        return Ok(not_valid());
    };
    let Some(client) = state.storage.client(id).await? else {
        return Ok(not_valid());
    };
    let page = if client.unsubscribed_at.is_some() {
        page(
            "You are unsubscribed",
            "<p>You will get no more emails from the stores that write to you here.</p>",
        )
    } else {
        page(
            "Unsubscribe?",
            "<p>You will get no more emails from the stores that write to you here.</p>\
             <form method=\"post\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>",
        )
    };
    Ok(page)
}

/// Unsubscribes the client the token names (RFC 8058 one-click).
///
/// Later operator messages to the client are refused with 409 `client_unsubscribed`, and
/// messages already scheduled are `suppressed` instead of sent. Answers a small page, or
/// JSON when the request accepts `application/json`.
#[utoipa::path(
    post,
    path = "/unsubscribe/{token}",
    tag = "email",
    security(()),
    params(("token" = String, Path, description = "The signed token of the email's List-Unsubscribe URL")),
    request_body(description = "Any body, e.g. `List-Unsubscribe=One-Click` (RFC 8058), or none; it is not read", content(("application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Unsubscribed", content(
            (Unsubscribed = "application/json"),
            (String = "text/html"),
        )),
        (status = 404, description = "`invalid_token`", body = ErrorBody),
    )
)]
pub(crate) async fn unsubscribe(
    State(state): State<AppState>,
    PathText(token): PathText,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = client_of(&state, &token)?;
    match directory::unsubscribe(state.storage.as_ref(), state.clock.as_ref(), id).await {
        Ok(client) => {
            tracing::info!(client = %client.id, at = ?client.unsubscribed_at, "client unsubscribed")
        }
        Err(DirectoryError::NotFound { .. }) => return Err(invalid_token()),
        Err(e) => return Err(e.into()),
    }
    if accepts_json(&headers) {
        return Ok(Json(Unsubscribed {
            status: "unsubscribed",
        })
        .into_response());
    }
    Ok(page(
        "You are unsubscribed",
        "<p>You will get no more emails from the stores that write to you here.</p>",
    ))
}

fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let media = media.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("application/json")
        })
}

/// The unsubscribe pages' only style, inline so each page is one response; the CSP allows
/// it by its hash.
const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;\
                          padding:0 1rem;line-height:1.5}button{font-size:1rem;padding:.6rem 1.2rem}";

/// A small self-contained page: no scripts, no outside resources, not cached, and the
/// token in its address not sent on as a referrer (the headers of every page).
fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>{PAGE_STYLE}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    );
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    crate::pages::secure_with_inline_style(headers, PAGE_STYLE);
    response
}

/// Stores a client's emailed reply in its conversation, as a `received` chat.
///
/// The body is the raw email, as a mail server's pipe or a provider's raw-MIME webhook
/// posts it. The conversation is found by the signed `reply+<token>@` recipient, else by
/// `In-Reply-To`/`References` naming an email we sent. Only the new text is kept (quoted
/// original and signature removed). A second delivery of the same email (same
/// `Message-ID`) is stored once and answers 200.
#[utoipa::path(
    post,
    path = "/inbound/email/",
    tag = "email",
    request_body(content = String, content_type = "message/rfc822", description = "The raw email, at most 1 MiB"),
    responses(
        (status = 201, description = "Stored", body = ReplyStored),
        (status = 200, description = "Stored before (same Message-ID)", body = ReplyStored),
        (status = 400, description = "`invalid_email_message`: the email could not be parsed", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 1 MiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `message/rfc822`", body = ErrorBody),
        (status = 422, description = "`unmatched_reply`, `empty_reply`", body = ErrorBody),
        (status = 501, description = "`not_configured`: this server does not parse inbound email", body = ErrorBody),
    )
)]
pub(crate) async fn inbound_email(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    request: Request,
) -> Result<Response, ApiError> {
    caller.check(
        cartloop_core::access::may_post_inbound_email(&caller.principal),
        ApiError::unauthorized,
    )?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("message/rfc822") {
        return Err(ApiError::unsupported_media_type(format!(
            "expected Content-Type: message/rfc822 (the raw email), got {}",
            crate::extract::quoted(if content_type.is_empty() {
                "none"
            } else {
                content_type
            })
        )));
    }
    let parser = state.inbound_parser.clone().ok_or_else(|| {
        ApiError::not_configured("this server is not set up to receive email replies")
    })?;
    let raw = read_body(request, INBOUND_BODY_LIMIT).await?;
    // Parsing up to a megabyte of MIME is CPU work: off the request threads.
    let email = tokio::task::spawn_blocking(move || parser(&raw))
        .await
        .map_err(|e| ApiError::internal(format!("inbound parser panicked: {e}")))?
        .map_err(|reason| {
            ApiError::bad_request(
                "invalid_email_message",
                format!(
                    "the body is not an email that can be read: {}",
                    crate::extract::cut(&reason)
                ),
            )
        })?;
    let links: &dyn Links = match state.links.as_deref() {
        Some(links) => links,
        None => &NoLinks,
    };
    let reply = receive_reply(state.storage.as_ref(), state.clock.as_ref(), links, email).await?;
    let status = if reply.created {
        tracing::info!(chat = %reply.chat_id, conversation = %reply.conversation_id, "reply received");
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = ReplyStored {
        chat_id: reply.chat_id.0,
        conversation_id: reply.conversation_id.0,
    };
    Ok((status, Json(body)).into_response())
}

/// Links of a deployment that signs none: no token is valid, so replies are matched by
/// their references alone.
struct NoLinks;

impl Links for NoLinks {
    fn reply_to(&self, _: &ConversationContext) -> Option<EmailAddress> {
        None
    }

    fn unsubscribe_url(&self, _: &ConversationContext) -> Option<String> {
        None
    }

    fn conversation_of_reply(&self, _: &str) -> Option<ConversationId> {
        None
    }

    fn client_of_unsubscribe(&self, _: &str) -> Option<UserId> {
        None
    }
}
