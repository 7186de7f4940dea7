//! The storage contract as tests. Each function takes a fresh, empty storage and panics on a
//! violation; [`storage_conformance_tests!`](crate::storage_conformance_tests) turns them all
//! into `#[tokio::test]`s with one line.

use crate::demo::demo_data;
use crate::domain::{ConversationStatus, Message, MessageStatus, NewMessage};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::ports::{ClaimLimit, Page, Storage, StorageError};
use crate::validate::{Payload, ValidationPolicy};
use chrono::{DateTime, Duration, TimeZone, Utc};
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
