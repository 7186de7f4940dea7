//! [`ApiKeys`] on SQL: keys stored as their hashes.

#[allow(unused_imports)]
use super::*;
use cartloop_core::access::AccessRole;
use cartloop_core::name::Name;
use cartloop_core::ports::{ApiKeyRecord, ApiKeys, NewApiKey, SecretHash};

/// Stores the key only when its store exists and its operator is an operator of that store:
/// no row back means one of them is unknown.
const INSERT_KEY: &str = "\
    INSERT INTO api_keys (name, role, store_id, operator_id, key_hash, created_at) \
    SELECT $1, $2, $3, $4, $5, $6 \
    WHERE ($3 IS NULL OR EXISTS (SELECT 1 FROM stores WHERE id = $3)) \
      AND ($4 IS NULL OR EXISTS \
          (SELECT 1 FROM users WHERE id = $4 AND role = 'operator' AND store_id = $3)) \
    RETURNING id";

const KEY: &str = "SELECT id, name, role, store_id, operator_id, created_at, revoked_at \
    FROM api_keys WHERE id = $1";
const KEY_BY_HASH: &str = "SELECT id, name, role, store_id, operator_id, created_at, revoked_at \
    FROM api_keys WHERE key_hash = $1";
const KEYS: &str = "SELECT id, name, role, store_id, operator_id, created_at, revoked_at \
    FROM api_keys WHERE ($1 IS NULL OR store_id = $1) ORDER BY id";
const REVOKE_KEY: &str = "\
    UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
    RETURNING id, name, role, store_id, operator_id, created_at, revoked_at";

fn key<D: Dialect>(row: &DbRow<D>) -> Result<ApiKeyRecord, StorageError> {
    let id = rows::int::<D>(row, "id")?;
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        StorageError::other(format!("api key {id}: stored {what} unreadable: {e}"))
    };
    Ok(ApiKeyRecord {
        id,
        name: Name::parse(rows::text::<D>(row, "name")?).map_err(|e| bad("name", &e))?,
        role: rows::text::<D>(row, "role")?
            .parse::<AccessRole>()
            .map_err(|e| bad("role", &e))?,
        store_id: D::int(row, "store_id")?.map(StoreId),
        operator_id: D::int(row, "operator_id")?.map(UserId),
        created_at: rows::time::<D>(row, "created_at")?,
        revoked_at: D::time(row, "revoked_at")?,
    })
}

#[async_trait]
impl<D: Dialect> ApiKeys for SqlStorage<D> {
    async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKeyRecord, StorageError> {
        let params = [
            new.name.as_str().into(),
            new.role.as_str().into(),
            new.store_id.map(|s| s.0).into(),
            new.operator_id.map(|o| o.0).into(),
            new.hash.as_slice().into(),
            new.created_at.into(),
        ];
        let rows = self
            .exec
            .write(INSERT_KEY, &params)
            .await
            .map_err(conflict("a key with this hash exists"))?;
        if rows.is_empty() {
            return Err(StorageError::NotFound(match new.operator_id {
                Some(operator) => format!("operator {operator} of this store"),
                None => format!("store {}", new.store_id.map_or(0, |s| s.0)),
            }));
        }
        Ok(ApiKeyRecord {
            id: inserted_id::<D>(&rows)?,
            name: new.name,
            role: new.role,
            store_id: new.store_id,
            operator_id: new.operator_id,
            created_at: new.created_at,
            revoked_at: None,
        })
    }

    async fn api_key(&self, id: i64) -> Result<Option<ApiKeyRecord>, StorageError> {
        let row = self.exec.read_one(KEY, &[id.into()]).await?;
        row.as_ref().map(key::<D>).transpose()
    }

    async fn api_key_by_hash(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<ApiKeyRecord>, StorageError> {
        let row = self
            .exec
            .read_one(KEY_BY_HASH, &[hash.as_slice().into()])
            .await?;
        row.as_ref().map(key::<D>).transpose()
    }

    async fn list_api_keys(
        &self,
        store: Option<StoreId>,
    ) -> Result<Vec<ApiKeyRecord>, StorageError> {
        let rows = self.exec.read(KEYS, &[store.map(|s| s.0).into()]).await?;
        rows.iter().map(key::<D>).collect()
    }

    async fn revoke_api_key(
        &self,
        id: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiKeyRecord>, StorageError> {
        let row = self
            .exec
            .write_one(REVOKE_KEY, &[id.into(), at.into()])
            .await?;
        row.as_ref().map(key::<D>).transpose()
    }
}
