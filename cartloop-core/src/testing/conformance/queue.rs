//! The [`DispatchQueue`](crate::ports::DispatchQueue) port's contract: claims, leases,
//! fenced results, the hourly cap, wake-ups.

#[allow(unused_imports)]
use super::*;

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
    // Two claims, one of them the suppression, which tried no send: one attempt.
    assert_eq!(after.attempts, 1);
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

/// `contexts` reads the claimed messages' conversations as they are now, one per known id,
/// and leaves unknown ids out.
pub async fn contexts_reads_known_conversations(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let asked = [
        ConversationId(2),
        ConversationId(1),
        ConversationId(999_999),
    ];
    let mut found = s.contexts(&asked).await.unwrap();
    found.sort_by_key(|c| c.conversation.id);
    let ids: Vec<_> = found.iter().map(|c| c.conversation.id).collect();
    assert_eq!(ids, [ConversationId(1), ConversationId(2)]);
    for context in &found {
        let alone = s.conversation(context.conversation.id).await.unwrap();
        assert_eq!(alone.as_ref(), Some(context), "the same as a read alone");
    }
    assert!(s.contexts(&[]).await.unwrap().is_empty());

    // As they are now: a changed window shows.
    let store = found[0].store.id;
    let changed = s
        .set_store_hours(store, Some(hours("08:00-21:00")))
        .await
        .unwrap();
    assert!(changed.is_some());
    let again = s.contexts(&[ConversationId(1)]).await.unwrap();
    assert_eq!(again[0].store.active_hours, Some(hours("08:00-21:00")));
}
