//! [`ApiKeys`]: the API keys a deployment has handed out, kept as hashes.

use super::StorageError;
use crate::access::AccessRole;
use crate::ids::{StoreId, UserId};
use crate::name::Name;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The SHA-256 of a secret a request presents (an API key, a session token). Storage only
/// ever sees this, never the secret.
pub type SecretHash = [u8; 32];

/// An API key as stored: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key's id (`DELETE /api-key/{id}/`).
    pub id: i64,
    /// What its maker called it, e.g. `shop backend`.
    pub name: Name,
    /// What it may do.
    pub role: AccessRole,
    /// Its store: set for `manager`, `integration` and `operator` keys.
    pub store_id: Option<StoreId>,
    /// The operator an `operator` key acts as.
    pub operator_id: Option<UserId>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key opens nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key to store (`POST /api-keys/`): its fields were checked by
/// [`Principal::api_key`](crate::access::Principal::api_key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// Its name.
    pub name: Name,
    /// Its role.
    pub role: AccessRole,
    /// Its store, if its role has one.
    pub store_id: Option<StoreId>,
    /// Its operator, for an `operator` key.
    pub operator_id: Option<UserId>,
    /// The hash of the key, the only form of it kept.
    pub hash: SecretHash,
    /// Now.
    pub created_at: DateTime<Utc>,
}

/// API keys.
#[async_trait]
pub trait ApiKeys: Send + Sync {
    /// Stores a new key with the next id and returns it.
    ///
    /// MUST return [`StorageError::NotFound`] if its store, or its operator (as an operator
    /// of that store), does not exist, and [`StorageError::Conflict`] if the hash is taken.
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKeyRecord, StorageError>;

    /// One key by id, revoked or not, or `Ok(None)`.
    async fn api_key(&self, id: i64) -> Result<Option<ApiKeyRecord>, StorageError>;

    /// The key whose hash is `hash`, revoked or not (the caller refuses a revoked one), or
    /// `Ok(None)`. It MUST read the stored state as it is now (no cache), so a key revoked
    /// on one server is refused by every other at once.
    async fn api_key_by_hash(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<ApiKeyRecord>, StorageError>;

    /// Every key of `store` (`None`: every key), revoked ones too, by id.
    async fn list_api_keys(
        &self,
        store: Option<StoreId>,
    ) -> Result<Vec<ApiKeyRecord>, StorageError>;

    /// Revokes key `id` at `at` unless it already was (the first instant is kept); returns
    /// it as it is now, or `Ok(None)` for an unknown id.
    async fn revoke_api_key(
        &self,
        id: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiKeyRecord>, StorageError>;
}
