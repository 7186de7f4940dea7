//! The storage contract as tests. Each function takes a fresh, empty storage and panics on a
//! violation; [`storage_conformance_tests!`](crate::storage_conformance_tests) turns them all
//! into `#[tokio::test]`s with one line.
//!
//! The cases use whole-second instants (every backend keeps milliseconds) and only ASCII
//! case differences in emails. Where a contract allows a call to happen more often or
//! later (the [`watch_due`](crate::ports::DispatchQueue::watch_due) callbacks), the case
//! waits a few seconds at most and accepts more calls.
//!
//! Retries, as the dispatcher records them: a transient failure
//! (`reschedule(token, at, Some(error))`) keeps `send_at` and sets `next_attempt_at = at`;
//! a deferral or hand-back (`reschedule(token, at, None)`) and an operator's retry
//! (`retry_message`) set `send_at = at` and clear `next_attempt_at`. A `new` message is due
//! at `next_attempt_at`, else `send_at`.

//! One file per port — `directory`, `conversations`, `queue`, `admin`, `keys`, `accounts`,
//! `audit`, `events` (the event log and webhooks) — plus `delivery` (what the delivery policy keeps in the storage: store
//! settings, a message's timing, the frequency cap's reservations), and every `pub async
//! fn` in them is a case, and the build script
//! (`build.rs`) lists them all in the macro, so a new case cannot be left out.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod conversations;
pub mod delivery;
pub mod directory;
pub mod events;
pub mod keys;
pub mod queue;

pub(super) use crate::access::{AccessRole, OperatorRole};
pub(super) use crate::calendar::Calendar;
pub(super) use crate::closures::Closures;
pub(super) use crate::delivery_policy::WaitingFor;
pub(super) use crate::demo::demo_data;
pub(super) use crate::discount_code::DiscountCode;
pub(super) use crate::domain::{
    ClientChanges, ConversationStatus, Dataset, Message, MessageStatus, NewClient, NewConversation,
    NewMessage, NewOperator, NewStore, StoreChanges,
};
pub(super) use crate::email_address::EmailAddress;
pub(super) use crate::frequency_cap::FrequencyCap;
pub(super) use crate::ids::{ConversationId, MessageId, StoreId, UserId};
pub(super) use crate::name::Name;
pub(super) use crate::ports::{
    AccountChanges, ActivityKey, Actor, ActorKind, AuditFilter, Backlog, ClaimLimit,
    ConversationFilter, ConversationSummary, DeliveryFacts, NewAccount, NewApiKey, NewAuditEntry,
    Page, Reservation, SessionLimits, Snapshot, Storage, StorageError, Transition,
};
pub(super) use crate::reply_grace::ReplyGrace;
pub(super) use crate::validate::{Payload, ValidationPolicy};
pub(super) use chrono::{DateTime, Duration, TimeZone, Utc};
pub(super) use std::collections::BTreeSet;
pub(super) use std::future::Future;
pub(super) use std::pin::Pin;
pub(super) use std::sync::atomic::{AtomicUsize, Ordering};
pub(super) use std::sync::Arc;
pub(super) use std::task::Poll;
pub(super) use std::time::Duration as StdDuration;

pub(super) const LEASE: StdDuration = StdDuration::from_secs(60);

pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap()
}

pub(super) fn new_message(
    conversation: i64,
    author: i64,
    payload: &str,
    send_at: Option<DateTime<Utc>>,
) -> NewMessage {
    NewMessage {
        conversation_id: ConversationId(conversation),
        author_id: UserId(author),
        payload: Payload::parse(payload, &ValidationPolicy::default()).expect("valid test payload"),
        status: if send_at.is_some() {
            MessageStatus::New
        } else {
            MessageStatus::Received
        },
        created_at: t0(),
        send_at,
        idempotency_key: None,
        not_before: None,
        last_received: None,
        waiting_for: None,
    }
}

pub(super) const ALL: Page = Page {
    limit: 1000,
    before: None,
};

/// A page of a conversation's messages; none for an unknown conversation.
pub(super) async fn messages(
    s: &dyn Storage,
    conversation: ConversationId,
    page: Page,
) -> Result<Vec<Message>, StorageError> {
    Ok(s.conversation_page(conversation, page)
        .await?
        .map(|(_, messages)| messages)
        .unwrap_or_default())
}

pub(super) fn address(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).expect("valid test address")
}

pub(super) fn name(raw: &str) -> Name {
    Name::parse(raw).expect("valid test name")
}

pub(super) fn code(raw: &str) -> DiscountCode {
    DiscountCode::parse(raw).expect("valid test discount code")
}

pub(super) fn new_store(raw_name: &str) -> NewStore {
    NewStore {
        name: name(raw_name),
        time_zone: chrono_tz::Europe::Paris,
        sender_email: address("shop@paris.example.com"),
        active_hours: None,
    }
}

/// A store with one operator: `(store, operator)`.
pub(super) async fn store_with_operator(s: &dyn Storage, raw_name: &str) -> (StoreId, UserId) {
    let store = s.create_store(new_store(raw_name)).await.unwrap();
    let operator = s
        .create_operator(NewOperator {
            name: name("Ann"),
            store_id: store.id,
            group: name("sales"),
        })
        .await
        .unwrap();
    (store.id, operator.id)
}

pub(super) fn hours(raw: &str) -> Calendar {
    raw.parse().expect("valid test window")
}

/// The highest user id (operators and clients) in `data`.
pub(super) fn top_user(data: &Dataset) -> UserId {
    let operators = data.operators.iter().map(|o| o.id);
    let clients = data.clients.iter().map(|c| c.id);
    operators.chain(clients).max().expect("users")
}

pub(super) async fn insert(s: &dyn Storage, message: NewMessage) -> Message {
    let inserted = s.insert_message(message).await.unwrap();
    assert!(inserted.created);
    inserted.message
}

pub(super) async fn stored(s: &dyn Storage, id: MessageId) -> Message {
    s.message(id).await.unwrap().expect("stored message")
}

pub(super) async fn claim(
    s: &dyn Storage,
    now: DateTime<Utc>,
    batch: u32,
) -> Vec<crate::domain::Claimed> {
    s.claim_due(now, LEASE, ClaimLimit::batch(batch))
        .await
        .unwrap()
}

pub(super) async fn list(
    s: &dyn Storage,
    filter: ConversationFilter,
    snapshot: Snapshot,
    after: Option<ActivityKey>,
    limit: u32,
) -> Vec<ConversationSummary> {
    s.list_conversations(filter, snapshot, after, limit)
        .await
        .unwrap()
}

pub(super) fn ids(rows: &[ConversationSummary]) -> Vec<ConversationId> {
    rows.iter().map(|r| r.conversation.id).collect()
}

/// A boxed future, so that futures of different calls can run together.
pub(super) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs the futures together on the calling task (interleaved at every await, so that a
/// backend with a connection pool sees them at once) and returns their outputs in order.
pub(super) async fn join_all<T>(futures: Vec<Boxed<'_, T>>) -> Vec<T> {
    let mut running: Vec<Option<Boxed<'_, T>>> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = running.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in running.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// Waits (yielding to the runtime, so listener tasks run) until `done` holds, for a few
/// seconds at most; panics naming `what` otherwise.
pub(super) async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        super::yield_now().await;
    }
}

// `storage_conformance_tests!`, with every case of the port files above.
include!(concat!(env!("OUT_DIR"), "/conformance_cases.rs"));

/// One conformance case as a `#[tokio::test]` (used by `storage_conformance_tests!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case {
    ($make:expr, $port:ident, $case:ident) => {
        #[tokio::test]
        async fn $case() {
            let Some(storage) = $make.await else {
                eprintln!("skipped: storage not available");
                return;
            };
            $crate::testing::conformance::$port::$case(&*storage).await;
        }
    };
}
