//! [`Admin`]: data sets, the deployment's secrets, health.

use super::StorageError;
use crate::domain::Dataset;
use async_trait::async_trait;

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Rows inserted by this import (0 when the data was already there).
    pub inserted: u64,
}

/// What the deployment needs besides the data itself.
#[async_trait]
pub trait Admin: Send + Sync {
    /// Loads `data` as it is, ids included, all of it or nothing. Idempotent: rows that
    /// already exist (by id) are left as they are, so a second import inserts nothing.
    /// Ids assigned later by `create_*` and `insert_message` are above every imported id.
    async fn import(&self, data: &Dataset) -> Result<ImportSummary, StorageError>;

    /// The deployment's secret named `name`: the stored one, or `candidate`, stored now if
    /// none was. Concurrent callers (several servers) MUST all get the same value.
    async fn secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>, StorageError>;

    /// Cheap liveness check of the backing store.
    async fn ping(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
