//! [`Accounts`] on SQL: operators' accounts, sessions and failed sign-ins.

#[allow(unused_imports)]
use super::*;
use cartloop_core::access::OperatorRole;
use cartloop_core::ports::{
    AccountChanges, Accounts, NewAccount, OperatorAccount, SecretHash, SessionLimits,
    SessionRecord, SignIn,
};

/// An operator and its account (if it has a row), as `account_*` columns beside
/// `operator_columns!`.
macro_rules! account_select {
    ($extra:literal, $from:literal, $where:literal) => {
        concat!(
            "SELECT o.id AS operator_id, o.name AS operator_name, ",
            "o.store_id AS operator_store_id, o.operator_group AS operator_group, ",
            "a.email AS account_email, a.role AS account_role, a.password_hash AS account_password",
            $extra,
            " FROM ",
            $from,
            " LEFT JOIN operator_accounts a ON a.operator_id = o.id WHERE ",
            $where
        )
    };
}

const ACCOUNT: &str = account_select!("", "users o", "o.id = $1 AND o.role = 'operator'");
const ACCOUNTS: &str = concat!(
    account_select!(
        "",
        "users o",
        "o.role = 'operator' AND ($1 IS NULL OR o.store_id = $1)"
    ),
    " ORDER BY o.id"
);
const SIGN_IN: &str = account_select!(
    "",
    "operator_accounts s JOIN users o ON o.id = s.operator_id",
    "s.email_key = $1"
);
const SESSION: &str = account_select!(
    ", t.created_at AS session_created_at, t.last_used_at AS session_last_used_at",
    "sessions t JOIN users o ON o.id = t.operator_id",
    "t.token_hash = $1"
);

const INSERT_ACCOUNT: &str = "\
    INSERT INTO operator_accounts (operator_id, email, email_key, role, password_hash) \
    VALUES ($1, $2, $3, $4, $5)";
const ENSURE_ACCOUNT: &str = "\
    INSERT INTO operator_accounts (operator_id) SELECT id FROM users \
    WHERE id = $1 AND role = 'operator' ON CONFLICT (operator_id) DO NOTHING";
const UPDATE_ACCOUNT: &str = "\
    UPDATE operator_accounts SET \
        email = CASE WHEN $2 THEN $3 ELSE email END, \
        email_key = CASE WHEN $2 THEN $4 ELSE email_key END, \
        role = COALESCE($5, role), \
        password_hash = COALESCE($6, password_hash) \
    WHERE operator_id = $1";
const END_OTHER_SESSIONS: &str = "\
    DELETE FROM sessions WHERE operator_id = $1 AND (NOT $2 OR token_hash <> $3)";
const INSERT_SESSION: &str = "\
    INSERT INTO sessions (token_hash, operator_id, created_at, last_used_at) \
    SELECT $1, id, $3, $3 FROM users WHERE id = $2 AND role = 'operator' RETURNING operator_id";
const TOUCH_SESSION: &str = "UPDATE sessions SET last_used_at = $2 WHERE token_hash = $1";
const END_SESSION: &str = "DELETE FROM sessions WHERE token_hash = $1 RETURNING operator_id";
const INSERT_FAILURE: &str = "INSERT INTO login_failures (email_key, at) VALUES ($1, $2)";
const FAILURES: &str =
    "SELECT at FROM login_failures WHERE email_key = $1 AND at >= $2 ORDER BY at";
const CLEAR_FAILURES: &str = "DELETE FROM login_failures WHERE email_key = $1 OR at < $2";

fn account<D: Dialect>(row: &DbRow<D>) -> Result<OperatorAccount, StorageError> {
    let operator = rows::operator::<D>(row)?;
    let owner = operator.id;
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        StorageError::other(format!("operator {owner}: stored {what} unreadable: {e}"))
    };
    let email = D::str(row, "account_email")?
        .map(|raw| EmailAddress::parse(raw).map_err(|e| bad("email", &e)))
        .transpose()?;
    let role = D::str(row, "account_role")?
        .map(|raw| raw.parse::<OperatorRole>().map_err(|e| bad("role", &e)))
        .transpose()?
        .unwrap_or_default();
    Ok(OperatorAccount {
        operator,
        email,
        role,
        has_password: D::str(row, "account_password")?.is_some(),
    })
}

fn key_of(email: &EmailAddress) -> String {
    email.as_str().to_lowercase()
}

impl<D: Dialect> SqlStorage<D> {
    async fn read_account(&self, id: UserId) -> Result<Option<OperatorAccount>, StorageError> {
        let row = self.exec.read_one(ACCOUNT, &[id.0.into()]).await?;
        row.as_ref().map(account::<D>).transpose()
    }
}

#[async_trait]
impl<D: Dialect> Accounts for SqlStorage<D> {
    async fn create_operator_account(
        &self,
        new: NewOperator,
        login: NewAccount,
    ) -> Result<OperatorAccount, StorageError> {
        let key = login.email.as_ref().map(key_of);
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let created = async {
            let params = [
                new.name.as_str().into(),
                new.store_id.0.into(),
                new.group.as_str().into(),
            ];
            let rows = D::fetch(tx.conn(), sql::INSERT_OPERATOR, &params)
                .await
                .map_err(not_found(|| format!("store {}", new.store_id)))?;
            let id = inserted_id::<D>(&rows)?;
            let params = [
                id.into(),
                login.email.as_ref().map(EmailAddress::as_str).into(),
                key.as_deref().into(),
                login.role.as_str().into(),
                login.password_hash.as_deref().into(),
            ];
            D::fetch(tx.conn(), INSERT_ACCOUNT, &params)
                .await
                .map_err(conflict("another operator signs in with this email"))?;
            Ok(id)
        }
        .await;
        let id = self.exec.noted(tx.finish(created).await)?;
        self.exec.fault.stored();
        Ok(OperatorAccount {
            operator: Operator {
                id: UserId(id),
                name: new.name,
                store_id: new.store_id,
                group: new.group,
            },
            email: login.email,
            role: login.role,
            has_password: login.password_hash.is_some(),
        })
    }

    async fn account(&self, id: UserId) -> Result<Option<OperatorAccount>, StorageError> {
        self.read_account(id).await
    }

    async fn list_accounts(
        &self,
        store: Option<StoreId>,
    ) -> Result<Vec<OperatorAccount>, StorageError> {
        let rows = self
            .exec
            .read(ACCOUNTS, &[store.map(|s| s.0).into()])
            .await?;
        rows.iter().map(account::<D>).collect()
    }

    async fn update_account(
        &self,
        id: UserId,
        changes: AccountChanges,
    ) -> Result<Option<OperatorAccount>, StorageError> {
        let email = changes.email.clone().flatten();
        let key = email.as_ref().map(key_of);
        let keep = changes.keep_session.unwrap_or_default();
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let updated = async {
            let ensured = fetch::<D>(tx.conn(), ENSURE_ACCOUNT, &[id.0.into()]).await;
            ensured?;
            let params = [
                id.0.into(),
                changes.email.is_some().into(),
                email.as_ref().map(EmailAddress::as_str).into(),
                key.as_deref().into(),
                changes.role.map(OperatorRole::as_str).into(),
                changes.password_hash.as_deref().into(),
            ];
            D::fetch(tx.conn(), UPDATE_ACCOUNT, &params)
                .await
                .map_err(conflict("another operator signs in with this email"))?;
            if changes.password_hash.is_some() {
                let params = [
                    id.0.into(),
                    changes.keep_session.is_some().into(),
                    keep.as_slice().into(),
                ];
                fetch::<D>(tx.conn(), END_OTHER_SESSIONS, &params).await?;
            }
            let row = fetch::<D>(tx.conn(), ACCOUNT, &[id.0.into()]).await?;
            row.first().map(account::<D>).transpose()
        }
        .await;
        let account = self.exec.noted(tx.finish(updated).await)?;
        if account.is_some() {
            self.exec.fault.stored();
        }
        Ok(account)
    }

    async fn sign_in(&self, email: &EmailAddress) -> Result<Option<SignIn>, StorageError> {
        let key = key_of(email);
        let Some(row) = self.exec.read_one(SIGN_IN, &[key.as_str().into()]).await? else {
            return Ok(None);
        };
        Ok(Some(SignIn {
            account: account::<D>(&row)?,
            password_hash: D::str(&row, "account_password")?.map(str::to_owned),
        }))
    }

    async fn create_session(
        &self,
        hash: &SecretHash,
        operator: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let params = [hash.as_slice().into(), operator.0.into(), at.into()];
        let rows = self
            .exec
            .write(INSERT_SESSION, &params)
            .await
            .map_err(conflict("a session with this token exists"))?;
        if rows.is_empty() {
            return Err(StorageError::NotFound(format!("operator {operator}")));
        }
        Ok(())
    }

    async fn session(
        &self,
        hash: &SecretHash,
        now: DateTime<Utc>,
        limits: SessionLimits,
    ) -> Result<Option<SessionRecord>, StorageError> {
        let Some(row) = self
            .exec
            .read_one(SESSION, &[hash.as_slice().into()])
            .await?
        else {
            return Ok(None);
        };
        let created_at = rows::time::<D>(&row, "session_created_at")?;
        let mut last_used_at = rows::time::<D>(&row, "session_last_used_at")?;
        if now >= last_used_at + limits.idle || now >= created_at + limits.max {
            self.end_session(hash).await?;
            return Ok(None);
        }
        if now - last_used_at >= limits.touch_every {
            self.exec
                .write(TOUCH_SESSION, &[hash.as_slice().into(), now.into()])
                .await
                .map_err(storage_error)?;
            last_used_at = now;
        }
        Ok(Some(SessionRecord {
            account: account::<D>(&row)?,
            created_at,
            last_used_at,
        }))
    }

    async fn end_session(&self, hash: &SecretHash) -> Result<bool, StorageError> {
        let rows = self
            .exec
            .write(END_SESSION, &[hash.as_slice().into()])
            .await
            .map_err(storage_error)?;
        Ok(!rows.is_empty())
    }

    async fn record_login_failure(
        &self,
        email: &EmailAddress,
        at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let key = key_of(email);
        self.exec
            .write(INSERT_FAILURE, &[key.as_str().into(), at.into()])
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    async fn login_failures(
        &self,
        email: &EmailAddress,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StorageError> {
        let key = key_of(email);
        let rows = self
            .exec
            .read(FAILURES, &[key.as_str().into(), since.into()])
            .await?;
        rows.iter().map(|row| rows::time::<D>(row, "at")).collect()
    }

    async fn clear_login_failures(
        &self,
        email: &EmailAddress,
        before: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let key = key_of(email);
        self.exec
            .write(CLEAR_FAILURES, &[key.as_str().into(), before.into()])
            .await
            .map_err(storage_error)?;
        Ok(())
    }
}
