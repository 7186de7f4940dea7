//! [`AuditLog`] on SQL.

#[allow(unused_imports)]
use super::*;
use cartloop_core::ports::{Actor, ActorKind, AuditEntry, AuditFilter, AuditLog, NewAuditEntry};

const INSERT_ENTRY: &str = "\
    INSERT INTO audit_log \
        (at, actor_kind, actor_id, actor_name, action, target_kind, target_id, store_id, status) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const ENTRIES: &str = "\
    SELECT id, at, actor_kind, actor_id, actor_name, action, target_kind, target_id, store_id, \
        CAST(status AS BIGINT) AS status \
    FROM audit_log \
    WHERE ($1 IS NULL OR store_id = $1) AND ($2 IS NULL OR actor_kind = $2) \
      AND ($3 IS NULL OR actor_id = $3) AND ($4 IS NULL OR id < $4) \
    ORDER BY id DESC LIMIT $5";
const PRUNE: &str = "DELETE FROM audit_log WHERE at < $1";

fn entry<D: Dialect>(row: &DbRow<D>) -> Result<AuditEntry, StorageError> {
    let id = rows::int::<D>(row, "id")?;
    let actor = match D::str(row, "actor_kind")? {
        None => None,
        Some(kind) => Some(Actor {
            kind: ActorKind::parse(kind).ok_or_else(|| {
                StorageError::other(format!("audit entry {id}: unknown actor kind {kind:?}"))
            })?,
            id: D::int(row, "actor_id")?,
            name: D::str(row, "actor_name")?.map(str::to_owned),
        }),
    };
    let status = rows::int::<D>(row, "status")?;
    Ok(AuditEntry {
        id,
        entry: NewAuditEntry {
            at: rows::time::<D>(row, "at")?,
            actor,
            action: rows::text::<D>(row, "action")?.to_owned(),
            target_kind: D::str(row, "target_kind")?.map(str::to_owned),
            target_id: D::str(row, "target_id")?.map(str::to_owned),
            store_id: D::int(row, "store_id")?.map(StoreId),
            status: u16::try_from(status).map_err(|_| {
                StorageError::other(format!("audit entry {id}: status {status} out of range"))
            })?,
        },
    })
}

#[async_trait]
impl<D: Dialect> AuditLog for SqlStorage<D> {
    async fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<(), StorageError> {
        if entries.is_empty() {
            return Ok(());
        }
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let written = async {
            for entry in &entries {
                let params = [
                    entry.at.into(),
                    entry.actor.as_ref().map(|a| a.kind.as_str()).into(),
                    entry.actor.as_ref().and_then(|a| a.id).into(),
                    entry.actor.as_ref().and_then(|a| a.name.as_deref()).into(),
                    entry.action.as_str().into(),
                    entry.target_kind.as_deref().into(),
                    entry.target_id.as_deref().into(),
                    entry.store_id.map(|s| s.0).into(),
                    i64::from(entry.status).into(),
                ];
                fetch::<D>(tx.conn(), INSERT_ENTRY, &params).await?;
            }
            Ok(())
        }
        .await;
        self.exec.noted(tx.finish(written).await)?;
        self.exec.fault.stored();
        Ok(())
    }

    async fn audit(
        &self,
        filter: AuditFilter,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StorageError> {
        let params = [
            filter.store.map(|s| s.0).into(),
            filter.actor.map(|(kind, _)| kind.as_str()).into(),
            filter.actor.and_then(|(_, id)| id).into(),
            filter.before.into(),
            i64::from(limit).into(),
        ];
        let rows = self.exec.read(ENTRIES, &params).await?;
        rows.iter().map(entry::<D>).collect()
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let deleted = async {
            let rows = fetch::<D>(
                tx.conn(),
                "SELECT COUNT(*) AS n FROM audit_log WHERE at < $1",
                &[before.into()],
            )
            .await?;
            let n = rows
                .first()
                .map(|row| count::<D>(row, "n"))
                .transpose()?
                .unwrap_or(0);
            fetch::<D>(tx.conn(), PRUNE, &[before.into()]).await?;
            Ok(n)
        }
        .await;
        self.exec.noted(tx.finish(deleted).await)
    }
}
