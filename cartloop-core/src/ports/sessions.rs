//! [`Accounts`]: operators' sign-in accounts, their sessions and failed sign-ins.

use super::keys::SecretHash;
use super::StorageError;
use crate::access::OperatorRole;
use crate::domain::{NewOperator, Operator};
use crate::email_address::EmailAddress;
use crate::ids::{StoreId, UserId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// An operator with what signing in needs: its email (unique across the deployment) and
/// its role. An operator made before accounts existed has no email and the `operator` role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAccount {
    /// The operator.
    pub operator: Operator,
    /// Where it signs in; `None`: it cannot.
    pub email: Option<EmailAddress>,
    /// What its session may do.
    pub role: OperatorRole,
    /// Whether it has a password (the hash itself is only in [`SignIn`]).
    pub has_password: bool,
}

/// What checking a password needs: the account and its password's Argon2id PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct SignIn {
    /// The account.
    pub account: OperatorAccount,
    /// The PHC string, `None` when no password is set.
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("account", &self.account)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

/// The account fields of a new operator (`POST /operators/`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct NewAccount {
    /// Its sign-in email.
    pub email: Option<EmailAddress>,
    /// Its role.
    pub role: OperatorRole,
    /// Its password's PHC string.
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccount")
            .field("email", &self.email)
            .field("role", &self.role)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

/// What `PATCH /operator/{id}/` changes; `None` leaves a field as it is.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AccountChanges {
    /// A new email (`Some(None)` removes it).
    pub email: Option<Option<EmailAddress>>,
    /// A new role.
    pub role: Option<OperatorRole>,
    /// A new password's PHC string.
    pub password_hash: Option<String>,
    /// With a new password: every session of the operator but this one ends (`None`: all
    /// of them).
    pub keep_session: Option<SecretHash>,
}

impl std::fmt::Debug for AccountChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountChanges")
            .field("email", &self.email)
            .field("role", &self.role)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<set>"),
            )
            .finish_non_exhaustive()
    }
}

/// A live session: whose, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The signed-in operator, as its account is now.
    pub account: OperatorAccount,
    /// When it signed in.
    pub created_at: DateTime<Utc>,
    /// When the session was last used (to the precision [`Accounts::session`] keeps).
    pub last_used_at: DateTime<Utc>,
}

/// How long a session lasts: `idle` after its last use, `max` after it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Ends this long after its last use.
    pub idle: chrono::Duration,
    /// Ends this long after sign-in, however used.
    pub max: chrono::Duration,
    /// A use is recorded only when the last recorded one is older than this, so a busy
    /// session does not write on every request.
    pub touch_every: chrono::Duration,
}

/// Operators' accounts, sessions and failed sign-ins. Everything here MUST be read from and
/// written to the shared store (no per-process cache), so that every server honours a
/// session, a sign-out, a password change and a lockout at once.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Creates an operator and its account in one step.
    ///
    /// MUST return [`StorageError::NotFound`] if the store does not exist and
    /// [`StorageError::Conflict`] (creating nothing) if another operator has the email
    /// (compared case-insensitively).
    async fn create_operator_account(
        &self,
        operator: NewOperator,
        account: NewAccount,
    ) -> Result<OperatorAccount, StorageError>;

    /// The account of operator `id`, or `Ok(None)` (also for a client's id).
    async fn account(&self, id: UserId) -> Result<Option<OperatorAccount>, StorageError>;

    /// Applies `changes`; a new password also ends the operator's sessions but
    /// `changes.keep_session`, in the same step. Returns the account as it is now, or
    /// `Ok(None)` for an unknown operator.
    ///
    /// MUST return [`StorageError::Conflict`] (changing nothing) if the email is another
    /// operator's.
    async fn update_account(
        &self,
        id: UserId,
        changes: AccountChanges,
    ) -> Result<Option<OperatorAccount>, StorageError>;

    /// The operators of `store` (of every store for `None`) with their accounts, by id.
    ///
    /// MUST list every operator of the store, also one made without an account (no email,
    /// the `operator` role), and nothing of another store; an unknown store has none
    /// (`Ok(vec![])`). MUST NOT list clients.
    async fn list_accounts(
        &self,
        store: Option<StoreId>,
    ) -> Result<Vec<OperatorAccount>, StorageError>;

    /// The account signing in with `email` (compared case-insensitively), or `Ok(None)`.
    async fn sign_in(&self, email: &EmailAddress) -> Result<Option<SignIn>, StorageError>;

    /// Starts a session for `operator`, known by the hash of its token.
    async fn create_session(
        &self,
        hash: &SecretHash,
        operator: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StorageError>;

    /// The live session with this hash at `now`, recording the use; `Ok(None)` if there is
    /// none or it has outlived `limits` (it is then ended).
    async fn session(
        &self,
        hash: &SecretHash,
        now: DateTime<Utc>,
        limits: SessionLimits,
    ) -> Result<Option<SessionRecord>, StorageError>;

    /// Ends the session with this hash; `false` if there was none.
    async fn end_session(&self, hash: &SecretHash) -> Result<bool, StorageError>;

    /// Records a failed sign-in for `email` (compared case-insensitively) at `at`.
    async fn record_login_failure(
        &self,
        email: &EmailAddress,
        at: DateTime<Utc>,
    ) -> Result<(), StorageError>;

    /// The failed sign-ins for `email` at or after `since`, oldest first.
    async fn login_failures(
        &self,
        email: &EmailAddress,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StorageError>;

    /// Forgets the failed sign-ins of `email` (after a successful one), and every failure
    /// older than `before` of any email.
    async fn clear_login_failures(
        &self,
        email: &EmailAddress,
        before: DateTime<Utc>,
    ) -> Result<(), StorageError>;
}
