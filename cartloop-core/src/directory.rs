//! Stores, operators, clients and conversations (SPEC §7): creating and changing them. The
//! fields arrive parsed ([`Name`](crate::name::Name),
//! [`DiscountCode`](crate::discount_code::DiscountCode), addresses, zones); the references
//! are checked here before anything is stored.

use crate::closures::Closures;
use crate::domain::{
    Client, ClientChanges, Conversation, ConversationContext, ConversationStatus, NewClient,
    NewConversation, NewOperator, NewStore, Operator, Store, StoreChanges,
};
use crate::ids::{ConversationId, StoreId, UserId};
use crate::ports::{Clock, Storage, StorageError};

/// Why a directory change was refused.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// A field's value is not acceptable; `field` is its API name (`name`, `group`, ...).
    /// Adapters report a value that does not parse into its type with it
    /// ([`DirectoryError::invalid_field`]).
    #[error("{field}: {message}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A referenced entity does not exist; `field` is the API name of the reference.
    #[error("{field}: {what} {id} does not exist")]
    UnknownReference {
        /// The field holding the reference (`storeId`, `operatorId`, `clientId`).
        field: &'static str,
        /// What it names: `store`, `operator`, `client`.
        what: &'static str,
        /// The id given.
        id: i64,
    },
    /// The operator works for another store.
    #[error("operator {operator} works for store {operator_store}, not store {store}")]
    OperatorNotInStore {
        /// The operator.
        operator: UserId,
        /// Their store.
        operator_store: StoreId,
        /// The store asked for.
        store: StoreId,
    },
    /// The client is another store's: a conversation's client must be of the
    /// conversation's store (SPEC §9).
    #[error("client {client} is a client of store {client_store}, not of store {store}")]
    ClientNotInStore {
        /// The client.
        client: UserId,
        /// The store it belongs to.
        client_store: StoreId,
        /// The store asked for.
        store: StoreId,
    },
    /// A client of the same store with this email exists.
    #[error("a client with email {email} exists in this store: client {existing}")]
    ClientExists {
        /// The email.
        email: String,
        /// The existing client.
        existing: UserId,
    },
    /// The entity to change does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// `store`, `client`, `conversation`.
        what: &'static str,
        /// Its id.
        id: i64,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl DirectoryError {
    /// [`DirectoryError::InvalidField`] naming `field`, saying what `error` says.
    ///
    /// ```
    /// use cartloop_core::directory::DirectoryError;
    /// use cartloop_core::name::Name;
    /// let err = Name::parse(" ").map_err(|e| DirectoryError::invalid_field("group", e));
    /// assert_eq!(err.unwrap_err().to_string(), "group: must not be empty");
    /// ```
    pub fn invalid_field(field: &'static str, error: impl std::fmt::Display) -> Self {
        Self::InvalidField {
            field,
            message: error.to_string(),
        }
    }
}

/// Creates a store.
///
/// # Errors
/// Storage failures.
pub async fn create_store(storage: &dyn Storage, store: NewStore) -> Result<Store, DirectoryError> {
    Ok(storage.create_store(store).await?)
}

/// Changes a store's delivery settings: its calendar, frequency cap and reply grace.
///
/// # Errors
/// [`DirectoryError::NotFound`]; storage failures.
pub async fn update_store(
    storage: &dyn Storage,
    id: StoreId,
    changes: StoreChanges,
) -> Result<Store, DirectoryError> {
    storage
        .update_store(id, changes)
        .await?
        .ok_or(DirectoryError::NotFound {
            what: "store",
            id: id.0,
        })
}

/// Replaces a store's closures.
///
/// # Errors
/// [`DirectoryError::NotFound`]; storage failures.
pub async fn set_store_closures(
    storage: &dyn Storage,
    id: StoreId,
    closures: Closures,
) -> Result<Store, DirectoryError> {
    storage
        .set_store_closures(id, closures)
        .await?
        .ok_or(DirectoryError::NotFound {
            what: "store",
            id: id.0,
        })
}

/// Creates an operator of an existing store.
///
/// # Errors
/// [`DirectoryError::UnknownReference`] (`storeId`); storage failures.
pub async fn create_operator(
    storage: &dyn Storage,
    operator: NewOperator,
) -> Result<Operator, DirectoryError> {
    if storage.store(operator.store_id).await?.is_none() {
        return Err(unknown_store(operator.store_id));
    }
    match storage.create_operator(operator.clone()).await {
        // The store was deleted in between; no API deletes stores, but say it plainly.
        Err(StorageError::NotFound(_)) => Err(unknown_store(operator.store_id)),
        other => Ok(other?),
    }
}

/// Creates a client of an existing store.
///
/// # Errors
/// [`DirectoryError::NotFound`] (`store`) for an unknown store: a store one cannot see is
/// answered as if it did not exist (SPEC §9); [`DirectoryError::ClientExists`] when a client
/// of that store has the email (another store's client with it is another person); storage
/// failures.
pub async fn create_client(
    storage: &dyn Storage,
    client: NewClient,
) -> Result<Client, DirectoryError> {
    let store = client.store_id;
    let missing = || DirectoryError::NotFound {
        what: "store",
        id: store.0,
    };
    if storage.store(store).await?.is_none() {
        return Err(missing());
    }
    match storage.create_client(client.clone()).await {
        Err(StorageError::Conflict(_)) => Err(client_exists(storage, store, &client.email).await?),
        // The store was deleted in between; no API deletes stores, but say it plainly.
        Err(StorageError::NotFound(_)) => Err(missing()),
        other => Ok(other?),
    }
}

/// Changes a client's name, email or zone (never its store). Messages already waiting
/// follow the new zone at send time.
///
/// # Errors
/// [`DirectoryError::NotFound`], [`DirectoryError::ClientExists`] when the new email is
/// another client's of the same store; storage failures.
pub async fn update_client(
    storage: &dyn Storage,
    id: UserId,
    changes: ClientChanges,
) -> Result<Client, DirectoryError> {
    let email = changes.email.clone();
    let not_found = || DirectoryError::NotFound {
        what: "client",
        id: id.0,
    };
    match storage.update_client(id, changes).await {
        Ok(Some(client)) => Ok(client),
        Ok(None) => Err(not_found()),
        Err(StorageError::Conflict(_)) => {
            let store = storage.client(id).await?.ok_or_else(not_found)?.store_id;
            match email {
                Some(email) => Err(client_exists(storage, store, &email).await?),
                None => Err(DirectoryError::Storage(StorageError::other(
                    "conflict without an email change",
                ))),
            }
        }
        Err(e) => Err(e.into()),
    }
}

async fn client_exists(
    storage: &dyn Storage,
    store: StoreId,
    email: &crate::email_address::EmailAddress,
) -> Result<DirectoryError, StorageError> {
    let existing = storage
        .client_by_email(store, email)
        .await?
        .ok_or_else(|| StorageError::other("email reported taken, but no client has it"))?;
    Ok(DirectoryError::ClientExists {
        email: email.to_string(),
        existing: existing.id,
    })
}

/// Creates an open conversation between a store's operator and a client.
///
/// # Errors
/// [`DirectoryError::UnknownReference`] (`storeId`, `operatorId`, `clientId`, checked in
/// that order), then [`DirectoryError::OperatorNotInStore`] and
/// [`DirectoryError::ClientNotInStore`]; storage failures.
pub async fn create_conversation(
    storage: &dyn Storage,
    conversation: NewConversation,
) -> Result<ConversationContext, DirectoryError> {
    if storage.store(conversation.store_id).await?.is_none() {
        return Err(unknown_store(conversation.store_id));
    }
    let operator = storage.operator(conversation.operator_id).await?.ok_or(
        DirectoryError::UnknownReference {
            field: "operatorId",
            what: "operator",
            id: conversation.operator_id.0,
        },
    )?;
    let client =
        storage
            .client(conversation.client_id)
            .await?
            .ok_or(DirectoryError::UnknownReference {
                field: "clientId",
                what: "client",
                id: conversation.client_id.0,
            })?;
    if operator.store_id != conversation.store_id {
        return Err(DirectoryError::OperatorNotInStore {
            operator: operator.id,
            operator_store: operator.store_id,
            store: conversation.store_id,
        });
    }
    if client.store_id != conversation.store_id {
        return Err(DirectoryError::ClientNotInStore {
            client: client.id,
            client_store: client.store_id,
            store: conversation.store_id,
        });
    }
    let created: Conversation = storage.create_conversation(conversation).await?;
    storage.conversation(created.id).await?.ok_or_else(|| {
        DirectoryError::Storage(StorageError::other("created conversation vanished"))
    })
}

/// Resolves or reopens a conversation. Scheduled messages are left as they are.
///
/// # Errors
/// [`DirectoryError::NotFound`]; storage failures.
pub async fn set_conversation_status(
    storage: &dyn Storage,
    id: ConversationId,
    status: ConversationStatus,
) -> Result<(), DirectoryError> {
    if storage.set_conversation_status(id, status).await? {
        Ok(())
    } else {
        Err(DirectoryError::NotFound {
            what: "conversation",
            id: id.0,
        })
    }
}

/// Assigns conversation `id` to `operator`, an operator of the conversation's store.
///
/// # Errors
/// [`DirectoryError::NotFound`] for an unknown conversation;
/// [`DirectoryError::UnknownReference`] (`operatorId`) for an unknown operator;
/// [`DirectoryError::OperatorNotInStore`] for another store's; storage failures.
pub async fn reassign_conversation(
    storage: &dyn Storage,
    id: ConversationId,
    operator: UserId,
) -> Result<(), DirectoryError> {
    let context = storage
        .conversation(id)
        .await?
        .ok_or(DirectoryError::NotFound {
            what: "conversation",
            id: id.0,
        })?;
    let found = storage
        .operator(operator)
        .await?
        .ok_or(DirectoryError::UnknownReference {
            field: "operatorId",
            what: "operator",
            id: operator.0,
        })?;
    let store = context.conversation.store_id;
    if found.store_id != store {
        return Err(DirectoryError::OperatorNotInStore {
            operator,
            operator_store: found.store_id,
            store,
        });
    }
    if storage.reassign_conversation(id, operator).await? {
        Ok(())
    } else {
        Err(DirectoryError::NotFound {
            what: "conversation",
            id: id.0,
        })
    }
}

/// Records that a client unsubscribed (SPEC §8); the first instant is kept.
///
/// # Errors
/// [`DirectoryError::NotFound`]; storage failures.
pub async fn unsubscribe(
    storage: &dyn Storage,
    clock: &dyn Clock,
    client: UserId,
) -> Result<Client, DirectoryError> {
    storage
        .unsubscribe_client(client, clock.now())
        .await?
        .ok_or(DirectoryError::NotFound {
            what: "client",
            id: client.0,
        })
}

fn unknown_store(id: StoreId) -> DirectoryError {
    DirectoryError::UnknownReference {
        field: "storeId",
        what: "store",
        id: id.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendar;
    use crate::demo::demo_data;
    use crate::discount_code::DiscountCode;
    use crate::email_address::EmailAddress;
    use crate::name::Name;
    use crate::ports::prelude::*;
    use crate::testing::{ManualClock, MemoryStorage};
    use chrono::{TimeZone, Utc};

    async fn storage() -> MemoryStorage {
        let storage = MemoryStorage::new();
        storage.import(&demo_data()).await.unwrap();
        storage
    }

    fn address(raw: &str) -> EmailAddress {
        EmailAddress::parse(raw).unwrap()
    }

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    fn new_store(raw_name: &str) -> NewStore {
        NewStore {
            name: name(raw_name),
            time_zone: chrono_tz::Europe::Paris,
            sender_email: address("shop@paris.example.com"),
            active_hours: None,
        }
    }

    fn new_client(store: i64, raw_name: &str, email: &str) -> NewClient {
        NewClient {
            store_id: StoreId(store),
            name: name(raw_name),
            email: address(email),
            time_zone: None,
        }
    }

    fn field_of(err: DirectoryError) -> &'static str {
        match err {
            DirectoryError::UnknownReference { field, .. } => field,
            other => panic!("not a field error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn stores_are_created() {
        let storage = storage().await;
        let store = create_store(&storage, new_store("Paris Perfume"))
            .await
            .unwrap();
        assert_eq!(store.name, "Paris Perfume");
        assert_eq!(storage.store(store.id).await.unwrap(), Some(store.clone()));
        let next = create_store(&storage, new_store("Lyon")).await.unwrap();
        assert_eq!(next.id.0, store.id.0 + 1);
    }

    #[tokio::test]
    async fn store_hours_change_and_unknown_store() {
        let storage = storage().await;
        let night: Calendar = "21:00-08:00".parse().unwrap();
        let set = |hours: Option<Calendar>| StoreChanges {
            active_hours: Some(hours),
            ..StoreChanges::default()
        };
        let store = update_store(&storage, StoreId(1), set(Some(night.clone())))
            .await
            .unwrap();
        assert_eq!(store.active_hours, Some(night.clone()));
        let store = update_store(&storage, StoreId(1), set(None)).await.unwrap();
        assert_eq!(store.active_hours, None);
        let err = update_store(&storage, StoreId(999), set(Some(night)))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DirectoryError::NotFound {
                    what: "store",
                    id: 999
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn operators_need_an_existing_store() {
        let storage = storage().await;
        let operator = create_operator(
            &storage,
            NewOperator {
                name: name("Fay Lin"),
                store_id: StoreId(2),
                group: name("support"),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (operator.name.as_str(), operator.group.as_str()),
            ("Fay Lin", "support")
        );
        let err = create_operator(
            &storage,
            NewOperator {
                name: name("Gus"),
                store_id: StoreId(999),
                group: name("sales"),
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                DirectoryError::UnknownReference {
                    field: "storeId",
                    what: "store",
                    id: 999
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_known_email_names_the_existing_client_of_that_store() {
        let storage = storage().await;
        let ann = create_client(&storage, new_client(1, "Ann", "ann@example.com"))
            .await
            .unwrap();
        assert_eq!((ann.name.as_str(), ann.store_id), ("Ann", StoreId(1)));
        let err = create_client(&storage, new_client(1, "Copy", "ANN@Example.com"))
            .await
            .unwrap_err();
        match err {
            DirectoryError::ClientExists { email, existing } => {
                assert_eq!((email.as_str(), existing), ("ANN@Example.com", ann.id));
            }
            other => panic!("{other:?}"),
        }
        // Another store's client with this email is another person.
        let other = create_client(&storage, new_client(2, "Ann B", "ANN@Example.com"))
            .await
            .unwrap();
        assert_eq!(other.store_id, StoreId(2));
        assert_ne!(other.id, ann.id);
        // Client 29 (store 2) has Olivia's email; store 3 may have her too.
        let err = create_client(&storage, new_client(2, "Liv", "olivia.smith@example.com"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DirectoryError::ClientExists { existing, .. } if existing == UserId(29)),
            "{err:?}"
        );
        create_client(&storage, new_client(3, "Liv", "olivia.smith@example.com"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn clients_need_an_existing_store() {
        let storage = storage().await;
        let err = create_client(&storage, new_client(999, "Ann", "ann@example.com"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DirectoryError::NotFound {
                    what: "store",
                    id: 999
                }
            ),
            "{err:?}"
        );
        let found = storage
            .client_by_email(StoreId(999), &address("ann@example.com"))
            .await
            .unwrap();
        assert_eq!(found, None, "nothing was stored");
    }

    #[tokio::test]
    async fn clients_change_name_email_and_zone() {
        let storage = storage().await;
        let tokyo = chrono_tz::Asia::Tokyo;
        let changed = update_client(
            &storage,
            UserId(27),
            ClientChanges {
                name: Some(name("Johnny")),
                email: Some(address("johnny@example.com")),
                time_zone: Some(Some(tokyo)),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (
                changed.name.as_str(),
                changed.email.as_str(),
                changed.time_zone
            ),
            ("Johnny", "johnny@example.com", Some(tokyo))
        );
        let cleared = update_client(
            &storage,
            UserId(27),
            ClientChanges {
                time_zone: Some(None),
                ..ClientChanges::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(cleared.time_zone, None);
        assert_eq!(cleared.name, "Johnny");

        // Client 1's email: the error names client 1, and nothing changed.
        let err = update_client(
            &storage,
            UserId(27),
            ClientChanges {
                name: Some(name("Other")),
                email: Some(address("Olivia.Smith@example.com")),
                time_zone: None,
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, DirectoryError::ClientExists { existing, .. } if existing == UserId(1)),
            "{err:?}"
        );
        assert_eq!(storage.client(UserId(27)).await.unwrap(), Some(cleared));
        // Client 4's email: client 4 shops at store 2, so it is no conflict for 27 (store 1).
        let shared = update_client(
            &storage,
            UserId(27),
            ClientChanges {
                email: Some(address("Noah.Taylor@example.com")),
                ..ClientChanges::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (shared.email.as_str(), shared.store_id),
            ("Noah.Taylor@example.com", StoreId(1))
        );

        let err = update_client(&storage, UserId(999), ClientChanges::default())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            DirectoryError::NotFound {
                what: "client",
                id: 999
            }
        ));
    }

    fn conversation(store: i64, operator: i64, client: i64) -> NewConversation {
        NewConversation {
            store_id: StoreId(store),
            operator_id: UserId(operator),
            client_id: UserId(client),
            discount_code: None,
        }
    }

    #[tokio::test]
    async fn conversations_check_every_reference_in_order() {
        let storage = storage().await;
        let created = create_conversation(
            &storage,
            NewConversation {
                discount_code: Some(DiscountCode::parse("NEW10").unwrap()),
                ..conversation(1, 24, 27)
            },
        )
        .await
        .unwrap();
        assert_eq!(created.conversation.status, ConversationStatus::Open);
        assert_eq!(created.conversation.discount_code.as_deref(), Some("NEW10"));
        assert_eq!(
            (created.operator.id, created.client.id, created.store.id),
            (UserId(24), UserId(27), StoreId(1))
        );

        // Checked in order: storeId, operatorId, clientId; a client is no operator.
        for (bad, field) in [
            (conversation(999, 999, 999), "storeId"),
            (conversation(1, 999, 999), "operatorId"),
            (conversation(1, 27, 27), "operatorId"),
            (conversation(1, 24, 999), "clientId"),
            (conversation(1, 24, 21), "clientId"),
        ] {
            let err = create_conversation(&storage, bad.clone())
                .await
                .unwrap_err();
            assert_eq!(field_of(err), field, "{bad:?}");
        }
        // Client 4 shops at store 2: a conversation of store 1 cannot have it.
        let err = create_conversation(&storage, conversation(1, 24, 4))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DirectoryError::ClientNotInStore {
                    client: UserId(4),
                    client_store: StoreId(2),
                    store: StoreId(1)
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "client 4 is a client of store 2, not of store 1"
        );
        // Operator 22 works for store 2.
        let err = create_conversation(&storage, conversation(1, 22, 27))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DirectoryError::OperatorNotInStore {
                    operator: UserId(22),
                    operator_store: StoreId(2),
                    store: StoreId(1)
                }
            ),
            "{err:?}"
        );
        let next = create_conversation(&storage, conversation(1, 24, 27))
            .await
            .unwrap();
        assert_eq!(
            next.conversation.id.0,
            created.conversation.id.0 + 1,
            "refused conversations took no id"
        );
        // Client 4 at its own store.
        let at_store_2 = create_conversation(&storage, conversation(2, 22, 4))
            .await
            .unwrap();
        assert_eq!(at_store_2.client.store_id, StoreId(2));
    }

    #[tokio::test]
    async fn conversations_resolve_and_reopen() {
        let storage = storage().await;
        let id = ConversationId(1);
        set_conversation_status(&storage, id, ConversationStatus::Resolved)
            .await
            .unwrap();
        let context = storage.conversation(id).await.unwrap().unwrap();
        assert_eq!(context.conversation.status, ConversationStatus::Resolved);
        set_conversation_status(&storage, id, ConversationStatus::Open)
            .await
            .unwrap();
        let err = set_conversation_status(&storage, ConversationId(999), ConversationStatus::Open)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            DirectoryError::NotFound {
                what: "conversation",
                id: 999
            }
        ));
    }

    #[tokio::test]
    async fn unsubscribing_keeps_the_first_instant() {
        let storage = storage().await;
        let first = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let clock = ManualClock::new(first);
        let client = unsubscribe(&storage, &clock, UserId(27)).await.unwrap();
        assert_eq!(client.unsubscribed_at, Some(first));
        clock.advance(chrono::Duration::days(1));
        let again = unsubscribe(&storage, &clock, UserId(27)).await.unwrap();
        assert_eq!(again.unsubscribed_at, Some(first));
        let err = unsubscribe(&storage, &clock, UserId(999))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            DirectoryError::NotFound {
                what: "client",
                id: 999
            }
        ));
    }
}
