//! What the delivery policy keeps in the storage: a store's calendar, closures, frequency
//! cap and reply grace ([`Directory`](crate::ports::Directory)); a message's `sendAt`, last
//! received message and the rule that holds it ([`Conversations`](crate::ports::Conversations));
//! holds and the frequency cap's reservations ([`DispatchQueue`](crate::ports::DispatchQueue)).

#[allow(unused_imports)]
use super::*;

fn week() -> Calendar {
    r#"{"mon":["09:00-12:00","13:00-20:00"],"tue":["21:00-02:00"],"sat":["10:00-16:00"]}"#
        .parse()
        .expect("valid test week")
}

fn closures() -> Closures {
    r#"[{"date":"2026-12-25"},{"from":"2026-12-31T18:00","to":"2027-01-02T09:00"}]"#
        .parse()
        .expect("valid test closures")
}

fn cap(count: u32, per: &str) -> FrequencyCap {
    FrequencyCap::new(count, per).expect("valid test cap")
}

/// A store's delivery settings are read back as set, by the store and by its
/// conversations; a change leaves the fields it does not name; closures are replaced.
pub async fn store_delivery_settings(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let before = s.store(StoreId(1)).await.unwrap().unwrap();
    assert_eq!(before.closures, Closures::default());
    assert_eq!(before.max_per_client, None);
    assert_eq!(before.reply_grace, ReplyGrace::default());

    let changes = StoreChanges {
        active_hours: Some(Some(week())),
        max_per_client: Some(Some(cap(3, "24h"))),
        reply_grace: Some("30m".parse().unwrap()),
    };
    let changed = s.update_store(StoreId(1), changes).await.unwrap().unwrap();
    assert_eq!(changed.active_hours, Some(week()));
    assert_eq!(changed.max_per_client, Some(cap(3, "24h")));
    assert_eq!(changed.reply_grace.to_string(), "30m");
    assert_eq!(s.store(StoreId(1)).await.unwrap(), Some(changed.clone()));

    // Only the cap changes; the calendar and the grace stay.
    let off = StoreChanges {
        max_per_client: Some(None),
        ..StoreChanges::default()
    };
    let capless = s.update_store(StoreId(1), off).await.unwrap().unwrap();
    assert_eq!(capless.max_per_client, None);
    assert_eq!(capless.active_hours, Some(week()));
    assert_eq!(capless.reply_grace.to_string(), "30m");

    let closed = s
        .set_store_closures(StoreId(1), closures())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.closures, closures());
    assert_eq!(closed.active_hours, Some(week()), "closures leave the rest");
    let context = s.conversation(ConversationId(1)).await.unwrap().unwrap();
    assert_eq!(context.store, closed, "conversations see the settings");
    let contexts = s.contexts(&[ConversationId(1)]).await.unwrap();
    assert_eq!(contexts[0].store, closed, "the dispatcher sees them too");

    let reopened = s
        .set_store_closures(StoreId(1), Closures::default())
        .await
        .unwrap()
        .unwrap();
    assert!(reopened.closures.is_empty());
    let other = s.store(StoreId(2)).await.unwrap().unwrap();
    assert_eq!(other.active_hours, None, "other stores keep theirs");

    let unknown = StoreId(999_999);
    assert_eq!(
        s.update_store(unknown, StoreChanges::default())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.set_store_closures(unknown, closures()).await.unwrap(),
        None
    );
}

/// A message's timing (`sendAt`, last received, the rule holding it) is kept on every read,
/// and a hold moves `send_at`, records the rule and does not count the claim.
pub async fn message_timing_and_holds(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let later = t0() + Duration::hours(2);
    let received = t0() - Duration::minutes(3);
    let message = NewMessage {
        not_before: Some(later),
        last_received: Some(received),
        waiting_for: Some(WaitingFor::SendAt),
        ..new_message(1, 24, "later", Some(later))
    };
    let kept = insert(s, message).await;
    assert_eq!(kept.not_before, Some(later));
    assert_eq!(kept.last_received, Some(received));
    assert_eq!(kept.waiting_for, Some(WaitingFor::SendAt));
    assert_eq!(stored(s, kept.id).await, kept);
    let page = messages(s, ConversationId(1), ALL).await.unwrap();
    assert_eq!(page.iter().find(|m| m.id == kept.id), Some(&kept));

    let claimed = s
        .claim_due(later, LEASE, ClaimLimit::batch(10))
        .await
        .unwrap();
    let claim = claimed.iter().find(|c| c.message.id == kept.id).unwrap();
    assert_eq!(claim.message.not_before, Some(later));
    assert_eq!(claim.message.last_received, Some(received));
    let held_to = later + Duration::hours(20);
    assert!(s
        .hold(claim.token, held_to, Some(WaitingFor::Closure))
        .await
        .unwrap());
    let held = stored(s, kept.id).await;
    assert_eq!(held.status, MessageStatus::New);
    assert_eq!(held.send_at, Some(held_to));
    assert_eq!(held.next_attempt_at, None);
    assert_eq!(held.waiting_for, Some(WaitingFor::Closure));
    assert_eq!(held.attempts, 0, "a hold is not an attempt");
    assert_eq!(held.not_before, Some(later), "the request is kept");
    assert!(
        !s.hold(claim.token, later, None).await.unwrap(),
        "a hold is fenced like every result"
    );
    assert!(s
        .claim_due(held_to - Duration::seconds(1), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap()
        .iter()
        .all(|c| c.message.id != kept.id));
}

/// Reservations under the cap: granted while fewer than `count` in the rolling span,
/// counted across the client's conversations, released by every result but a send, read
/// back by `delivery_facts`; the last received message is the conversation's.
pub async fn frequency_cap_reservations(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let first = s.conversation(ConversationId(1)).await.unwrap().unwrap();
    let client = first.client.id;
    let other = s
        .create_conversation(NewConversation {
            store_id: first.store.id,
            operator_id: first.operator.id,
            client_id: client,
            discount_code: None,
        })
        .await
        .unwrap();
    let a = insert(s, new_message(1, 24, "a", Some(t0()))).await;
    let b = insert(s, new_message(other.id.0, 24, "b", Some(t0()))).await;
    let c = insert(s, new_message(1, 24, "c", Some(t0()))).await;
    let claims = s
        .claim_due(t0(), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap();
    let token = |m: &Message| claims.iter().find(|c| c.message.id == m.id).unwrap().token;
    let cap = cap(2, "24h");

    assert_eq!(
        s.reserve_send(token(&a), t0(), cap).await.unwrap(),
        Reservation::Granted
    );
    let t1 = t0() + Duration::seconds(10);
    assert_eq!(
        s.reserve_send(token(&b), t1, cap).await.unwrap(),
        Reservation::Granted,
        "the other conversation's client is the same"
    );
    let t2 = t0() + Duration::seconds(20);
    assert_eq!(
        s.reserve_send(token(&c), t2, cap).await.unwrap(),
        Reservation::Full(vec![t0(), t1]),
        "full: nothing reserved"
    );
    let facts = s
        .delivery_facts(ConversationId(1), client, t0() - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(facts.recent_sends, vec![t0(), t1]);
    let since = s
        .delivery_facts(ConversationId(1), client, t1)
        .await
        .unwrap();
    assert_eq!(since.recent_sends, vec![t1], "only since the instant asked");

    // Sent: the reservation stays, at the send's instant. Held: it is released.
    let sent_at = t0() + Duration::seconds(5);
    assert!(s.mark_sent(token(&a), sent_at).await.unwrap());
    assert!(s
        .hold(token(&b), t0() + Duration::hours(1), None)
        .await
        .unwrap());
    let facts = s
        .delivery_facts(other.id, client, t0() - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(facts.recent_sends, vec![sent_at]);
    assert_eq!(
        s.reserve_send(token(&c), t2, cap).await.unwrap(),
        Reservation::Granted
    );
    assert_eq!(
        s.reserve_send(token(&b), t2, cap).await.unwrap(),
        Reservation::Lost,
        "b's claim ended with its hold"
    );
    // The rolling span: a day after the send, it no longer counts.
    assert!(s.mark_failed(token(&c), "bounced".into()).await.unwrap());
    let facts = s
        .delivery_facts(ConversationId(1), client, sent_at + Duration::seconds(1))
        .await
        .unwrap();
    assert!(facts.recent_sends.is_empty(), "{facts:?}");

    // Another client's reservations do not count for this one.
    let others = s
        .delivery_facts(ConversationId(2), UserId(28), t0() - Duration::days(1))
        .await
        .unwrap();
    assert!(others.recent_sends.is_empty());

    // The conversation's newest received message, not another conversation's.
    let demo = facts
        .last_received
        .expect("the demo's client wrote in conversation 1");
    assert!(demo < t0());
    let mut reply = new_message(1, client.0, "hello", None);
    reply.created_at = t0() + Duration::minutes(1);
    insert(s, reply).await;
    let mut older = new_message(1, client.0, "older", None);
    older.created_at = t0() - Duration::minutes(1);
    insert(s, older).await;
    let facts = s
        .delivery_facts(ConversationId(1), client, t0())
        .await
        .unwrap();
    assert_eq!(facts.last_received, Some(t0() + Duration::minutes(1)));
    let facts = s.delivery_facts(other.id, client, t0()).await.unwrap();
    assert_eq!(facts.last_received, None);
    assert_eq!(
        s.delivery_facts(ConversationId(999_999), UserId(999_999), t0())
            .await
            .unwrap(),
        DeliveryFacts::default()
    );
}

/// An attempt whose email may have gone keeps its reservation ([`DispatchQueue::keep_reservation`]):
/// the retry, a later transient failure and a hold all leave it counted at that attempt's
/// instant; a send moves it to the send's. Without it, a retry releases the reservation.
///
/// [`DispatchQueue::keep_reservation`]: crate::ports::DispatchQueue::keep_reservation
pub async fn an_ambiguous_send_keeps_its_reservation(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    let client = s
        .conversation(ConversationId(1))
        .await
        .unwrap()
        .unwrap()
        .client
        .id;
    let a = insert(s, new_message(1, 24, "a", Some(t0()))).await;
    let b = insert(s, new_message(1, 24, "b", Some(t0()))).await;
    let cap = cap(1, "24h");
    let minute = Duration::minutes(1);
    let counted = || async {
        s.delivery_facts(ConversationId(1), client, t0() - Duration::days(1))
            .await
            .unwrap()
            .recent_sends
    };
    let claim = |at: DateTime<Utc>, id: MessageId| async move {
        s.claim_due(at, LEASE, ClaimLimit::batch(10))
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.message.id == id)
            .unwrap_or_else(|| panic!("message {id} due at {at}"))
            .token
    };
    let claims = s
        .claim_due(t0(), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap();
    let token_b = claims.iter().find(|c| c.message.id == b.id).unwrap().token;
    let token_a = claims.iter().find(|c| c.message.id == a.id).unwrap().token;
    // b waits for tomorrow, out of the way.
    assert!(s
        .hold(token_b, t0() + Duration::days(2), None)
        .await
        .unwrap());

    // Not handed over (a transient error): the retry releases the reservation.
    assert_eq!(
        s.reserve_send(token_a, t0(), cap).await.unwrap(),
        Reservation::Granted
    );
    assert!(s
        .reschedule(token_a, t0() + minute, Some("451 later".into()))
        .await
        .unwrap());
    assert!(counted().await.is_empty(), "released");

    // May have gone (an ambiguous error): kept through the retry.
    let t1 = t0() + minute;
    let token_a = claim(t1, a.id).await;
    assert_eq!(
        s.reserve_send(token_a, t1, cap).await.unwrap(),
        Reservation::Granted
    );
    assert!(s.keep_reservation(token_a).await.unwrap());
    assert!(s
        .reschedule(token_a, t1 + minute, Some("timed out after DATA".into()))
        .await
        .unwrap());
    assert_eq!(counted().await, vec![t1], "kept");

    // Its retry may reserve again (its own send does not count against it); failing
    // transiently then, or held, it is back at the instant it may have gone.
    let t2 = t1 + minute;
    let token_a = claim(t2, a.id).await;
    assert_eq!(
        s.reserve_send(token_a, t2, cap).await.unwrap(),
        Reservation::Granted
    );
    assert_eq!(counted().await, vec![t2]);
    assert!(s
        .reschedule(token_a, t2 + minute, Some("451 later".into()))
        .await
        .unwrap());
    assert_eq!(counted().await, vec![t1], "back to the ambiguous attempt");
    let t3 = t2 + minute;
    let token_a = claim(t3, a.id).await;
    assert!(s.hold(token_a, t3 + minute, None).await.unwrap());
    assert_eq!(counted().await, vec![t1], "held, still counted");

    // Another message of the client meanwhile finds the cap full.
    let t4 = t3 + minute;
    let c = insert(s, new_message(1, 24, "c", Some(t4))).await;
    let claims = s.claim_due(t4, LEASE, ClaimLimit::batch(10)).await.unwrap();
    let token = |m: &Message| claims.iter().find(|c| c.message.id == m.id).unwrap().token;
    assert_eq!(
        s.reserve_send(token(&c), t4, cap).await.unwrap(),
        Reservation::Full(vec![t1])
    );
    assert!(s
        .hold(token(&c), t0() + Duration::days(2), None)
        .await
        .unwrap());

    // Sent at last: counted once, at the send.
    assert_eq!(
        s.reserve_send(token(&a), t4, cap).await.unwrap(),
        Reservation::Granted
    );
    assert!(s.mark_sent(token(&a), t4).await.unwrap());
    assert_eq!(counted().await, vec![t4]);
}

/// Reservations made at the same moment for one client never exceed the cap together.
pub async fn concurrent_reservations_keep_the_cap(s: &dyn Storage) {
    s.import(&demo_data()).await.unwrap();
    for n in 0..8 {
        insert(s, new_message(1, 24, &format!("burst {n}"), Some(t0()))).await;
    }
    let claims = s
        .claim_due(t0(), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap();
    assert_eq!(claims.len(), 8);
    let cap = cap(3, "24h");
    let results = futures_util::future::join_all(
        claims
            .iter()
            .map(|claim| s.reserve_send(claim.token, t0(), cap)),
    )
    .await;
    let granted = results
        .iter()
        .filter(|r| matches!(r, Ok(Reservation::Granted)))
        .count();
    let full = results
        .iter()
        .filter(|r| matches!(r, Ok(Reservation::Full(sends)) if sends.len() == 3))
        .count();
    assert_eq!((granted, full), (3, 5), "{results:?}");
}
