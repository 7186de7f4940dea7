//! The storage contract as tests. Each function takes a fresh, empty storage and panics on a
//! violation; [`storage_conformance_tests!`](crate::storage_conformance_tests) turns them all
//! into `#[tokio::test]`s with one line.
//!
//! The cases use whole-second instants (every backend keeps milliseconds) and only ASCII
//! case differences in emails. Where a contract allows a call to happen more often or
//! later (the [`watch_due`](Storage::watch_due) callbacks), the case waits a few seconds at
//! most and accepts more calls.
//!
//! Retries, as the dispatcher records them: a transient failure
//! (`reschedule(token, at, Some(error))`) keeps `send_at` and sets `next_attempt_at = at`;
//! a deferral or hand-back (`reschedule(token, at, None)`) and an operator's retry
//! (`retry_message`) set `send_at = at` and clear `next_attempt_at`. A `new` message is due
//! at `next_attempt_at`, else `send_at`.

use crate::active_hours::ActiveHours;
use crate::demo::demo_data;
use crate::domain::{
    ClientChanges, ConversationStatus, Dataset, Message, MessageStatus, NewClient, NewConversation,
    NewMessage, NewOperator, NewStore,
};
use crate::email_address::EmailAddress;
use crate::ids::{ConversationId, MessageId, StoreId, UserId};
use crate::ports::{
    ActivityKey, Backlog, ClaimLimit, ConversationFilter, ConversationSummary, Page, Snapshot,
    Storage, StorageError, Transition,
};
use crate::validate::{Payload, ValidationPolicy};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration as StdDuration;

const LEASE: StdDuration = StdDuration::from_secs(60);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap()
}

fn new_message(
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
    }
}

const ALL: Page = Page {
    limit: 1000,
    before: None,
};

/// A page of a conversation's messages; none for an unknown conversation.
async fn messages(
    s: &dyn Storage,
    conversation: ConversationId,
    page: Page,
) -> Result<Vec<Message>, StorageError> {
    Ok(s.conversation_page(conversation, page)
        .await?
        .map(|(_, messages)| messages)
        .unwrap_or_default())
}

fn address(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).expect("valid test address")
}

fn new_store(name: &str) -> NewStore {
    NewStore {
        name: name.to_owned(),
        time_zone: chrono_tz::Europe::Paris,
        sender_email: address("shop@paris.example.com"),
        active_hours: None,
    }
}

fn hours(raw: &str) -> ActiveHours {
    raw.parse().expect("valid test window")
}

/// The highest user id (operators and clients) in `data`.
fn top_user(data: &Dataset) -> UserId {
    let operators = data.operators.iter().map(|o| o.id);
    let clients = data.clients.iter().map(|c| c.id);
    operators.chain(clients).max().expect("users")
}

async fn insert(s: &dyn Storage, message: NewMessage) -> Message {
    let inserted = s.insert_message(message).await.unwrap();
    assert!(inserted.created);
    inserted.message
}

async fn stored(s: &dyn Storage, id: MessageId) -> Message {
    s.message(id).await.unwrap().expect("stored message")
}

async fn claim(s: &dyn Storage, now: DateTime<Utc>, batch: u32) -> Vec<crate::domain::Claimed> {
    s.claim_due(now, LEASE, ClaimLimit::batch(batch))
        .await
        .unwrap()
}

async fn list(
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

fn ids(rows: &[ConversationSummary]) -> Vec<ConversationId> {
    rows.iter().map(|r| r.conversation.id).collect()
}

/// A boxed future, so that futures of different calls can run together.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs the futures together on the calling task (interleaved at every await, so that a
/// backend with a connection pool sees them at once) and returns their outputs in order.
async fn join_all<T>(futures: Vec<Boxed<'_, T>>) -> Vec<T> {
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
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        super::yield_now().await;
    }
}

/// Import loads the demo set exactly, and a second import changes nothing.
pub async fn import_is_exact_and_idempotent(s: &dyn Storage) {
    let data = demo_data();
    let first = s.import(&data).await.unwrap();
    assert!(first.inserted > 0);
    let second = s.import(&data).await.unwrap();
    assert_eq!(second.inserted, 0, "second import must insert nothing");
    for conversation in &data.conversations {
        let ctx = s
            .conversation(conversation.id)
            .await
            .unwrap()
            .expect("imported conversation");
        assert_eq!(&ctx.conversation, conversation);
        assert_eq!(
            data.stores.iter().find(|x| x.id == conversation.store_id),
            Some(&ctx.store)
        );
        assert_eq!(
            data.operators
                .iter()
                .find(|x| x.id == conversation.operator_id),
            Some(&ctx.operator)
        );
        assert_eq!(
            data.clients.iter().find(|x| x.id == conversation.client_id),
            Some(&ctx.client)
        );
        let expected: Vec<_> = data
            .messages
            .iter()
            .filter(|m| m.conversation_id == conversation.id)
            .cloned()
            .collect();
        assert_eq!(messages(s, conversation.id, ALL).await.unwrap(), expected);
    }
    let resolved = s.conversation(ConversationId(24)).await.unwrap().unwrap();
    assert_eq!(resolved.conversation.status, ConversationStatus::Resolved);
    let no_zone = s.conversation(ConversationId(14)).await.unwrap().unwrap();
    assert_eq!(no_zone.client.time_zone, None);
}

/// Unknown ids read as nothing; inserting into an unknown conversation is `NotFound`.
pub async fn unknown_ids(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    assert_eq!(s.conversation(ConversationId(999_999)).await.unwrap(), None);
    assert!(messages(s, ConversationId(999_999), ALL)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.message(MessageId(999_999)).await.unwrap(), None);
    let err = s
        .insert_message(new_message(999_999, 24, "x", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound(_)), "{err:?}");
}

/// Inserted messages get growing ids, are stored as given and page back from the newest.
pub async fn insert_and_page(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let inserted = s
            .insert_message(new_message(
                2,
                21,
                &format!("message {n}"),
                Some(t0() + Duration::minutes(n)),
            ))
            .await
            .unwrap();
        assert!(inserted.created);
        let m = inserted.message;
        assert_eq!(m.payload.as_str(), format!("message {n}"));
        assert_eq!(
            (m.status, m.attempts, m.sent_at, m.last_error.clone()),
            (MessageStatus::New, 0, None, None)
        );
        assert_eq!(m.send_at, Some(t0() + Duration::minutes(n)));
        assert_eq!(m.created_at, t0());
        assert_eq!(s.message(m.id).await.unwrap(), Some(m.clone()));
        ids.push(m.id);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids must grow: {ids:?}"
    );
    let imported = demo_data().messages.iter().map(|m| m.id).max().unwrap();
    assert!(ids[0] > imported, "ids above every imported one: {ids:?}");
    let all = messages(s, ConversationId(2), ALL).await.unwrap();
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    let newest = messages(
        s,
        ConversationId(2),
        Page {
            limit: 2,
            before: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(newest.iter().map(|m| m.id).collect::<Vec<_>>(), ids[3..]);
    let older = messages(
        s,
        ConversationId(2),
        Page {
            limit: 2,
            before: Some(ids[3]),
        },
    )
    .await
    .unwrap();
    assert_eq!(older.iter().map(|m| m.id).collect::<Vec<_>>(), ids[1..3]);
    let received = s
        .insert_message(new_message(2, 3, "from the client", None))
        .await
        .unwrap()
        .message;
    assert_eq!(
        (received.status, received.send_at),
        (MessageStatus::Received, None)
    );
}

/// A repeated idempotency key returns the first message and stores nothing.
pub async fn idempotency_key(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let mut m = new_message(1, 24, "once", Some(t0()));
    m.idempotency_key = Some("retry-1".into());
    let first = s.insert_message(m.clone()).await.unwrap();
    let second = s.insert_message(m.clone()).await.unwrap();
    assert!(first.created && !second.created);
    assert_eq!(first.message, second.message);
    assert_eq!(messages(s, ConversationId(1), ALL).await.unwrap().len(), 4);
    m.idempotency_key = Some("retry-2".into());
    assert!(s.insert_message(m).await.unwrap().created);
}

/// Claiming takes due `new` messages only, once per lease, and fences late results.
pub async fn claim_lease_and_fencing(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let due = s
        .insert_message(new_message(1, 24, "due", Some(t0())))
        .await
        .unwrap()
        .message;
    let later = s
        .insert_message(new_message(1, 24, "later", Some(t0() + Duration::hours(1))))
        .await
        .unwrap()
        .message;
    s.insert_message(new_message(1, 27, "client", None))
        .await
        .unwrap();
    assert_eq!(s.next_due().await.unwrap(), Some(t0()));

    let claimed = s
        .claim_due(t0(), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "only the due operator message");
    assert_eq!(claimed[0].message.id, due.id);
    assert_eq!(claimed[0].message.status, MessageStatus::Sending);
    assert_eq!(claimed[0].message.attempts, 1);
    assert_eq!(claimed[0].token.attempt, 1);
    assert!(
        s.claim_due(t0() + Duration::seconds(59), LEASE, ClaimLimit::batch(10))
            .await
            .unwrap()
            .is_empty(),
        "lease held"
    );
    assert_eq!(
        s.next_due().await.unwrap(),
        Some(t0() + Duration::seconds(60))
    );

    // The lease ends: the message is claimed again, with a new token.
    let again = s
        .claim_due(t0() + Duration::seconds(60), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].token.attempt, 2);
    assert!(
        !s.mark_sent(claimed[0].token, t0()).await.unwrap(),
        "stale token"
    );
    assert!(
        !s.mark_failed(claimed[0].token, "late".into())
            .await
            .unwrap(),
        "stale token"
    );
    assert!(
        !s.reschedule(claimed[0].token, t0(), None).await.unwrap(),
        "stale token"
    );
    let sent_at = t0() + Duration::seconds(61);
    assert!(s.mark_sent(again[0].token, sent_at).await.unwrap());
    assert!(
        !s.mark_sent(again[0].token, sent_at).await.unwrap(),
        "already sent"
    );
    let stored = s.message(due.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.sent_at, stored.attempts),
        (MessageStatus::Sent, Some(sent_at), 2)
    );

    assert_eq!(s.next_due().await.unwrap(), later.send_at);
    let claimed = s
        .claim_due(t0() + Duration::hours(2), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message.id, later.id);
}

/// Rescheduling and failing record what they should.
pub async fn reschedule_and_fail(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let m = s
        .insert_message(new_message(1, 24, "x", Some(t0())))
        .await
        .unwrap()
        .message;
    let claim = s
        .claim_due(t0(), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap()
        .remove(0);
    // Deferred for the window: not an attempt.
    let tomorrow = t0() + Duration::days(1);
    assert!(s.reschedule(claim.token, tomorrow, None).await.unwrap());
    let stored = s.message(m.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.send_at, stored.attempts),
        (MessageStatus::New, Some(tomorrow), 0)
    );
    assert_eq!(stored.next_attempt_at, None);
    assert!(s
        .claim_due(t0() + Duration::hours(1), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap()
        .is_empty());

    // A retry after a transient error keeps the attempt and the error.
    let claim = s
        .claim_due(tomorrow, LEASE, ClaimLimit::batch(10))
        .await
        .unwrap()
        .remove(0);
    let retry = tomorrow + Duration::seconds(30);
    assert!(s
        .reschedule(claim.token, retry, Some("451 later".into()))
        .await
        .unwrap());
    let stored = s.message(m.id).await.unwrap().unwrap();
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.last_error.as_deref(), Some("451 later"));
    assert_eq!(
        (stored.send_at, stored.next_attempt_at),
        (Some(tomorrow), Some(retry)),
        "a retry after a transient failure keeps send_at and sets the next attempt"
    );

    let claim = s
        .claim_due(retry, LEASE, ClaimLimit::batch(10))
        .await
        .unwrap()
        .remove(0);
    assert!(s.mark_failed(claim.token, "550 no".into()).await.unwrap());
    let stored = s.message(m.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (MessageStatus::Failed, 2));
    assert_eq!(stored.last_error.as_deref(), Some("550 no"));
    assert!(s
        .claim_due(retry + Duration::days(9), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.next_due().await.unwrap(), None);
}

/// Claims come oldest `send_at` first and respect the limit.
pub async fn claim_order_and_limit(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let mut ids = Vec::new();
    for n in (0..5).rev() {
        let m = s
            .insert_message(new_message(3, 24, "x", Some(t0() - Duration::minutes(n))))
            .await
            .unwrap()
            .message;
        ids.push(m.id);
    }
    let first = s
        .claim_due(t0(), LEASE, ClaimLimit::batch(3))
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|c| c.message.id).collect::<Vec<_>>(),
        ids[..3]
    );
    let rest = s
        .claim_due(t0(), LEASE, ClaimLimit::batch(3))
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|c| c.message.id).collect::<Vec<_>>(),
        ids[3..]
    );
}

/// The hourly cap counts recent sends and messages in flight, and a claim takes no more
/// than what is left of it.
pub async fn hourly_cap(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    for n in 0..6 {
        s.insert_message(new_message(3, 24, "x", Some(t0() - Duration::minutes(n))))
            .await
            .unwrap();
    }
    let capped = |cap| ClaimLimit {
        batch: 10,
        hourly_cap: Some(cap),
    };
    // Two in flight and, below, one sent: a cap of 3 is spent.
    let first = s.claim_due(t0(), LEASE, capped(2)).await.unwrap();
    assert_eq!(first.len(), 2, "the cap bounds the claim");
    assert!(
        s.claim_due(t0(), LEASE, capped(2))
            .await
            .unwrap()
            .is_empty(),
        "messages in flight count against the cap"
    );
    let sent_at = t0() + Duration::seconds(1);
    assert!(s.mark_sent(first[0].token, sent_at).await.unwrap());
    assert!(s
        .reschedule(first[1].token, t0(), Some("451 later".into()))
        .await
        .unwrap());
    // Sent: 1, in flight: 0. A cap of 3 leaves 2.
    let at = t0() + Duration::seconds(2);
    let second = s.claim_due(at, LEASE, capped(3)).await.unwrap();
    assert_eq!(second.len(), 2);
    assert!(s.claim_due(at, LEASE, capped(3)).await.unwrap().is_empty());
    // A message whose lease ended is no longer in flight: it is claimable again.
    let after_lease = at + Duration::seconds(60);
    let third = s.claim_due(after_lease, LEASE, capped(3)).await.unwrap();
    assert_eq!(third.len(), 2, "expired leases free their share of the cap");
    // An hour after the send, it no longer counts either.
    for c in &third {
        assert!(s.mark_failed(c.token, "550".into()).await.unwrap());
    }
    let hour_later = sent_at + Duration::hours(1);
    assert_eq!(
        s.claim_due(hour_later, LEASE, capped(3))
            .await
            .unwrap()
            .len(),
        2,
        "the send an hour ago still counts"
    );
    let left = s
        .claim_due(hour_later + Duration::seconds(1), LEASE, capped(3))
        .await
        .unwrap();
    assert_eq!(
        left.len(),
        1,
        "the send is out of the hour; one message is left"
    );
    // No cap: everything due.
    assert!(s
        .claim_due(
            hour_later + Duration::seconds(1),
            LEASE,
            ClaimLimit::batch(10)
        )
        .await
        .unwrap()
        .is_empty());
}

/// Stores get ids above every stored one (imported included), read back as created, and
/// keep their own window until it is cleared.
pub async fn stores(s: &dyn Storage) {
    let data = demo_data();
    s.import(&data).await.unwrap();
    let top = data.stores.iter().map(|x| x.id).max().unwrap();
    let own = hours("07:30-19:45");
    let first = s
        .create_store(NewStore {
            active_hours: Some(own),
            ..new_store("Paris Perfume")
        })
        .await
        .unwrap();
    assert!(first.id > top, "{} must be above imported {top}", first.id);
    assert_eq!(first.name, "Paris Perfume");
    assert_eq!(first.time_zone, chrono_tz::Europe::Paris);
    assert_eq!(first.sender_email, address("shop@paris.example.com"));
    assert_eq!(first.active_hours, Some(own));
    assert_eq!(s.store(first.id).await.unwrap(), Some(first.clone()));
    let second = s.create_store(new_store("Lyon Linen")).await.unwrap();
    assert!(second.id > first.id);
    assert_eq!(second.active_hours, None);

    let imported = data.stores.iter().find(|x| x.id == StoreId(1)).cloned();
    assert_eq!(s.store(StoreId(1)).await.unwrap(), imported);
    let changed = s
        .set_store_hours(StoreId(1), Some(own))
        .await
        .unwrap()
        .expect("store 1");
    assert_eq!(changed.active_hours, Some(own));
    assert_eq!(s.store(StoreId(1)).await.unwrap(), Some(changed));
    let context = s.conversation(ConversationId(1)).await.unwrap().unwrap();
    assert_eq!(
        context.store.active_hours,
        Some(own),
        "conversations see it"
    );
    let cleared = s.set_store_hours(StoreId(1), None).await.unwrap().unwrap();
    assert_eq!(Some(cleared), imported);
    // Windows that wrap midnight or end at 24:00 are kept as they are.
    for raw in [
        "21:00-08:00",
        "00:00-24:00",
        "18:00-24:00",
        "08:15:30-17:00",
    ] {
        let window = hours(raw);
        let store = s.set_store_hours(StoreId(2), Some(window)).await.unwrap();
        assert_eq!(store.unwrap().active_hours, Some(window), "{raw}");
        let store = s.store(StoreId(2)).await.unwrap().unwrap();
        assert_eq!(store.active_hours, Some(window), "{raw}");
    }
    let night = s
        .create_store(NewStore {
            active_hours: Some(hours("22:00-06:00")),
            ..new_store("Night Owl")
        })
        .await
        .unwrap();
    let read = s.store(night.id).await.unwrap().unwrap();
    assert_eq!(read.active_hours, Some(hours("22:00-06:00")));

    assert_eq!(s.store(StoreId(999_999)).await.unwrap(), None);
    assert_eq!(
        s.set_store_hours(StoreId(999_999), Some(own))
            .await
            .unwrap(),
        None
    );
}

/// Operators get user ids above every user (imported included); an unknown store is
/// `NotFound`; operators and clients are told apart by id.
pub async fn operators(s: &dyn Storage) {
    let data = demo_data();
    s.import(&data).await.unwrap();
    let operator = s
        .create_operator(NewOperator {
            name: "Fay Lin".into(),
            store_id: StoreId(2),
            group: "support".into(),
        })
        .await
        .unwrap();
    assert!(operator.id > top_user(&data), "{}", operator.id);
    assert_eq!(
        (
            operator.name.as_str(),
            operator.store_id,
            operator.group.as_str()
        ),
        ("Fay Lin", StoreId(2), "support")
    );
    assert_eq!(
        s.operator(operator.id).await.unwrap(),
        Some(operator.clone())
    );
    assert_eq!(s.client(operator.id).await.unwrap(), None);
    let imported = data.operators.iter().find(|o| o.id == UserId(21)).cloned();
    assert_eq!(s.operator(UserId(21)).await.unwrap(), imported);
    assert_eq!(s.operator(UserId(27)).await.unwrap(), None, "a client's id");
    assert_eq!(s.operator(UserId(999_999)).await.unwrap(), None);
    let err = s
        .create_operator(NewOperator {
            name: "Nobody".into(),
            store_id: StoreId(999_999),
            group: "sales".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound(_)), "{err:?}");
}

/// Clients: ids in the users' id space, emails unique case-insensitively (on create and on
/// update, where a conflict changes nothing), zones that can be cleared.
pub async fn clients(s: &dyn Storage) {
    let data = demo_data();
    s.import(&data).await.unwrap();
    let paris = chrono_tz::Europe::Paris;
    let ann = s
        .create_client(NewClient {
            name: "Ann Lee".into(),
            email: address("Ann.Lee@Example.com"),
            time_zone: Some(paris),
        })
        .await
        .unwrap();
    assert!(ann.id > top_user(&data), "{}", ann.id);
    assert_eq!(
        (ann.name.as_str(), ann.email.as_str(), ann.time_zone),
        ("Ann Lee", "Ann.Lee@Example.com", Some(paris))
    );
    assert_eq!(ann.unsubscribed_at, None);
    assert_eq!(s.client(ann.id).await.unwrap(), Some(ann.clone()));
    assert_eq!(s.operator(ann.id).await.unwrap(), None);
    let operator = s
        .create_operator(NewOperator {
            name: "Gus Hale".into(),
            store_id: StoreId(1),
            group: "sales".into(),
        })
        .await
        .unwrap();
    assert!(
        operator.id > ann.id,
        "operators and clients share one id space"
    );

    for taken in ["ann.lee@example.COM", "JOHN.CARTER@example.com"] {
        let err = s
            .create_client(NewClient {
                name: "Copy".into(),
                email: address(taken),
                time_zone: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Conflict(_)), "{taken}: {err:?}");
    }
    let found = s.client_by_email(&address("ANN.LEE@example.com")).await;
    assert_eq!(found.unwrap(), Some(ann.clone()));
    let found = s.client_by_email(&address("John.Carter@Example.Com")).await;
    assert_eq!(found.unwrap().map(|c| c.id), Some(UserId(27)));
    let found = s.client_by_email(&address("nobody@example.com")).await;
    assert_eq!(found.unwrap(), None);

    let tokyo = chrono_tz::Asia::Tokyo;
    let changes = ClientChanges {
        name: Some("Ann Leigh".into()),
        email: Some(address("ann@example.org")),
        time_zone: Some(Some(tokyo)),
    };
    let updated = s.update_client(ann.id, changes).await.unwrap().unwrap();
    assert_eq!(
        (
            updated.name.as_str(),
            updated.email.as_str(),
            updated.time_zone
        ),
        ("Ann Leigh", "ann@example.org", Some(tokyo))
    );
    assert_eq!(s.client(ann.id).await.unwrap(), Some(updated.clone()));
    let clear_zone = ClientChanges {
        time_zone: Some(None),
        ..ClientChanges::default()
    };
    let cleared = s.update_client(ann.id, clear_zone).await.unwrap().unwrap();
    assert_eq!(
        (
            cleared.name.as_str(),
            cleared.email.as_str(),
            cleared.time_zone
        ),
        ("Ann Leigh", "ann@example.org", None),
        "only the zone changes"
    );

    let conflicting = ClientChanges {
        name: Some("Someone Else".into()),
        email: Some(address("John.Carter@example.com")),
        time_zone: Some(Some(paris)),
    };
    let err = s.update_client(ann.id, conflicting).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict(_)), "{err:?}");
    assert_eq!(
        s.client(ann.id).await.unwrap(),
        Some(cleared),
        "a conflict changes nothing"
    );
    let own_email = ClientChanges {
        email: Some(address("ANN@example.org")),
        ..ClientChanges::default()
    };
    let recased = s.update_client(ann.id, own_email).await.unwrap().unwrap();
    assert_eq!(
        recased.email.as_str(),
        "ANN@example.org",
        "its own email is no conflict"
    );
    let freed = s
        .create_client(NewClient {
            name: "Another Ann".into(),
            email: address("ann.lee@example.com"),
            time_zone: None,
        })
        .await;
    assert!(freed.is_ok(), "the old email is free again: {freed:?}");

    let nothing = ClientChanges::default();
    assert_eq!(
        s.update_client(UserId(999_999), nothing.clone())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.update_client(UserId(21), nothing).await.unwrap(),
        None,
        "an operator's id"
    );
    assert_eq!(s.client(UserId(999_999)).await.unwrap(), None);
}

/// Conversations get ids above every stored one, start `open`, refuse missing references
/// with `NotFound`, and change status without touching their messages.
pub async fn conversations(s: &dyn Storage) {
    let data = demo_data();
    s.import(&data).await.unwrap();
    let top = data.conversations.iter().map(|c| c.id).max().unwrap();
    let store = s.create_store(new_store("Paris Perfume")).await.unwrap();
    let operator = s
        .create_operator(NewOperator {
            name: "Fay Lin".into(),
            store_id: store.id,
            group: "sales".into(),
        })
        .await
        .unwrap();
    let client = s
        .create_client(NewClient {
            name: "Ann Lee".into(),
            email: address("ann.lee@example.com"),
            time_zone: None,
        })
        .await
        .unwrap();
    let first = s
        .create_conversation(NewConversation {
            store_id: store.id,
            operator_id: operator.id,
            client_id: client.id,
            discount_code: Some("NEW10".into()),
        })
        .await
        .unwrap();
    assert!(first.id > top, "{} must be above imported {top}", first.id);
    assert_eq!(
        (first.store_id, first.operator_id, first.client_id),
        (store.id, operator.id, client.id)
    );
    assert_eq!(first.status, ConversationStatus::Open);
    assert_eq!(first.discount_code.as_deref(), Some("NEW10"));
    let context = s.conversation(first.id).await.unwrap().unwrap();
    assert_eq!(context.conversation, first);
    assert_eq!(
        (&context.store, &context.operator, &context.client),
        (&store, &operator, &client)
    );
    let second = s
        .create_conversation(NewConversation {
            store_id: StoreId(1),
            operator_id: UserId(24),
            client_id: UserId(27),
            discount_code: None,
        })
        .await
        .unwrap();
    assert!(second.id > first.id);
    assert_eq!(second.discount_code, None);

    let missing = [
        (StoreId(999_999), operator.id, client.id),
        (store.id, UserId(999_999), client.id),
        (store.id, operator.id, UserId(999_999)),
        (store.id, client.id, client.id),
        (store.id, operator.id, operator.id),
    ];
    for (store_id, operator_id, client_id) in missing {
        let err = s
            .create_conversation(NewConversation {
                store_id,
                operator_id,
                client_id,
                discount_code: None,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::NotFound(_)),
            "store {store_id}, operator {operator_id}, client {client_id}: {err:?}"
        );
    }

    let waiting = insert(s, new_message(first.id.0, operator.id.0, "hi", Some(t0()))).await;
    let resolved = ConversationStatus::Resolved;
    assert!(s.set_conversation_status(first.id, resolved).await.unwrap());
    let context = s.conversation(first.id).await.unwrap().unwrap();
    assert_eq!(context.conversation.status, resolved);
    assert_eq!(
        stored(s, waiting.id).await,
        waiting,
        "messages are left as they are"
    );
    let open = ConversationStatus::Open;
    assert!(s.set_conversation_status(first.id, open).await.unwrap());
    let context = s.conversation(first.id).await.unwrap().unwrap();
    assert_eq!(context.conversation.status, open);
    let unknown = ConversationId(999_999);
    assert!(!s.set_conversation_status(unknown, resolved).await.unwrap());
    assert_eq!(s.conversation(unknown).await.unwrap(), None);
}

/// Unsubscribing keeps the first instant.
pub async fn unsubscribe_keeps_the_first_instant(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let first = t0();
    let client = s.unsubscribe_client(UserId(27), first).await.unwrap();
    assert_eq!(client.unwrap().unsubscribed_at, Some(first));
    let later = t0() + Duration::hours(1);
    let again = s.unsubscribe_client(UserId(27), later).await.unwrap();
    assert_eq!(again.unwrap().unsubscribed_at, Some(first));
    let client = s.client(UserId(27)).await.unwrap().unwrap();
    assert_eq!(client.unsubscribed_at, Some(first));
    let context = s.conversation(ConversationId(1)).await.unwrap().unwrap();
    assert_eq!(context.client.unsubscribed_at, Some(first));
    let other = s.client(UserId(1)).await.unwrap().unwrap();
    assert_eq!(other.unsubscribed_at, None);
    assert_eq!(
        s.unsubscribe_client(UserId(999_999), first).await.unwrap(),
        None
    );
}

/// Idempotency keys are scoped to their author: two authors with one key store two
/// messages; one author's key names one message, whatever the conversation.
pub async fn idempotency_keys_are_per_author(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let mut operator = new_message(1, 24, "from the operator", Some(t0()));
    operator.idempotency_key = Some("same".into());
    let mut client = new_message(1, 27, "from the client", None);
    client.idempotency_key = Some("same".into());
    let a = insert(s, operator.clone()).await;
    let b = insert(s, client.clone()).await;
    assert_ne!(a.id, b.id);
    let again = s.insert_message(operator).await.unwrap();
    assert_eq!((again.created, again.message), (false, a.clone()));
    let again = s.insert_message(client).await.unwrap();
    assert_eq!((again.created, again.message), (false, b));
    assert_eq!(messages(s, ConversationId(1), ALL).await.unwrap().len(), 5);
    // Operator 24 also writes conversation 3: the key still names the first message.
    let mut elsewhere = new_message(3, 24, "elsewhere", Some(t0()));
    elsewhere.idempotency_key = Some("same".into());
    let again = s.insert_message(elsewhere).await.unwrap();
    assert_eq!((again.created, again.message), (false, a));
    assert!(messages(s, ConversationId(3), ALL)
        .await
        .unwrap()
        .is_empty());
}

/// Cancelling takes a `new` message to `cancelled`, which is never claimed; a claimed
/// message cannot be cancelled; cancels racing claims never both win.
pub async fn cancel_is_atomic_with_claims(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let m = insert(s, new_message(1, 24, "cancel me", Some(t0()))).await;
    let Transition::Done(cancelled) = s.cancel_message(m.id).await.unwrap() else {
        panic!("a new message is cancellable");
    };
    assert_eq!(
        (cancelled.id, cancelled.status),
        (m.id, MessageStatus::Cancelled)
    );
    assert_eq!(stored(s, m.id).await, cancelled);
    match s.cancel_message(m.id).await.unwrap() {
        Transition::WrongStatus(x) => assert_eq!(x.status, MessageStatus::Cancelled),
        other => panic!("cancelled twice: {other:?}"),
    }
    assert!(claim(s, t0() + Duration::days(1), 10).await.is_empty());
    assert_eq!(s.next_due().await.unwrap(), None);

    // Claimed first: the claim wins, and its result is recorded.
    let n = insert(s, new_message(1, 24, "claimed", Some(t0()))).await;
    let c = claim(s, t0(), 10).await.remove(0);
    match s.cancel_message(n.id).await.unwrap() {
        Transition::WrongStatus(x) => assert_eq!(x.status, MessageStatus::Sending),
        other => panic!("a claimed message was cancelled: {other:?}"),
    }
    assert!(s.mark_sent(c.token, t0()).await.unwrap());
    match s.cancel_message(n.id).await.unwrap() {
        Transition::WrongStatus(x) => assert_eq!(x.status, MessageStatus::Sent),
        other => panic!("a sent message was cancelled: {other:?}"),
    }
    let received = insert(s, new_message(1, 27, "from the client", None)).await;
    assert!(matches!(
        s.cancel_message(received.id).await.unwrap(),
        Transition::WrongStatus(_)
    ));
    assert_eq!(
        s.cancel_message(MessageId(999_999)).await.unwrap(),
        Transition::NotFound
    );

    // Racing: every message is either cancelled or claimed, never both.
    let mut racing = Vec::new();
    for n in 0..20 {
        let m = insert(s, new_message(3, 24, &format!("race {n}"), Some(t0()))).await;
        racing.push(m.id);
    }
    enum Outcome {
        Cancel(MessageId, Transition),
        Claim(Vec<MessageId>),
    }
    let mut calls: Vec<Boxed<'_, Outcome>> = Vec::new();
    for (n, id) in racing.iter().copied().enumerate() {
        calls.push(Box::pin(async move {
            Outcome::Cancel(id, s.cancel_message(id).await.unwrap())
        }));
        if n % 5 == 0 {
            calls.push(Box::pin(async move {
                let claimed = claim(s, t0(), 5).await;
                Outcome::Claim(claimed.into_iter().map(|c| c.message.id).collect())
            }));
        }
    }
    let (mut cancelled, mut claimed) = (BTreeSet::new(), BTreeSet::new());
    let mut lost = BTreeSet::new();
    for outcome in join_all(calls).await {
        match outcome {
            Outcome::Cancel(id, Transition::Done(_)) => {
                cancelled.insert(id);
            }
            Outcome::Cancel(id, Transition::WrongStatus(m)) => {
                assert_eq!(m.status, MessageStatus::Sending, "{id}");
                lost.insert(id);
            }
            Outcome::Cancel(id, Transition::NotFound) => panic!("{id} not found"),
            Outcome::Claim(ids) => claimed.extend(ids),
        }
    }
    assert!(cancelled.is_disjoint(&claimed), "cancelled and claimed");
    assert_eq!(lost, claimed, "a cancel loses only to a claim");
    assert_eq!(cancelled.len() + claimed.len(), racing.len());
    let later = claim(s, t0() + Duration::days(1), 100).await;
    assert!(later.iter().all(|c| !cancelled.contains(&c.message.id)));
}

/// An operator's retry puts a `failed` message back to `new`, due at the instant given
/// (the next attempt of its last transient failure is forgotten), keeping its attempts and
/// last error.
pub async fn retry_puts_a_failed_message_back(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let m = insert(s, new_message(1, 24, "retry me", Some(t0()))).await;
    let first = claim(s, t0(), 10).await.remove(0);
    let next = t0() + Duration::minutes(10);
    assert!(s
        .reschedule(first.token, next, Some("451 busy".into()))
        .await
        .unwrap());
    let second = claim(s, next, 10).await.remove(0);
    assert!(s
        .mark_failed(second.token, "550 mailbox full".into())
        .await
        .unwrap());
    assert_eq!(s.next_due().await.unwrap(), None);

    let at = t0() + Duration::minutes(1);
    let Transition::Done(retried) = s.retry_message(m.id, at).await.unwrap() else {
        panic!("a failed message is retryable");
    };
    assert_eq!(
        (retried.status, retried.send_at, retried.next_attempt_at),
        (MessageStatus::New, Some(at), None)
    );
    assert_eq!(retried.attempts, 2);
    assert_eq!(retried.last_error.as_deref(), Some("550 mailbox full"));
    assert_eq!(stored(s, m.id).await, retried);
    assert_eq!(s.next_due().await.unwrap(), Some(at));
    assert!(claim(s, at - Duration::seconds(1), 10).await.is_empty());
    let third = claim(s, at, 10).await;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].token.attempt, 3);

    match s.retry_message(m.id, at).await.unwrap() {
        Transition::WrongStatus(x) => assert_eq!(x.status, MessageStatus::Sending),
        other => panic!("a claimed message was retried: {other:?}"),
    }
    let waiting = insert(s, new_message(1, 24, "waiting", Some(t0()))).await;
    match s.retry_message(waiting.id, at).await.unwrap() {
        Transition::WrongStatus(x) => assert_eq!(x, waiting),
        other => panic!("a new message was retried: {other:?}"),
    }
    assert_eq!(
        s.retry_message(MessageId(999_999), at).await.unwrap(),
        Transition::NotFound
    );
}

/// A retry after a transient failure keeps `send_at` and waits for `next_attempt_at`; a
/// deferral moves `send_at` and clears `next_attempt_at`. Claims and `next_due` go by the
/// due instant.
pub async fn transient_retry_keeps_send_at(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let m = insert(s, new_message(1, 24, "x", Some(t0()))).await;
    let c = claim(s, t0(), 10).await.remove(0);
    let next = t0() + Duration::minutes(5);
    assert!(s
        .reschedule(c.token, next, Some("451 busy".into()))
        .await
        .unwrap());
    let after = stored(s, m.id).await;
    assert_eq!(
        (after.status, after.send_at, after.next_attempt_at),
        (MessageStatus::New, Some(t0()), Some(next))
    );
    assert_eq!(after.attempts, 1);
    assert_eq!(after.last_error.as_deref(), Some("451 busy"));
    assert_eq!(s.next_due().await.unwrap(), Some(next));
    assert!(claim(s, next - Duration::seconds(1), 10).await.is_empty());
    let c = claim(s, next, 10).await.remove(0);
    assert_eq!(c.message.send_at, Some(t0()));
    assert_eq!(c.token.attempt, 2);

    let window = t0() + Duration::days(1);
    assert!(s.reschedule(c.token, window, None).await.unwrap());
    let after = stored(s, m.id).await;
    assert_eq!(
        (after.status, after.send_at, after.next_attempt_at),
        (MessageStatus::New, Some(window), None)
    );
    assert_eq!(after.attempts, 1, "a deferral is not an attempt");
    assert_eq!(s.next_due().await.unwrap(), Some(window));
    assert!(claim(s, window - Duration::seconds(1), 10).await.is_empty());
    let c = claim(s, window, 10).await.remove(0);
    assert!(s.mark_sent(c.token, window).await.unwrap());

    // Earliest due instant first: `late` was scheduled first but waits for its next attempt.
    let late = insert(
        s,
        new_message(2, 21, "late", Some(t0() - Duration::minutes(10))),
    )
    .await;
    let c = claim(s, t0(), 10).await.remove(0);
    assert_eq!(c.message.id, late.id);
    let retry_at = t0() + Duration::minutes(1);
    assert!(s
        .reschedule(c.token, retry_at, Some("421 later".into()))
        .await
        .unwrap());
    let fresh = insert(s, new_message(2, 21, "fresh", Some(t0()))).await;
    assert_eq!(s.next_due().await.unwrap(), Some(t0()));
    let order: Vec<MessageId> = claim(s, t0() + Duration::minutes(2), 1)
        .await
        .into_iter()
        .chain(claim(s, t0() + Duration::minutes(2), 1).await)
        .map(|c| c.message.id)
        .collect();
    assert_eq!(order, [fresh.id, late.id]);
}

/// Heartbeats extend the leases of claims that still hold, and only those.
pub async fn renew_leases_extends_live_claims(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let a = insert(s, new_message(1, 24, "a", Some(t0()))).await;
    let b = insert(s, new_message(1, 24, "b", Some(t0()))).await;
    let claims = claim(s, t0(), 10).await;
    assert_eq!(claims.len(), 2);
    let (ca, cb) = (claims[0].token, claims[1].token);
    assert_eq!((ca.message_id, cb.message_id), (a.id, b.id));

    let until = t0() + Duration::minutes(5);
    assert_eq!(s.renew_leases(&[ca], until).await.unwrap(), 1);
    let again = claim(s, t0() + Duration::seconds(60), 10).await;
    assert_eq!(again.len(), 1, "only b's lease ended");
    assert_eq!((again[0].message.id, again[0].token.attempt), (b.id, 2));

    // b's first claim no longer holds: renewing it leaves b's new lease alone.
    let later = t0() + Duration::minutes(10);
    assert_eq!(s.renew_leases(&[cb, ca], later).await.unwrap(), 1);
    let b3 = claim(s, t0() + Duration::seconds(120), 10).await;
    assert_eq!(b3.len(), 1, "b's second lease ended at its own time");
    assert_eq!((b3[0].message.id, b3[0].token.attempt), (b.id, 3));
    assert!(s.mark_sent(b3[0].token, t0()).await.unwrap());
    assert_eq!(
        s.renew_leases(&[b3[0].token], later).await.unwrap(),
        0,
        "sent"
    );
    assert_eq!(stored(s, b.id).await.status, MessageStatus::Sent);

    assert!(claim(s, later - Duration::seconds(1), 10).await.is_empty());
    let a2 = claim(s, later, 10).await;
    assert_eq!((a2[0].message.id, a2[0].token.attempt), (a.id, 2));
    assert_eq!(s.renew_leases(&[], later).await.unwrap(), 0);
}

/// Suppressing is fenced like every result.
pub async fn suppressed_is_fenced(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let m = insert(s, new_message(1, 24, "x", Some(t0()))).await;
    let stale = claim(s, t0(), 10).await.remove(0).token;
    let current = claim(s, t0() + Duration::seconds(60), 10)
        .await
        .remove(0)
        .token;
    let reason = "client unsubscribed";
    assert!(!s.mark_suppressed(stale, reason.into()).await.unwrap());
    let after = stored(s, m.id).await;
    assert_eq!((after.status, after.attempts), (MessageStatus::Sending, 2));
    assert!(s.mark_suppressed(current, reason.into()).await.unwrap());
    let after = stored(s, m.id).await;
    assert_eq!(
        (after.status, after.last_error.as_deref(), after.sent_at),
        (MessageStatus::Suppressed, Some(reason), None)
    );
    assert!(!s.mark_suppressed(current, reason.into()).await.unwrap());
    assert!(!s.mark_sent(current, t0()).await.unwrap());
    assert!(claim(s, t0() + Duration::days(1), 10).await.is_empty());
    assert_eq!(s.next_due().await.unwrap(), None);
    assert_eq!(s.backlog(t0()).await.unwrap().waiting, 0);
}

/// The backlog counts `new` and `sending` messages and finds the earliest `send_at` of
/// those due.
pub async fn backlog(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    assert_eq!(s.backlog(t0()).await.unwrap(), Backlog::default());
    let oldest = t0() - Duration::minutes(10);
    let older = t0() - Duration::minutes(5);
    let a = insert(s, new_message(1, 24, "a", Some(oldest))).await;
    insert(
        s,
        new_message(1, 24, "future", Some(t0() + Duration::hours(1))),
    )
    .await;
    insert(s, new_message(1, 27, "from the client", None)).await;
    let b = insert(s, new_message(1, 24, "b", Some(older))).await;
    let expect = |waiting, oldest_due| Backlog {
        waiting,
        oldest_due,
    };
    assert_eq!(s.backlog(t0()).await.unwrap(), expect(3, Some(oldest)));
    assert_eq!(
        s.backlog(oldest - Duration::seconds(1)).await.unwrap(),
        expect(3, None)
    );

    let ca = claim(s, t0(), 1).await.remove(0);
    assert_eq!(ca.message.id, a.id);
    assert_eq!(
        s.backlog(t0()).await.unwrap(),
        expect(3, Some(oldest)),
        "a message in flight still waits"
    );
    assert!(s.mark_sent(ca.token, t0()).await.unwrap());
    assert_eq!(s.backlog(t0()).await.unwrap(), expect(2, Some(older)));

    let cb = claim(s, t0(), 1).await.remove(0);
    assert_eq!(cb.message.id, b.id);
    let retry_at = t0() + Duration::minutes(30);
    assert!(s
        .reschedule(cb.token, retry_at, Some("451".into()))
        .await
        .unwrap());
    assert_eq!(
        s.backlog(t0()).await.unwrap(),
        expect(2, None),
        "waiting for its next attempt"
    );
    assert_eq!(
        s.backlog(retry_at).await.unwrap(),
        expect(2, Some(older)),
        "due again: counted from its send_at"
    );
    assert_eq!(
        s.backlog(t0() + Duration::hours(2)).await.unwrap(),
        expect(2, Some(older))
    );
}

/// `conversation_page` reads the conversation with a page of its messages.
pub async fn conversation_page(s: &dyn Storage) {
    let data = demo_data();
    s.import(&data).await.unwrap();
    let unknown = s.conversation_page(ConversationId(999_999), ALL).await;
    assert_eq!(unknown.unwrap(), None);
    let (context, all) = s
        .conversation_page(ConversationId(1), ALL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Some(context),
        s.conversation(ConversationId(1)).await.unwrap()
    );
    let expected: Vec<Message> = data
        .messages
        .iter()
        .filter(|m| m.conversation_id == ConversationId(1))
        .cloned()
        .collect();
    assert_eq!(all, expected);
    let page = |limit, before| Page { limit, before };
    let ids = |messages: Vec<Message>| messages.into_iter().map(|m| m.id.0).collect::<Vec<_>>();
    let newest = messages(s, ConversationId(1), page(2, None)).await.unwrap();
    assert_eq!(ids(newest), [2, 3]);
    let older = messages(s, ConversationId(1), page(2, Some(MessageId(3))));
    assert_eq!(ids(older.await.unwrap()), [1, 2]);
    let none = messages(s, ConversationId(1), page(2, Some(MessageId(1))));
    assert!(none.await.unwrap().is_empty());
    let (_, empty) = s
        .conversation_page(ConversationId(2), ALL)
        .await
        .unwrap()
        .expect("a conversation without messages");
    assert!(empty.is_empty());
}

/// The conversations list: activity order within the snapshot, filters, and each row's
/// current newest chat and pending count.
pub async fn list_conversations_order_and_filters(s: &dyn Storage) {
    let empty = s.snapshot().await.unwrap();
    let data = demo_data();
    s.import(&data).await.unwrap();
    let everything = ConversationFilter::default();
    assert!(
        list(s, everything, empty, None, 100).await.is_empty(),
        "conversations after the snapshot are not listed"
    );

    let snapshot = s.snapshot().await.unwrap();
    let activity = |id: ConversationId| {
        let newest = data.messages.iter().filter(|m| m.conversation_id == id);
        newest.map(|m| m.id.0).max().unwrap_or(0)
    };
    let expected = |filter: &dyn Fn(&crate::domain::Conversation) -> bool| {
        let mut keys: Vec<ActivityKey> = data
            .conversations
            .iter()
            .filter(|c| filter(c))
            .map(|c| ActivityKey {
                activity: activity(c.id),
                conversation: c.id,
            })
            .collect();
        keys.sort_by(|a, b| b.cmp(a));
        keys
    };
    let all = list(s, everything, snapshot, None, 1000).await;
    let keys: Vec<ActivityKey> = all.iter().map(|r| r.key).collect();
    assert_eq!(keys, expected(&|_| true));
    assert_eq!(
        keys[..2],
        [
            ActivityKey {
                activity: 5,
                conversation: ConversationId(24)
            },
            ActivityKey {
                activity: 3,
                conversation: ConversationId(1)
            }
        ]
    );
    let first = &all[1];
    assert_eq!(first.client_name, "John Carter");
    assert_eq!(first.client_time_zone, chrono_tz::America::Chicago);
    assert_eq!(first.last_chat.as_ref().map(|m| m.id), Some(MessageId(3)));
    assert_eq!(first.pending_count, 0);
    let no_zone = all
        .iter()
        .find(|r| r.conversation.id == ConversationId(14))
        .unwrap();
    assert_eq!(no_zone.client_time_zone, chrono_tz::Europe::Berlin);
    assert_eq!(
        (no_zone.last_chat.clone(), no_zone.pending_count),
        (None, 0)
    );
    for row in &all {
        let stored = s.conversation(row.conversation.id).await.unwrap().unwrap();
        assert_eq!(row.conversation, stored.conversation);
    }

    let key_ids = |keys: Vec<ActivityKey>| keys.iter().map(|k| k.conversation).collect::<Vec<_>>();
    let resolved = ConversationFilter {
        status: Some(ConversationStatus::Resolved),
        ..ConversationFilter::default()
    };
    assert_eq!(
        ids(&list(s, resolved, snapshot, None, 100).await),
        [ConversationId(24), ConversationId(25)]
    );
    let store_3 = ConversationFilter {
        store_id: Some(StoreId(3)),
        ..ConversationFilter::default()
    };
    assert_eq!(
        ids(&list(s, store_3, snapshot, None, 100).await),
        key_ids(expected(&|c| c.store_id == StoreId(3)))
    );
    let open_of_24 = ConversationFilter {
        status: Some(ConversationStatus::Open),
        operator_id: Some(UserId(24)),
        store_id: Some(StoreId(1)),
    };
    let want = key_ids(expected(&|c| {
        c.operator_id == UserId(24) && c.status == ConversationStatus::Open
    }));
    assert!(want.len() > 2);
    assert_eq!(ids(&list(s, open_of_24, snapshot, None, 100).await), want);
    let other_store = ConversationFilter {
        store_id: Some(StoreId(2)),
        ..open_of_24
    };
    assert!(list(s, other_store, snapshot, None, 100).await.is_empty());

    // Limit and start.
    assert_eq!(list(s, everything, snapshot, None, 3).await, all[..3]);
    assert_eq!(
        list(s, everything, snapshot, Some(all[1].key), 3).await,
        all[2..5]
    );
    let last = all.last().unwrap().key;
    assert!(list(s, everything, snapshot, Some(last), 3)
        .await
        .is_empty());

    // Rows show the newest chat and the pending count as they are now.
    let due = insert(s, new_message(2, 21, "due", Some(t0()))).await;
    insert(
        s,
        new_message(2, 21, "later", Some(t0() + Duration::hours(1))),
    )
    .await;
    let reply = insert(s, new_message(2, 1, "a reply", None)).await;
    let c = claim(s, t0(), 10).await.remove(0);
    assert_eq!(c.message.id, due.id);
    let now = s.snapshot().await.unwrap();
    let top = list(s, everything, now, None, 1).await.remove(0);
    assert_eq!(top.conversation.id, ConversationId(2));
    assert_eq!(top.key.activity, reply.id.0);
    assert_eq!(top.last_chat, Some(reply.clone()));
    assert_eq!(top.pending_count, 2, "new and sending");
    assert!(s.mark_sent(c.token, t0()).await.unwrap());
    let top = list(s, everything, now, None, 1).await.remove(0);
    assert_eq!(top.pending_count, 1);
    // The old snapshot keeps conversation 2 in its old place, with current contents.
    let old = list(s, everything, snapshot, None, 1000).await;
    assert_eq!(ids(&old), ids(&all));
    let row = old
        .iter()
        .find(|r| r.conversation.id == ConversationId(2))
        .unwrap();
    assert_eq!(row.key.activity, 0);
    assert_eq!(row.last_chat, Some(reply));
}

/// Paging with one snapshot skips and repeats nothing while chats and conversations arrive
/// between pages.
pub async fn list_conversations_paging_is_stable(s: &dyn Storage) {
    let data = demo_data();
    s.import(&data).await.unwrap();
    // A chat by the conversation's client.
    let chat = |id: ConversationId| async move {
        let context = s
            .conversation(id)
            .await
            .unwrap()
            .expect("listed conversation");
        insert(s, new_message(id.0, context.client.id.0, "hello", None)).await
    };
    for id in [7, 3, 12, 5, 9, 2, 11] {
        chat(ConversationId(id)).await;
    }
    for filter in [
        ConversationFilter::default(),
        ConversationFilter {
            status: Some(ConversationStatus::Open),
            ..ConversationFilter::default()
        },
    ] {
        let snapshot = s.snapshot().await.unwrap();
        let expected = ids(&list(s, filter, snapshot, None, 1000).await);
        let (mut seen, mut after, mut arrivals) = (Vec::new(), None, 0);
        loop {
            let page = list(s, filter, snapshot, after, 4).await;
            for pair in page.windows(2) {
                assert!(pair[0].key > pair[1].key, "descending keys");
            }
            if let Some(after) = after {
                assert!(page.iter().all(|r| r.key < after), "after the cursor");
            }
            seen.extend(ids(&page));
            let Some(last) = page.last() else { break };
            after = Some(last.key);
            // Between pages: a chat in a conversation on a later page, one in a
            // conversation already listed, and a new conversation.
            if let Some(later) = expected.iter().find(|id| !seen.contains(id)) {
                chat(*later).await;
            }
            chat(seen[0]).await;
            s.create_conversation(NewConversation {
                store_id: StoreId(1),
                operator_id: UserId(24),
                client_id: UserId(27),
                discount_code: None,
            })
            .await
            .unwrap();
            arrivals += 1;
            assert!(arrivals < 100, "paging does not end");
        }
        assert_eq!(seen, expected, "nothing skipped, repeated or reordered");

        let fresh = s.snapshot().await.unwrap();
        assert!(fresh.max_message > snapshot.max_message);
        assert!(fresh.max_conversation > snapshot.max_conversation);
        let now = list(s, filter, fresh, None, 1000).await;
        assert_eq!(
            now.len(),
            expected.len() + arrivals,
            "a fresh snapshot sees them"
        );
    }
}

/// A secret is stored once: later candidates are ignored, also when they race.
pub async fn secret_is_created_once(s: &dyn Storage) {
    let first = s.secret("tokens", b"first".to_vec()).await.unwrap();
    assert_eq!(first, b"first");
    let second = s.secret("tokens", b"second".to_vec()).await.unwrap();
    assert_eq!(second, b"first");
    let other = s.secret("other", b"second".to_vec()).await.unwrap();
    assert_eq!(other, b"second");
    let racing: Vec<Boxed<'_, Vec<u8>>> = (0u8..8)
        .map(|n| -> Boxed<'_, Vec<u8>> {
            Box::pin(async move { s.secret("race", vec![n; 32]).await.unwrap() })
        })
        .collect();
    let values = join_all(racing).await;
    assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
    assert_eq!(s.secret("race", vec![9; 32]).await.unwrap(), values[0]);
}

/// Every registered callback is called after a `new` message is inserted and after a
/// retry.
pub async fn watch_due_is_told_of_new_messages_and_retries(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let counters = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    for counter in &counters {
        let counter = counter.clone();
        s.watch_due(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }))
        .await
        .unwrap();
    }
    let counts = || counters.each_ref().map(|c| c.load(Ordering::SeqCst));
    let before = counts();
    let m = insert(s, new_message(1, 24, "due", Some(t0()))).await;
    eventually("a callback after an insert", || {
        let now = counts();
        now[0] > before[0] && now[1] > before[1]
    })
    .await;

    let c = claim(s, t0(), 10).await.remove(0);
    assert!(s.mark_failed(c.token, "550".into()).await.unwrap());
    let before = counts();
    assert!(matches!(
        s.retry_message(m.id, t0()).await.unwrap(),
        Transition::Done(_)
    ));
    eventually("a callback after a retry", || {
        let now = counts();
        now[0] > before[0] && now[1] > before[1]
    })
    .await;
}

/// Generates one `#[tokio::test]` per conformance case.
///
/// `$make` is an expression giving a future of `Option<impl Storage>`, evaluated once per
/// test for a fresh storage; `None` skips the test (with a message), e.g. when no database
/// URL is configured.
///
/// ```ignore
/// cartloop_core::storage_conformance_tests!(async { Some(MemoryStorage::new()) });
/// ```
#[macro_export]
macro_rules! storage_conformance_tests {
    ($make:expr) => {
        $crate::storage_conformance_tests!(@cases $make;
            import_is_exact_and_idempotent,
            unknown_ids,
            insert_and_page,
            idempotency_key,
            claim_lease_and_fencing,
            reschedule_and_fail,
            claim_order_and_limit,
            hourly_cap,
            stores,
            operators,
            clients,
            conversations,
            unsubscribe_keeps_the_first_instant,
            idempotency_keys_are_per_author,
            cancel_is_atomic_with_claims,
            retry_puts_a_failed_message_back,
            transient_retry_keeps_send_at,
            renew_leases_extends_live_claims,
            suppressed_is_fenced,
            backlog,
            conversation_page,
            list_conversations_order_and_filters,
            list_conversations_paging_is_stable,
            secret_is_created_once,
            watch_due_is_told_of_new_messages_and_retries,
        );
    };
    (@cases $make:expr; $($case:ident,)*) => {
        mod storage_conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(storage) = $make.await else {
                        eprintln!("skipped: storage not available");
                        return;
                    };
                    $crate::testing::conformance::$case(&storage).await;
                }
            )*
        }
    };
}
