//! [`Admin`] on SQL: imports, secrets, health.

#[allow(unused_imports)]
use super::*;

#[async_trait]
impl<D: Dialect> Admin for SqlStorage<D> {
    async fn import(&self, data: &Dataset) -> Result<ImportSummary, StorageError> {
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let inserted = async {
            if let Some(lock) = D::IMPORT_LOCK {
                fetch::<D>(tx.conn(), lock, &[]).await?;
            }
            let inserted = Self::import_rows(tx.conn(), data).await?;
            if let Some(bump) = D::AFTER_IMPORT {
                fetch::<D>(tx.conn(), bump, &[]).await?;
            }
            Ok(inserted)
        }
        .await;
        let inserted = self.exec.noted(tx.finish(inserted).await)?;
        if inserted > 0 {
            self.exec.fault.stored();
        }
        Ok(ImportSummary { inserted })
    }

    async fn secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>, StorageError> {
        let params = [name.into(), candidate.as_slice().into()];
        self.exec
            .write(sql::INSERT_SECRET, &params)
            .await
            .map_err(storage_error)?;
        // Inserted now or by a racing caller, whose insert committed before ours did nothing.
        let row = self.exec.read_one(sql::SECRET, &[name.into()]).await?;
        let row = row.ok_or_else(|| StorageError::other(format!("secret {name:?} vanished")))?;
        D::bytes(&row, "value")?
            .ok_or_else(|| StorageError::other(format!("secret {name:?} is NULL")))
    }

    /// Reads; then, while the last writes met a full or failing disk and none has stored
    /// anything since, [`StorageError::Unavailable`] with a
    /// [`DiskFault`](cartloop_core::disk_fault::DiskFault) cause: the storage answers
    /// reads but refuses writes.
    async fn ping(&self) -> Result<(), StorageError> {
        self.exec.read(sql::PING, &[]).await?;
        match self.exec.fault.degraded() {
            Some(fault) => Err(fault),
            None => Ok(()),
        }
    }
}
