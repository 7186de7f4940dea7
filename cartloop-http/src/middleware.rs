//! What runs around every request, route or not: metrics and the log line, the panic
//! guard and the time limit (the caller's credentials are [`auth`](crate::auth)'s).

use crate::error::ApiError;
use crate::metrics::UNMATCHED;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

/// Counts and logs every request, by route template.
pub(crate) async fn track(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| canonical(m.as_str()));
    if let Some(route) = route.filter(|r| *r != UNMATCHED) {
        request
            .extensions_mut()
            .insert(crate::extract::MatchedRoute(route));
    }
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let route = route.unwrap_or(UNMATCHED);
    state.metrics.http_request(route, &method, status, elapsed);
    if response
        .extensions()
        .get::<crate::error::StorageFullAnswered>()
        .is_some()
    {
        state.metrics.storage_disk_fault();
    }
    tracing::info!(
        %method,
        route,
        status,
        micros = elapsed.as_micros() as u64,
        "request"
    );
    response
}

/// The route table's form of a matched path: `/conversation/{id}` and
/// `/conversation/{id}/` are one route, counted under the second. When the router is nested
/// in another (`Router::nest("/api", ...)`), the matched path carries the prefix: the
/// longest table path it ends with is the route.
fn canonical(matched: &str) -> &'static str {
    static CANONICAL: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    let table = CANONICAL.get_or_init(|| {
        crate::route_table()
            .into_iter()
            .flat_map(|route| {
                crate::routes::path_variants(route.path)
                    .into_iter()
                    .map(move |variant| (variant, route.path))
            })
            .collect()
    });
    if let Some(route) = table.get(matched) {
        return route;
    }
    table
        .iter()
        .filter(|(variant, _)| matched.ends_with(variant.as_str()))
        .max_by_key(|(variant, _)| variant.len())
        .map_or(UNMATCHED, |(_, route)| route)
}

const BODY_IDLE: u8 = 0;
const BODY_READING: u8 = 1;
const BODY_DONE: u8 = 2;

/// Answers a request that takes longer than the request timeout: 408 `request_timeout`
/// when its body was still arriving (the client's fault), else 503 `unavailable` (ours).
pub(crate) async fn deadline(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let progress = Arc::new(AtomicU8::new(BODY_IDLE));
    let watched = progress.clone();
    let request = request.map(|inner| {
        Body::new(WatchedBody {
            inner,
            progress: watched,
        })
    });
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) if progress.load(Ordering::Acquire) == BODY_READING => {
            let mut response = ApiError::request_timeout().into_response();
            // The rest of the body may still come: this connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        Err(_) => ApiError::unavailable("request timed out").into_response(),
    }
}

/// A request body that records whether it is being read, so [`deadline`] can tell a body
/// that stalls from a handler that does.
struct WatchedBody {
    inner: Body,
    progress: Arc<AtomicU8>,
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let progress = match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => BODY_DONE,
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => BODY_DONE,
            Poll::Ready(Some(Ok(_))) | Poll::Pending => BODY_READING,
        };
        self.progress.store(progress, Ordering::Release);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A handler that panicked: a JSON 500 (the panic itself is in the log).
pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handler panicked").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use cartloop_core::testing::MemoryStorage;
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tower::ServiceExt;

    /// A route that reads its body, then takes an hour: our fault, not the client's.
    fn slow_app() -> Router {
        let clock = Arc::new(cartloop_core::testing::ManualClock::new(chrono::Utc::now()));
        let mut state = AppState::new(Arc::new(MemoryStorage::new()), clock);
        state.request_timeout = Duration::from_secs(1);
        Router::new()
            .route(
                "/slow",
                post(|body: Body| async move {
                    let _ = body.collect().await;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                deadline,
            ))
            .with_state(state)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_is_503() {
        for body in [Body::empty(), Body::from("complete")] {
            let request = Request::post("/slow").body(body).unwrap();
            let response = slow_app().oneshot(request).await.unwrap();
            assert_eq!(
                response.status(),
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_408() {
        let stalled =
            Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
        let request = Request::post("/slow").body(stalled).unwrap();
        let response = slow_app().oneshot(request).await.unwrap();
        assert_eq!(response.status(), axum::http::StatusCode::REQUEST_TIMEOUT);
    }
}
