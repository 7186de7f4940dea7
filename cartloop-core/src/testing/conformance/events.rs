//! The [`EventLog`](crate::ports::EventLog) and [`Webhooks`](crate::ports::Webhooks)
//! ports' contract: every change writes its event, with the thing's shape after it, and the
//! delivery queue claims in order per webhook and conversation, fenced by its claims.

#[allow(unused_imports)]
use super::*;
use crate::event::{self, Event, EventId, EventSelection, EventType};
use crate::ports::{
    AttemptStatus, ClaimedDelivery, DeliveryAttempt, DeliveryNext, DeliveryResult, EventFilter,
    NewWebhook, WebhookChanges,
};

async fn all_events(s: &dyn Storage, filter: &EventFilter) -> Vec<Event> {
    s.events_after(EventId(0), filter, 1000).await.unwrap()
}

fn kinds(events: &[Event]) -> Vec<EventType> {
    events.iter().map(|e| e.kind).collect()
}

/// A store with an operator, a client and an open conversation: `(store, operator,
/// client, conversation)`.
async fn conversation(
    s: &dyn Storage,
    store_name: &str,
) -> (StoreId, UserId, UserId, ConversationId) {
    let (store, operator) = store_with_operator(s, store_name).await;
    let client = s
        .create_client(NewClient {
            name: name("Olivia"),
            email: address("olivia@example.com"),
            time_zone: Some(chrono_tz::America::New_York),
            store_id: store,
        })
        .await
        .unwrap();
    let conversation = s
        .create_conversation(NewConversation {
            store_id: store,
            operator_id: operator,
            client_id: client.id,
            discount_code: Some(code("PROMO50")),
        })
        .await
        .unwrap();
    (store, operator, client.id, conversation.id)
}

fn hook(store: Option<StoreId>, events: &[&str]) -> NewWebhook {
    NewWebhook {
        store_id: store,
        url: "https://hooks.example.com/cartloop".into(),
        events: EventSelection::parse(events).unwrap(),
        secret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=".into(),
        created_at: t0(),
    }
}

fn attempt(claimed: &ClaimedDelivery, status: AttemptStatus, at: DateTime<Utc>) -> DeliveryAttempt {
    DeliveryAttempt {
        webhook_id: claimed.webhook.id,
        event_id: Some(claimed.event.id),
        kind: claimed.event.kind,
        attempt: claimed.attempt,
        status,
        response_status: Some(if status == AttemptStatus::Delivered {
            200
        } else {
            503
        }),
        error: (status != AttemptStatus::Delivered).then(|| "503 Service Unavailable".into()),
        duration_ms: 12,
        at,
    }
}

fn result(claimed: &ClaimedDelivery, next: DeliveryNext, at: DateTime<Utc>) -> DeliveryResult {
    let status = match next {
        DeliveryNext::Done => AttemptStatus::Delivered,
        _ => AttemptStatus::Retrying,
    };
    DeliveryResult {
        delivery: (claimed.id, claimed.attempt),
        attempt: attempt(claimed, status, at),
        next,
    }
}

/// Each change writes its event in id order, with the thing's API shape after the change;
/// a change that changes nothing writes none.
pub async fn every_change_writes_its_event(s: &dyn Storage) {
    let (store, operator, client, id) = conversation(s, "Events").await;
    let written = insert(
        s,
        new_message(id.0, operator.0, "Hi << username >>", Some(t0())),
    )
    .await;
    let reply = insert(s, new_message(id.0, client.0, "Thanks", None)).await;
    let claimed = claim(s, t0(), 10).await;
    assert_eq!(claimed.len(), 1);
    assert!(s.mark_sent(claimed[0].token, t0()).await.unwrap());
    let cancelled = insert(
        s,
        new_message(id.0, operator.0, "Later", Some(t0() + Duration::hours(5))),
    )
    .await;
    assert!(matches!(
        s.cancel_message(cancelled.id).await.unwrap(),
        Transition::Done(_)
    ));
    assert!(s
        .set_conversation_status(id, ConversationStatus::Resolved)
        .await
        .unwrap());
    assert!(s
        .set_conversation_status(id, ConversationStatus::Resolved)
        .await
        .unwrap());
    assert!(s
        .set_conversation_status(id, ConversationStatus::Open)
        .await
        .unwrap());
    let other = s
        .create_operator(NewOperator {
            name: name("Ben"),
            store_id: store,
            group: name("support"),
        })
        .await
        .unwrap();
    assert!(s.reassign_conversation(id, other.id).await.unwrap());
    s.unsubscribe_client(client, t0()).await.unwrap();
    s.unsubscribe_client(client, t0() + Duration::hours(1))
        .await
        .unwrap();

    let events = all_events(s, &EventFilter::default()).await;
    use EventType::*;
    assert_eq!(
        kinds(&events),
        [
            ClientCreated,
            ConversationCreated,
            ChatCreated,
            ChatReceived,
            ChatSent,
            ChatCreated,
            ChatCancelled,
            ConversationResolved,
            ConversationReopened,
            ConversationAssigned,
            ClientUnsubscribed,
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    assert!(events.iter().all(|e| e.store_id == Some(store)));
    let client_events = [&events[0], &events[10]];
    assert!(client_events.iter().all(|e| e.conversation_id.is_none()));
    assert!(events[1..10].iter().all(|e| e.conversation_id == Some(id)));

    let sent = stored(s, written.id).await;
    assert_eq!(
        events[2].data,
        event::chat_data(&written),
        "chat.created: as stored"
    );
    assert_eq!(events[3].data, event::chat_data(&reply));
    assert_eq!(
        events[4].data,
        event::chat_data(&sent),
        "chat.sent: after the change"
    );
    assert_eq!(events[4].data["status"], "sent");
    assert_eq!(events[6].data["status"], "cancelled");

    let context = s.conversation(id).await.unwrap().expect("conversation");
    let mut created = context.conversation.clone();
    created.operator_id = operator;
    assert_eq!(
        events[1].data,
        event::conversation_data(&created, "sales", "America/New_York")
    );
    assert_eq!(events[7].data["status"], "resolved");
    assert_eq!(events[8].data["status"], "open");
    assert_eq!(
        events[9].data,
        event::conversation_data(&context.conversation, "support", "America/New_York")
    );
    let unsubscribed = s.client(client).await.unwrap().expect("client");
    assert_eq!(events[10].data, event::client_data(&unsubscribed));
    assert_eq!(events[10].data["unsubscribed"], true);
    assert_eq!(events[0].data["unsubscribed"], false);

    assert_eq!(s.last_event_id().await.unwrap(), events[10].id);
}

/// Reading after an id, by store, conversation and type, a page at a time.
pub async fn events_are_read_after_an_id_and_filtered(s: &dyn Storage) {
    assert_eq!(s.last_event_id().await.unwrap(), EventId(0));
    let (one, operator, _, first) = conversation(s, "One").await;
    let (two, _, _, _) = conversation(s, "Two").await;
    let second = s
        .create_conversation(NewConversation {
            store_id: one,
            operator_id: operator,
            client_id: s
                .conversation(first)
                .await
                .unwrap()
                .unwrap()
                .conversation
                .client_id,
            discount_code: None,
        })
        .await
        .unwrap()
        .id;
    for n in 0..3 {
        insert(
            s,
            new_message(first.0, operator.0, &format!("First {n}"), Some(t0())),
        )
        .await;
        insert(
            s,
            new_message(second.0, operator.0, &format!("Second {n}"), Some(t0())),
        )
        .await;
    }
    let everything = all_events(s, &EventFilter::default()).await;
    assert_eq!(everything.len(), 2 + 2 + 1 + 6);

    let mine = EventFilter {
        store: Some(one),
        ..Default::default()
    };
    let store_one = all_events(s, &mine).await;
    assert_eq!(store_one.len(), 2 + 1 + 6);
    assert!(store_one.iter().all(|e| e.store_id == Some(one)));
    assert!(all_events(
        s,
        &EventFilter {
            store: Some(two),
            ..Default::default()
        }
    )
    .await
    .iter()
    .all(|e| e.store_id == Some(two)));

    let chats_of_second = EventFilter {
        conversation: Some(second),
        types: Some(vec![EventType::ChatCreated]),
        ..Default::default()
    };
    let page = s
        .events_after(EventId(0), &chats_of_second, 2)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let rest = s
        .events_after(page[1].id, &chats_of_second, 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert!(page
        .iter()
        .chain(&rest)
        .all(|e| e.conversation_id == Some(second) && e.kind == EventType::ChatCreated));
    let none = s
        .events_after(
            s.last_event_id().await.unwrap(),
            &EventFilter::default(),
            10,
        )
        .await
        .unwrap();
    assert!(none.is_empty());

    assert_eq!(
        s.prune_events(Utc::now() - Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    let pruned = s
        .prune_events(Utc::now() + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(pruned, everything.len() as u64 - 1, "all but the newest");
    let left = all_events(s, &EventFilter::default()).await;
    assert_eq!(left, everything[everything.len() - 1..]);
    assert_eq!(
        s.last_event_id().await.unwrap(),
        everything.last().unwrap().id,
        "ids are not reused"
    );
}

/// Webhooks are kept without their secrets, listed by store, changed and deleted.
pub async fn webhooks_are_kept_listed_changed_and_deleted(s: &dyn Storage) {
    let (one, _) = store_with_operator(s, "One").await;
    let (two, _) = store_with_operator(s, "Two").await;
    let a = s
        .create_webhook(hook(Some(one), &["chat.sent"]))
        .await
        .unwrap();
    let b = s.create_webhook(hook(Some(two), &["*"])).await.unwrap();
    let wide = s
        .create_webhook(hook(None, &["client.created", "chat.sent"]))
        .await
        .unwrap();
    assert!(a.enabled && a.disabled_reason.is_none());
    assert_eq!(a.events, EventSelection::Only(vec![EventType::ChatSent]));
    assert_eq!(b.events, EventSelection::All);
    assert_eq!(s.webhook(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.list_webhooks(Some(one)).await.unwrap(),
        std::slice::from_ref(&a)
    );
    assert_eq!(
        s.list_webhooks(None).await.unwrap(),
        [a.clone(), b.clone(), wide.clone()]
    );
    assert_eq!(
        s.webhook_secret(a.id).await.unwrap().as_deref(),
        Some("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=")
    );
    assert!(matches!(
        s.create_webhook(hook(Some(StoreId(999)), &["*"])).await,
        Err(StorageError::NotFound(_))
    ));

    let changed = s
        .update_webhook(
            a.id,
            WebhookChanges {
                url: Some("https://other.example.com/in".into()),
                events: Some(EventSelection::All),
                enabled: Some(false),
            },
        )
        .await
        .unwrap()
        .expect("webhook");
    assert_eq!(changed.url, "https://other.example.com/in");
    assert_eq!(changed.events, EventSelection::All);
    assert!(!changed.enabled);
    let kept = s
        .update_webhook(a.id, WebhookChanges::default())
        .await
        .unwrap()
        .expect("webhook");
    assert_eq!(kept, changed);
    assert_eq!(
        s.update_webhook(crate::ports::WebhookId(999), WebhookChanges::default())
            .await
            .unwrap(),
        None
    );

    assert!(s.delete_webhook(a.id).await.unwrap());
    assert!(!s.delete_webhook(a.id).await.unwrap());
    assert_eq!(s.webhook(a.id).await.unwrap(), None);
    assert_eq!(s.webhook_secret(a.id).await.unwrap(), None);
}

/// An event is queued for the enabled webhooks that select it, of its store or
/// deployment-wide; one webhook gets a conversation's events one at a time, in order, while
/// other conversations go on; results are fenced by their claims.
pub async fn deliveries_go_in_order_per_conversation(s: &dyn Storage) {
    let (store, operator) = store_with_operator(s, "Hooks").await;
    let (other_store, _) = store_with_operator(s, "Elsewhere").await;
    let mine = s
        .create_webhook(hook(Some(store), &["chat.created", "chat.sent"]))
        .await
        .unwrap();
    let theirs = s
        .create_webhook(hook(Some(other_store), &["*"]))
        .await
        .unwrap();
    let off = s.create_webhook(hook(Some(store), &["*"])).await.unwrap();
    s.update_webhook(
        off.id,
        WebhookChanges {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut conversations = Vec::new();
    for n in 0..2 {
        let client = s
            .create_client(NewClient {
                name: name("Olivia"),
                email: address(&format!("olivia{n}@example.com")),
                time_zone: None,
                store_id: store,
            })
            .await
            .unwrap();
        let c = s
            .create_conversation(NewConversation {
                store_id: store,
                operator_id: operator,
                client_id: client.id,
                discount_code: None,
            })
            .await
            .unwrap();
        conversations.push(c.id);
    }
    for n in 0..3 {
        for c in &conversations {
            insert(
                s,
                new_message(c.0, operator.0, &format!("Message {n}"), Some(t0())),
            )
            .await;
        }
    }
    let now = Utc::now();
    assert!(s.oldest_undelivered().await.unwrap().is_some());

    // One per conversation: the oldest.
    let first = s.claim_deliveries(now, LEASE, 100).await.unwrap();
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first
        .iter()
        .all(|d| d.webhook.id == mine.id && d.attempt == 1));
    assert!(first.iter().all(|d| d.event.kind == EventType::ChatCreated));
    assert_eq!(first[0].event.data["payload"], "Message 0");
    assert_eq!(
        first[0].secret,
        "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="
    );
    assert!(
        s.claim_deliveries(now, LEASE, 100)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    let _ = theirs;

    // The first conversation's head fails: it is retried later, its next events wait;
    // the second's is delivered, and its next comes.
    let retry_at = now + Duration::seconds(5);
    let held = s
        .record_deliveries(vec![
            result(&first[0], DeliveryNext::RetryAt(retry_at), now),
            result(&first[1], DeliveryNext::Done, now),
        ])
        .await
        .unwrap();
    assert_eq!(held, 2);
    let second = s.claim_deliveries(now, LEASE, 100).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].event.conversation_id, Some(conversations[1]));
    assert_eq!(second[0].event.data["payload"], "Message 1");

    // A stale result changes nothing, but is logged.
    let stale = s
        .record_deliveries(vec![result(&first[1], DeliveryNext::RetryAt(now), now)])
        .await
        .unwrap();
    assert_eq!(stale, 0);

    // After the retry instant the failed head comes again, the same event, attempt 2.
    let again = s.claim_deliveries(retry_at, LEASE, 100).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(again[0].event.id, first[0].event.id);
    assert_eq!(again[0].attempt, 2);

    // A lease that ran out: claimed again with the next attempt; the old claim is fenced.
    let expired = s
        .claim_deliveries(retry_at + Duration::seconds(61), LEASE, 100)
        .await
        .unwrap();
    let ids: Vec<_> = expired.iter().map(|d| d.id).collect();
    assert!(ids.contains(&again[0].id) && ids.contains(&second[0].id));
    assert_eq!(
        s.record_deliveries(vec![result(&again[0], DeliveryNext::Done, retry_at)])
            .await
            .unwrap(),
        0
    );
    // Handed back (a server stopping): claimable at once, the attempt not counted.
    let back: Vec<_> = expired.iter().map(|d| (d.id, d.attempt)).collect();
    assert_eq!(s.release_deliveries(&back).await.unwrap(), 2);
    let later = retry_at + Duration::seconds(62);
    let taken = s.claim_deliveries(later, LEASE, 100).await.unwrap();
    assert_eq!(taken.len(), 2);
    assert!(taken.iter().all(|d| expired
        .iter()
        .any(|e| e.id == d.id && e.attempt == d.attempt)));
    let done: Vec<_> = taken
        .iter()
        .map(|d| result(d, DeliveryNext::Done, later))
        .collect();
    assert_eq!(s.record_deliveries(done).await.unwrap(), 2);

    // The log: newest first, every attempt including the stale one.
    let log = s.delivery_log(mine.id, 100).await.unwrap();
    assert_eq!(log.len(), 2 + 1 + 1 + 2);
    assert_eq!(log[0].status, AttemptStatus::Delivered);
    assert_eq!(log.last().unwrap().status, AttemptStatus::Retrying);
    assert_eq!(log.last().unwrap().response_status, Some(503));
    assert_eq!(s.delivery_log(mine.id, 2).await.unwrap(), log[..2]);
    assert!(s.delivery_log(off.id, 10).await.unwrap().is_empty());

    // Drain the rest; the disabled webhook and the other store's got nothing.
    let mut delivered = 2 + 1;
    loop {
        let batch = s.claim_deliveries(later, LEASE, 100).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.iter().all(|d| d.webhook.id == mine.id));
        delivered += batch.len();
        let done: Vec<_> = batch
            .iter()
            .map(|d| result(d, DeliveryNext::Done, later))
            .collect();
        s.record_deliveries(done).await.unwrap();
    }
    assert_eq!(delivered, 6);
    assert_eq!(s.oldest_undelivered().await.unwrap(), None);
}

/// A 410 turns the webhook off: its deliveries wait until it is turned on again.
pub async fn a_gone_receiver_disables_its_webhook(s: &dyn Storage) {
    let (store, operator, _, id) = conversation(s, "Gone").await;
    let webhook = s.create_webhook(hook(Some(store), &["*"])).await.unwrap();
    insert(s, new_message(id.0, operator.0, "Hello", Some(t0()))).await;
    let now = Utc::now();
    let claimed = s.claim_deliveries(now, LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let gone = DeliveryResult {
        delivery: (claimed[0].id, claimed[0].attempt),
        attempt: DeliveryAttempt {
            status: AttemptStatus::Failed,
            response_status: Some(410),
            ..attempt(&claimed[0], AttemptStatus::Failed, now)
        },
        next: DeliveryNext::Disable("the receiver answered 410 Gone".into()),
    };
    assert_eq!(s.record_deliveries(vec![gone]).await.unwrap(), 1);
    let off = s.webhook(webhook.id).await.unwrap().expect("webhook");
    assert!(!off.enabled);
    assert_eq!(
        off.disabled_reason.as_deref(),
        Some("the receiver answered 410 Gone")
    );
    assert!(s.claim_deliveries(now, LEASE, 10).await.unwrap().is_empty());
    assert_eq!(
        s.oldest_undelivered().await.unwrap(),
        None,
        "a disabled webhook waits for no one"
    );
    // Events written while it is off are not queued for it.
    insert(s, new_message(id.0, operator.0, "While off", Some(t0()))).await;

    let on = s
        .update_webhook(
            webhook.id,
            WebhookChanges {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .expect("webhook");
    assert!(on.enabled && on.disabled_reason.is_none());
    let resumed = s.claim_deliveries(now, LEASE, 10).await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].event.id, claimed[0].event.id);
    assert_eq!(resumed[0].attempt, 2);
    s.record_deliveries(vec![result(&resumed[0], DeliveryNext::Done, now)])
        .await
        .unwrap();
    assert!(s.claim_deliveries(now, LEASE, 10).await.unwrap().is_empty());
}

/// A test send's attempt is logged without a queued delivery.
pub async fn attempts_without_a_delivery_are_logged(s: &dyn Storage) {
    let (store, _) = store_with_operator(s, "Test").await;
    let webhook = s.create_webhook(hook(Some(store), &["*"])).await.unwrap();
    let entry = DeliveryAttempt {
        webhook_id: webhook.id,
        event_id: None,
        kind: EventType::WebhookTest,
        attempt: 1,
        status: AttemptStatus::Delivered,
        response_status: Some(204),
        error: None,
        duration_ms: 3,
        at: t0(),
    };
    s.log_attempt(entry.clone()).await.unwrap();
    assert_eq!(s.delivery_log(webhook.id, 10).await.unwrap(), [entry]);
}

/// Watchers hear of events written after they started watching.
pub async fn event_watchers_are_woken(s: &dyn Storage) {
    let woken = Arc::new(AtomicUsize::new(0));
    let counter = woken.clone();
    s.watch_events(Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }))
    .await
    .unwrap();
    let (_, _, _, _) = conversation(s, "Watched").await;
    eventually("an event watcher is woken", || {
        woken.load(Ordering::SeqCst) > 0
    })
    .await;
}
