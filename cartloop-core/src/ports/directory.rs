//! [`Directory`]: stores, operators and clients.

use super::StorageError;
use crate::calendar::Calendar;
use crate::closures::Closures;
use crate::domain::{
    Client, ClientChanges, NewClient, NewOperator, NewStore, Operator, Store, StoreChanges,
};
use crate::email_address::EmailAddress;
use crate::ids::{StoreId, UserId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Stores, operators and clients.
///
/// Errors: as [`StorageError`] says; the contracts below say when a method MUST return
/// [`StorageError::NotFound`] or [`StorageError::Conflict`].
#[async_trait]
pub trait Directory: Send + Sync {
    /// Creates a store with the next id and returns it.
    async fn create_store(&self, store: NewStore) -> Result<Store, StorageError>;

    /// One store, or `Ok(None)`.
    async fn store(&self, id: StoreId) -> Result<Option<Store>, StorageError>;

    /// Applies `changes` to the store's delivery settings (calendar, frequency cap, reply
    /// grace), all or none; returns the store as it is now, or `Ok(None)` (changing
    /// nothing) for an unknown id. A field left `None` MUST keep its value.
    async fn update_store(
        &self,
        id: StoreId,
        changes: StoreChanges,
    ) -> Result<Option<Store>, StorageError>;

    /// Sets (or with `None` clears) the store's own calendar alone: [`update_store`] with
    /// only `active_hours`.
    ///
    /// [`update_store`]: Self::update_store
    async fn set_store_hours(
        &self,
        id: StoreId,
        hours: Option<Calendar>,
    ) -> Result<Option<Store>, StorageError> {
        let changes = StoreChanges {
            active_hours: Some(hours),
            ..StoreChanges::default()
        };
        self.update_store(id, changes).await
    }

    /// Replaces the store's closures with `closures` (an empty list removes them all);
    /// returns the store as it is now, or `Ok(None)` (changing nothing) for an unknown id.
    async fn set_store_closures(
        &self,
        id: StoreId,
        closures: Closures,
    ) -> Result<Option<Store>, StorageError>;

    /// Creates an operator with the next user id (operators and clients share one id space).
    ///
    /// MUST return [`StorageError::NotFound`] if the store does not exist.
    async fn create_operator(&self, operator: NewOperator) -> Result<Operator, StorageError>;

    /// One operator, or `Ok(None)` (also when the id is a client's).
    async fn operator(&self, id: UserId) -> Result<Option<Operator>, StorageError>;

    /// Creates a client of `client.store_id` with the next user id.
    ///
    /// MUST return [`StorageError::NotFound`] if the store does not exist, and
    /// [`StorageError::Conflict`] if a client of the same store has the same email (compared
    /// case-insensitively); the caller finds it with
    /// [`client_by_email`](Self::client_by_email). The same email in another store is no
    /// conflict: that is another client.
    async fn create_client(&self, client: NewClient) -> Result<Client, StorageError>;

    /// One client, or `Ok(None)` (also when the id is an operator's).
    async fn client(&self, id: UserId) -> Result<Option<Client>, StorageError>;

    /// The client of `store` with this email (compared case-insensitively), or `Ok(None)`.
    ///
    /// MUST NOT return another store's client, whatever its email.
    async fn client_by_email(
        &self,
        store: StoreId,
        email: &EmailAddress,
    ) -> Result<Option<Client>, StorageError>;

    /// Applies `changes`; returns the client as it is now, or `Ok(None)` for an unknown id.
    /// A client's store never changes.
    ///
    /// MUST return [`StorageError::Conflict`] (and change nothing) if the new email is
    /// another client's of the same store; another store's client with that email is no
    /// conflict.
    async fn update_client(
        &self,
        id: UserId,
        changes: ClientChanges,
    ) -> Result<Option<Client>, StorageError>;

    /// Records that the client unsubscribed at `at`, unless it already had (the first
    /// instant is kept). Unsubscribing is per store: MUST change only this client, not the
    /// clients of other stores with the same email. Returns the client as it is now, or `Ok(None)` for an unknown id.
    async fn unsubscribe_client(
        &self,
        id: UserId,
        at: DateTime<Utc>,
    ) -> Result<Option<Client>, StorageError>;
}
