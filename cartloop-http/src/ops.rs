//! Running the service: health, demo data, metrics, the API document, and the answers for
//! unknown routes and methods.

use crate::api::{Health, ImportResponse};
use crate::error::{ApiError, ErrorBody};
use crate::{extract, AppState};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cartloop_core::demo::demo_data;
use cartloop_core::disk_fault::{DiskFault, DiskFaultKind};

/// Liveness: answers 200 when the storage answers, `degraded` while it answers reads but
/// its disk refuses writes (full or failing: a passing fault that restarting would not
/// fix, so the answer is still 200). Needs no token.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "Up (`status` `ok`), or up with writes refused (`degraded`)", body = Health),
        (status = 503, description = "`unavailable`: the storage does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let health = storage_health(&state).await?;
    Ok(Json(health))
}

/// The storage's health as `ping` finds it, also kept in the `cartloop_storage_degraded`
/// gauge.
async fn storage_health(state: &AppState) -> Result<Health, ApiError> {
    let error = match state.storage.ping().await {
        Ok(()) => {
            state.metrics.storage_degraded(false);
            return Ok(Health {
                status: "ok",
                storage: "ok",
                message: None,
            });
        }
        Err(e) => e,
    };
    let Some(fault) = DiskFault::of(&error) else {
        return Err(error.into());
    };
    state.metrics.storage_degraded(true);
    Ok(Health {
        status: "degraded",
        storage: match fault.kind() {
            DiskFaultKind::Full => "full",
            DiskFaultKind::Io => "failing",
        },
        message: Some(format!(
            "{fault}: writes are refused (503 storage_full) until it takes them again; \
             reads work"
        )),
    })
}

/// Loads the demo data set, idempotently: a second call inserts nothing.
#[utoipa::path(
    get,
    path = "/import_data/",
    tag = "service",
    responses(
        (status = 200, description = "Loaded (`inserted` 0 when it was there already)", body = ImportResponse),
        (status = 409, description = "`import_conflict`: a demo id holds other data", body = ErrorBody),
    )
)]
pub(crate) async fn import_data(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
) -> Result<Json<ImportResponse>, ApiError> {
    caller.check(
        cartloop_core::access::may_administer(&caller.principal),
        ApiError::unauthorized,
    )?;
    let data = demo_data();
    let summary = cartloop_core::demo::import_demo(state.storage.as_ref()).await?;
    if summary.inserted > 0 {
        tracing::info!(inserted = summary.inserted, "demo data imported");
    }
    Ok(Json(ImportResponse {
        status: "ok",
        inserted: summary.inserted,
        stores: data.stores.len(),
        operators: data.operators.len(),
        clients: data.clients.len(),
        conversations: data.conversations.len(),
        chats: data.messages.len(),
    }))
}

/// Loads the demo data set, idempotently (as `GET`).
#[utoipa::path(
    post,
    path = "/import_data/",
    tag = "service",
    responses(
        (status = 200, description = "Loaded (`inserted` 0 when it was there already)", body = ImportResponse),
        (status = 409, description = "`import_conflict`: a demo id holds other data", body = ErrorBody),
    )
)]
pub(crate) async fn import_data_post(
    state: State<AppState>,
    caller: crate::auth::Caller,
) -> Result<Json<ImportResponse>, ApiError> {
    import_data(state, caller).await
}

/// `HEAD` would load the data too (axum answers it with the `GET` handler), and a `HEAD`
/// must not change anything: it is refused.
pub(crate) async fn refuse_head() -> Response {
    let mut response = ApiError::method_not_allowed().into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET,POST"));
    response
}

/// The server's figures in the Prometheus text format: requests by route template and
/// status, latency, emails sent, retried, failed and suppressed, messages waiting, the
/// oldest due message's age and the dispatch lag.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"))
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
) -> Response {
    // On the API address, admins only; the separate metrics address has no caller.
    if let Some(axum::Extension(caller)) = caller {
        if let Err(refused) = caller.check(
            cartloop_core::access::may_administer(&caller.principal),
            ApiError::unauthorized,
        ) {
            return refused.into_response();
        }
    }
    // Sets the degraded gauge; an unreachable storage shows in the backlog's absence.
    let _ = storage_health(&state).await;
    let now = state.clock.now();
    let backlog = match state.storage.backlog(now).await {
        Ok(backlog) => Some((backlog, now)),
        Err(e) => {
            // The request figures are still worth a scrape; the gauges are left out.
            tracing::warn!(error = %e.detail(), "metrics: backlog unavailable");
            None
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        state.metrics.render(backlog),
    )
        .into_response()
}

/// The answer for a path no route matches.
pub(crate) async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(
        "route_not_found",
        format!(
            "no route for {} {}",
            request.method(),
            extract::cut(request.uri().path())
        ),
    )
}

/// The answer for a method a route does not take.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
