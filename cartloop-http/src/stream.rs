//! `GET /events/`: the live stream of events as Server-Sent Events (SPEC §10).
//!
//! Each event goes out as `id: <event id>`, `event: <type>`, `data: <json>` (the event's
//! webhook shape), restricted to what the principal may see (a store's principals their
//! store's events, an admin every store's; `?storeId=` narrows an admin's), to `?types=`
//! and to `?conversationId=`. A stream starts after `Last-Event-ID` (or `?lastEventId=`),
//! else at the newest event written: it first reads every kept event after that id from
//! the log, in pages, then follows the server's [`Hub`](crate::hub::Hub). It subscribes to
//! the hub *before* reading the log, and skips live events at or below the last one read
//! from it, so none is missed and none comes twice.
//!
//! Special events: `reset` (the `Last-Event-ID` is older than the oldest event kept: the
//! stream goes on from the oldest kept) and `cutoff` (the client fell too far behind, or
//! the log could not be read: the stream ends, and its `id` is the last event it sent, to
//! resume from). A comment line every 15 s keeps idle streams open.

use crate::auth::{denied, Caller};
use crate::chats::conversation_not_found;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{self, parse_id, QueryMap};
use crate::hub::{FollowError, Follower};
use crate::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use cartloop_core::access::{self, Listing, Resource};
use cartloop_core::event::{EventId, EventType};
use cartloop_core::ids::{ConversationId, StoreId};
use cartloop_core::ports::EventFilter;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;

/// The stream of events the caller may see, as Server-Sent Events.
///
/// Resume with `Last-Event-ID` (or `?lastEventId=`): every kept event after it comes first,
/// then the live ones. An `event: reset` says the id was older than what is kept (7 days);
/// an `event: cutoff` ends a stream that fell too far behind (its `id` is where to resume).
#[utoipa::path(
    get,
    path = "/events/",
    tag = "events",
    params(
        ("types" = Option<String>, Query, description = "Only these event types, comma-separated (e.g. `chat.received,chat.sent`)"),
        ("conversationId" = Option<i64>, Query, description = "Only this conversation's events", minimum = 1),
        ("storeId" = Option<i64>, Query, description = "Only this store's events", minimum = 1),
        ("lastEventId" = Option<String>, Query, description = "Resume after this event id (as the `Last-Event-ID` header)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "The stream: `id:`, `event:` and `data:` lines per event", body = String, content_type = "text/event-stream"),
        (status = 400, description = "`invalid_query`, `invalid_last_event_id`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`, `store_not_found`", body = ErrorBody),
        (status = 422, description = "`unknown_event_type`", body = ErrorBody),
    )
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryMap(query): QueryMap,
) -> Result<Response, ApiError> {
    let invalid = |name: &str, raw: &str, expected: &str| {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "invalid {name} {}: expected {expected}",
                extract::quoted(raw)
            ),
        )
    };
    let requested = query
        .get("storeId")
        .map(|raw| {
            parse_id(raw)
                .map(StoreId)
                .ok_or_else(|| invalid("storeId", raw, "a positive integer"))
        })
        .transpose()?;
    let store = access::list_scope(&caller.principal, Listing::Events, requested).map_err(|d| {
        denied(d, || {
            ApiError::not_found(
                "store_not_found",
                format!("store {} not found", requested.map_or(0, |s| s.0)),
            )
        })
    })?;
    let types = query
        .get("types")
        .map(|raw| parse_types(raw))
        .transpose()?
        .flatten();
    let conversation = match query.get("conversationId") {
        None => None,
        Some(raw) => {
            let id = parse_id(raw)
                .ok_or_else(|| invalid("conversationId", raw, "a positive integer"))?;
            let found = state
                .storage
                .conversation(ConversationId(id))
                .await?
                .ok_or_else(|| conversation_not_found(id))?;
            let resource = Resource::from(&found.conversation);
            caller.check(access::may_read(&caller.principal, &resource), || {
                conversation_not_found(id)
            })?;
            Some(ConversationId(id))
        }
    };
    let resume = match headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned())
        .or_else(|| query.get("lastEventId").cloned())
    {
        None => None,
        Some(raw) if raw.trim().is_empty() => None,
        Some(raw) => Some(EventId::parse(&raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_last_event_id",
                format!(
                    "invalid Last-Event-ID {}: expected an event id such as evt_000000000123",
                    extract::quoted(&raw)
                ),
            )
        })?),
    };
    let filter = EventFilter {
        store,
        conversation,
        types,
    };
    let mut pending = VecDeque::new();
    if let Some(after) = resume {
        {
            if let Some(oldest) = oldest_kept(&state, after).await? {
                pending.push_back(
                    SseEvent::default().event("reset").data(
                        json!({
                            "lastEventId": after.to_text(),
                            "oldestEventId": oldest.to_text(),
                        })
                        .to_string(),
                    ),
                );
            }
        }
    }
    let follower = state.hub.follow(resume, filter).await?;
    let keep_alive = state.hub.settings().keep_alive;
    let open = OpenStream::new(state.metrics.clone());
    let feed = Feed {
        state,
        follower,
        pending,
        _open: open,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let next = feed.next().await?;
        Some((Ok::<_, Infallible>(next), feed))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(keep_alive).text("keep-alive"))
        .into_response())
}

/// `?types=a,b`: every name must be a stored event type (`*` is all of them).
fn parse_types(raw: &str) -> Result<Option<Vec<EventType>>, ApiError> {
    let mut kinds = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "*" {
            return Ok(None);
        }
        let kind = EventType::parse(name)
            .filter(|k| *k != EventType::WebhookTest)
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "unknown_event_type",
                    format!("types: {} is not an event type", extract::quoted(name)),
                )
                .with_field("types")
            })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err(ApiError::unprocessable(
            "unknown_event_type",
            "types: name at least one event type, or *",
        )
        .with_field("types"));
    }
    Ok(Some(kinds))
}

/// The oldest kept event's id when events after `after` were pruned already.
async fn oldest_kept(state: &AppState, after: EventId) -> Result<Option<EventId>, ApiError> {
    let oldest = state
        .storage
        .events_after(EventId(0), &EventFilter::default(), 1)
        .await?;
    Ok(oldest
        .first()
        .map(|e| e.id)
        .filter(|oldest| oldest.0 > after.0.saturating_add(1)))
}

/// Counts an open stream in `cartloop_event_streams_open` while it lives.
struct OpenStream(crate::Metrics);

impl OpenStream {
    fn new(metrics: crate::Metrics) -> Self {
        metrics.stream_opened();
        Self(metrics)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.stream_closed();
    }
}

/// One stream's state: its follower of the hub, and what goes out first.
struct Feed {
    state: AppState,
    follower: Follower,
    /// What goes out before anything else (a `reset`).
    pending: VecDeque<SseEvent>,
    _open: OpenStream,
}

impl Feed {
    async fn next(&mut self) -> Option<SseEvent> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        match self.follower.next().await? {
            Ok(event) => {
                self.state.metrics.event_streamed();
                Some(
                    SseEvent::default()
                        .id(event.id.to_text())
                        .event(event.kind.as_str())
                        .data(event.to_json().to_string()),
                )
            }
            Err(e) => {
                let (last, reason) = match &e {
                    FollowError::Lagged { last } => (*last, "the client fell too far behind"),
                    FollowError::Storage { last, .. } => {
                        tracing::warn!(error = %e, "an event stream could not read the log");
                        (*last, "the event log could not be read")
                    }
                };
                Some(cut_off(last, reason))
            }
        }
    }
}

/// The last event of a stream that ends early: where to resume.
fn cut_off(last: EventId, reason: &str) -> SseEvent {
    SseEvent::default().id(last.to_text()).event("cutoff").data(
        json!({
            "lastEventId": last.to_text(),
            "reason": reason,
        })
        .to_string(),
    )
}
