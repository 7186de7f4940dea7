//! The operator API's directory: stores, operators, clients and conversations.
//!
//! Fields the core takes as parsed values (names, discount codes, zones, emails, windows)
//! are parsed here, each refusal a 422 naming the field; the core checks the references.

use crate::api::{
    ClientResponse, ClosuresResponse, ConversationResponse, ConversationRow, ConversationsPage,
    CreateClientBody, CreateConversationBody, CreateStoreBody, Object, PatchClientBody,
    PatchConversationBody, PatchStoreBody, StoreCreated, StoreResponse,
};
use crate::audit::AuditTarget;
use crate::auth::{denied, Caller};
use crate::chats::conversation_not_found;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{self, parse_id, JsonBody, PathId, QueryMap};
use crate::{AppState, DEFAULT_PAGE};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cartloop_core::access::{self, Listing, NewResource, Resource};
use cartloop_core::calendar::Calendar;
use cartloop_core::chat::conversation_view;
use cartloop_core::closures::Closures;
use cartloop_core::conversations::{self, Cursor};
use cartloop_core::directory::{self, DirectoryError};
use cartloop_core::discount_code::DiscountCode;
use cartloop_core::domain::{
    ClientChanges, ConversationStatus, NewClient, NewConversation, NewStore, StoreChanges,
};
use cartloop_core::email_address::EmailAddress;
use cartloop_core::frequency_cap::FrequencyCap;
use cartloop_core::ids::{ConversationId, StoreId, UserId};
use cartloop_core::json::Checked;
use cartloop_core::name::Name;
use cartloop_core::ports::{ConversationFilter, Page};
use cartloop_core::reply_grace::ReplyGrace;
use chrono_tz::Tz;

fn time_zone(field: &'static str, raw: &str) -> Result<Tz, ApiError> {
    raw.trim().parse::<Tz>().map_err(|_| {
        ApiError::unprocessable(
            "invalid_time_zone",
            format!(
                "{field}: {} is not an IANA time zone (e.g. America/Chicago)",
                extract::quoted(raw)
            ),
        )
        .with_field(field)
    })
}

fn name(field: &'static str, raw: &str) -> Result<Name, ApiError> {
    Name::parse(raw).map_err(|e| DirectoryError::invalid_field(field, e).into())
}

fn discount_code(raw: &str) -> Result<DiscountCode, ApiError> {
    DiscountCode::parse(raw).map_err(|e| DirectoryError::invalid_field("discountCode", e).into())
}

fn email(field: &'static str, raw: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(raw).map_err(|e| {
        ApiError::unprocessable("invalid_email", format!("{field}: {e}")).with_field(field)
    })
}

/// A calendar: a window every day or a week; the refusal names the day and the window.
fn active_hours(value: Checked<Calendar>) -> Result<Calendar, ApiError> {
    value.into_result().map_err(|e| {
        ApiError::unprocessable("invalid_active_hours", format!("activeHours: {e}"))
            .with_field("activeHours")
    })
}

/// `{"count":3,"per":"24h"}`; the refusal names the field.
fn max_per_client(value: serde_json::Value) -> Result<FrequencyCap, ApiError> {
    serde_json::from_value(value).map_err(|e| {
        ApiError::unprocessable("invalid_max_per_client", format!("maxPerClient: {e}"))
            .with_field("maxPerClient")
    })
}

/// `15m`, `0`, ...: a string (or the number 0).
fn reply_grace(value: serde_json::Value) -> Result<ReplyGrace, ApiError> {
    let refused = |message: String| {
        ApiError::unprocessable("invalid_reply_grace", message).with_field("replyGrace")
    };
    match value {
        serde_json::Value::String(text) => text.parse().map_err(|e| refused(format!("{e}"))),
        serde_json::Value::Number(n) if n.as_u64() == Some(0) => Ok(ReplyGrace::OFF),
        other => Err(refused(format!(
            "replyGrace: expected a span of time such as \"15m\" or \"0\", not {}",
            json_kind(&other)
        ))),
    }
}

/// What a JSON value is, for refusals: `a number`, `an object`, ...
fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

fn not_null<T>(field: &'static str, value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| {
        ApiError::unprocessable("invalid_field", format!("{field}: must not be null"))
            .with_field(field)
    })
}

fn store_not_found(id: i64) -> ApiError {
    ApiError::not_found("store_not_found", format!("store {id} not found"))
}

/// Creates a store.
#[utoipa::path(
    post,
    path = "/stores/",
    tag = "directory",
    request_body = CreateStoreBody,
    responses(
        (status = 201, description = "Created", body = StoreCreated),
        (status = 400, description = "`invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_time_zone`, `invalid_email`, `invalid_active_hours`", body = ErrorBody),
    )
)]
pub(crate) async fn create_store(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(Object(body)): JsonBody<Object<CreateStoreBody>>,
) -> Result<Response, ApiError> {
    caller.check(
        access::may_create(&caller.principal, &NewResource::Store),
        || ApiError::internal("a store has no store"),
    )?;
    // Fields are parsed in the order written; the names last, as when the core checked
    // them, so a body wrong in several fields is still refused for the same one.
    let store = NewStore {
        time_zone: time_zone("timeZone", &body.time_zone)?,
        sender_email: email("senderEmail", &body.sender_email)?,
        active_hours: body.active_hours.map(active_hours).transpose()?,
        name: name("name", &body.name)?,
    };
    let store = directory::create_store(state.storage.as_ref(), store).await?;
    tracing::info!(store = %store.id, "store created");
    let target = AuditTarget::new("store", store.id, Some(store.id));
    let mut response = (StatusCode::CREATED, Json(StoreCreated::from(store))).into_response();
    response.extensions_mut().insert(target);
    Ok(response)
}

/// A store, with its own delivery window (null: the deployment's).
#[utoipa::path(
    get,
    path = "/store/{id}/",
    tag = "directory",
    params(("id" = i64, Path, description = "Store id", minimum = 1)),
    responses(
        (status = 200, description = "The store", body = StoreResponse),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`store_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn get_store(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<StoreResponse>, ApiError> {
    caller.check(
        access::may_read(&caller.principal, &Resource::Store(StoreId(id))),
        || store_not_found(id),
    )?;
    let store = state
        .storage
        .store(StoreId(id))
        .await?
        .ok_or_else(|| store_not_found(id))?;
    Ok(Json(store.into()))
}

/// Changes the store's delivery settings: its calendar (`activeHours`: a window every day,
/// a week, or `null` for the deployment's window), its frequency cap per client
/// (`maxPerClient`, `null`: off) and its reply grace (`replyGrace`). Fields left out stay.
///
/// The settings apply to every message scheduled after the change and to every re-check
/// at send time. A body with any malformed field changes nothing.
#[utoipa::path(
    patch,
    path = "/store/{id}/",
    tag = "directory",
    params(("id" = i64, Path, description = "Store id", minimum = 1)),
    request_body = PatchStoreBody,
    responses(
        (status = 200, description = "The store as it is now", body = StoreResponse),
        (status = 400, description = "`invalid_id`, `invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 404, description = "`store_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_active_hours` (naming the day and the window), `invalid_max_per_client`, `invalid_reply_grace`", body = ErrorBody),
    )
)]
pub(crate) async fn patch_store(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(Object(body)): JsonBody<Object<PatchStoreBody>>,
) -> Result<Json<StoreResponse>, ApiError> {
    caller.check(
        access::may_change(&caller.principal, &Resource::Store(StoreId(id))),
        || store_not_found(id),
    )?;
    let changes = StoreChanges {
        active_hours: body
            .active_hours
            .map(|hours| hours.map(active_hours).transpose())
            .transpose()?,
        max_per_client: body
            .max_per_client
            .map(|cap| cap.map(max_per_client).transpose())
            .transpose()?,
        reply_grace: body
            .reply_grace
            .map(|grace| reply_grace(grace.unwrap_or(serde_json::Value::Null)))
            .transpose()?,
    };
    if changes == StoreChanges::default() {
        let store = state.storage.store(StoreId(id)).await?;
        return Ok(Json(store.ok_or_else(|| store_not_found(id))?.into()));
    }
    match directory::update_store(state.storage.as_ref(), StoreId(id), changes).await {
        Ok(store) => {
            tracing::info!(
                store = id,
                active_hours = ?store.active_hours.as_ref().map(ToString::to_string),
                max_per_client = ?store.max_per_client.map(|cap| cap.to_string()),
                reply_grace = %store.reply_grace,
                "store delivery settings changed"
            );
            Ok(Json(store.into()))
        }
        Err(DirectoryError::NotFound { .. }) => Err(store_not_found(id)),
        Err(e) => Err(e.into()),
    }
}

/// The store's closures: client-local days and stretches when nothing is sent.
#[utoipa::path(
    get,
    path = "/store/{id}/closures/",
    tag = "directory",
    params(("id" = i64, Path, description = "Store id", minimum = 1)),
    responses(
        (status = 200, description = "The closures, in the order given", body = ClosuresResponse),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`store_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn get_closures(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<ClosuresResponse>, ApiError> {
    caller.check(
        access::may_read(&caller.principal, &Resource::Store(StoreId(id))),
        || store_not_found(id),
    )?;
    let store = state
        .storage
        .store(StoreId(id))
        .await?
        .ok_or_else(|| store_not_found(id))?;
    Ok(Json(ClosuresResponse(store.closures)))
}

/// Replaces the store's closures (`[]` removes them all): whole client-local days
/// `{"date":"2026-12-25"}` and stretches `{"from":"2026-12-31T18:00","to":"2027-01-02T09:00"}`
/// (start included, end excluded), at most 366. A message due inside a closure waits for
/// the first window after it.
#[utoipa::path(
    put,
    path = "/store/{id}/closures/",
    tag = "directory",
    params(("id" = i64, Path, description = "Store id", minimum = 1)),
    request_body(content = ClosuresResponse, description = "The new list"),
    responses(
        (status = 200, description = "The closures as they are now", body = ClosuresResponse),
        (status = 400, description = "`invalid_id`, `invalid_json`", body = ErrorBody),
        (status = 404, description = "`store_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_closures`, naming the closure's index and field", body = ErrorBody),
    )
)]
pub(crate) async fn put_closures(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(body): JsonBody<Checked<Closures>>,
) -> Result<Json<ClosuresResponse>, ApiError> {
    caller.check(
        access::may_change(&caller.principal, &Resource::Store(StoreId(id))),
        || store_not_found(id),
    )?;
    let closures = body.into_result().map_err(|e| {
        let message = match e.index() {
            Some(_) => format!("closures{e}"),
            None => format!("closures: {e}"),
        };
        ApiError::unprocessable("invalid_closures", message).with_field("closures")
    })?;
    match directory::set_store_closures(state.storage.as_ref(), StoreId(id), closures).await {
        Ok(store) => {
            tracing::info!(store = id, closures = %store.closures, "store closures replaced");
            Ok(Json(ClosuresResponse(store.closures)))
        }
        Err(DirectoryError::NotFound { .. }) => Err(store_not_found(id)),
        Err(e) => Err(e.into()),
    }
}

/// Creates a client of a store. An email already known in that store is 409
/// `client_exists`, whose error carries the existing `clientId`; another store's client with
/// the same email is another client.
#[utoipa::path(
    post,
    path = "/clients/",
    tag = "directory",
    request_body = CreateClientBody,
    responses(
        (status = 201, description = "Created", body = ClientResponse),
        (status = 400, description = "`invalid_json`, `invalid_request` (e.g. no `storeId`)", body = ErrorBody),
        (status = 404, description = "`store_not_found` (field `storeId`)", body = ErrorBody),
        (status = 409, description = "`client_exists` (with `clientId`)", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_email`, `invalid_time_zone`", body = ErrorBody),
    )
)]
pub(crate) async fn create_client(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(Object(body)): JsonBody<Object<CreateClientBody>>,
) -> Result<Response, ApiError> {
    let requested = body.store_id.map(StoreId);
    let store = access::target_store(&caller.principal, requested)
        .map_err(|d| {
            denied(d, || {
                store_not_found(requested.map_or(0, |s| s.0)).with_field("storeId")
            })
        })?
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request",
                "invalid request body: missing field `storeId` (the client's store)",
            )
            .with_field("storeId")
        })?;
    caller.check(
        access::may_create(&caller.principal, &NewResource::Client { store }),
        || store_not_found(store.0).with_field("storeId"),
    )?;
    // The name last (see `create_store`).
    let client = NewClient {
        store_id: store,
        email: email("email", &body.email)?,
        time_zone: body
            .time_zone
            .as_deref()
            .map(|tz| time_zone("timeZone", tz))
            .transpose()?,
        name: name("name", &body.name)?,
    };
    let client = directory::create_client(state.storage.as_ref(), client)
        .await
        .map_err(|e| match e {
            // A store one cannot see is answered as if it did not exist (SPEC §9).
            DirectoryError::NotFound { what: "store", id } => {
                store_not_found(id).with_field("storeId")
            }
            e => e.into(),
        })?;
    tracing::info!(client = %client.id, store = %client.store_id, "client created");
    let target = AuditTarget::new("client", client.id, Some(client.store_id));
    let mut response = (StatusCode::CREATED, Json(ClientResponse::from(client))).into_response();
    response.extensions_mut().insert(target);
    Ok(response)
}

/// Changes a client's name, email or zone; absent fields are left as they are and
/// `"timeZone": null` clears the zone. Messages already waiting follow the new zone at
/// send time.
#[utoipa::path(
    patch,
    path = "/client/{id}/",
    tag = "directory",
    params(("id" = i64, Path, description = "Client id", minimum = 1)),
    request_body = PatchClientBody,
    responses(
        (status = 200, description = "The client as it is now", body = ClientResponse),
        (status = 400, description = "`invalid_id`, `invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 404, description = "`client_not_found`", body = ErrorBody),
        (status = 409, description = "`client_exists` (with `clientId`): another client of the same store has the email", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_email`, `invalid_time_zone`", body = ErrorBody),
    )
)]
pub(crate) async fn patch_client(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(Object(body)): JsonBody<Object<PatchClientBody>>,
) -> Result<Json<ClientResponse>, ApiError> {
    let client_not_found =
        || ApiError::not_found("client_not_found", format!("client {id} not found"));
    let existing = state
        .storage
        .client(UserId(id))
        .await?
        .ok_or_else(client_not_found)?;
    caller.check(
        access::may_change(
            &caller.principal,
            &Resource::Client {
                store: existing.store_id,
            },
        ),
        client_not_found,
    )?;
    // The name's null first and its text last (see `create_store`).
    let new_name = body.name.map(|n| not_null("name", n)).transpose()?;
    let changes = ClientChanges {
        email: body
            .email
            .map(|e| not_null("email", e).and_then(|e| email("email", &e)))
            .transpose()?,
        time_zone: body
            .time_zone
            .map(|tz| {
                tz.as_deref()
                    .map(|tz| time_zone("timeZone", tz))
                    .transpose()
            })
            .transpose()?,
        name: new_name.map(|n| name("name", &n)).transpose()?,
    };
    let client = directory::update_client(state.storage.as_ref(), UserId(id), changes).await?;
    tracing::info!(client = id, "client changed");
    Ok(Json(client.into()))
}

/// Opens a conversation between a store's operator and a client of the same store.
#[utoipa::path(
    post,
    path = "/conversations/",
    tag = "conversations",
    request_body = CreateConversationBody,
    responses(
        (status = 201, description = "Created, open, without chats", body = ConversationResponse),
        (status = 400, description = "`invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 422, description = "`unknown_store`, `unknown_operator`, `unknown_client`, `operator_not_in_store`, `client_not_in_store`, `invalid_field`", body = ErrorBody),
    )
)]
pub(crate) async fn create_conversation(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(Object(body)): JsonBody<Object<CreateConversationBody>>,
) -> Result<Response, ApiError> {
    let requested = body.store_id.map(StoreId);
    let store = access::target_store(&caller.principal, requested)
        .map_err(|d| denied(d, || store_not_found(requested.map_or(0, |s| s.0))))?
        .ok_or_else(|| {
            ApiError::unprocessable(
                "missing_field",
                "storeId: required (the conversation's store)",
            )
            .with_field("storeId")
        })?;
    caller.check(
        access::may_create(&caller.principal, &NewResource::Conversation { store }),
        || store_not_found(store.0),
    )?;
    let conversation = NewConversation {
        store_id: store,
        operator_id: UserId(body.operator_id),
        client_id: UserId(body.client_id),
        discount_code: body
            .discount_code
            .as_deref()
            .map(discount_code)
            .transpose()?,
    };
    let context = directory::create_conversation(state.storage.as_ref(), conversation).await?;
    tracing::info!(conversation = %context.conversation.id, "conversation created");
    let target = AuditTarget::new("conversation", context.conversation.id, Some(store));
    let mut response = (
        StatusCode::CREATED,
        Json(ConversationResponse::new(&context, &[], &[])),
    )
        .into_response();
    response.extensions_mut().insert(target);
    Ok(response)
}

/// Resolves or reopens a conversation; scheduled messages are left as they are.
#[utoipa::path(
    patch,
    path = "/conversation/{id}/",
    tag = "conversations",
    params(("id" = i64, Path, description = "Conversation id", minimum = 1)),
    request_body = PatchConversationBody,
    responses(
        (status = 200, description = "The conversation as it is now, with its newest 100 chats", body = ConversationResponse),
        (status = 400, description = "`invalid_id`, `invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn patch_conversation(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(Object(body)): JsonBody<Object<PatchConversationBody>>,
) -> Result<Response, ApiError> {
    if body.status.is_none() && body.operator_id.is_none() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "invalid request body: missing field `status` (or `operatorId` to reassign)",
        )
        .with_field("status"));
    }
    let context = state
        .storage
        .conversation(ConversationId(id))
        .await?
        .ok_or_else(|| conversation_not_found(id))?;
    let principal = &caller.principal;
    let resource = Resource::from(&context.conversation);
    caller.check(access::may_read(principal, &resource), || {
        conversation_not_found(id)
    })?;
    if body.operator_id.is_some() {
        caller.check(
            access::may_reassign(principal, &context.conversation),
            || conversation_not_found(id),
        )?;
    }
    if body.status.is_some() {
        caller.check(access::may_change(principal, &resource), || {
            conversation_not_found(id)
        })?;
    }
    if let Some(operator) = body.operator_id {
        directory::reassign_conversation(
            state.storage.as_ref(),
            ConversationId(id),
            UserId(operator),
        )
        .await?;
        tracing::info!(conversation = id, operator, "conversation reassigned");
    }
    if let Some(status) = body.status {
        let status = ConversationStatus::from(status);
        directory::set_conversation_status(state.storage.as_ref(), ConversationId(id), status)
            .await?;
        tracing::info!(conversation = id, %status, "conversation status set");
    }
    let page = Page {
        limit: DEFAULT_PAGE,
        before: None,
    };
    let view = conversation_view(
        state.storage.as_ref(),
        state.clock.as_ref(),
        &state.rules,
        ConversationId(id),
        page,
    )
    .await?
    .ok_or_else(|| conversation_not_found(id))?;
    let target = AuditTarget::new("conversation", id, Some(view.context.conversation.store_id));
    let mut response = Json(ConversationResponse::from(&view)).into_response();
    response.extensions_mut().insert(target);
    Ok(response)
}

/// The conversations, most recent activity first (the newest chat's id, descending).
///
/// Pass `nextCursor` as `cursor` for the next page; the cursor is opaque and stable while
/// new chats arrive (no conversation is skipped or repeated).
#[utoipa::path(
    get,
    path = "/conversations/",
    tag = "conversations",
    params(
        ("status" = Option<crate::api::ConvStatus>, Query, description = "Only `open` or only `resolved` conversations"),
        ("storeId" = Option<i64>, Query, description = "Only this store's", minimum = 1),
        ("operatorId" = Option<i64>, Query, description = "Only this operator's", minimum = 1),
        ("limit" = Option<u32>, Query, description = "Rows per page (1 to 500, default 50)", minimum = 1),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = ConversationsPage),
        (status = 400, description = "`invalid_query`, `invalid_cursor`", body = ErrorBody),
    )
)]
pub(crate) async fn list_conversations(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(query): QueryMap,
) -> Result<Json<ConversationsPage>, ApiError> {
    let invalid = |name: &str, raw: &str, expected: &str| {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "invalid {name} {}: expected {expected}",
                extract::quoted(raw)
            ),
        )
    };
    let id = |name: &str| -> Result<Option<i64>, ApiError> {
        query
            .get(name)
            .map(|raw| parse_id(raw).ok_or_else(|| invalid(name, raw, "a positive integer")))
            .transpose()
    };
    let filter = ConversationFilter {
        status: query
            .get("status")
            .map(|raw| {
                raw.parse::<ConversationStatus>()
                    .map_err(|_| invalid("status", raw, "open or resolved"))
            })
            .transpose()?,
        store_id: {
            let requested = id("storeId")?.map(StoreId);
            access::list_scope(&caller.principal, Listing::Conversations, requested)
                .map_err(|d| denied(d, || store_not_found(requested.map_or(0, |s| s.0))))?
        },
        operator_id: id("operatorId")?.map(UserId),
    };
    let limit = query
        .get("limit")
        .map(|raw| extract::parse_limit(raw, conversations::MAX_LIMIT))
        .transpose()?
        .unwrap_or(conversations::DEFAULT_LIMIT);
    let cursor = query
        .get("cursor")
        .map(|raw| Cursor::decode(raw))
        .transpose()?;
    let page =
        conversations::list_conversations(state.storage.as_ref(), filter, limit, cursor).await?;
    Ok(Json(ConversationsPage {
        conversations: page
            .conversations
            .into_iter()
            .map(ConversationRow::from)
            .collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}
