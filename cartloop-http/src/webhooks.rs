//! Webhooks over HTTP (SPEC §10): `POST /webhooks/`, `GET /webhooks/`,
//! `GET`/`PATCH`/`DELETE /webhook/{id}/`, `GET /webhook/{id}/deliveries/` and
//! `POST /webhook/{id}/test/`.
//!
//! A store's `manager` and `integration` manage its webhooks; an admin all of them, and
//! only an admin makes deployment-wide ones (no `storeId`). Another store's webhook is 404
//! as if unknown. The secret is in the answer that makes the webhook, and never again.
//! A URL must be `http(s)` and its host resolve (DNS now) to public addresses only, unless
//! the deployment allows private ones (`WEBHOOK_ALLOW_PRIVATE`); deliveries check again
//! at every attempt ([`crate::webhook_client`]).

use crate::audit::AuditTarget;
use crate::auth::{denied, Caller};
use crate::credentials::new_webhook_secret;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{self, JsonBody, PathId, QueryMap};
use crate::webhook_client::HostError;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cartloop_core::access::{self, Listing, NewResource, Resource};
use cartloop_core::event::{Event, EventId, EventSelection, EventType};
use cartloop_core::ids::StoreId;
use cartloop_core::ports::{
    AttemptStatus, DeliveryAttempt, NewWebhook, StorageError, Webhook, WebhookChanges, WebhookId,
};
use cartloop_core::webhook_retry::Outcome;
use cartloop_core::webhook_signature::WebhookSecret;
use cartloop_core::webhook_url::WebhookUrl;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// Attempts `GET /webhook/{id}/deliveries/` shows without `?limit`.
const DEFAULT_LOG: u32 = 50;
/// The most it shows.
const MAX_LOG: u32 = 1000;

fn webhook_not_found(id: i64) -> ApiError {
    ApiError::not_found("webhook_not_found", format!("webhook {id} not found"))
}

fn store_not_found(id: Option<StoreId>) -> ApiError {
    ApiError::not_found(
        "store_not_found",
        format!("store {} not found", id.map_or(0, |s| s.0)),
    )
}

/// `POST /webhooks/` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"url": "https://shop.example.com/hooks/cartloop", "events": ["chat.sent", "chat.failed"], "storeId": 1}))]
pub(crate) struct CreateWebhookBody {
    /// Where deliveries go: `http(s)`, a public address.
    url: String,
    /// Event types, or `["*"]` for all.
    events: Vec<String>,
    /// The store whose events it gets (a store principal's own is implied); an admin
    /// leaves it out for a deployment-wide webhook.
    #[serde(default)]
    store_id: Option<i64>,
}

/// `PATCH /webhook/{id}/` body: any of the fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"enabled": true}))]
pub(crate) struct PatchWebhookBody {
    /// New URL.
    #[serde(default)]
    url: Option<String>,
    /// New event types (or `["*"]`), for events written from now on.
    #[serde(default)]
    events: Option<Vec<String>>,
    /// On or off; turning it on clears `disabledReason` and lets waiting deliveries go.
    #[serde(default)]
    enabled: Option<bool>,
}

/// A webhook (its secret only once, when it is made).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookResponse {
    webhook_id: i64,
    url: String,
    #[schema(example = json!(["chat.sent"]))]
    events: Vec<&'static str>,
    /// `null` for a deployment-wide webhook.
    store_id: Option<i64>,
    enabled: bool,
    /// Why the server turned it off (the receiver answered 410), if it did.
    disabled_reason: Option<String>,
    created_at: String,
    /// `whsec_...`: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl From<Webhook> for WebhookResponse {
    fn from(w: Webhook) -> Self {
        Self {
            webhook_id: w.id.0,
            url: w.url,
            events: w.events.names(),
            store_id: w.store_id.map(|s| s.0),
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            created_at: crate::api::rfc3339(w.created_at),
            secret: None,
        }
    }
}

/// The webhooks the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookList {
    webhooks: Vec<WebhookResponse>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttemptResponse {
    /// The event's id (`null` for a test send).
    event_id: Option<String>,
    #[schema(example = "chat.sent")]
    r#type: &'static str,
    attempt: u32,
    #[schema(example = "delivered")]
    status: &'static str,
    response_status: Option<u16>,
    error: Option<String>,
    duration_ms: u64,
    at: String,
}

impl From<DeliveryAttempt> for AttemptResponse {
    fn from(a: DeliveryAttempt) -> Self {
        Self {
            event_id: a.event_id.map(EventId::to_text),
            r#type: a.kind.as_str(),
            attempt: a.attempt,
            status: a.status.as_str(),
            response_status: a.response_status,
            error: a.error,
            duration_ms: a.duration_ms,
            at: crate::api::rfc3339(a.at),
        }
    }
}

/// The latest attempts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttemptList {
    deliveries: Vec<AttemptResponse>,
}

fn parse_url(raw: &str) -> Result<WebhookUrl, ApiError> {
    WebhookUrl::parse(raw)
        .map_err(|e| ApiError::unprocessable("invalid_url", format!("url: {e}")).with_field("url"))
}

async fn check_url(state: &AppState, url: &WebhookUrl) -> Result<(), ApiError> {
    state
        .webhook_client
        .check_host(url)
        .await
        .map_err(|e| match e {
            HostError::NotAllowed { .. } => {
                ApiError::unprocessable("url_not_allowed", format!("url: {e}")).with_field("url")
            }
            HostError::Unresolved { .. } => {
                ApiError::unprocessable("url_unresolved", format!("url: {e}")).with_field("url")
            }
        })
}

fn parse_events(names: &[String]) -> Result<EventSelection, ApiError> {
    EventSelection::parse(names).map_err(|e| {
        ApiError::unprocessable("invalid_events", extract::cut(&e.to_string())).with_field("events")
    })
}

/// The webhook `id` if the caller may see it (another store's is not found).
async fn load(
    state: &AppState,
    caller: &Caller,
    id: i64,
    change: bool,
) -> Result<Webhook, ApiError> {
    let webhook = state
        .storage
        .webhook(WebhookId(id))
        .await?
        .ok_or_else(|| webhook_not_found(id))?;
    let resource = Resource::Webhook {
        store: webhook.store_id,
    };
    let answer = if change {
        access::may_change(&caller.principal, &resource)
    } else {
        access::may_read(&caller.principal, &resource)
    };
    caller.check(answer, || webhook_not_found(id))?;
    Ok(webhook)
}

fn audited(response: impl IntoResponse, webhook: &Webhook) -> Response {
    let mut response = response.into_response();
    response
        .extensions_mut()
        .insert(AuditTarget::new("webhook", webhook.id.0, webhook.store_id));
    response
}

/// Makes a webhook; the answer's `secret` is the only time it is shown.
#[utoipa::path(
    post,
    path = "/webhooks/",
    tag = "webhooks",
    request_body = CreateWebhookBody,
    responses(
        (status = 201, description = "Made; `secret` is shown this once", body = WebhookResponse),
        (status = 400, description = "`invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`webhook.manage`, `admin`)", body = ErrorBody),
        (status = 404, description = "`store_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_url`, `invalid_events`, `url_not_allowed`, `url_unresolved`", body = ErrorBody),
    )
)]
pub(crate) async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateWebhookBody>,
) -> Result<Response, ApiError> {
    let requested = body.store_id.map(StoreId);
    let store = access::target_store(&caller.principal, requested)
        .map_err(|d| denied(d, || store_not_found(requested)))?;
    caller.check(
        access::may_create(&caller.principal, &NewResource::Webhook { store }),
        || store_not_found(store),
    )?;
    let url = parse_url(&body.url)?;
    let events = parse_events(&body.events)?;
    check_url(&state, &url).await?;
    let secret = new_webhook_secret();
    let webhook = state
        .storage
        .create_webhook(NewWebhook {
            store_id: store,
            url: url.as_str().to_owned(),
            events,
            secret: secret.expose().to_owned(),
            created_at: state.clock.now(),
        })
        .await
        .map_err(|e| match e {
            StorageError::NotFound(_) => store_not_found(store),
            other => other.into(),
        })?;
    tracing::info!(webhook = webhook.id.0, store = ?webhook.store_id.map(|s| s.0), "webhook made");
    let mut answer = WebhookResponse::from(webhook.clone());
    answer.secret = Some(secret.expose().to_owned());
    Ok(audited((StatusCode::CREATED, Json(answer)), &webhook))
}

/// The webhooks the caller may see (never their secrets): an admin's all (or one store's
/// with `storeId`), a store principal's its store's.
#[utoipa::path(
    get,
    path = "/webhooks/",
    tag = "webhooks",
    params(("storeId" = Option<i64>, Query, description = "Only this store's webhooks", minimum = 1)),
    responses(
        (status = 200, description = "The webhooks", body = WebhookList),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`webhook.manage`)", body = ErrorBody),
        (status = 404, description = "`store_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(query): QueryMap,
) -> Result<Json<WebhookList>, ApiError> {
    let requested = match query.get("storeId") {
        None => None,
        Some(raw) => Some(StoreId(extract::parse_id(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "invalid storeId {}: expected a store id",
                    extract::quoted(raw)
                ),
            )
            .with_field("storeId")
        })?)),
    };
    let scope = access::list_scope(&caller.principal, Listing::Webhooks, requested)
        .map_err(|d| denied(d, || store_not_found(requested)))?;
    let webhooks = state.storage.list_webhooks(scope).await?;
    Ok(Json(WebhookList {
        webhooks: webhooks.into_iter().map(WebhookResponse::from).collect(),
    }))
}

/// One webhook (never its secret).
#[utoipa::path(
    get,
    path = "/webhook/{id}/",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id", minimum = 1)),
    responses(
        (status = 200, description = "The webhook", body = WebhookResponse),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`webhook.manage`)", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<WebhookResponse>, ApiError> {
    Ok(Json(load(&state, &caller, id, false).await?.into()))
}

/// Changes a webhook's URL, events or whether it is on.
#[utoipa::path(
    patch,
    path = "/webhook/{id}/",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id", minimum = 1)),
    request_body = PatchWebhookBody,
    responses(
        (status = 200, description = "Changed", body = WebhookResponse),
        (status = 400, description = "`invalid_id`, `invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`webhook.manage`)", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_url`, `invalid_events`, `url_not_allowed`, `url_unresolved`", body = ErrorBody),
    )
)]
pub(crate) async fn patch_webhook(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(body): JsonBody<PatchWebhookBody>,
) -> Result<Response, ApiError> {
    load(&state, &caller, id, true).await?;
    let url = body.url.as_deref().map(parse_url).transpose()?;
    let events = body.events.as_deref().map(parse_events).transpose()?;
    if let Some(url) = &url {
        check_url(&state, url).await?;
    }
    let webhook = state
        .storage
        .update_webhook(
            WebhookId(id),
            WebhookChanges {
                url: url.map(|u| u.as_str().to_owned()),
                events,
                enabled: body.enabled,
            },
        )
        .await?
        .ok_or_else(|| webhook_not_found(id))?;
    tracing::info!(webhook = id, "webhook changed");
    Ok(audited(
        Json(WebhookResponse::from(webhook.clone())),
        &webhook,
    ))
}

/// Deletes a webhook, its queue and its delivery log.
#[utoipa::path(
    delete,
    path = "/webhook/{id}/",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id", minimum = 1)),
    responses(
        (status = 200, description = "Deleted: the webhook as it was", body = WebhookResponse),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`webhook.manage`)", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let webhook = load(&state, &caller, id, true).await?;
    if !state.storage.delete_webhook(WebhookId(id)).await? {
        return Err(webhook_not_found(id));
    }
    tracing::info!(webhook = id, "webhook deleted");
    Ok(audited(
        Json(WebhookResponse::from(webhook.clone())),
        &webhook,
    ))
}

/// The latest delivery attempts, newest first.
#[utoipa::path(
    get,
    path = "/webhook/{id}/deliveries/",
    tag = "webhooks",
    params(
        ("id" = i64, Path, description = "Webhook id", minimum = 1),
        ("limit" = Option<u32>, Query, description = "How many (default 50, at most 1000)", minimum = 1),
    ),
    responses(
        (status = 200, description = "The attempts", body = AttemptList),
        (status = 400, description = "`invalid_id`, `invalid_query`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`webhook.manage`)", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    QueryMap(query): QueryMap,
) -> Result<Json<AttemptList>, ApiError> {
    let limit = match query.get("limit") {
        Some(raw) => extract::parse_limit(raw, MAX_LOG)?,
        None => DEFAULT_LOG,
    };
    load(&state, &caller, id, false).await?;
    let log = state.storage.delivery_log(WebhookId(id), limit).await?;
    Ok(Json(AttemptList {
        deliveries: log.into_iter().map(AttemptResponse::from).collect(),
    }))
}

/// Sends a `webhook.test` event at once (not queued, not retried), logs the attempt and
/// answers it.
#[utoipa::path(
    post,
    path = "/webhook/{id}/test/",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id", minimum = 1)),
    responses(
        (status = 200, description = "The attempt (`delivered` or `failed`)", body = AttemptResponse),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`webhook.manage`)", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn test_webhook(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let webhook = load(&state, &caller, id, true).await?;
    let secret = state
        .storage
        .webhook_secret(WebhookId(id))
        .await?
        .ok_or_else(|| webhook_not_found(id))?;
    let secret = WebhookSecret::parse(&secret)
        .map_err(|e| ApiError::internal(format!("webhook {id}'s stored secret: {e}")))?;
    let now = state.clock.now();
    let event = Event {
        id: EventId(0),
        kind: EventType::WebhookTest,
        created_at: now,
        store_id: webhook.store_id,
        conversation_id: None,
        data: json!({"webhookId": id, "url": webhook.url}),
    };
    let sent = state
        .webhook_client
        .send(&webhook.url, &secret, &event, now)
        .await;
    let attempt = DeliveryAttempt {
        webhook_id: webhook.id,
        event_id: None,
        kind: EventType::WebhookTest,
        attempt: 1,
        status: if sent.outcome == Outcome::Delivered {
            AttemptStatus::Delivered
        } else {
            AttemptStatus::Failed
        },
        response_status: sent.response_status,
        error: sent.error,
        duration_ms: sent.duration_ms,
        at: now,
    };
    state.storage.log_attempt(attempt.clone()).await?;
    tracing::info!(
        webhook = id,
        status = attempt.status.as_str(),
        "webhook test sent"
    );
    Ok(audited(Json(AttemptResponse::from(attempt)), &webhook))
}
