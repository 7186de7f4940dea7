//! The [`Conversations`](crate::ports::Conversations) port's contract: conversations and
//! their messages.

#[allow(unused_imports)]
use super::*;

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

/// Conversations get ids above every stored one, start `open`, refuse missing references
/// (and a client of another store) with `NotFound`, and change status without touching
/// their messages.
pub async fn conversations(s: &dyn Storage) {
    let data = demo_data();
    s.import(&data).await.unwrap();
    let top = data.conversations.iter().map(|c| c.id).max().unwrap();
    let store = s.create_store(new_store("Paris Perfume")).await.unwrap();
    let operator = s
        .create_operator(NewOperator {
            name: name("Fay Lin"),
            store_id: store.id,
            group: name("sales"),
        })
        .await
        .unwrap();
    let client = s
        .create_client(NewClient {
            store_id: store.id,
            name: name("Ann Lee"),
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
            discount_code: Some(code("NEW10")),
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
    // Client 27 shops at store 1, not at the new store: as if it did not exist.
    let err = s
        .create_conversation(NewConversation {
            store_id: store.id,
            operator_id: operator.id,
            client_id: UserId(27),
            discount_code: None,
        })
        .await
        .unwrap_err();
    match err {
        StorageError::NotFound(what) => assert!(what.contains("client 27"), "{what}"),
        other => panic!("a client of another store: {other:?}"),
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

/// A conversation is reassigned only to an operator of its own store.
pub async fn conversations_are_reassigned_within_their_store(s: &dyn Storage) {
    let data = demo_data();
    s.import(&data).await.unwrap();
    let conversation = &data.conversations[0];
    let colleague = s
        .create_operator(NewOperator {
            name: name("Colleague"),
            store_id: conversation.store_id,
            group: name("sales"),
        })
        .await
        .unwrap();
    let elsewhere = s.create_store(new_store("Elsewhere")).await.unwrap();
    let outsider = s
        .create_operator(NewOperator {
            name: name("Outsider"),
            store_id: elsewhere.id,
            group: name("sales"),
        })
        .await
        .unwrap();
    assert!(s
        .reassign_conversation(conversation.id, colleague.id)
        .await
        .unwrap());
    let now = s.conversation(conversation.id).await.unwrap().unwrap();
    assert_eq!(now.conversation.operator_id, colleague.id);
    assert_eq!(now.operator, colleague);
    assert!(!s
        .reassign_conversation(conversation.id, outsider.id)
        .await
        .unwrap());
    assert!(
        !s.reassign_conversation(conversation.id, conversation.client_id)
            .await
            .unwrap(),
        "a client is no operator"
    );
    assert!(!s
        .reassign_conversation(ConversationId(9999), colleague.id)
        .await
        .unwrap());
    let after = s.conversation(conversation.id).await.unwrap().unwrap();
    assert_eq!(
        after.conversation.operator_id, colleague.id,
        "refusals change nothing"
    );
}
