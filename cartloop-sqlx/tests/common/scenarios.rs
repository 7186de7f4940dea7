//! Scenarios beyond the conformance suite, run on every backend: crashes, concurrency and
//! several dispatchers on one database.

use cartloop_core::demo::demo_data;
use cartloop_core::dispatch::{DispatchConfig, Dispatcher};
use cartloop_core::domain::{
    ConversationStatus, Message, MessageStatus, NewClient, NewConversation, NewMessage, NewStore,
};
use cartloop_core::email_address::EmailAddress;
use cartloop_core::ids::{ConversationId, MessageId, StoreId, UserId};
use cartloop_core::name::Name;
use cartloop_core::ports::{
    ClaimLimit, Clock, ConversationFilter, Page, Storage, StorageError, Transition,
};
use cartloop_core::rules::Rules;
use cartloop_core::testing::{ManualClock, MemoryStorage, RecordingMailer};
use cartloop_core::validate::{Payload, ValidationPolicy};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);

const ALL: Page = Page {
    limit: 100_000,
    before: None,
};

/// All of a conversation's messages, oldest first.
pub async fn messages(storage: &dyn Storage, id: ConversationId) -> Vec<Message> {
    let (_, messages) = storage
        .conversation_page(id, ALL)
        .await
        .unwrap()
        .expect("conversation");
    messages
}

/// 2026-11-25 15:00Z is 09:00 in Chicago, where client 27 (conversation 1) lives.
pub fn nine_am_chicago() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap()
}

/// Operator 24's message to client 27 in conversation 1, due at `send_at`.
pub fn operator_message(payload: &str, send_at: DateTime<Utc>) -> NewMessage {
    NewMessage {
        conversation_id: ConversationId(1),
        author_id: UserId(24),
        payload: Payload::parse(payload, &ValidationPolicy::default()).expect("valid payload"),
        status: MessageStatus::New,
        created_at: send_at,
        send_at: Some(send_at),
        idempotency_key: None,
        not_before: None,
        last_received: None,
        waiting_for: None,
    }
}

fn dispatcher(
    storage: Arc<dyn Storage>,
    mailer: Arc<RecordingMailer>,
    clock: Arc<ManualClock>,
    batch_size: u32,
) -> Dispatcher {
    let config = DispatchConfig {
        batch_size,
        lease: LEASE,
        ..DispatchConfig::default()
    };
    Dispatcher::new(
        storage.into_queue(),
        mailer,
        clock,
        Arc::new(Rules::default()),
        config,
    )
}

/// A dispatcher claims a message through `dead` and dies; one on `alive` delivers it once the
/// lease is over, and the dead claim can no longer write.
pub async fn claimed_and_died(dead: Arc<dyn Storage>, alive: Arc<dyn Storage>) {
    alive.import(&demo_data()).await.unwrap();
    let id = alive
        .insert_message(operator_message("hi", nine_am_chicago()))
        .await
        .unwrap()
        .message
        .id;
    let claimed = dead
        .claim_due(nine_am_chicago(), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    drop(dead);

    let mailer = Arc::new(RecordingMailer::new_ok());
    let clock = Arc::new(ManualClock::new(nine_am_chicago()));
    let survivor = dispatcher(alive.clone(), mailer.clone(), clock.clone(), 10);
    assert_eq!(survivor.run_once().await.unwrap().claimed, 0, "lease held");
    clock.advance(chrono::Duration::seconds(60));
    assert_eq!(survivor.next_wake().await.unwrap(), Some(clock.now()));
    let report = survivor.run_once().await.unwrap();
    assert_eq!((report.claimed, report.sent), (1, 1));
    assert_eq!(mailer.messages().len(), 1);
    assert_eq!(mailer.messages()[0].message_id, id);

    let stale = claimed[0].token;
    assert!(!alive.mark_sent(stale, clock.now()).await.unwrap());
    assert!(!alive.mark_failed(stale, "late".into()).await.unwrap());
    assert!(!alive.reschedule(stale, clock.now(), None).await.unwrap());
    let stored = alive.message(id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts, stored.sent_at),
        (MessageStatus::Sent, 2, Some(clock.now()))
    );
    assert_eq!(alive.next_due().await.unwrap(), None);
}

/// 100 tasks insert into one conversation at once: all stored, ids unique, read back in id
/// order.
pub async fn concurrent_inserts(storage: Arc<dyn Storage>) {
    storage.import(&demo_data()).await.unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let message = operator_message(&format!("message {n}"), nine_am_chicago());
                storage.insert_message(message).await.unwrap().message
            })
        })
        .collect();
    let mut inserted = Vec::new();
    for task in tasks {
        inserted.push(task.await.unwrap());
    }
    let ids: HashSet<MessageId> = inserted.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 100, "ids are unique");

    let stored = messages(&*storage, ConversationId(1)).await;
    assert_eq!(stored.len(), 3 + 100);
    assert!(
        stored.windows(2).all(|w| w[0].id < w[1].id),
        "oldest first, by id"
    );
    for message in &inserted {
        assert!(stored.contains(message), "{message:?} stored as returned");
    }
}

/// Bursts of 300 inserts at once, as POSTs come under load (grouped where the storage
/// groups them): each caller gets its own message back, each idempotency key stores one
/// message that every caller with that key gets, and (second burst) a write to an unknown
/// conversation fails alone with `NotFound`.
pub async fn grouped_inserts_answer_each_caller(storage: Arc<dyn Storage>) {
    storage.import(&demo_data()).await.unwrap();
    let first = insert_burst(&storage, "a", false).await;
    let second = insert_burst(&storage, "b", true).await;
    let stored = messages(&*storage, ConversationId(1)).await;
    assert_eq!(stored.len(), 3 + first + second);
}

/// 300 results recorded at once, each under its claim: 200 current claims (half of them
/// recorded twice), 100 stale ones (the attempt before). Where sends are recorded in groups,
/// each caller gets the answer it would get alone: a current claim is recorded once (`true`,
/// then `false` for the second record), a stale one never, and each row gets its own
/// instant.
pub async fn grouped_sends_answer_each_caller(storage: Arc<dyn Storage>) {
    storage.import(&demo_data()).await.unwrap();
    let nine = nine_am_chicago();
    for n in 0..300 {
        let message = operator_message(&format!("send {n}"), nine);
        storage.insert_message(message).await.unwrap();
    }
    let limit = ClaimLimit {
        batch: 300,
        hourly_cap: None,
    };
    let claimed = storage.claim_due(nine, LEASE, limit).await.unwrap();
    assert_eq!(claimed.len(), 300);
    let at = move |n: usize| nine + chrono::Duration::milliseconds(n as i64);
    let mut records = Vec::new();
    for (n, claim) in claimed.iter().enumerate() {
        let mut token = claim.token;
        if n >= 200 {
            token.attempt -= 1;
        }
        records.push((n, token));
        if n < 100 {
            records.push((n, token));
        }
    }
    let tasks: Vec<_> = records
        .into_iter()
        .map(|(n, token)| {
            let storage = storage.clone();
            tokio::spawn(async move { (n, storage.mark_sent(token, at(n)).await.unwrap()) })
        })
        .collect();
    let mut recorded = vec![0; 300];
    for task in tasks {
        let (n, answer) = task.await.unwrap();
        recorded[n] += u32::from(answer);
    }
    for (n, times) in recorded.iter().enumerate() {
        assert_eq!(
            *times,
            u32::from(n < 200),
            "message {n} recorded {times} times"
        );
    }
    let stored = messages(&*storage, ConversationId(1)).await;
    for (n, claim) in claimed.iter().enumerate() {
        let message = stored
            .iter()
            .find(|m| m.id == claim.token.message_id)
            .unwrap();
        if n < 200 {
            assert_eq!(message.status, MessageStatus::Sent, "message {n}");
            assert_eq!(message.sent_at, Some(at(n)), "message {n}");
        } else {
            assert_eq!(message.status, MessageStatus::Sending, "message {n}");
        }
    }
}

/// 400 reads at once (conversations and pages of them, some unknown, pages of every size)
/// each get the answer the same read gets alone: where reads are grouped, no caller gets
/// another's rows.
pub async fn grouped_reads_answer_each_caller(storage: Arc<dyn Storage>) {
    storage.import(&demo_data()).await.unwrap();
    let now = Utc::now();
    for n in 0..30 {
        let message = operator_message(&format!("read {n}"), now);
        storage.insert_message(message).await.unwrap();
    }
    let newest = messages(&*storage, ConversationId(1))
        .await
        .last()
        .unwrap()
        .id;
    #[derive(Debug, Clone, Copy)]
    enum Read {
        Conversation(i64),
        Page(i64, Page),
    }
    let read_of = |n: i64| match n % 4 {
        0 => Read::Conversation(n % 7),
        1 => Read::Conversation(9_000 + n),
        _ => Read::Page(
            n % 5,
            Page {
                limit: 1 + (n % 40) as u32,
                before: (n % 3 == 0).then(|| MessageId(newest.0 - n % 20)),
            },
        ),
    };
    let answer = |storage: Arc<dyn Storage>, read: Read| async move {
        match read {
            Read::Conversation(id) => {
                format!("{:?}", storage.conversation(ConversationId(id)).await)
            }
            Read::Page(id, page) => {
                format!(
                    "{:?}",
                    storage.conversation_page(ConversationId(id), page).await
                )
            }
        }
    };
    let mut alone = Vec::new();
    for n in 0..400 {
        alone.push(answer(storage.clone(), read_of(n)).await);
    }
    assert!(alone.iter().any(|a| a.starts_with("Ok(Some(")));
    assert!(alone.iter().any(|a| a == "Ok(None)"));
    let tasks: Vec<_> = (0..400)
        .map(|n| tokio::spawn(answer(storage.clone(), read_of(n))))
        .collect();
    for (n, task) in tasks.into_iter().enumerate() {
        let together = task.await.unwrap();
        assert_eq!(together, alone[n], "read {n}: {:?}", read_of(n as i64));
    }
}

/// 300 inserts at once, some with keys, some (with `unknown`) to an unknown conversation;
/// checks every answer and gives how many messages were created.
async fn insert_burst(storage: &Arc<dyn Storage>, round: &str, unknown: bool) -> usize {
    let now = Utc::now();
    let is_unknown = move |n: usize| unknown && n % 10 == 3;
    let tasks: Vec<_> = (0..300)
        .map(|n| {
            let storage = storage.clone();
            let round = round.to_owned();
            tokio::spawn(async move {
                let mut message = operator_message(&format!("burst {round} {n}"), now);
                if is_unknown(n) {
                    message.conversation_id = ConversationId(9_999);
                } else if n % 7 == 0 {
                    let key = n % 3;
                    let payload = format!("keyed {round} {key}");
                    message.payload =
                        Payload::parse(&payload, &ValidationPolicy::default()).unwrap();
                    message.idempotency_key = Some(format!("burst-{round}-{key}"));
                }
                let result = storage.insert_message(message.clone()).await;
                (n, message, result)
            })
        })
        .collect();
    let mut created = 0;
    let mut by_key: std::collections::HashMap<String, Vec<(bool, Message)>> = Default::default();
    let mut ids = HashSet::new();
    for task in tasks {
        let (n, sent, result) = task.await.unwrap();
        match result {
            Ok(inserted) => {
                assert!(
                    !is_unknown(n),
                    "burst {n} to an unknown conversation was stored"
                );
                let message = inserted.message;
                assert_eq!(
                    message.payload.as_str(),
                    sent.payload.as_str(),
                    "burst {n} got another caller's message"
                );
                assert_eq!(
                    (message.conversation_id, message.author_id),
                    (sent.conversation_id, sent.author_id)
                );
                if inserted.created {
                    created += 1;
                    assert!(ids.insert(message.id), "id {} returned twice", message.id);
                }
                if let Some(key) = sent.idempotency_key {
                    by_key
                        .entry(key)
                        .or_default()
                        .push((inserted.created, message));
                } else {
                    assert!(inserted.created, "burst {n} without a key was not created");
                }
            }
            Err(StorageError::NotFound(what)) => {
                assert!(is_unknown(n), "burst {n}: {what}");
                assert!(what.contains("9999"), "{what}");
            }
            Err(e) => panic!("burst {n}: {}", e.detail()),
        }
    }
    assert_eq!(by_key.len(), 3);
    for (key, answers) in &by_key {
        assert_eq!(
            answers.iter().filter(|(created, _)| *created).count(),
            1,
            "{key}"
        );
        assert!(
            answers.iter().all(|(_, m)| *m == answers[0].1),
            "{key}: one message for all"
        );
    }
    let keyed = (0..300).filter(|&n| !is_unknown(n) && n % 7 == 0).count();
    let refused = (0..300).filter(|&n| is_unknown(n)).count();
    assert_eq!(created, 300 - refused - keyed + 3);
    created
}

/// Concurrent inserts with one idempotency key store one message and all return it.
pub async fn concurrent_idempotent_inserts(storage: Arc<dyn Storage>) {
    storage.import(&demo_data()).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let mut message = operator_message("once", nine_am_chicago());
                message.idempotency_key = Some("same-key".into());
                storage.insert_message(message).await.unwrap()
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.created).count(), 1);
    assert!(results.iter().all(|r| r.message == results[0].message));
    let stored = messages(&*storage, ConversationId(1)).await;
    assert_eq!(stored.len(), 4);
}

/// Runs each dispatcher in its own task until a pass claims nothing; gives how many emails
/// each sent. With `all_sent`, every claimed message of every pass must have been sent.
async fn drain(dispatchers: impl Iterator<Item = Dispatcher>, all_sent: bool) -> Vec<u32> {
    let runs: Vec<_> = dispatchers
        .map(|dispatcher| {
            tokio::spawn(async move {
                let mut sent = 0;
                loop {
                    let report = dispatcher.run_once().await.unwrap();
                    if all_sent {
                        assert_eq!(report.sent, report.claimed, "{report:?}");
                    }
                    if report.claimed == 0 {
                        return sent;
                    }
                    sent += report.sent;
                }
            })
        })
        .collect();
    let mut sent_by = Vec::new();
    for run in runs {
        sent_by.push(run.await.unwrap());
    }
    sent_by
}

/// Two dispatchers, each on its own connection pool, race over `count` due messages: each
/// is emailed exactly once.
pub async fn racing_dispatchers(a: Arc<dyn Storage>, b: Arc<dyn Storage>, count: usize) {
    a.import(&demo_data()).await.unwrap();
    let writers = 8;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let storage = a.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in (w..count).step_by(writers) {
                    let message = operator_message(&format!("message {n}"), nine_am_chicago());
                    ids.push(storage.insert_message(message).await.unwrap().message.id);
                }
                ids
            })
        })
        .collect();
    let mut inserted = HashSet::new();
    for task in tasks {
        inserted.extend(task.await.unwrap());
    }
    assert_eq!(inserted.len(), count);

    let mailer = Arc::new(RecordingMailer::new_ok());
    let clock = Arc::new(ManualClock::new(nine_am_chicago()));
    let dispatchers = [a.clone(), b]
        .into_iter()
        .map(|storage| dispatcher(storage, mailer.clone(), clock.clone(), 50));
    let sent_by = drain(dispatchers, true).await;
    assert_eq!(sent_by.iter().sum::<u32>() as usize, count, "{sent_by:?}");
    assert!(
        sent_by.iter().all(|&sent| sent > 0),
        "both took part: {sent_by:?}"
    );

    let emails = mailer.messages();
    let emailed: HashSet<MessageId> = emails.iter().map(|e| e.message_id).collect();
    assert_eq!(emails.len(), count, "no email twice");
    assert_eq!(emailed, inserted);
    let stored = messages(&*a, ConversationId(1)).await;
    for message in stored.iter().filter(|m| inserted.contains(&m.id)) {
        assert_eq!((message.status, message.attempts), (MessageStatus::Sent, 1));
    }
    assert_eq!(a.next_due().await.unwrap(), None, "nothing new or sending");
}

/// Four dispatchers (two per pool) under an hourly cap of 90 race over 300 due messages:
/// together they send exactly 90, and the rest stay `new`.
pub async fn capped_racing_dispatchers(a: Arc<dyn Storage>, b: Arc<dyn Storage>) {
    const CAP: u32 = 90;
    a.import(&demo_data()).await.unwrap();
    for n in 0..300 {
        let message = operator_message(&format!("message {n}"), nine_am_chicago());
        a.insert_message(message).await.unwrap();
    }
    let mailer = Arc::new(RecordingMailer::new_ok());
    let clock = Arc::new(ManualClock::new(nine_am_chicago()));
    let dispatchers = [a.clone(), a.clone(), b.clone(), b]
        .into_iter()
        .map(|storage| {
            let config = DispatchConfig {
                batch_size: 7,
                lease: LEASE,
                hourly_cap: Some(CAP),
                ..DispatchConfig::default()
            };
            Dispatcher::new(
                storage.into_queue(),
                mailer.clone(),
                clock.clone(),
                Arc::new(Rules::default()),
                config,
            )
        });
    let sent_by = drain(dispatchers, false).await;
    assert_eq!(sent_by.iter().sum::<u32>(), CAP, "{sent_by:?}");
    assert_eq!(mailer.messages().len(), CAP as usize);
    let stored = messages(&*a, ConversationId(1)).await;
    let waiting = stored
        .iter()
        .filter(|m| m.status == MessageStatus::New)
        .count();
    assert_eq!(waiting, 300 - CAP as usize);

    // An hour after the first sends, the next 90 go.
    clock.advance(chrono::Duration::minutes(61));
    let config = DispatchConfig {
        batch_size: 500,
        lease: LEASE,
        hourly_cap: Some(CAP),
        ..DispatchConfig::default()
    };
    let later = Dispatcher::new(
        a.into_queue(),
        mailer.clone(),
        clock,
        Arc::new(Rules::default()),
        config,
    );
    assert_eq!(later.run_once().await.unwrap().sent, CAP);
}

/// An import that breaks a constraint half-way stores nothing.
pub async fn import_is_all_or_nothing(storage: Arc<dyn Storage>) {
    let mut data = demo_data();
    // Client 27 cannot be the operator of a conversation.
    let last = data.conversations.len() - 1;
    data.conversations[last].operator_id = UserId(27);
    let err = storage.import(&data).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound(_)), "{err:?}");
    assert_eq!(storage.conversation(ConversationId(1)).await.unwrap(), None);
    assert!(storage.import(&demo_data()).await.unwrap().inserted > 0);
    assert!(storage
        .conversation(ConversationId(1))
        .await
        .unwrap()
        .is_some());
}

/// After the import (explicit ids), new messages get fresh ids.
pub async fn ids_continue_after_import(storage: Arc<dyn Storage>) {
    storage.import(&demo_data()).await.unwrap();
    let max_imported = demo_data().messages.iter().map(|m| m.id).max().unwrap();
    let first = storage
        .insert_message(operator_message("after import", nine_am_chicago()))
        .await
        .unwrap();
    assert!(first.created);
    assert!(first.message.id > max_imported, "{:?}", first.message.id);
    // A second import neither fails nor moves anything.
    assert_eq!(storage.import(&demo_data()).await.unwrap().inserted, 0);
    let second = storage
        .insert_message(operator_message("again", nine_am_chicago()))
        .await
        .unwrap();
    assert!(second.message.id > first.message.id);
}

/// Expired leases and new messages are claimed together, in the order they became due.
pub async fn claims_merge_expired_leases_in_due_order(storage: Arc<dyn Storage>) {
    storage.import(&demo_data()).await.unwrap();
    let t0 = nine_am_chicago();
    let minutes = chrono::Duration::minutes;
    let insert = |send_at| {
        let storage = storage.clone();
        async move {
            let message = operator_message("x", send_at);
            storage.insert_message(message).await.unwrap().message.id
        }
    };
    // Claimed at t0 - 10 min, its lease (60 s) ends at t0 - 9 min.
    let expired = insert(t0 - minutes(10)).await;
    let claimed = storage
        .claim_due(t0 - minutes(10), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let oldest = insert(t0 - minutes(20)).await;
    let newest = insert(t0 - minutes(1)).await;
    insert(t0 + minutes(5)).await;

    let first = storage
        .claim_due(t0, LEASE, ClaimLimit::batch(2))
        .await
        .unwrap();
    let ids: Vec<_> = first.iter().map(|c| c.message.id).collect();
    assert_eq!(ids, [oldest, expired]);
    assert_eq!(first[1].token.attempt, 2);
    let rest = storage
        .claim_due(t0, LEASE, ClaimLimit::batch(10))
        .await
        .unwrap();
    let ids: Vec<_> = rest.iter().map(|c| c.message.id).collect();
    assert_eq!(ids, [newest]);
    // Next: the leases just taken, before the message due in 5 minutes.
    assert_eq!(storage.next_due().await.unwrap(), Some(t0 + minutes(1)));
}

/// Two authors use one idempotency key at once, ten times each: one message per author,
/// and every replay returns its own author's message.
pub async fn concurrent_idempotency_per_author(storage: Arc<dyn Storage>) {
    storage.import(&demo_data()).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let mut message = operator_message("same key", nine_am_chicago());
                if n % 2 == 1 {
                    // Client 27's reply in the same conversation.
                    message.author_id = UserId(27);
                    message.status = MessageStatus::Received;
                    message.send_at = None;
                }
                message.idempotency_key = Some("same".into());
                storage.insert_message(message).await.unwrap()
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    for author in [UserId(24), UserId(27)] {
        let own: Vec<_> = results
            .iter()
            .filter(|r| r.message.author_id == author)
            .collect();
        assert_eq!(own.len(), 10, "{author}");
        assert_eq!(own.iter().filter(|r| r.created).count(), 1, "{author}");
        assert!(own.iter().all(|r| r.message == own[0].message), "{author}");
    }
    assert_eq!(messages(&*storage, ConversationId(1)).await.len(), 3 + 2);
}

/// Cancels and claims race over the same due messages, on two pools, for `rounds` rounds:
/// every message ends either cancelled or claimed, never both, and a cancel loses only to a
/// claim.
pub async fn cancels_race_claims(a: Arc<dyn Storage>, b: Arc<dyn Storage>, rounds: usize) {
    a.import(&demo_data()).await.unwrap();
    let (mut all_cancelled, mut all_claimed) = (HashSet::new(), HashSet::new());
    for round in 0..rounds {
        let mut ids = Vec::new();
        for n in 0..20 {
            let payload = format!("round {round} message {n}");
            let message = operator_message(&payload, nine_am_chicago());
            ids.push(a.insert_message(message).await.unwrap().message.id);
        }
        // Claims first, so that they start while the cancels are being spawned.
        let claims: Vec<_> = [b.clone(), a.clone(), b.clone()]
            .into_iter()
            .map(|storage| {
                tokio::spawn(async move {
                    let mut claimed = Vec::new();
                    loop {
                        let batch = storage
                            .claim_due(nine_am_chicago(), LEASE, ClaimLimit::batch(3))
                            .await
                            .unwrap();
                        if batch.is_empty() {
                            return claimed;
                        }
                        claimed.extend(batch.into_iter().map(|c| c.message.id));
                    }
                })
            })
            .collect();
        let cancels: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(n, &id)| {
                let storage = if n % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { (id, storage.cancel_message(id).await.unwrap()) })
            })
            .collect();
        let (mut cancelled, mut lost) = (HashSet::new(), HashSet::new());
        for task in cancels {
            match task.await.unwrap() {
                (id, Transition::Done(m)) => {
                    assert_eq!(m.status, MessageStatus::Cancelled);
                    cancelled.insert(id);
                }
                (id, Transition::WrongStatus(m)) => {
                    assert_eq!(m.status, MessageStatus::Sending, "round {round}: {id}");
                    lost.insert(id);
                }
                (id, Transition::NotFound) => panic!("{id} not found"),
            }
        }
        let mut claimed = HashSet::new();
        for task in claims {
            for id in task.await.unwrap() {
                assert!(claimed.insert(id), "round {round}: {id} claimed twice");
            }
        }
        assert!(cancelled.is_disjoint(&claimed), "round {round}: both");
        assert_eq!(
            lost, claimed,
            "round {round}: a cancel loses only to a claim"
        );
        assert_eq!(cancelled.len() + claimed.len(), ids.len(), "round {round}");
        for id in &ids {
            let stored = a.message(*id).await.unwrap().unwrap();
            let expected = if cancelled.contains(id) {
                MessageStatus::Cancelled
            } else {
                MessageStatus::Sending
            };
            assert_eq!(stored.status, expected, "round {round}: {id}");
        }
        all_cancelled.extend(cancelled);
        all_claimed.extend(claimed);
    }
    // Once the leases end, the claimed messages are due again; the cancelled never are.
    let later = nine_am_chicago() + chrono::Duration::days(1);
    let reclaimed = a.claim_due(later, LEASE, ClaimLimit::batch(10_000)).await;
    let reclaimed: HashSet<MessageId> = reclaimed.unwrap().iter().map(|c| c.message.id).collect();
    assert_eq!(reclaimed, all_claimed);
    assert!(
        !all_cancelled.is_empty() && !all_claimed.is_empty(),
        "both won sometimes"
    );
}

/// Checks a database written by the first schema (see `OLD_ROWS` of each backend's tests)
/// after it was migrated to the latest: its rows read back as they were, its idempotency
/// key still works for its author, emails compare case-insensitively, and new ids continue
/// after the old ones.
pub async fn upgraded(storage: &dyn Storage) {
    let context = storage.conversation(ConversationId(1)).await.unwrap();
    let context = context.expect("conversation 1 kept");
    assert_eq!(context.client.email.as_str(), "John.Carter@Example.com");
    assert_eq!(context.client.unsubscribed_at, None);
    assert_eq!(context.store.active_hours, None);
    assert_eq!(
        context.conversation.discount_code.as_deref(),
        Some("PROMO50")
    );
    let old = messages(storage, ConversationId(1)).await;
    let summary: Vec<_> = old
        .iter()
        .map(|m| (m.id.0, m.status, m.payload.as_str(), m.next_attempt_at))
        .collect();
    assert_eq!(
        summary,
        [
            (1, MessageStatus::Sent, "Hi << username >>", None),
            (2, MessageStatus::Received, "Hi, a discount?", None),
            (3, MessageStatus::New, "Sure {{ username }}", None),
        ]
    );
    assert_eq!(old[2].send_at, Some(nine_am_chicago()));
    assert_eq!(
        context.client.store_id,
        StoreId(1),
        "its conversation's store"
    );
    let found = storage
        .client_by_email(
            StoreId(1),
            &EmailAddress::parse("john.carter@EXAMPLE.com").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(found.map(|c| c.id), Some(UserId(27)));

    let mut replay = operator_message("Sure {{ username }}", nine_am_chicago());
    replay.idempotency_key = Some("k1".into());
    let again = storage.insert_message(replay.clone()).await.unwrap();
    assert_eq!((again.created, again.message.id), (false, MessageId(3)));
    replay.author_id = UserId(27);
    replay.status = MessageStatus::Received;
    replay.send_at = None;
    let other_author = storage.insert_message(replay).await.unwrap();
    assert!(other_author.created);
    assert!(other_author.message.id > MessageId(3));

    let store = storage
        .create_store(NewStore {
            name: Name::parse("New").unwrap(),
            time_zone: chrono_tz::Europe::Paris,
            sender_email: EmailAddress::parse("shop@new.example.com").unwrap(),
            active_hours: Some("08:00-21:00".parse().unwrap()),
        })
        .await
        .unwrap();
    assert!(store.id > StoreId(1), "{}", store.id);
    let client = storage
        .create_client(NewClient {
            store_id: StoreId(1),
            name: Name::parse("Ann").unwrap(),
            email: EmailAddress::parse("ann@example.com").unwrap(),
            time_zone: None,
        })
        .await
        .unwrap();
    assert!(client.id > UserId(27), "{}", client.id);
    let taken = storage
        .create_client(NewClient {
            store_id: StoreId(1),
            name: Name::parse("Copy").unwrap(),
            email: EmailAddress::parse("JOHN.CARTER@example.com").unwrap(),
            time_zone: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(taken, StorageError::Conflict(_)), "{taken:?}");
    let conversation = storage
        .create_conversation(NewConversation {
            store_id: StoreId(1),
            operator_id: UserId(24),
            client_id: client.id,
            discount_code: None,
        })
        .await
        .unwrap();
    assert!(conversation.id > ConversationId(1), "{}", conversation.id);
    let claimed = storage
        .claim_due(nine_am_chicago(), LEASE, ClaimLimit::batch(10))
        .await
        .unwrap();
    let claimed: Vec<_> = claimed.iter().map(|c| c.message.id).collect();
    assert_eq!(claimed, [MessageId(3)]);
}

/// The instant client 7 unsubscribed at in [`split_upgraded`]'s rows.
pub fn bo_unsubscribed_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
}

/// A database of the second schema (clients shared by every store; the rows each dialect's
/// test inserts) after the upgrade to clients per store: `first_new_id` is the id the first
/// new client gets (above every user id, and on PostgreSQL above every id the sequence
/// gave).
///
/// Before: stores 1-3, operators 21 (store 1), 22 (store 2), 23 (store 3); Ann Lee (5) in
/// conversations 3 and 6 (store 2), 4 (store 1) and 9 (store 3); Bo Berg (7, unsubscribed)
/// in 2 (store 1) and 8 (store 3); Cy Lone (8) in none; Di Solo (10) in 1 (store 3).
pub async fn split_upgraded(storage: &dyn Storage, first_new_id: i64) {
    let (ann_1, ann_3, bo_3) = (
        UserId(first_new_id),
        UserId(first_new_id + 1),
        UserId(first_new_id + 2),
    );
    let ann = (
        "Ann Lee",
        "Ann.Lee@Example.com",
        Some(chrono_tz::Europe::Paris),
    );
    let bo = ("Bo Berg", "bo@example.com", Some(chrono_tz::Asia::Tokyo));
    let di = ("Di Solo", "di@example.com", Some(chrono_tz::Asia::Tokyo));
    // (conversation, store, client now, the person). Ann keeps 5 at store 2 (her lowest
    // conversation, 3, is there); new ids go in order of client, then of the store's
    // lowest conversation: Ann at store 1 (4), Ann at store 3 (9), Bo at store 3 (8).
    let expected = [
        (1, 3, UserId(10), di),
        (2, 1, UserId(7), bo),
        (3, 2, UserId(5), ann),
        (4, 1, ann_1, ann),
        (6, 2, UserId(5), ann),
        (8, 3, bo_3, bo),
        (9, 3, ann_3, ann),
    ];
    for (id, store, client, (name, email, zone)) in expected {
        let context = storage.conversation(ConversationId(id)).await.unwrap();
        let context = context.unwrap_or_else(|| panic!("conversation {id} kept"));
        assert_eq!(context.conversation.store_id, StoreId(store), "{id}");
        assert_eq!(context.client.id, client, "conversation {id}");
        assert_eq!(context.client.store_id, StoreId(store), "conversation {id}");
        assert_eq!(
            (
                context.client.name.as_str(),
                context.client.email.as_str(),
                context.client.time_zone
            ),
            (name, email, zone),
            "conversation {id} reaches the same person"
        );
        let unsubscribed = (name == "Bo Berg").then(bo_unsubscribed_at);
        assert_eq!(context.client.unsubscribed_at, unsubscribed, "{id}");
    }
    let resolved = storage.conversation(ConversationId(3)).await.unwrap();
    let resolved = resolved.unwrap().conversation;
    assert_eq!(resolved.status, ConversationStatus::Resolved);
    assert_eq!(resolved.discount_code.as_deref(), Some("BOOKS20"));
    let lone = storage.client(UserId(8)).await.unwrap().expect("client 8");
    assert_eq!(
        lone.store_id,
        StoreId(1),
        "no conversation: the lowest store"
    );
    assert_eq!((lone.name.as_str(), lone.time_zone), ("Cy Lone", None));

    // Every message is where it was, a client's written by that store's client.
    let mut seen = Vec::new();
    for (id, ..) in expected {
        for m in messages(storage, ConversationId(id)).await {
            seen.push((
                m.id.0,
                id,
                m.author_id,
                m.status,
                m.payload.as_str().to_owned(),
            ));
        }
    }
    seen.sort_by_key(|row| row.0);
    let text = |s: &str| s.to_owned();
    assert_eq!(
        seen,
        [
            (
                1,
                3,
                UserId(22),
                MessageStatus::Sent,
                text("Your books are here")
            ),
            (2, 3, UserId(5), MessageStatus::Received, text("Thanks!")),
            (3, 4, ann_1, MessageStatus::Received, text("Any discount?")),
            (
                4,
                4,
                UserId(21),
                MessageStatus::New,
                text("Sure << username >>")
            ),
            (5, 9, ann_3, MessageStatus::Received, text("Matcha please")),
            (6, 8, UserId(23), MessageStatus::Sent, text("Hello")),
            (
                7,
                2,
                UserId(7),
                MessageStatus::Received,
                text("Stop please")
            ),
        ]
    );
    let waiting = storage.message(MessageId(4)).await.unwrap().unwrap();
    assert_eq!(waiting.send_at, Some(nine_am_chicago()));
    // Its idempotency key still answers the first insert.
    let mut replay = operator_message("Sure << username >>", nine_am_chicago());
    replay.conversation_id = ConversationId(4);
    replay.author_id = UserId(21);
    replay.idempotency_key = Some("k4".into());
    let again = storage.insert_message(replay).await.unwrap();
    assert_eq!((again.created, again.message.id), (false, MessageId(4)));

    // Emails are found, and unique, per store.
    let email = |raw: &str| EmailAddress::parse(raw).unwrap();
    for (store, id) in [(1, ann_1), (2, UserId(5)), (3, ann_3)] {
        let found = storage
            .client_by_email(StoreId(store), &email("ann.lee@example.com"))
            .await
            .unwrap();
        assert_eq!(found.map(|c| c.id), Some(id), "store {store}");
    }
    let found = storage
        .client_by_email(StoreId(2), &email("cy@example.com"))
        .await
        .unwrap();
    assert_eq!(found, None);
    let new_client = |store: i64, raw: &str| NewClient {
        store_id: StoreId(store),
        name: Name::parse("New").unwrap(),
        email: email(raw),
        time_zone: None,
    };
    for (store, raw) in [
        (1, "ANN.LEE@example.com"),
        (3, "Bo@Example.com"),
        (3, "di@example.com"),
    ] {
        let err = storage.create_client(new_client(store, raw)).await;
        assert!(
            matches!(err, Err(StorageError::Conflict(_))),
            "store {store}, {raw}: {err:?}"
        );
    }
    let di_at_1 = storage
        .create_client(new_client(1, "di@example.com"))
        .await
        .unwrap();
    assert!(di_at_1.id > bo_3, "new ids continue: {}", di_at_1.id);
    let to_cy = cartloop_core::domain::ClientChanges {
        email: Some(email("cy@example.com")),
        ..Default::default()
    };
    let err = storage.update_client(ann_1, to_cy.clone()).await;
    assert!(matches!(err, Err(StorageError::Conflict(_))), "{err:?}");
    let moved = storage.update_client(ann_3, to_cy).await.unwrap().unwrap();
    assert_eq!(moved.email.as_str(), "cy@example.com", "no Cy at store 3");

    // A conversation's client must be of its store, in the schema too.
    let err = storage
        .create_conversation(NewConversation {
            store_id: StoreId(1),
            operator_id: UserId(21),
            client_id: UserId(5),
            discount_code: None,
        })
        .await;
    assert!(matches!(err, Err(StorageError::NotFound(_))), "{err:?}");
}

/// A database of the second schema with clients but no store upgrades: one store, named
/// "Imported clients", holds them.
pub async fn storeless_clients_upgraded(storage: &dyn Storage) {
    let client = storage.client(UserId(1)).await.unwrap().expect("client 1");
    let store = storage
        .store(client.store_id)
        .await
        .unwrap()
        .expect("its store");
    assert_eq!(
        (store.name.as_str(), store.time_zone),
        ("Imported clients", chrono_tz::UTC)
    );
    let found = storage
        .client_by_email(store.id, &EmailAddress::parse("ann@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(found.map(|c| c.id), Some(UserId(1)));
}

/// The same writes on this storage and on the core's `MemoryStorage` (the reference): every
/// page of the conversations list, with every filter and page size, is the same on both,
/// also while chats and conversations arrive between pages. With hundreds of chats, pages
/// come from the newest messages and, past them, from every conversation's activity.
pub async fn list_pages_match_the_reference(storage: Arc<dyn Storage>) {
    let reference: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let both = [storage.clone(), reference.clone()];
    for s in &both {
        s.import(&demo_data()).await.unwrap();
    }
    // A fixed pseudo-random sequence (a linear congruential generator).
    let mut seed = 7u64;
    let mut next = move |below: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % below
    };
    let write = async |n: u64, conversation: i64| {
        let context = reference
            .conversation(ConversationId(conversation))
            .await
            .unwrap()
            .expect("conversation");
        let mut message = operator_message(&format!("chat {n}"), nine_am_chicago());
        message.conversation_id = ConversationId(conversation);
        if n % 3 == 0 {
            message.author_id = context.client.id;
            message.status = MessageStatus::Received;
            message.send_at = None;
        } else {
            message.author_id = context.operator.id;
        }
        for s in &both {
            s.insert_message(message.clone()).await.unwrap();
        }
    };
    // Chats crowd into a few conversations, so that the newest messages name few of them.
    for n in 0..300 {
        let conversation = if next(4) == 0 {
            1 + next(25)
        } else {
            1 + next(3)
        };
        write(n, conversation as i64).await;
    }
    for s in &both {
        let claimed = s
            .claim_due(nine_am_chicago(), LEASE, ClaimLimit::batch(40))
            .await
            .unwrap();
        for c in claimed.iter().step_by(2) {
            assert!(s.mark_sent(c.token, nine_am_chicago()).await.unwrap());
        }
    }
    let filters = [
        ConversationFilter::default(),
        ConversationFilter {
            status: Some(ConversationStatus::Open),
            ..ConversationFilter::default()
        },
        ConversationFilter {
            store_id: Some(StoreId(1)),
            ..ConversationFilter::default()
        },
        ConversationFilter {
            operator_id: Some(UserId(24)),
            status: Some(ConversationStatus::Open),
            ..ConversationFilter::default()
        },
    ];
    let mut n = 1000;
    for filter in filters {
        for limit in [1, 2, 5, 7, 50] {
            let snapshot = storage.snapshot().await.unwrap();
            assert_eq!(snapshot, reference.snapshot().await.unwrap());
            let mut after = None;
            let mut pages = 0;
            loop {
                let page = storage
                    .list_conversations(filter, snapshot, after, limit)
                    .await
                    .unwrap();
                let expected = reference
                    .list_conversations(filter, snapshot, after, limit)
                    .await
                    .unwrap();
                assert_eq!(page, expected, "{filter:?}, limit {limit}, after {after:?}");
                let Some(last) = page.last() else { break };
                after = Some(last.key);
                pages += 1;
                assert!(pages < 100, "paging does not end");
                // Between pages: a chat in a conversation the list may show later.
                n += 1;
                write(n, 1 + next(25) as i64).await;
            }
        }
        for s in &both {
            s.create_conversation(NewConversation {
                store_id: StoreId(1),
                operator_id: UserId(24),
                client_id: UserId(27),
                discount_code: None,
            })
            .await
            .unwrap();
        }
    }
}
