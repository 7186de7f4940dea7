//! Who may do what: the access rules, as pure functions of the [`Principal`] making a
//! request and the thing it asks about.
//!
//! Every request is made by one principal: the deployment token, an API key, or an
//! operator's session. Its [`AccessRole`] and its store decide everything it may see or do.
//! Each question a route asks has one function here, answering an [`Access`] (or the value
//! the route needs, or a [`Denied`]):
//!
//! - [`Access::NotFound`]: the thing belongs to another store. The HTTP layer answers
//!   exactly as for an unknown id, so a principal learns nothing of other stores, not even
//!   that an id is taken.
//! - [`Access::Forbidden`]: the thing is of the principal's own store (or of no store), but
//!   the role may not do this; `missing` names the permission, one of [`permission`]'s
//!   constants, for a 403 `forbidden`.
//!
//! A store's thing is checked for its store first: another store's thing is
//! [`Access::NotFound`] whatever the role, so a refusal never tells which store has it.
//!
//! Nothing here loads anything: the caller passes the facts (a conversation's store and
//! operator, a key's store). Facts only storage knows stay the caller's to check: that an
//! operator id of a new key or a reassignment is an operator of that store, that a user
//! writing is in the conversation.
//!
//! # The permissions
//!
//! "Own" is the principal's store; another store's things are always "not found" (404) to
//! the store roles. `admin` has no store and reaches every store; `inbound` has no store and
//! reaches nothing but the inbound email route. A refusal names its missing permission.
//!
//! | question (function) | `admin` | `manager` | `integration` | `operator` | `inbound` |
//! |---|---|---|---|---|---|
//! | any route but inbound email ([`may_use_api`]) | yes | yes | yes | yes | `api` |
//! | import demo data, metrics, create a store ([`may_administer`]) | yes | `admin` | `admin` | `admin` | `api` |
//! | post an inbound email ([`may_post_inbound_email`]) | yes | `inbound_email` | `inbound_email` | `inbound_email` | yes |
//! | read a store, its operators, clients, conversations and chats ([`may_read`]) | yes | own | own | own | `api` |
//! | change a store's settings ([`may_change`] on [`Resource::Store`]) | yes | own | `store.settings` | `store.settings` | `api` |
//! | create or change an operator, its role or email ([`may_create`], [`may_change`]) | yes | own | `operator.manage` | `operator.manage` | `api` |
//! | change an operator's password ([`may_change_password`]) | sets it | own store: sets it; itself: with the current one | `operator.manage` | itself, with the current one; others `operator.manage` | `api` |
//! | create or change a client ([`may_create`], [`may_change`]) | yes | own | own | `client.manage` | `api` |
//! | create a conversation ([`may_create`]) | yes | own | own | `conversation.manage` | `api` |
//! | resolve or reopen a conversation, cancel or retry its chats ([`may_change`]) | yes | own | own | assigned to itself; others `conversation.assigned_to_you` | `api` |
//! | reassign a conversation ([`may_reassign`]) | yes | own | own | `conversation.manage` | `api` |
//! | write (or preview) a chat ([`may_write_as`]) | as anyone, the client too | own: as an operator, never the client (`chat.write_as_client`) | own: as an operator, never the client (`chat.write_as_client`) | in a conversation assigned to itself (`conversation.assigned_to_you`), as itself only (`chat.write_as_other`) | `api` |
//! | make an API key ([`may_make_key`]) | any | own store's `manager`, `integration`, `operator` keys; `admin` and `inbound` keys `admin` | `api_key.manage` | `api_key.manage` | `api` |
//! | list, read or revoke API keys ([`list_scope`], [`may_read`], [`may_change`]) | all | own store's | `api_key.manage` | `api_key.manage` | `api` |
//! | make, read or change webhooks ([`may_create`], [`may_read`], [`may_change`]) | all, deployment-wide too | own store's | own store's | `webhook.manage` | `api` |
//! | make a deployment-wide webhook (no store) | yes | `admin` | `admin` | `admin` | `api` |
//! | read the audit log ([`list_scope`]) | all | own store's | `audit.read` | `audit.read` | `api` |
//! | lists: conversations, clients, operators, events ([`list_scope`]) | all, or the store asked for | own store only | own store only | own store only | `api` |
//!
//! Writing as someone, in detail ([`may_write_as`]): a message's author is always the
//! conversation's operator or its client, so "as any operator of the store" comes down to
//! "as the conversation's operator, whoever that is". When `userId` is left out, the author
//! is the principal itself for an `operator`, and the conversation's operator for everyone
//! else. An `operator` may name only itself. Nobody but an `admin` writes as the client: a
//! client's own words arrive by email (or from the deployment, which kept the original
//! API's way of posting them). Any other id is passed on, for the chat rule to refuse as
//! not in the conversation.
//!
//! # Example
//! ```
//! use cartloop_core::access::{self, Access, OperatorRole, Principal, Resource};
//! use cartloop_core::ids::{StoreId, UserId};
//!
//! let ann = Principal::session(OperatorRole::Operator, StoreId(1), UserId(24));
//! let hers = Resource::Conversation { store: StoreId(1), operator: UserId(24) };
//! let bens = Resource::Conversation { store: StoreId(1), operator: UserId(25) };
//! let elsewhere = Resource::Conversation { store: StoreId(2), operator: UserId(40) };
//!
//! assert_eq!(access::may_change(&ann, &hers), Access::Allowed);
//! assert_eq!(
//!     access::may_change(&ann, &bens),
//!     Access::Forbidden { missing: "conversation.assigned_to_you" }
//! );
//! assert_eq!(access::may_read(&ann, &elsewhere), Access::NotFound);
//! ```

use crate::domain::Conversation;
use crate::ids::{StoreId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The permissions a refusal names (`Access::Forbidden { missing }`), as the API shows them.
pub mod permission {
    /// Only an admin may: import demo data, read metrics, create stores, make `admin` and
    /// `inbound` keys, make deployment-wide webhooks.
    pub const ADMIN: &str = "admin";
    /// The principal is an `inbound` key: it may only post inbound email.
    pub const API: &str = "api";
    /// Posting inbound email takes an `inbound` key or an admin.
    pub const INBOUND_EMAIL: &str = "inbound_email";
    /// Changing a store's settings (hours, closures, caps) takes a manager.
    pub const STORE_SETTINGS: &str = "store.settings";
    /// Creating operators, changing their details, roles and others' passwords takes a
    /// manager.
    pub const OPERATOR_MANAGE: &str = "operator.manage";
    /// Creating and changing clients takes a manager or an integration.
    pub const CLIENT_MANAGE: &str = "client.manage";
    /// Creating and reassigning conversations takes a manager or an integration.
    pub const CONVERSATION_MANAGE: &str = "conversation.manage";
    /// An operator changes and writes in the conversations assigned to itself only.
    pub const CONVERSATION_ASSIGNED_TO_YOU: &str = "conversation.assigned_to_you";
    /// An operator writes as itself only.
    pub const CHAT_WRITE_AS_OTHER: &str = "chat.write_as_other";
    /// Only the deployment writes as a client.
    pub const CHAT_WRITE_AS_CLIENT: &str = "chat.write_as_client";
    /// Making, listing and revoking API keys takes a manager.
    pub const API_KEY_MANAGE: &str = "api_key.manage";
    /// Managing webhooks takes a manager or an integration.
    pub const WEBHOOK_MANAGE: &str = "webhook.manage";
    /// Reading the audit log takes a manager.
    pub const AUDIT_READ: &str = "audit.read";
}

use permission as p;

/// What a principal is allowed to do. Not to be confused with
/// [`domain::Role`](crate::domain::Role), the side of a conversation a message's author is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessRole {
    /// Everything, in every store: the deployment token, or an admin key.
    Admin,
    /// Everything inside one store.
    Manager,
    /// A store's own backend: its clients and conversations, writing as its operators.
    Integration,
    /// One operator of a store: reads the store, writes in its own conversations as itself.
    Operator,
    /// A mail server's pipe: posts inbound email, nothing else.
    Inbound,
}

impl AccessRole {
    /// Every role, in the order of the type.
    pub const ALL: [Self; 5] = [
        Self::Admin,
        Self::Manager,
        Self::Integration,
        Self::Operator,
        Self::Inbound,
    ];

    /// The role as the API names it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::Integration => "integration",
            Self::Operator => "operator",
            Self::Inbound => "inbound",
        }
    }

    /// Whether a principal of this role belongs to one store (`manager`, `integration`,
    /// `operator`); `admin` and `inbound` belong to none.
    pub const fn has_store(self) -> bool {
        matches!(self, Self::Manager | Self::Integration | Self::Operator)
    }
}

impl fmt::Display for AccessRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a known role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for AccessRole {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// The role of an operator's account (its `role` field): what its session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperatorRole {
    /// The default: reads the store, writes in its own conversations.
    #[default]
    Operator,
    /// Runs the store.
    Manager,
}

impl OperatorRole {
    /// The role as the API names it.
    pub const fn as_str(self) -> &'static str {
        self.access_role().as_str()
    }

    /// The principal role a session of this account has.
    pub const fn access_role(self) -> AccessRole {
        match self {
            Self::Operator => AccessRole::Operator,
            Self::Manager => AccessRole::Manager,
        }
    }
}

impl fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OperatorRole {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "operator" => Ok(Self::Operator),
            "manager" => Ok(Self::Manager),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// How a principal authenticated (`via` of `GET /me`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The deployment's API token.
    Token,
    /// An API key.
    Key,
    /// An operator's session cookie.
    Session,
}

impl Via {
    /// The name `GET /me` shows.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Key => "key",
            Self::Session => "session",
        }
    }
}

/// Why a role, store and operator do not make a principal (for a new key: a 422 naming
/// [`field`](Self::field)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// `manager`, `integration` and `operator` belong to one store.
    #[error("a {role} key needs a storeId")]
    StoreRequired {
        /// The role asked for.
        role: AccessRole,
    },
    /// `admin` and `inbound` belong to no store.
    #[error("an {role} key belongs to no store; leave storeId out")]
    StoreNotAllowed {
        /// The role asked for.
        role: AccessRole,
    },
    /// An `operator` key acts as one operator.
    #[error("an operator key needs an operatorId")]
    OperatorRequired,
    /// Only `operator` keys act as one operator.
    #[error("a key of role {role} acts as no one operator; leave operatorId out")]
    OperatorNotAllowed {
        /// The role asked for.
        role: AccessRole,
    },
}

impl PrincipalError {
    /// The API field at fault: `storeId` or `operatorId`.
    pub const fn field(&self) -> &'static str {
        match self {
            Self::StoreRequired { .. } | Self::StoreNotAllowed { .. } => "storeId",
            Self::OperatorRequired | Self::OperatorNotAllowed { .. } => "operatorId",
        }
    }
}

/// Who makes a request.
///
/// Always consistent, because the constructors refuse anything else:
///
/// | role | store | operator |
/// |---|---|---|
/// | `admin` | none | none |
/// | `manager` | one | its own id when signed in, none for a key |
/// | `integration` | one | none |
/// | `operator` | one | its own id |
/// | `inbound` | none | none |
///
/// That the operator works for that store is the caller's to know (it loaded the account
/// or the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    role: AccessRole,
    store: Option<StoreId>,
    operator: Option<UserId>,
    via: Via,
}

impl Principal {
    /// The holder of the deployment's API token: an admin.
    pub const fn deployment_token() -> Self {
        Self {
            role: AccessRole::Admin,
            store: None,
            operator: None,
            via: Via::Token,
        }
    }

    /// The holder of an API key of `role`, for `store` and, for an `operator` key,
    /// `operator`. Also the check of a new key's fields before it is made.
    ///
    /// # Errors
    /// [`PrincipalError`] when the fields do not fit the role: a store for `manager`,
    /// `integration` and `operator` keys and none for `admin` and `inbound` ones; an
    /// operator for `operator` keys and none for the others.
    ///
    /// ```
    /// use cartloop_core::access::{AccessRole, Principal, PrincipalError};
    /// use cartloop_core::ids::StoreId;
    ///
    /// assert!(Principal::api_key(AccessRole::Integration, Some(StoreId(1)), None).is_ok());
    /// assert_eq!(
    ///     Principal::api_key(AccessRole::Operator, Some(StoreId(1)), None),
    ///     Err(PrincipalError::OperatorRequired)
    /// );
    /// ```
    pub fn api_key(
        role: AccessRole,
        store: Option<StoreId>,
        operator: Option<UserId>,
    ) -> Result<Self, PrincipalError> {
        match (role.has_store(), store) {
            (true, None) => return Err(PrincipalError::StoreRequired { role }),
            (false, Some(_)) => return Err(PrincipalError::StoreNotAllowed { role }),
            _ => {}
        }
        match (role, operator) {
            (AccessRole::Operator, None) => return Err(PrincipalError::OperatorRequired),
            (AccessRole::Operator, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err(PrincipalError::OperatorNotAllowed { role }),
        }
        Ok(Self {
            role,
            store,
            operator,
            via: Via::Key,
        })
    }

    /// An operator signed in with its password: `operator` of `store`, whose account has
    /// `role`.
    pub const fn session(role: OperatorRole, store: StoreId, operator: UserId) -> Self {
        Self {
            role: role.access_role(),
            store: Some(store),
            operator: Some(operator),
            via: Via::Session,
        }
    }

    /// What it may do.
    pub const fn role(&self) -> AccessRole {
        self.role
    }

    /// Its store; `None` for `admin` (every store) and `inbound` (none).
    pub const fn store(&self) -> Option<StoreId> {
        self.store
    }

    /// The operator it acts as: an `operator`'s own id, a signed-in manager's; `None`
    /// otherwise.
    pub const fn operator(&self) -> Option<UserId> {
        self.operator
    }

    /// How it authenticated.
    pub const fn via(&self) -> Via {
        self.via
    }

    /// Whether anything of `store` may show to it at all: in a list, a stream, a webhook.
    /// Its role may still forbid a given action there.
    pub fn sees_store(&self, store: StoreId) -> bool {
        match self.role {
            AccessRole::Admin => true,
            AccessRole::Inbound => false,
            _ => self.store == Some(store),
        }
    }
}

/// The answer to "may this principal do this?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Go ahead.
    Allowed,
    /// Another store's thing: answer exactly as for an unknown id.
    NotFound,
    /// The principal's own store's thing (or a route of its own deployment), but its role
    /// may not: a 403 `forbidden` naming the missing permission.
    Forbidden {
        /// A [`permission`] constant.
        missing: &'static str,
    },
}

impl Access {
    /// Whether it is [`Access::Allowed`].
    pub const fn is_allowed(self) -> bool {
        matches!(self, Self::Allowed)
    }

    /// `Ok(())` when allowed, else the refusal, for `?`.
    ///
    /// # Errors
    /// [`Denied`] matching the refusal.
    pub const fn result(self) -> Result<(), Denied> {
        match self {
            Self::Allowed => Ok(()),
            Self::NotFound => Err(Denied::NotFound),
            Self::Forbidden { missing } => Err(Denied::Forbidden { missing }),
        }
    }

    const fn forbidden(missing: &'static str) -> Self {
        Self::Forbidden { missing }
    }

    /// Allowed when `condition` holds, else forbidden for want of `missing`.
    const fn unless(condition: bool, missing: &'static str) -> Self {
        if condition {
            Self::Allowed
        } else {
            Self::forbidden(missing)
        }
    }
}

impl<T> From<Result<T, Denied>> for Access {
    fn from(result: Result<T, Denied>) -> Self {
        match result {
            Ok(_) => Self::Allowed,
            Err(Denied::NotFound) => Self::NotFound,
            Err(Denied::Forbidden { missing }) => Self::Forbidden { missing },
        }
    }
}

/// A refusal, as an error: what [`Access::result`] and the functions that answer a value
/// return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Another store's thing: answer exactly as for an unknown id.
    #[error("not found")]
    NotFound,
    /// The role may not.
    #[error("forbidden: this needs the {missing} permission")]
    Forbidden {
        /// A [`permission`] constant.
        missing: &'static str,
    },
}

/// An existing thing a principal reads or changes. A chat counts as its conversation's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A store and its settings (hours, closures, caps).
    Store(StoreId),
    /// An operator's account.
    Operator {
        /// Its store.
        store: StoreId,
        /// Its id.
        id: UserId,
    },
    /// A client.
    Client {
        /// Its store.
        store: StoreId,
    },
    /// A conversation, or one of its chats.
    Conversation {
        /// Its store.
        store: StoreId,
        /// The operator it is assigned to.
        operator: UserId,
    },
    /// An API key.
    ApiKey {
        /// Its store; `None` for `admin` and `inbound` keys.
        store: Option<StoreId>,
    },
    /// A webhook, its deliveries.
    Webhook {
        /// Its store; `None` for a deployment-wide one.
        store: Option<StoreId>,
    },
}

impl Resource {
    /// The store it belongs to, if any.
    pub const fn store(&self) -> Option<StoreId> {
        match *self {
            Self::Store(store)
            | Self::Operator { store, .. }
            | Self::Client { store }
            | Self::Conversation { store, .. } => Some(store),
            Self::ApiKey { store } | Self::Webhook { store } => store,
        }
    }
}

impl From<&Conversation> for Resource {
    fn from(conversation: &Conversation) -> Self {
        Self::Conversation {
            store: conversation.store_id,
            operator: conversation.operator_id,
        }
    }
}

/// A thing a principal creates, in the store it will belong to (see [`target_store`] for
/// the store a request means).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewResource {
    /// A store.
    Store,
    /// An operator of `store`.
    Operator {
        /// Its store.
        store: StoreId,
    },
    /// A client of `store`.
    Client {
        /// Its store.
        store: StoreId,
    },
    /// A conversation of `store`.
    Conversation {
        /// Its store.
        store: StoreId,
    },
    /// A webhook: of `store`, or deployment-wide (`None`).
    Webhook {
        /// Its store.
        store: Option<StoreId>,
    },
}

/// A list a principal asks for; each is restricted to what it may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `GET /conversations/`.
    Conversations,
    /// Clients.
    Clients,
    /// Operators.
    Operators,
    /// The event stream.
    Events,
    /// `GET /api-keys/`.
    ApiKeys,
    /// `GET /webhooks/`.
    Webhooks,
    /// `GET /audit/`.
    Audit,
}

/// Who may set an operator's password, and how ([`may_change_password`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChange {
    /// The operator's own: the request must give the current password too.
    Own,
    /// An admin or the store's manager sets another's: no current password.
    Set,
}

/// What a store principal may do inside `store`, given by `own` for its own store: another
/// store (or none) is not found. Admins may everything; inbound keys nothing.
fn within(principal: &Principal, store: Option<StoreId>, own: impl FnOnce() -> Access) -> Access {
    match principal.role {
        AccessRole::Admin => Access::Allowed,
        AccessRole::Inbound => Access::forbidden(p::API),
        _ if principal.store.is_some() && principal.store == store => own(),
        _ => Access::NotFound,
    }
}

fn is_manager(principal: &Principal) -> bool {
    principal.role == AccessRole::Manager
}

fn is_store_backend(principal: &Principal) -> bool {
    matches!(
        principal.role,
        AccessRole::Manager | AccessRole::Integration
    )
}

/// Whether the principal may use the API at all. Every route but the inbound email route
/// (and the health check, `GET /me`, sign-out) asks this first, before loading anything:
/// an `inbound` key then gets the same 403 for a known id as for an unknown one.
pub fn may_use_api(principal: &Principal) -> Access {
    Access::unless(principal.role != AccessRole::Inbound, p::API)
}

/// The deployment's own business: importing the demo data, metrics on the API address,
/// creating stores. Admins only.
pub fn may_administer(principal: &Principal) -> Access {
    match principal.role {
        AccessRole::Admin => Access::Allowed,
        AccessRole::Inbound => Access::forbidden(p::API),
        _ => Access::forbidden(p::ADMIN),
    }
}

/// `POST /inbound/email/`: an `inbound` key or an admin (a reply may belong to any store).
pub fn may_post_inbound_email(principal: &Principal) -> Access {
    Access::unless(
        matches!(principal.role, AccessRole::Admin | AccessRole::Inbound),
        p::INBOUND_EMAIL,
    )
}

/// Reading `resource`: everything of its own store for every store role, except API keys
/// (managers) and webhooks (managers and integrations).
pub fn may_read(principal: &Principal, resource: &Resource) -> Access {
    within(principal, resource.store(), || match resource {
        Resource::ApiKey { .. } => Access::unless(is_manager(principal), p::API_KEY_MANAGE),
        Resource::Webhook { .. } => Access::unless(is_store_backend(principal), p::WEBHOOK_MANAGE),
        _ => Access::Allowed,
    })
}

/// Changing (or deleting) `resource`. For a conversation that covers resolving,
/// reopening, and cancelling or retrying its chats; reassigning is [`may_reassign`], an
/// operator's password [`may_change_password`].
pub fn may_change(principal: &Principal, resource: &Resource) -> Access {
    within(principal, resource.store(), || match *resource {
        Resource::Store(_) => Access::unless(is_manager(principal), p::STORE_SETTINGS),
        Resource::Operator { .. } => Access::unless(is_manager(principal), p::OPERATOR_MANAGE),
        Resource::Client { .. } => Access::unless(is_store_backend(principal), p::CLIENT_MANAGE),
        Resource::Conversation { operator, .. } => Access::unless(
            is_store_backend(principal) || principal.operator == Some(operator),
            p::CONVERSATION_ASSIGNED_TO_YOU,
        ),
        Resource::ApiKey { .. } => Access::unless(is_manager(principal), p::API_KEY_MANAGE),
        Resource::Webhook { .. } => Access::unless(is_store_backend(principal), p::WEBHOOK_MANAGE),
    })
}

/// Creating `new`. Stores and deployment-wide webhooks are admins' only.
pub fn may_create(principal: &Principal, new: &NewResource) -> Access {
    let (store, allowed, missing) = match *new {
        NewResource::Store | NewResource::Webhook { store: None } => {
            return may_administer(principal)
        }
        NewResource::Operator { store } => (store, is_manager(principal), p::OPERATOR_MANAGE),
        NewResource::Client { store } => (store, is_store_backend(principal), p::CLIENT_MANAGE),
        NewResource::Conversation { store } => {
            (store, is_store_backend(principal), p::CONVERSATION_MANAGE)
        }
        NewResource::Webhook { store: Some(store) } => {
            (store, is_store_backend(principal), p::WEBHOOK_MANAGE)
        }
    };
    within(principal, Some(store), || Access::unless(allowed, missing))
}

/// The store a request that creates something means, given the `storeId` it names (if
/// any): a store principal's own store is implied, and naming another is not found; an
/// admin's is what it names (`None`: it named none, which the route may refuse as a
/// missing field).
///
/// # Errors
/// [`Denied::NotFound`] for another store's id; [`Denied::Forbidden`] for an `inbound` key.
pub fn target_store(
    principal: &Principal,
    requested: Option<StoreId>,
) -> Result<Option<StoreId>, Denied> {
    match principal.role {
        AccessRole::Admin => Ok(requested),
        AccessRole::Inbound => Err(Denied::Forbidden { missing: p::API }),
        _ => match requested {
            None => Ok(principal.store),
            Some(store) if principal.store == Some(store) => Ok(principal.store),
            Some(_) => Err(Denied::NotFound),
        },
    }
}

/// The store a list is restricted to, given the `storeId` filter it was asked with:
/// `None` is every store (admins without a filter), `Some` the one store whose things it
/// may show. Counts and filters must keep to it too, so nothing of another store shows.
///
/// # Errors
/// [`Denied::NotFound`] for a filter naming another store (as for a store that does not
/// exist); [`Denied::Forbidden`] when the role may not see this list at all: API keys and
/// the audit log take a manager, webhooks a manager or an integration.
pub fn list_scope(
    principal: &Principal,
    listing: Listing,
    requested: Option<StoreId>,
) -> Result<Option<StoreId>, Denied> {
    let store = target_store(principal, requested)?;
    if principal.role == AccessRole::Admin {
        return Ok(store);
    }
    let (allowed, missing) = match listing {
        Listing::Conversations | Listing::Clients | Listing::Operators | Listing::Events => {
            (true, "")
        }
        Listing::ApiKeys => (is_manager(principal), p::API_KEY_MANAGE),
        Listing::Webhooks => (is_store_backend(principal), p::WEBHOOK_MANAGE),
        Listing::Audit => (is_manager(principal), p::AUDIT_READ),
    };
    Access::unless(allowed, missing).result().map(|()| store)
}

/// Writing (or previewing) a message in `conversation` as `requested` (the request's
/// `userId`, if it gave one): the author the message gets.
///
/// - `operator`: `userId` may be left out (it is then the operator's own id); any other id
///   is forbidden (`chat.write_as_other`), and so is a conversation assigned to someone
///   else (`conversation.assigned_to_you`).
/// - `manager`, `integration`: the conversation's operator when left out; never the
///   client (`chat.write_as_client`).
/// - `admin`: the conversation's operator when left out; the client too, as the original
///   API allowed (the message is then recorded as received).
///
/// An id that is neither the conversation's operator nor its client is returned as it
/// is: the chat rule refuses it as not in the conversation.
///
/// # Errors
/// [`Denied::NotFound`] for another store's conversation; [`Denied::Forbidden`] as above.
pub fn may_write_as(
    principal: &Principal,
    conversation: &Conversation,
    requested: Option<UserId>,
) -> Result<UserId, Denied> {
    let forbidden = |missing| Err(Denied::Forbidden { missing });
    within(principal, Some(conversation.store_id), || Access::Allowed).result()?;
    match principal.role {
        AccessRole::Admin => Ok(requested.unwrap_or(conversation.operator_id)),
        AccessRole::Operator => {
            let me = principal
                .operator
                .expect("an operator principal has its operator id");
            if requested.is_some_and(|user| user != me) {
                forbidden(p::CHAT_WRITE_AS_OTHER)
            } else if conversation.operator_id != me {
                forbidden(p::CONVERSATION_ASSIGNED_TO_YOU)
            } else {
                Ok(me)
            }
        }
        _ => match requested.unwrap_or(conversation.operator_id) {
            client if client == conversation.client_id => forbidden(p::CHAT_WRITE_AS_CLIENT),
            author => Ok(author),
        },
    }
}

/// Reassigning a conversation to another operator (`PATCH /conversation/{id}/` with
/// `operatorId`): managers, integrations and admins. That the new operator is of the
/// conversation's store is the caller's to check.
pub fn may_reassign(principal: &Principal, conversation: &Conversation) -> Access {
    within(principal, Some(conversation.store_id), || {
        Access::unless(is_store_backend(principal), p::CONVERSATION_MANAGE)
    })
}

/// Changing the password of operator `operator` of `store`.
///
/// # Errors
/// [`Denied::NotFound`] for another store's operator; [`Denied::Forbidden`]
/// (`operator.manage`) for an operator's colleague or an integration.
pub fn may_change_password(
    principal: &Principal,
    store: StoreId,
    operator: UserId,
) -> Result<PasswordChange, Denied> {
    within(principal, Some(store), || Access::Allowed).result()?;
    if principal.operator == Some(operator) {
        Ok(PasswordChange::Own)
    } else if matches!(principal.role, AccessRole::Admin | AccessRole::Manager) {
        Ok(PasswordChange::Set)
    } else {
        Err(Denied::Forbidden {
            missing: p::OPERATOR_MANAGE,
        })
    }
}

/// Making an API key of `role` for `store` (as the request names it, before any implied
/// store: see [`target_store`]). An admin may make any key; a manager only keys of its
/// own store, never `admin` or `inbound` ones. The fields are then checked by
/// [`Principal::api_key`]; that an `operator` key's operator is of the store is the
/// caller's to check.
pub fn may_make_key(principal: &Principal, role: AccessRole, store: Option<StoreId>) -> Access {
    if principal.role == AccessRole::Admin {
        return Access::Allowed;
    }
    let store = match store {
        Some(store) => Some(store),
        None => principal.store,
    };
    within(principal, store, || {
        if !is_manager(principal) {
            Access::forbidden(p::API_KEY_MANAGE)
        } else {
            Access::unless(role.has_store(), p::ADMIN)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ConversationStatus;
    use crate::ids::ConversationId;

    // ------------------------------------------------------------------ the fixtures

    /// The principals' store, and another.
    const OWN: StoreId = StoreId(1);
    const OTHER: StoreId = StoreId(2);
    /// The operator principal, a colleague in its store, and an operator of the other.
    const ME: UserId = UserId(24);
    const COLLEAGUE: UserId = UserId(25);
    const STRANGER: UserId = UserId(40);
    /// A signed-in manager of the own store.
    const BOSS: UserId = UserId(30);

    fn conversation(id: i64, store: StoreId, operator: UserId, client: i64) -> Conversation {
        Conversation {
            id: ConversationId(id),
            store_id: store,
            operator_id: operator,
            client_id: UserId(client),
            status: ConversationStatus::Open,
            discount_code: None,
        }
    }

    /// Assigned to the operator principal; its client is 27.
    fn mine() -> Conversation {
        conversation(1, OWN, ME, 27)
    }
    /// Of the own store, assigned to a colleague; its client is 28.
    fn colleagues() -> Conversation {
        conversation(2, OWN, COLLEAGUE, 28)
    }
    /// Of the other store.
    fn elsewhere() -> Conversation {
        conversation(3, OTHER, STRANGER, 41)
    }

    /// One principal per role: the columns of the table.
    fn principals() -> [Principal; 5] {
        [
            Principal::deployment_token(),
            Principal::api_key(AccessRole::Manager, Some(OWN), None).unwrap(),
            Principal::api_key(AccessRole::Integration, Some(OWN), None).unwrap(),
            Principal::session(OperatorRole::Operator, OWN, ME),
            Principal::api_key(AccessRole::Inbound, None, None).unwrap(),
        ]
    }

    /// The same roles made another way, each with its column: the table holds for them too.
    fn variants() -> [(usize, Principal); 3] {
        [
            (
                0,
                Principal::api_key(AccessRole::Admin, None, None).unwrap(),
            ),
            (1, Principal::session(OperatorRole::Manager, OWN, BOSS)),
            (
                3,
                Principal::api_key(AccessRole::Operator, Some(OWN), Some(ME)).unwrap(),
            ),
        ]
    }

    /// An answer, whatever the function's type.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Got {
        /// Allowed.
        A,
        /// Not found.
        N,
        /// Forbidden, missing this.
        F(&'static str),
        /// Allowed, writing as this user.
        As(i64),
        /// Allowed, this list scope (`None`: every store).
        Scope(Option<i64>),
        /// Allowed, with this kind of password change.
        Pw(PasswordChange),
    }
    use Got::{As, Pw, Scope, A, F, N};

    impl From<Access> for Got {
        fn from(access: Access) -> Self {
            match access {
                Access::Allowed => A,
                Access::NotFound => N,
                Access::Forbidden { missing } => F(missing),
            }
        }
    }

    fn got<T>(result: Result<T, Denied>, allowed: impl FnOnce(T) -> Got) -> Got {
        match result {
            Ok(value) => allowed(value),
            Err(denied) => Access::from(Err::<(), _>(denied)).into(),
        }
    }

    fn write(conversation: Conversation, user: Option<i64>) -> impl Fn(&Principal) -> Got {
        move |who| {
            got(
                may_write_as(who, &conversation, user.map(UserId)),
                |author| As(author.get()),
            )
        }
    }

    fn scope(listing: Listing, filter: Option<StoreId>) -> impl Fn(&Principal) -> Got {
        move |who| {
            got(list_scope(who, listing, filter), |s| {
                Scope(s.map(StoreId::get))
            })
        }
    }

    fn target(filter: Option<StoreId>) -> impl Fn(&Principal) -> Got {
        move |who| got(target_store(who, filter), |s| Scope(s.map(StoreId::get)))
    }

    fn password(store: StoreId, operator: UserId) -> impl Fn(&Principal) -> Got {
        move |who| got(may_change_password(who, store, operator), Pw)
    }

    fn read(resource: Resource) -> impl Fn(&Principal) -> Got {
        move |who| may_read(who, &resource).into()
    }

    fn change(resource: Resource) -> impl Fn(&Principal) -> Got {
        move |who| may_change(who, &resource).into()
    }

    fn create(new: NewResource) -> impl Fn(&Principal) -> Got {
        move |who| may_create(who, &new).into()
    }

    fn make_key(role: AccessRole, store: Option<StoreId>) -> impl Fn(&Principal) -> Got {
        move |who| may_make_key(who, role, store).into()
    }

    fn conv(c: Conversation) -> Resource {
        Resource::from(&c)
    }

    type Row = (&'static str, Box<dyn Fn(&Principal) -> Got>, [Got; 5]);

    /// Every question, in every situation, with the answer each role gets, written out.
    #[rustfmt::skip]
    fn table() -> Vec<Row> {
        use AccessRole as R;
        use PasswordChange::{Own, Set};
        let api = F("api");
        vec![
            // question, situation                      admin  manager  integration  operator  inbound
            ("use the API", Box::new(|w: &Principal| may_use_api(w).into()),
                [A, A, A, A, api]),
            ("administer: demo data, metrics, stores", Box::new(|w: &Principal| may_administer(w).into()),
                [A, F("admin"), F("admin"), F("admin"), api]),
            ("create a store", Box::new(create(NewResource::Store)),
                [A, F("admin"), F("admin"), F("admin"), api]),
            ("post inbound email", Box::new(|w: &Principal| may_post_inbound_email(w).into()),
                [A, F("inbound_email"), F("inbound_email"), F("inbound_email"), A]),

            ("read own store", Box::new(read(Resource::Store(OWN))),
                [A, A, A, A, api]),
            ("read other store", Box::new(read(Resource::Store(OTHER))),
                [A, N, N, N, api]),
            ("change own store's settings", Box::new(change(Resource::Store(OWN))),
                [A, A, F("store.settings"), F("store.settings"), api]),
            ("change other store's settings", Box::new(change(Resource::Store(OTHER))),
                [A, N, N, N, api]),

            ("read an own store's operator", Box::new(read(Resource::Operator { store: OWN, id: COLLEAGUE })),
                [A, A, A, A, api]),
            ("read an other store's operator", Box::new(read(Resource::Operator { store: OTHER, id: STRANGER })),
                [A, N, N, N, api]),
            ("create an operator in own store", Box::new(create(NewResource::Operator { store: OWN })),
                [A, A, F("operator.manage"), F("operator.manage"), api]),
            ("create an operator in other store", Box::new(create(NewResource::Operator { store: OTHER })),
                [A, N, N, N, api]),
            ("change a colleague (role, email)", Box::new(change(Resource::Operator { store: OWN, id: COLLEAGUE })),
                [A, A, F("operator.manage"), F("operator.manage"), api]),
            ("change oneself (role, email)", Box::new(change(Resource::Operator { store: OWN, id: ME })),
                [A, A, F("operator.manage"), F("operator.manage"), api]),
            ("change an other store's operator", Box::new(change(Resource::Operator { store: OTHER, id: STRANGER })),
                [A, N, N, N, api]),
            ("password of the operator 24", Box::new(password(OWN, ME)),
                [Pw(Set), Pw(Set), F("operator.manage"), Pw(Own), api]),
            ("password of a colleague", Box::new(password(OWN, COLLEAGUE)),
                [Pw(Set), Pw(Set), F("operator.manage"), F("operator.manage"), api]),
            ("password of an other store's operator", Box::new(password(OTHER, STRANGER)),
                [Pw(Set), N, N, N, api]),

            ("read an own store's client", Box::new(read(Resource::Client { store: OWN })),
                [A, A, A, A, api]),
            ("read an other store's client", Box::new(read(Resource::Client { store: OTHER })),
                [A, N, N, N, api]),
            ("create a client in own store", Box::new(create(NewResource::Client { store: OWN })),
                [A, A, A, F("client.manage"), api]),
            ("create a client in other store", Box::new(create(NewResource::Client { store: OTHER })),
                [A, N, N, N, api]),
            ("change an own store's client", Box::new(change(Resource::Client { store: OWN })),
                [A, A, A, F("client.manage"), api]),
            ("change an other store's client", Box::new(change(Resource::Client { store: OTHER })),
                [A, N, N, N, api]),
            ("the store of a new thing, none named", Box::new(target(None)),
                [Scope(None), Scope(Some(1)), Scope(Some(1)), Scope(Some(1)), api]),
            ("the store of a new thing, own named", Box::new(target(Some(OWN))),
                [Scope(Some(1)), Scope(Some(1)), Scope(Some(1)), Scope(Some(1)), api]),
            ("the store of a new thing, other named", Box::new(target(Some(OTHER))),
                [Scope(Some(2)), N, N, N, api]),

            ("create a conversation in own store", Box::new(create(NewResource::Conversation { store: OWN })),
                [A, A, A, F("conversation.manage"), api]),
            ("create a conversation in other store", Box::new(create(NewResource::Conversation { store: OTHER })),
                [A, N, N, N, api]),
            ("read own conversation", Box::new(read(conv(mine()))),
                [A, A, A, A, api]),
            ("read a colleague's conversation", Box::new(read(conv(colleagues()))),
                [A, A, A, A, api]),
            ("read an other store's conversation", Box::new(read(conv(elsewhere()))),
                [A, N, N, N, api]),
            ("resolve/cancel/retry in own conversation", Box::new(change(conv(mine()))),
                [A, A, A, A, api]),
            ("resolve/cancel/retry in a colleague's", Box::new(change(conv(colleagues()))),
                [A, A, A, F("conversation.assigned_to_you"), api]),
            ("resolve/cancel/retry in other store's", Box::new(change(conv(elsewhere()))),
                [A, N, N, N, api]),
            ("reassign own conversation", Box::new(|w: &Principal| may_reassign(w, &mine()).into()),
                [A, A, A, F("conversation.manage"), api]),
            ("reassign a colleague's conversation", Box::new(|w: &Principal| may_reassign(w, &colleagues()).into()),
                [A, A, A, F("conversation.manage"), api]),
            ("reassign an other store's conversation", Box::new(|w: &Principal| may_reassign(w, &elsewhere()).into()),
                [A, N, N, N, api]),

            ("write in own conversation, no userId", Box::new(write(mine(), None)),
                [As(24), As(24), As(24), As(24), api]),
            ("write in own conversation as 24", Box::new(write(mine(), Some(24))),
                [As(24), As(24), As(24), As(24), api]),
            ("write in own conversation as a colleague", Box::new(write(mine(), Some(25))),
                [As(25), As(25), As(25), F("chat.write_as_other"), api]),
            ("write in own conversation as its client", Box::new(write(mine(), Some(27))),
                [As(27), F("chat.write_as_client"), F("chat.write_as_client"), F("chat.write_as_other"), api]),
            ("write in a colleague's, no userId", Box::new(write(colleagues(), None)),
                [As(25), As(25), As(25), F("conversation.assigned_to_you"), api]),
            ("write in a colleague's as 24", Box::new(write(colleagues(), Some(24))),
                [As(24), As(24), As(24), F("conversation.assigned_to_you"), api]),
            ("write in a colleague's as the colleague", Box::new(write(colleagues(), Some(25))),
                [As(25), As(25), As(25), F("chat.write_as_other"), api]),
            ("write in a colleague's as its client", Box::new(write(colleagues(), Some(28))),
                [As(28), F("chat.write_as_client"), F("chat.write_as_client"), F("chat.write_as_other"), api]),
            ("write in other store's, no userId", Box::new(write(elsewhere(), None)),
                [As(40), N, N, N, api]),
            ("write in other store's as its operator", Box::new(write(elsewhere(), Some(40))),
                [As(40), N, N, N, api]),

            ("make an admin key", Box::new(make_key(R::Admin, None)),
                [A, F("admin"), F("api_key.manage"), F("api_key.manage"), api]),
            ("make an inbound key", Box::new(make_key(R::Inbound, None)),
                [A, F("admin"), F("api_key.manage"), F("api_key.manage"), api]),
            ("make a manager key, own store", Box::new(make_key(R::Manager, Some(OWN))),
                [A, A, F("api_key.manage"), F("api_key.manage"), api]),
            ("make a manager key, store implied", Box::new(make_key(R::Manager, None)),
                [A, A, F("api_key.manage"), F("api_key.manage"), api]),
            ("make an integration key, own store", Box::new(make_key(R::Integration, Some(OWN))),
                [A, A, F("api_key.manage"), F("api_key.manage"), api]),
            ("make an operator key, own store", Box::new(make_key(R::Operator, Some(OWN))),
                [A, A, F("api_key.manage"), F("api_key.manage"), api]),
            ("make an operator key, other store", Box::new(make_key(R::Operator, Some(OTHER))),
                [A, N, N, N, api]),
            ("make an admin key naming other store", Box::new(make_key(R::Admin, Some(OTHER))),
                [A, N, N, N, api]),
            ("read/revoke an own store's key", Box::new(change(Resource::ApiKey { store: Some(OWN) })),
                [A, A, F("api_key.manage"), F("api_key.manage"), api]),
            ("read an own store's key", Box::new(read(Resource::ApiKey { store: Some(OWN) })),
                [A, A, F("api_key.manage"), F("api_key.manage"), api]),
            ("read/revoke an other store's key", Box::new(change(Resource::ApiKey { store: Some(OTHER) })),
                [A, N, N, N, api]),
            ("read/revoke an admin or inbound key", Box::new(read(Resource::ApiKey { store: None })),
                [A, N, N, N, api]),

            ("make a webhook, own store", Box::new(create(NewResource::Webhook { store: Some(OWN) })),
                [A, A, A, F("webhook.manage"), api]),
            ("make a webhook, other store", Box::new(create(NewResource::Webhook { store: Some(OTHER) })),
                [A, N, N, N, api]),
            ("make a deployment-wide webhook", Box::new(create(NewResource::Webhook { store: None })),
                [A, F("admin"), F("admin"), F("admin"), api]),
            ("read an own store's webhook", Box::new(read(Resource::Webhook { store: Some(OWN) })),
                [A, A, A, F("webhook.manage"), api]),
            ("change an own store's webhook", Box::new(change(Resource::Webhook { store: Some(OWN) })),
                [A, A, A, F("webhook.manage"), api]),
            ("change an other store's webhook", Box::new(change(Resource::Webhook { store: Some(OTHER) })),
                [A, N, N, N, api]),
            ("read a deployment-wide webhook", Box::new(read(Resource::Webhook { store: None })),
                [A, N, N, N, api]),

            ("list conversations", Box::new(scope(Listing::Conversations, None)),
                [Scope(None), Scope(Some(1)), Scope(Some(1)), Scope(Some(1)), api]),
            ("list conversations of own store", Box::new(scope(Listing::Conversations, Some(OWN))),
                [Scope(Some(1)), Scope(Some(1)), Scope(Some(1)), Scope(Some(1)), api]),
            ("list conversations of other store", Box::new(scope(Listing::Conversations, Some(OTHER))),
                [Scope(Some(2)), N, N, N, api]),
            ("list clients", Box::new(scope(Listing::Clients, None)),
                [Scope(None), Scope(Some(1)), Scope(Some(1)), Scope(Some(1)), api]),
            ("list operators", Box::new(scope(Listing::Operators, None)),
                [Scope(None), Scope(Some(1)), Scope(Some(1)), Scope(Some(1)), api]),
            ("stream events", Box::new(scope(Listing::Events, None)),
                [Scope(None), Scope(Some(1)), Scope(Some(1)), Scope(Some(1)), api]),
            ("list API keys", Box::new(scope(Listing::ApiKeys, None)),
                [Scope(None), Scope(Some(1)), F("api_key.manage"), F("api_key.manage"), api]),
            ("list API keys of other store", Box::new(scope(Listing::ApiKeys, Some(OTHER))),
                [Scope(Some(2)), N, N, N, api]),
            ("list webhooks", Box::new(scope(Listing::Webhooks, None)),
                [Scope(None), Scope(Some(1)), Scope(Some(1)), F("webhook.manage"), api]),
            ("read the audit log", Box::new(scope(Listing::Audit, None)),
                [Scope(None), Scope(Some(1)), F("audit.read"), F("audit.read"), api]),
            ("read the audit log of own store", Box::new(scope(Listing::Audit, Some(OWN))),
                [Scope(Some(1)), Scope(Some(1)), F("audit.read"), F("audit.read"), api]),
            ("read the audit log of other store", Box::new(scope(Listing::Audit, Some(OTHER))),
                [Scope(Some(2)), N, N, N, api]),
        ]
    }

    #[test]
    fn every_role_gets_the_answer_the_table_writes_out() {
        let roles = principals();
        let mut failures = Vec::new();
        for (question, ask, expected) in table() {
            for (column, who) in roles.iter().enumerate() {
                let answer = ask(who);
                if answer != expected[column] {
                    failures.push(format!(
                        "{question}: {} got {answer:?}, the table says {:?}",
                        who.role(),
                        expected[column]
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn an_admin_key_a_signed_in_manager_and_an_operator_key_answer_as_their_column() {
        let mut failures = Vec::new();
        for (question, ask, expected) in table() {
            for (column, who) in variants() {
                let answer = ask(&who);
                if answer != expected[column] {
                    failures.push(format!(
                        "{question}: {who:?} got {answer:?}, the table says {:?}",
                        expected[column]
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn the_table_covers_every_role() {
        let roles: Vec<AccessRole> = principals().iter().map(Principal::role).collect();
        assert_eq!(roles, AccessRole::ALL);
    }

    #[test]
    fn a_signed_in_manager_changes_its_own_password_with_the_current_one() {
        let boss = Principal::session(OperatorRole::Manager, OWN, BOSS);
        assert_eq!(
            may_change_password(&boss, OWN, BOSS),
            Ok(PasswordChange::Own)
        );
    }

    #[test]
    fn a_store_principal_sees_its_store_only() {
        let [admin, manager, integration, operator, inbound] = principals();
        let sees = |who: &Principal| (who.sees_store(OWN), who.sees_store(OTHER));
        assert_eq!(sees(&admin), (true, true));
        assert_eq!(sees(&manager), (true, false));
        assert_eq!(sees(&integration), (true, false));
        assert_eq!(sees(&operator), (true, false));
        assert_eq!(sees(&inbound), (false, false));
    }

    /// A key's role, store and operator, and whether they make a principal.
    type KeyCase = (
        AccessRole,
        Option<StoreId>,
        Option<UserId>,
        Result<(), PrincipalError>,
    );

    #[test]
    fn keys_take_exactly_the_fields_their_role_needs() {
        use AccessRole as R;
        use PrincipalError as E;
        let s = Some(OWN);
        let o = Some(ME);
        #[rustfmt::skip]
        let cases: [KeyCase; 20] = [
            (R::Admin, None, None, Ok(())),
            (R::Admin, s, None, Err(E::StoreNotAllowed { role: R::Admin })),
            (R::Admin, None, o, Err(E::OperatorNotAllowed { role: R::Admin })),
            (R::Admin, s, o, Err(E::StoreNotAllowed { role: R::Admin })),
            (R::Manager, s, None, Ok(())),
            (R::Manager, None, None, Err(E::StoreRequired { role: R::Manager })),
            (R::Manager, s, o, Err(E::OperatorNotAllowed { role: R::Manager })),
            (R::Manager, None, o, Err(E::StoreRequired { role: R::Manager })),
            (R::Integration, s, None, Ok(())),
            (R::Integration, None, None, Err(E::StoreRequired { role: R::Integration })),
            (R::Integration, s, o, Err(E::OperatorNotAllowed { role: R::Integration })),
            (R::Integration, None, o, Err(E::StoreRequired { role: R::Integration })),
            (R::Operator, s, o, Ok(())),
            (R::Operator, s, None, Err(E::OperatorRequired)),
            (R::Operator, None, o, Err(E::StoreRequired { role: R::Operator })),
            (R::Operator, None, None, Err(E::StoreRequired { role: R::Operator })),
            (R::Inbound, None, None, Ok(())),
            (R::Inbound, s, None, Err(E::StoreNotAllowed { role: R::Inbound })),
            (R::Inbound, None, o, Err(E::OperatorNotAllowed { role: R::Inbound })),
            (R::Inbound, s, o, Err(E::StoreNotAllowed { role: R::Inbound })),
        ];
        for (role, store, operator, expected) in cases {
            let made = Principal::api_key(role, store, operator);
            assert_eq!(made.map(|_| ()), expected, "{role} {store:?} {operator:?}");
        }
    }

    #[test]
    fn a_key_principal_keeps_its_fields() {
        let key = Principal::api_key(AccessRole::Operator, Some(OWN), Some(ME)).unwrap();
        assert_eq!(
            (key.role(), key.store(), key.operator(), key.via()),
            (AccessRole::Operator, Some(OWN), Some(ME), Via::Key)
        );
        let token = Principal::deployment_token();
        assert_eq!(
            (token.role(), token.store(), token.operator(), token.via()),
            (AccessRole::Admin, None, None, Via::Token)
        );
        let session = Principal::session(OperatorRole::Manager, OWN, BOSS);
        assert_eq!(
            (
                session.role(),
                session.store(),
                session.operator(),
                session.via()
            ),
            (AccessRole::Manager, Some(OWN), Some(BOSS), Via::Session)
        );
    }

    #[test]
    fn errors_name_their_field() {
        assert_eq!(PrincipalError::OperatorRequired.field(), "operatorId");
        assert_eq!(
            PrincipalError::StoreRequired {
                role: AccessRole::Manager
            }
            .field(),
            "storeId"
        );
        assert_eq!(
            PrincipalError::StoreRequired {
                role: AccessRole::Manager
            }
            .to_string(),
            "a manager key needs a storeId"
        );
    }

    #[test]
    fn roles_read_and_print_as_the_api_names_them() {
        let names = ["admin", "manager", "integration", "operator", "inbound"];
        for (role, name) in AccessRole::ALL.into_iter().zip(names) {
            assert_eq!(role.as_str(), name);
            assert_eq!(name.parse::<AccessRole>(), Ok(role));
        }
        assert_eq!(
            "Admin".parse::<AccessRole>(),
            Err(UnknownRole("Admin".to_owned()))
        );
        assert_eq!("manager".parse::<OperatorRole>(), Ok(OperatorRole::Manager));
        assert!("admin".parse::<OperatorRole>().is_err());
        assert_eq!(OperatorRole::default(), OperatorRole::Operator);
        assert_eq!(
            [Via::Token, Via::Key, Via::Session].map(Via::as_str),
            ["token", "key", "session"]
        );
    }

    #[test]
    fn access_turns_into_a_result_and_back() {
        for access in [
            Access::Allowed,
            Access::NotFound,
            Access::Forbidden {
                missing: "audit.read",
            },
        ] {
            assert_eq!(Access::from(access.result()), access);
        }
        assert!(Access::Allowed.is_allowed());
        assert!(!Access::NotFound.is_allowed());
    }
}
