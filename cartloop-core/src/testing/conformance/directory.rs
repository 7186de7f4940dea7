//! The [`Directory`](crate::ports::Directory) port's contract: stores, operators, clients.

#[allow(unused_imports)]
use super::*;

/// Stores get ids above every stored one (imported included), read back as created, and
/// keep their own window until it is cleared.
pub async fn stores(s: &dyn Storage) {
    let data = demo_data();
    s.import(&data).await.unwrap();
    let top = data.stores.iter().map(|x| x.id).max().unwrap();
    let own = hours("07:30-19:45");
    let first = s
        .create_store(NewStore {
            active_hours: Some(own.clone()),
            ..new_store("Paris Perfume")
        })
        .await
        .unwrap();
    assert!(first.id > top, "{} must be above imported {top}", first.id);
    assert_eq!(first.name, "Paris Perfume");
    assert_eq!(first.time_zone, chrono_tz::Europe::Paris);
    assert_eq!(first.sender_email, address("shop@paris.example.com"));
    assert_eq!(first.active_hours, Some(own.clone()));
    assert_eq!(s.store(first.id).await.unwrap(), Some(first.clone()));
    let second = s.create_store(new_store("Lyon Linen")).await.unwrap();
    assert!(second.id > first.id);
    assert_eq!(second.active_hours, None);

    let imported = data.stores.iter().find(|x| x.id == StoreId(1)).cloned();
    assert_eq!(s.store(StoreId(1)).await.unwrap(), imported);
    let changed = s
        .set_store_hours(StoreId(1), Some(own.clone()))
        .await
        .unwrap()
        .expect("store 1");
    assert_eq!(changed.active_hours, Some(own.clone()));
    assert_eq!(s.store(StoreId(1)).await.unwrap(), Some(changed));
    let context = s.conversation(ConversationId(1)).await.unwrap().unwrap();
    assert_eq!(
        context.store.active_hours,
        Some(own.clone()),
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
        let store = s
            .set_store_hours(StoreId(2), Some(window.clone()))
            .await
            .unwrap();
        assert_eq!(store.unwrap().active_hours, Some(window.clone()), "{raw}");
        let store = s.store(StoreId(2)).await.unwrap().unwrap();
        assert_eq!(store.active_hours, Some(window.clone()), "{raw}");
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
        s.set_store_hours(StoreId(999_999), Some(own.clone()))
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
            name: name("Fay Lin"),
            store_id: StoreId(2),
            group: name("support"),
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
            name: name("Nobody"),
            store_id: StoreId(999_999),
            group: name("sales"),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound(_)), "{err:?}");
}

/// Clients: ids in the users' id space, of their store, emails unique case-insensitively
/// within the store (on create and on update, where a conflict changes nothing), zones that
/// can be cleared.
pub async fn clients(s: &dyn Storage) {
    let data = demo_data();
    s.import(&data).await.unwrap();
    let paris = chrono_tz::Europe::Paris;
    let ann = s
        .create_client(NewClient {
            store_id: StoreId(1),
            name: name("Ann Lee"),
            email: address("Ann.Lee@Example.com"),
            time_zone: Some(paris),
        })
        .await
        .unwrap();
    assert!(ann.id > top_user(&data), "{}", ann.id);
    assert_eq!(
        (
            ann.store_id,
            ann.name.as_str(),
            ann.email.as_str(),
            ann.time_zone
        ),
        (StoreId(1), "Ann Lee", "Ann.Lee@Example.com", Some(paris))
    );
    assert_eq!(ann.unsubscribed_at, None);
    assert_eq!(s.client(ann.id).await.unwrap(), Some(ann.clone()));
    assert_eq!(s.operator(ann.id).await.unwrap(), None);
    let operator = s
        .create_operator(NewOperator {
            name: name("Gus Hale"),
            store_id: StoreId(1),
            group: name("sales"),
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
                store_id: StoreId(1),
                name: name("Copy"),
                email: address(taken),
                time_zone: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Conflict(_)), "{taken}: {err:?}");
    }
    let one = StoreId(1);
    let found = s
        .client_by_email(one, &address("ANN.LEE@example.com"))
        .await;
    assert_eq!(found.unwrap(), Some(ann.clone()));
    let found = s
        .client_by_email(one, &address("John.Carter@Example.Com"))
        .await;
    assert_eq!(found.unwrap().map(|c| c.id), Some(UserId(27)));
    let found = s.client_by_email(one, &address("nobody@example.com")).await;
    assert_eq!(found.unwrap(), None);

    let tokyo = chrono_tz::Asia::Tokyo;
    let changes = ClientChanges {
        name: Some(name("Ann Leigh")),
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
        name: Some(name("Someone Else")),
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
            store_id: StoreId(1),
            name: name("Another Ann"),
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
    let err = s
        .create_client(NewClient {
            store_id: StoreId(999_999),
            name: name("Nobody"),
            email: address("nobody@example.com"),
            time_zone: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound(_)), "{err:?}");
}

/// Stores apart: one email in two stores is two clients, each with its own id, found only
/// in its store, changed and unsubscribed on its own; conflicts are per store.
pub async fn clients_are_per_store(s: &dyn Storage) {
    let data = demo_data();
    s.import(&data).await.unwrap();
    let client = |store: i64, raw_name: &str, email: &str| NewClient {
        store_id: StoreId(store),
        name: name(raw_name),
        email: address(email),
        time_zone: None,
    };
    // John Carter (27) shops at store 1; store 2 may have him too.
    let john2 = s
        .create_client(client(2, "Johnny", "JOHN.carter@example.com"))
        .await
        .unwrap();
    assert_ne!(john2.id, UserId(27));
    assert_eq!(john2.store_id, StoreId(2));
    let john3 = s
        .create_client(client(3, "J. Carter", "john.carter@example.com"))
        .await
        .unwrap();
    assert!(john3.id > john2.id);
    let err = s
        .create_client(client(2, "Copy", "John.Carter@Example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Conflict(_)), "{err:?}");

    let email = address("john.carter@EXAMPLE.com");
    for (store, id) in [(1, UserId(27)), (2, john2.id), (3, john3.id)] {
        let found = s.client_by_email(StoreId(store), &email).await.unwrap();
        assert_eq!(
            found.map(|c| (c.id, c.store_id)),
            Some((id, StoreId(store)))
        );
    }
    let none = s.client_by_email(StoreId(999_999), &email).await.unwrap();
    assert_eq!(none, None);
    // Client 4 (Noah Taylor) shops at store 2 only.
    let noah = address("noah.taylor@example.com");
    assert_eq!(s.client_by_email(StoreId(1), &noah).await.unwrap(), None);
    let found = s.client_by_email(StoreId(2), &noah).await.unwrap();
    assert_eq!(found.map(|c| c.id), Some(UserId(4)));

    // Store 1's John may take Noah's email (store 2's), not Olivia's (store 1's).
    let to_noah = ClientChanges {
        email: Some(address("Noah.Taylor@example.com")),
        ..ClientChanges::default()
    };
    let moved = s.update_client(UserId(27), to_noah).await.unwrap().unwrap();
    assert_eq!(
        (moved.email.as_str(), moved.store_id),
        ("Noah.Taylor@example.com", StoreId(1))
    );
    let to_olivia = ClientChanges {
        email: Some(address("olivia.smith@example.com")),
        ..ClientChanges::default()
    };
    let err = s.update_client(UserId(27), to_olivia).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict(_)), "{err:?}");
    // The other stores' Johns are as they were.
    assert_eq!(s.client(john2.id).await.unwrap(), Some(john2.clone()));
    assert_eq!(s.client(john3.id).await.unwrap(), Some(john3.clone()));

    // Unsubscribing is per store.
    let at = t0();
    let gone = s.unsubscribe_client(john2.id, at).await.unwrap().unwrap();
    assert_eq!(gone.unsubscribed_at, Some(at));
    assert_eq!(
        s.client(john3.id).await.unwrap().unwrap().unsubscribed_at,
        None
    );
    assert_eq!(
        s.client(UserId(27)).await.unwrap().unwrap().unsubscribed_at,
        None
    );
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
