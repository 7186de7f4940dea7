//! Stores, operators, clients and conversations (SPEC §7): creating and changing them, every
//! field checked before anything is stored.

use crate::active_hours::ActiveHours;
use crate::domain::{
    Client, ClientChanges, Conversation, ConversationContext, ConversationStatus, NewClient,
    NewConversation, NewOperator, NewStore, Operator, Store,
};
use crate::ids::{ConversationId, StoreId, UserId};
use crate::ports::{Clock, Storage, StorageError};

/// Longest name (store, operator, client, group), in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest discount code, in characters.
pub const MAX_DISCOUNT_CODE_CHARS: usize = 64;

/// Why a directory change was refused.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// A field's value is not acceptable; `field` is its API name (`name`, `group`, ...).
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
    /// A client with this email exists.
    #[error("a client with email {email} exists: client {existing}")]
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

/// A display name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters.
///
/// # Errors
/// [`DirectoryError::InvalidField`] naming `field`.
pub fn check_name(field: &'static str, raw: &str) -> Result<String, DirectoryError> {
    let name = raw.trim();
    let invalid = |message: String| DirectoryError::InvalidField { field, message };
    if name.is_empty() {
        return Err(invalid("must not be empty".to_owned()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(format!(
            "must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(invalid(format!(
            "must not contain the control character {}",
            c.escape_unicode()
        )));
    }
    Ok(name.to_owned())
}

/// A discount code: 1 to [`MAX_DISCOUNT_CODE_CHARS`] ASCII letters, digits, `-` and `_`
/// (it is rendered into the client's email, so it keeps to the payload character set).
///
/// # Errors
/// [`DirectoryError::InvalidField`] naming `discountCode`.
pub fn check_discount_code(raw: &str) -> Result<String, DirectoryError> {
    let code = raw.trim();
    let ok = !code.is_empty()
        && code.chars().count() <= MAX_DISCOUNT_CODE_CHARS
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(code.to_owned())
    } else {
        Err(DirectoryError::InvalidField {
            field: "discountCode",
            message: format!(
                "must be 1 to {MAX_DISCOUNT_CODE_CHARS} ASCII letters, digits, '-' or '_'"
            ),
        })
    }
}

/// Creates a store.
///
/// # Errors
/// [`DirectoryError::InvalidField`] for a blank or over-long name; storage failures.
pub async fn create_store(storage: &dyn Storage, store: NewStore) -> Result<Store, DirectoryError> {
    let store = NewStore {
        name: check_name("name", &store.name)?,
        ..store
    };
    Ok(storage.create_store(store).await?)
}

/// Sets or clears a store's own window.
///
/// # Errors
/// [`DirectoryError::NotFound`]; storage failures.
pub async fn set_store_hours(
    storage: &dyn Storage,
    id: StoreId,
    hours: Option<ActiveHours>,
) -> Result<Store, DirectoryError> {
    storage
        .set_store_hours(id, hours)
        .await?
        .ok_or(DirectoryError::NotFound {
            what: "store",
            id: id.0,
        })
}

/// Creates an operator of an existing store.
///
/// # Errors
/// [`DirectoryError::InvalidField`] (`name`, `group`), [`DirectoryError::UnknownReference`]
/// (`storeId`); storage failures.
pub async fn create_operator(
    storage: &dyn Storage,
    operator: NewOperator,
) -> Result<Operator, DirectoryError> {
    let operator = NewOperator {
        name: check_name("name", &operator.name)?,
        group: check_name("group", &operator.group)?,
        ..operator
    };
    if storage.store(operator.store_id).await?.is_none() {
        return Err(unknown_store(operator.store_id));
    }
    match storage.create_operator(operator.clone()).await {
        // The store was deleted in between; no API deletes stores, but say it plainly.
        Err(StorageError::NotFound(_)) => Err(unknown_store(operator.store_id)),
        other => Ok(other?),
    }
}

/// Creates a client.
///
/// # Errors
/// [`DirectoryError::InvalidField`] (`name`), [`DirectoryError::ClientExists`] when the
/// email is taken; storage failures.
pub async fn create_client(
    storage: &dyn Storage,
    client: NewClient,
) -> Result<Client, DirectoryError> {
    let client = NewClient {
        name: check_name("name", &client.name)?,
        ..client
    };
    match storage.create_client(client.clone()).await {
        Err(StorageError::Conflict(_)) => Err(client_exists(storage, &client.email).await?),
        other => Ok(other?),
    }
}

/// Changes a client's name, email or zone. Messages already waiting follow the new zone at
/// send time.
///
/// # Errors
/// [`DirectoryError::NotFound`], [`DirectoryError::InvalidField`] (`name`),
/// [`DirectoryError::ClientExists`] when the new email is another client's; storage failures.
pub async fn update_client(
    storage: &dyn Storage,
    id: UserId,
    changes: ClientChanges,
) -> Result<Client, DirectoryError> {
    let changes = ClientChanges {
        name: changes
            .name
            .as_deref()
            .map(|n| check_name("name", n))
            .transpose()?,
        ..changes
    };
    let email = changes.email.clone();
    match storage.update_client(id, changes).await {
        Ok(Some(client)) => Ok(client),
        Ok(None) => Err(DirectoryError::NotFound {
            what: "client",
            id: id.0,
        }),
        Err(StorageError::Conflict(_)) => match email {
            Some(email) => Err(client_exists(storage, &email).await?),
            None => Err(DirectoryError::Storage(StorageError::other(
                "conflict without an email change",
            ))),
        },
        Err(e) => Err(e.into()),
    }
}

async fn client_exists(
    storage: &dyn Storage,
    email: &crate::email_address::EmailAddress,
) -> Result<DirectoryError, StorageError> {
    let existing = storage
        .client_by_email(email)
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
/// that order), [`DirectoryError::OperatorNotInStore`], [`DirectoryError::InvalidField`]
/// (`discountCode`); storage failures.
pub async fn create_conversation(
    storage: &dyn Storage,
    conversation: NewConversation,
) -> Result<ConversationContext, DirectoryError> {
    let discount_code = conversation
        .discount_code
        .as_deref()
        .map(check_discount_code)
        .transpose()?;
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
    if storage.client(conversation.client_id).await?.is_none() {
        return Err(DirectoryError::UnknownReference {
            field: "clientId",
            what: "client",
            id: conversation.client_id.0,
        });
    }
    if operator.store_id != conversation.store_id {
        return Err(DirectoryError::OperatorNotInStore {
            operator: operator.id,
            operator_store: operator.store_id,
            store: conversation.store_id,
        });
    }
    let created: Conversation = storage
        .create_conversation(NewConversation {
            discount_code,
            ..conversation
        })
        .await?;
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
