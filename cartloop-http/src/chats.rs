//! Chats and one conversation's page: `GET /conversation/{id}/`, `POST /chat/`,
//! `POST /chat/preview/`, `GET|DELETE /chat/{id}/`, `POST /chat/{id}/retry/`.

use crate::api::{
    ChatResponse, ChatViewResponse, ConversationResponse, Object, PostChatBody, PreviewResponse,
};
use crate::audit::AuditTarget;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{self, parse_id, JsonBody, PathId, QueryMap};
use crate::{AppState, DEFAULT_PAGE, MAX_IDEMPOTENCY_KEY, MAX_PAGE};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cartloop_core::access::{self, Access, Resource};
use cartloop_core::chat::{
    cancel_chat, chat_view, conversation_view, post_chat, preview_chat, retry_chat, PostChat,
};
use cartloop_core::domain::MessageStatus;
use cartloop_core::ids::{ConversationId, MessageId, UserId};
use cartloop_core::ports::Page;

/// A conversation with a page of its chats, oldest first.
///
/// Paging backwards from the newest: `limit` (default 100, at most 1000; larger values are
/// clamped) gives the newest N, `before` the N before that chat. A `new` chat not yet due
/// carries `waitingFor`, the rule of the delivery policy that holds it now (as
/// `GET /chat/{id}/` decides it: one read for the page).
#[utoipa::path(
    get,
    path = "/conversation/{id}/",
    tag = "conversations",
    params(
        ("id" = i64, Path, description = "Conversation id", minimum = 1),
        ("limit" = Option<u32>, Query, description = "Chats per page (1 to 1000, default 100)", minimum = 1),
        ("before" = Option<i64>, Query, description = "Only chats older than this chat id", minimum = 1),
    ),
    responses(
        (status = 200, description = "The conversation", body = ConversationResponse),
        (status = 400, description = "`invalid_id`, `invalid_query`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn get_conversation(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    QueryMap(query): QueryMap,
) -> Result<Json<ConversationResponse>, ApiError> {
    let page = page(&query)?;
    let view = conversation_view(
        state.storage.as_ref(),
        state.clock.as_ref(),
        &state.rules,
        ConversationId(id),
        page,
    )
    .await?
    .ok_or_else(|| conversation_not_found(id))?;
    let resource = Resource::from(&view.context.conversation);
    caller.check(access::may_read(&caller.principal, &resource), || {
        conversation_not_found(id)
    })?;
    Ok(Json(ConversationResponse::from(&view)))
}

pub(crate) fn conversation_not_found(id: i64) -> ApiError {
    ApiError::not_found(
        "conversation_not_found",
        format!("conversation {id} not found"),
    )
}

fn page(query: &std::collections::HashMap<String, String>) -> Result<Page, ApiError> {
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => extract::parse_limit(raw, MAX_PAGE)?,
    };
    let before = match query.get("before") {
        None => None,
        Some(raw) => Some(MessageId(parse_id(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "invalid before {}: expected a chat id (a positive integer)",
                    extract::quoted(raw)
                ),
            )
        })?)),
    };
    Ok(Page { limit, before })
}

/// Writes a message.
///
/// An operator's message is validated, rendered for the client and stored `new`, due now
/// if the client is inside the conversation's active hours, else at the next window start.
/// A client's message is stored `received` and never emailed. An `Idempotency-Key` makes a
/// retried request answer as the first one did (header `Idempotent-Replayed: true`).
#[utoipa::path(
    post,
    path = "/chat/",
    tag = "chats",
    request_body = PostChatBody,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a retry with the same key (by the same user) answers as the first request"),
    ),
    responses(
        (status = 201, description = "Stored", body = ChatResponse),
        (status = 400, description = "`invalid_json`, `invalid_request`, `invalid_idempotency_key`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the user is not in the conversation", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
        (status = 409, description = "`conversation_resolved`, `client_unsubscribed`, `idempotency_key_reused`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "Payload validation: `invalid_character`, `payload_too_long`, `empty_payload`, `unknown_placeholder`, `missing_value`, ...; `invalid_send_at`", body = ErrorBody),
    )
)]
pub(crate) async fn post_chat_handler(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(Object(body)): JsonBody<Object<PostChatBody>>,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    author_given(&caller, body.chat.user_id)?;
    let send_at = send_at(body.chat.send_at)?;
    let request = PostChat {
        conversation_id: ConversationId(body.conversation_id),
        principal: caller.principal,
        user_id: body.chat.user_id.map(UserId),
        payload: body.chat.payload,
        idempotency_key,
        send_at,
    };
    let posted = post_chat(
        state.storage.as_ref(),
        state.clock.as_ref(),
        &state.rules,
        request,
    )
    .await?;
    let message = &posted.message;
    if posted.created {
        tracing::info!(chat = %message.id, conversation = %message.conversation_id, status = %message.status, send_at = ?message.send_at, "chat stored");
    }
    // A replay answers the first request's instant; the rule holding it is the message's.
    let waiting_for = message
        .waiting_for
        .filter(|_| posted.status == MessageStatus::New);
    let answer = ChatResponse::new(message.id, posted.status, posted.send_at, waiting_for);
    let target = AuditTarget::new("chat", message.id, posted.store);
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    response.extensions_mut().insert(target);
    if !posted.created {
        response.headers_mut().insert(
            "idempotent-replayed",
            header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// `chat.sendAt`: a string, or absent or null. Its content is the core's to judge
/// ([`cartloop_core::send_at`]).
fn send_at(value: Option<serde_json::Value>) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(ApiError::unprocessable(
            "invalid_send_at",
            format!("sendAt: expected an RFC 3339 timestamp string (e.g. 2026-11-25T09:00:00Z), not {other}"),
        )
        .with_field("sendAt")),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                ),
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// Checks a message as `POST /chat/` would, and stores nothing.
///
/// Answers the text the client would receive, and when it would be sent, in UTC and in the
/// client's zone; or the error `POST /chat/` would answer.
#[utoipa::path(
    post,
    path = "/chat/preview/",
    tag = "chats",
    request_body = PostChatBody,
    responses(
        (status = 200, description = "What would be stored", body = PreviewResponse),
        (status = 400, description = "`invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
        (status = 409, description = "`conversation_resolved`, `client_unsubscribed`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "Payload validation; `invalid_send_at`", body = ErrorBody),
    )
)]
pub(crate) async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(Object(body)): JsonBody<Object<PostChatBody>>,
) -> Result<Json<PreviewResponse>, ApiError> {
    author_given(&caller, body.chat.user_id)?;
    let draft = preview_chat(
        state.storage.as_ref(),
        state.clock.as_ref(),
        &state.rules,
        ConversationId(body.conversation_id),
        (&caller.principal, body.chat.user_id.map(UserId)),
        &body.chat.payload,
        send_at(body.chat.send_at)?.as_deref(),
    )
    .await?;
    Ok(Json(PreviewResponse::from(&draft)))
}

/// One chat, with the text its client receives, its attempts and last error.
#[utoipa::path(
    get,
    path = "/chat/{id}/",
    tag = "chats",
    params(("id" = i64, Path, description = "Chat id", minimum = 1)),
    responses(
        (status = 200, description = "The chat", body = ChatViewResponse),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`chat_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn get_chat(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<ChatViewResponse>, ApiError> {
    chat_access(&state, &caller, id, access::may_read).await?;
    let view = chat_view(
        state.storage.as_ref(),
        state.clock.as_ref(),
        &state.rules,
        MessageId(id),
    )
    .await?;
    Ok(Json(view.into()))
}

/// Cancels a `new` message: it is never sent afterwards.
///
/// A dispatcher that claimed the message first wins: the message is then `sending` and the
/// answer is 409 `not_cancellable`.
#[utoipa::path(
    delete,
    path = "/chat/{id}/",
    tag = "chats",
    params(("id" = i64, Path, description = "Chat id", minimum = 1)),
    responses(
        (status = 200, description = "Cancelled", body = ChatViewResponse),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`chat_not_found`", body = ErrorBody),
        (status = 409, description = "`not_cancellable`: the chat is not `new`", body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<ChatViewResponse>, ApiError> {
    chat_access(&state, &caller, id, access::may_change).await?;
    let view = cancel_chat(state.storage.as_ref(), MessageId(id)).await?;
    tracing::info!(chat = id, "chat cancelled");
    Ok(Json(view.into()))
}

/// Puts a `failed` message back to `new`, due now or at the next window start.
#[utoipa::path(
    post,
    path = "/chat/{id}/retry/",
    tag = "chats",
    params(("id" = i64, Path, description = "Chat id", minimum = 1)),
    responses(
        (status = 200, description = "Scheduled again", body = ChatViewResponse),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`chat_not_found`", body = ErrorBody),
        (status = 409, description = "`not_retryable`: the chat is not `failed`", body = ErrorBody),
    )
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<ChatViewResponse>, ApiError> {
    chat_access(&state, &caller, id, access::may_change).await?;
    let view = retry_chat(
        state.storage.as_ref(),
        state.clock.as_ref(),
        &state.rules,
        MessageId(id),
    )
    .await?;
    tracing::info!(chat = id, send_at = ?view.message.send_at, "chat retried");
    Ok(Json(view.into()))
}

fn chat_not_found(id: i64) -> ApiError {
    ApiError::not_found("chat_not_found", format!("chat {id} not found"))
}

/// Refuses unless `rule` lets the caller at chat `id` (as at its conversation): another
/// store's chat is `chat_not_found`, as an unknown one.
async fn chat_access(
    state: &AppState,
    caller: &Caller,
    id: i64,
    rule: fn(&access::Principal, &Resource) -> Access,
) -> Result<(), ApiError> {
    let message = state
        .storage
        .message(MessageId(id))
        .await?
        .ok_or_else(|| chat_not_found(id))?;
    let context = state
        .storage
        .conversation(message.conversation_id)
        .await?
        .ok_or_else(|| chat_not_found(id))?;
    let resource = Resource::from(&context.conversation);
    caller.check(rule(&caller.principal, &resource), || chat_not_found(id))
}

/// `chat.userId` may be left out only by a principal that is one operator (an operator's
/// key or session, a signed-in manager): the author is then itself. Anyone else says who
/// writes, as the original API required.
fn author_given(caller: &Caller, user_id: Option<i64>) -> Result<(), ApiError> {
    if user_id.is_none() && caller.principal.operator().is_none() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "invalid request body: missing field `userId` in `chat` (only an operator's own key or session may leave it out)",
        )
        .with_field("userId"));
    }
    Ok(())
}
