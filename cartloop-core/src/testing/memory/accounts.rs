//! [`MemoryStorage`]'s API keys, accounts, sessions and audit log, kept beside the rest of
//! its state (and locked after it when both are needed).

use super::{email_key, MemoryStorage};
use crate::access::OperatorRole;
use crate::domain::{NewOperator, Operator};
use crate::email_address::EmailAddress;
use crate::ids::{StoreId, UserId};
use crate::ports::{
    AccountChanges, Accounts, ApiKeyRecord, ApiKeys, AuditEntry, AuditFilter, AuditLog, NewAccount,
    NewApiKey, NewAuditEntry, OperatorAccount, SecretHash, SessionLimits, SessionRecord, SignIn,
    StorageError,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
pub(super) struct AccountsState {
    keys: BTreeMap<i64, ApiKeyRecord>,
    key_hashes: HashMap<SecretHash, i64>,
    accounts: HashMap<UserId, Login>,
    sessions: HashMap<SecretHash, Session>,
    failures: Vec<(String, DateTime<Utc>)>,
    audit: BTreeMap<i64, NewAuditEntry>,
}

#[derive(Debug, Clone, Default)]
struct Login {
    email: Option<EmailAddress>,
    role: OperatorRole,
    password_hash: Option<String>,
}

#[derive(Debug, Clone)]
struct Session {
    operator: UserId,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
}

impl MemoryStorage {
    fn lock_accounts(&self) -> std::sync::MutexGuard<'_, AccountsState> {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn account_of(&self, operator: &Operator, accounts: &AccountsState) -> OperatorAccount {
        let login = accounts
            .accounts
            .get(&operator.id)
            .cloned()
            .unwrap_or_default();
        OperatorAccount {
            operator: operator.clone(),
            email: login.email,
            role: login.role,
            has_password: login.password_hash.is_some(),
        }
    }
}

impl AccountsState {
    fn email_taken(&self, email: &EmailAddress, by_other_than: Option<UserId>) -> bool {
        let key = email_key(email);
        self.accounts.iter().any(|(id, login)| {
            Some(*id) != by_other_than && login.email.as_ref().is_some_and(|e| email_key(e) == key)
        })
    }
}

#[async_trait]
impl ApiKeys for MemoryStorage {
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKeyRecord, StorageError> {
        let state = self.lock();
        if let Some(store) = key.store_id {
            if !state.stores.contains_key(&store) {
                return Err(StorageError::NotFound(format!("store {store}")));
            }
        }
        if let Some(operator) = key.operator_id {
            let of_store = state
                .operators
                .get(&operator)
                .is_some_and(|o| Some(o.store_id) == key.store_id);
            if !of_store {
                return Err(StorageError::NotFound(format!("operator {operator}")));
            }
        }
        let mut accounts = self.lock_accounts();
        if accounts.key_hashes.contains_key(&key.hash) {
            return Err(StorageError::Conflict("a key with this hash exists".into()));
        }
        let id = accounts.keys.keys().next_back().map_or(1, |last| last + 1);
        let record = ApiKeyRecord {
            id,
            name: key.name,
            role: key.role,
            store_id: key.store_id,
            operator_id: key.operator_id,
            created_at: key.created_at,
            revoked_at: None,
        };
        accounts.keys.insert(id, record.clone());
        accounts.key_hashes.insert(key.hash, id);
        Ok(record)
    }

    async fn api_key(&self, id: i64) -> Result<Option<ApiKeyRecord>, StorageError> {
        Ok(self.lock_accounts().keys.get(&id).cloned())
    }

    async fn api_key_by_hash(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<ApiKeyRecord>, StorageError> {
        let accounts = self.lock_accounts();
        Ok(accounts
            .key_hashes
            .get(hash)
            .and_then(|id| accounts.keys.get(id))
            .cloned())
    }

    async fn list_api_keys(
        &self,
        store: Option<StoreId>,
    ) -> Result<Vec<ApiKeyRecord>, StorageError> {
        Ok(self
            .lock_accounts()
            .keys
            .values()
            .filter(|key| store.is_none() || key.store_id == store)
            .cloned()
            .collect())
    }

    async fn revoke_api_key(
        &self,
        id: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiKeyRecord>, StorageError> {
        Ok(self.lock_accounts().keys.get_mut(&id).map(|key| {
            key.revoked_at.get_or_insert(at);
            key.clone()
        }))
    }
}

#[async_trait]
impl Accounts for MemoryStorage {
    async fn create_operator_account(
        &self,
        new: NewOperator,
        account: NewAccount,
    ) -> Result<OperatorAccount, StorageError> {
        let mut state = self.lock();
        if !state.stores.contains_key(&new.store_id) {
            return Err(StorageError::NotFound(format!("store {}", new.store_id)));
        }
        let mut accounts = self.lock_accounts();
        if let Some(email) = &account.email {
            if accounts.email_taken(email, None) {
                return Err(StorageError::Conflict(
                    "another operator signs in with this email".into(),
                ));
            }
        }
        let operator = Operator {
            id: state.next_user_id(),
            name: new.name,
            store_id: new.store_id,
            group: new.group,
        };
        state.operators.insert(operator.id, operator.clone());
        accounts.accounts.insert(
            operator.id,
            Login {
                email: account.email,
                role: account.role,
                password_hash: account.password_hash,
            },
        );
        Ok(self.account_of(&operator, &accounts))
    }

    async fn account(&self, id: UserId) -> Result<Option<OperatorAccount>, StorageError> {
        let state = self.lock();
        let accounts = self.lock_accounts();
        Ok(state
            .operators
            .get(&id)
            .map(|operator| self.account_of(operator, &accounts)))
    }

    async fn list_accounts(
        &self,
        store: Option<StoreId>,
    ) -> Result<Vec<OperatorAccount>, StorageError> {
        let state = self.lock();
        let accounts = self.lock_accounts();
        // The map is ordered by id.
        Ok(state
            .operators
            .values()
            .filter(|operator| store.is_none_or(|store| operator.store_id == store))
            .map(|operator| self.account_of(operator, &accounts))
            .collect())
    }

    async fn update_account(
        &self,
        id: UserId,
        changes: AccountChanges,
    ) -> Result<Option<OperatorAccount>, StorageError> {
        let state = self.lock();
        let Some(operator) = state.operators.get(&id) else {
            return Ok(None);
        };
        let mut accounts = self.lock_accounts();
        if let Some(Some(email)) = &changes.email {
            if accounts.email_taken(email, Some(id)) {
                return Err(StorageError::Conflict(
                    "another operator signs in with this email".into(),
                ));
            }
        }
        let login = accounts.accounts.entry(id).or_default();
        if let Some(email) = changes.email {
            login.email = email;
        }
        if let Some(role) = changes.role {
            login.role = role;
        }
        if let Some(hash) = changes.password_hash {
            login.password_hash = Some(hash);
            let keep = changes.keep_session;
            accounts
                .sessions
                .retain(|hash, session| session.operator != id || Some(*hash) == keep);
        }
        Ok(Some(self.account_of(operator, &accounts)))
    }

    async fn sign_in(&self, email: &EmailAddress) -> Result<Option<SignIn>, StorageError> {
        let state = self.lock();
        let accounts = self.lock_accounts();
        let key = email_key(email);
        Ok(accounts
            .accounts
            .iter()
            .find(|(_, login)| login.email.as_ref().is_some_and(|e| email_key(e) == key))
            .and_then(|(id, login)| {
                let operator = state.operators.get(id)?;
                Some(SignIn {
                    account: self.account_of(operator, &accounts),
                    password_hash: login.password_hash.clone(),
                })
            }))
    }

    async fn create_session(
        &self,
        hash: &SecretHash,
        operator: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        if !self.lock().operators.contains_key(&operator) {
            return Err(StorageError::NotFound(format!("operator {operator}")));
        }
        let session = Session {
            operator,
            created_at: at,
            last_used_at: at,
        };
        self.lock_accounts().sessions.insert(*hash, session);
        Ok(())
    }

    async fn session(
        &self,
        hash: &SecretHash,
        now: DateTime<Utc>,
        limits: SessionLimits,
    ) -> Result<Option<SessionRecord>, StorageError> {
        let state = self.lock();
        let mut accounts = self.lock_accounts();
        let Some(session) = accounts.sessions.get_mut(hash) else {
            return Ok(None);
        };
        let live =
            now < session.last_used_at + limits.idle && now < session.created_at + limits.max;
        let operator = state.operators.get(&session.operator);
        let (true, Some(operator)) = (live, operator) else {
            accounts.sessions.remove(hash);
            return Ok(None);
        };
        if now - session.last_used_at >= limits.touch_every {
            session.last_used_at = now;
        }
        let (created_at, last_used_at) = (session.created_at, session.last_used_at);
        Ok(Some(SessionRecord {
            account: self.account_of(operator, &accounts),
            created_at,
            last_used_at,
        }))
    }

    async fn end_session(&self, hash: &SecretHash) -> Result<bool, StorageError> {
        Ok(self.lock_accounts().sessions.remove(hash).is_some())
    }

    async fn record_login_failure(
        &self,
        email: &EmailAddress,
        at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.lock_accounts().failures.push((email_key(email), at));
        Ok(())
    }

    async fn login_failures(
        &self,
        email: &EmailAddress,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StorageError> {
        let key = email_key(email);
        let mut at: Vec<_> = self
            .lock_accounts()
            .failures
            .iter()
            .filter(|(k, at)| *k == key && *at >= since)
            .map(|(_, at)| *at)
            .collect();
        at.sort();
        Ok(at)
    }

    async fn clear_login_failures(
        &self,
        email: &EmailAddress,
        before: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let key = email_key(email);
        self.lock_accounts()
            .failures
            .retain(|(k, at)| *k != key && *at >= before);
        Ok(())
    }
}

#[async_trait]
impl AuditLog for MemoryStorage {
    async fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<(), StorageError> {
        let mut accounts = self.lock_accounts();
        for entry in entries {
            let id = accounts.audit.keys().next_back().map_or(1, |last| last + 1);
            accounts.audit.insert(id, entry);
        }
        Ok(())
    }

    async fn audit(
        &self,
        filter: AuditFilter,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StorageError> {
        Ok(self
            .lock_accounts()
            .audit
            .iter()
            .rev()
            .filter(|(id, entry)| {
                filter.before.is_none_or(|before| **id < before)
                    && filter
                        .store
                        .is_none_or(|store| entry.store_id == Some(store))
                    && filter.actor.is_none_or(|(kind, actor_id)| {
                        entry.actor.as_ref().is_some_and(|actor| {
                            actor.kind == kind && (actor_id.is_none() || actor.id == actor_id)
                        })
                    })
            })
            .take(limit as usize)
            .map(|(id, entry)| AuditEntry {
                id: *id,
                entry: entry.clone(),
            })
            .collect())
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let mut accounts = self.lock_accounts();
        let was = accounts.audit.len();
        accounts.audit.retain(|_, entry| entry.at >= before);
        Ok((was - accounts.audit.len()) as u64)
    }
}
