//! Signing in and the access API: `POST /login`, `POST /logout`, `GET /me`, operators'
//! accounts (`POST /operators/`, `GET /operators/`, `PATCH /operator/{id}/`) and API keys (`POST /api-keys/`,
//! `GET /api-keys/`, `DELETE /api-key/{id}/`) and the audit log (`GET /audit/`).
//!
//! Passwords are checked on Tokio's blocking pool, a few at a time (`AppState::hashing`),
//! so a storm of sign-ins queues for the CPU instead of stalling the API's async workers.
//! An unknown email is checked against a dummy hash: wrong email and wrong password take
//! about the same time and answer the same 401 `invalid_credentials`.

use crate::api::rfc3339;
use crate::audit::AuditTarget;
use crate::auth::{denied, Caller};
use crate::credentials::{
    dummy_verify, verify_password, ApiKey, PasswordError, PasswordPolicy, SessionToken,
    SESSION_COOKIE,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{self, parse_id, JsonBody, PathId, QueryMap};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cartloop_core::access::{
    self, Access, AccessRole, Listing, NewResource, OperatorRole, PasswordChange, Principal,
    Resource,
};
use cartloop_core::directory::DirectoryError;
use cartloop_core::domain::NewOperator;
use cartloop_core::email_address::EmailAddress;
use cartloop_core::ids::{StoreId, UserId};
use cartloop_core::lockout::{self, Lockout};
use cartloop_core::name::Name;
use cartloop_core::ports::{
    AccountChanges, Actor, ActorKind, ApiKeyRecord, AuditEntry, AuditFilter, NewAccount, NewApiKey,
    NewAuditEntry, OperatorAccount, StorageError,
};
use cartloop_core::session_lifetime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

fn operator_not_found(id: i64) -> ApiError {
    ApiError::not_found("operator_not_found", format!("operator {id} not found"))
}

fn store_not_found(id: Option<StoreId>) -> ApiError {
    ApiError::not_found(
        "store_not_found",
        format!("store {} not found", id.map_or(0, |s| s.0)),
    )
}

fn key_not_found(id: i64) -> ApiError {
    ApiError::not_found("api_key_not_found", format!("API key {id} not found"))
}

fn parse_email(field: &'static str, raw: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(raw).map_err(|e| {
        ApiError::unprocessable("invalid_email", format!("{field}: {e}")).with_field(field)
    })
}

fn parse_name(raw: &str) -> Result<Name, ApiError> {
    Name::parse(raw).map_err(|e| DirectoryError::invalid_field("name", e).into())
}

fn parse_operator_role(raw: &str) -> Result<OperatorRole, ApiError> {
    raw.parse::<OperatorRole>().map_err(|_| {
        ApiError::unprocessable(
            "invalid_role",
            format!(
                "role: {} is not an operator role; expected `operator` or `manager`",
                extract::quoted(raw)
            ),
        )
        .with_field("role")
    })
}

/// A password checked against the policy, as a 422 naming `field`. Longer than 1 KiB is
/// refused here, before anything hashes it.
fn check_password(field: &'static str, password: &str) -> Result<(), ApiError> {
    PasswordPolicy::default().check(password).map_err(|e| {
        let code = match e {
            PasswordError::TooLong { .. } => "password_too_long",
            _ => "invalid_password",
        };
        ApiError::unprocessable(code, format!("{field}: {e}")).with_field(field)
    })
}

/// Runs `work` (an Argon2id hash or check) once a hashing permit is free, on the
/// low-priority hashing threads (`credentials::on_hashing_thread`): under a storm of
/// sign-ins the API's own threads get the CPU first and reads stay fast; the sign-ins
/// queue instead.
async fn hashing<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = state
        .hashing
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("password hashing closed"))?;
    crate::credentials::on_hashing_thread(work)
        .await
        .ok_or_else(|| ApiError::internal("password hashing failed (a hashing thread panicked)"))
}

/// `POST /login` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "dan@shop.example.com", "password": "correct horse battery"}))]
pub(crate) struct LoginBody {
    /// The operator's sign-in email.
    email: String,
    /// Its password (at most 1 KiB).
    password: String,
}

/// Who signed in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignedIn {
    operator_id: i64,
    store_id: i64,
    /// `operator` or `manager`.
    #[schema(example = "operator")]
    role: &'static str,
    name: String,
}

/// Signs an operator in: a session cookie `cartloop_session` (`HttpOnly; SameSite=Strict;
/// Path=/`, `Secure` behind an https `PUBLIC_URL`), kept by the database so every server
/// honours it; it ends 12 h after its last use and 7 days after sign-in at most.
///
/// A wrong email and a wrong password are the same 401 `invalid_credentials`. Five failures
/// for one email within 15 minutes: 429 `too_many_attempts` with `Retry-After`, even for
/// the right password, until the window passes.
#[utoipa::path(
    post,
    path = "/login",
    tag = "access",
    request_body = LoginBody,
    security(()),
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = SignedIn,
            headers(("set-cookie" = String, description = "cartloop_session=...; HttpOnly; SameSite=Strict; Path=/"))),
        (status = 400, description = "`invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 422, description = "`password_too_long`, `invalid_email`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, ApiError> {
    if body.password.len() > PasswordPolicy::default().max_bytes {
        return Err(check_password("password", &body.password).unwrap_err());
    }
    let email = parse_email("email", &body.email)?;
    let now = state.clock.now();
    let failures = state
        .storage
        .login_failures(&email, lockout::since(now))
        .await?;
    // A refused sign-in is nobody's yet: no actor, only the account it was for.
    let audit = |actor: Option<&OperatorAccount>, status: u16| NewAuditEntry {
        at: now,
        actor: actor.filter(|_| status == 200).map(|a| Actor {
            kind: ActorKind::Operator,
            id: Some(a.operator.id.0),
            name: Some(a.operator.name.as_str().to_owned()),
        }),
        action: "login".to_owned(),
        target_kind: actor.map(|_| "operator".to_owned()),
        target_id: actor.map(|a| a.operator.id.0.to_string()),
        store_id: actor.map(|a| a.operator.store_id),
        status,
    };
    let sign_in = state.storage.sign_in(&email).await?;
    if let locked @ Lockout::Locked { .. } = lockout::check(&failures, now) {
        state
            .audit
            .push(audit(sign_in.as_ref().map(|s| &s.account), 429));
        return Err(ApiError::too_many_attempts(locked.retry_after(now)));
    }
    let password = body.password;
    let (account, stored) = match sign_in {
        Some(s) => (Some(s.account), s.password_hash),
        None => (None, None),
    };
    let verified = hashing(&state, move || match stored {
        Some(stored) => verify_password(&password, &stored),
        None => dummy_verify(&password),
    })
    .await?;
    let account = match (verified, account) {
        (true, Some(account)) => account,
        (_, account) => {
            state.storage.record_login_failure(&email, now).await?;
            state.audit.push(audit(account.as_ref(), 401));
            tracing::info!(operator = ?account.map(|a| a.operator.id.0), "sign-in refused");
            return Err(ApiError::unauthenticated(
                "invalid_credentials",
                "wrong email or password",
            ));
        }
    };
    state
        .storage
        .clear_login_failures(&email, now - lockout::WINDOW)
        .await?;
    let (token, hash) = SessionToken::generate();
    state
        .storage
        .create_session(hash.as_bytes(), account.operator.id, now)
        .await?;
    state.audit.push(audit(Some(&account), 200));
    tracing::info!(operator = %account.operator.id, store = %account.operator.store_id, "signed in");
    let body = SignedIn {
        operator_id: account.operator.id.0,
        store_id: account.operator.store_id.0,
        role: account.role.as_str(),
        name: account.operator.name.into_string(),
    };
    let mut response = Json(body).into_response();
    let max_age = session_lifetime::MAX.num_seconds();
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}",
        secure(&state)
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    Ok(response)
}

/// `; Secure` when the deployment is served over https.
fn secure(state: &AppState) -> &'static str {
    match &state.public_url {
        Some(url) if url.to_ascii_lowercase().starts_with("https://") => "; Secure",
        _ => "",
    }
}

/// Ends the caller's session on every server and clears the cookie. Without a session
/// (a key, the token) there is nothing to end: `signedOut` is then `false`.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "access",
    responses(
        (status = 200, description = "Signed out", body = SignedOut),
        (status = 401, description = "`invalid_session`", body = ErrorBody),
        (status = 403, description = "`cross_origin`", body = ErrorBody),
    )
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let mut signed_out = false;
    if let Some(session) = &caller.session {
        state.credentials.forget_session(session);
        signed_out = state.storage.end_session(session).await?;
        tracing::info!(operator = ?caller.principal.operator().map(|o| o.0), "signed out");
    }
    let cookie = format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure(&state)
    );
    let mut response = Json(SignedOut { signed_out }).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    Ok(response)
}

/// `POST /logout` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignedOut {
    /// Whether a session ended.
    signed_out: bool,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Me {
    /// `admin`, `manager`, `integration`, `operator` or `inbound`.
    #[schema(example = "operator")]
    role: &'static str,
    store_id: Option<i64>,
    operator_id: Option<i64>,
    /// The operator's name, or the key's.
    name: Option<String>,
    /// `token`, `key` or `session`.
    #[schema(example = "session")]
    via: &'static str,
}

/// The caller: its role, store, operator, name and how it authenticated.
#[utoipa::path(
    get,
    path = "/me",
    tag = "access",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "`unauthorized`, `invalid_api_key`, `invalid_session`", body = ErrorBody),
    )
)]
pub(crate) async fn me(caller: Caller) -> Json<Me> {
    let principal = caller.principal;
    Json(Me {
        role: principal.role().as_str(),
        store_id: principal.store().map(|s| s.0),
        operator_id: principal.operator().map(|o| o.0),
        name: caller.actor.name,
        via: principal.via().as_str(),
    })
}

/// An operator with its account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccountResponse {
    operator_id: i64,
    name: String,
    store_id: i64,
    group: String,
    /// Its sign-in email, if it has one.
    email: Option<String>,
    /// `operator` or `manager`.
    #[schema(example = "operator")]
    role: &'static str,
    /// Whether it has a password (never the password or its hash).
    has_password: bool,
}

impl From<OperatorAccount> for AccountResponse {
    fn from(account: OperatorAccount) -> Self {
        Self {
            operator_id: account.operator.id.0,
            name: account.operator.name.into_string(),
            store_id: account.operator.store_id.0,
            group: account.operator.group.into_string(),
            email: account.email.map(|e| e.as_str().to_owned()),
            role: account.role.as_str(),
            has_password: account.has_password,
        }
    }
}

/// `POST /operators/` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "Dana", "storeId": 1, "group": "sales", "email": "dana@shop.example.com", "password": "correct horse battery", "role": "operator"}))]
pub(crate) struct CreateOperatorBody {
    /// Display name (the `operator` placeholder).
    pub name: String,
    /// The store, which must exist; a store principal's own when left out.
    #[serde(default)]
    pub store_id: Option<i64>,
    /// E.g. `sales`, `support`.
    pub group: String,
    /// Its sign-in email, unique across the deployment.
    #[serde(default)]
    pub email: Option<String>,
    /// At least 12 characters; stored as an Argon2id hash, never shown.
    #[serde(default)]
    pub password: Option<String>,
    /// `operator` (the default) or `manager`.
    #[serde(default)]
    pub role: Option<String>,
}

impl std::fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginBody")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// Creates an operator of a store, optionally with its sign-in email, password and role.
#[utoipa::path(
    post,
    path = "/operators/",
    tag = "directory",
    request_body = CreateOperatorBody,
    responses(
        (status = 201, description = "Created", body = AccountResponse),
        (status = 400, description = "`invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`operator.manage`)", body = ErrorBody),
        (status = 404, description = "`store_not_found`", body = ErrorBody),
        (status = 409, description = "`operator_email_exists`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_email`, `invalid_password`, `password_too_long`, `invalid_role`, `missing_field`", body = ErrorBody),
    )
)]
pub(crate) async fn create_operator(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateOperatorBody>,
) -> Result<Response, ApiError> {
    let principal = &caller.principal;
    let requested = body.store_id.map(StoreId);
    let store = access::target_store(principal, requested)
        .map_err(|d| denied(d, || store_not_found(requested)))?
        .ok_or_else(|| missing_field("storeId", "the store the operator works for"))?;
    caller.check(
        access::may_create(principal, &NewResource::Operator { store }),
        || store_not_found(Some(store)),
    )?;
    let operator = NewOperator {
        name: parse_name(&body.name)?,
        store_id: store,
        group: Name::parse(&body.group)
            .map_err(|e| ApiError::from(DirectoryError::invalid_field("group", e)))?,
    };
    let email = body
        .email
        .as_deref()
        .map(|raw| parse_email("email", raw))
        .transpose()?;
    let role = body
        .role
        .as_deref()
        .map(parse_operator_role)
        .transpose()?
        .unwrap_or_default();
    let password_hash = match body.password {
        None => None,
        Some(password) => {
            check_password("password", &password)?;
            let hash = hashing(&state, move || crate::credentials::hash_password(&password))
                .await?
                .map_err(|e| ApiError::internal(e.to_string()))?;
            Some(hash)
        }
    };
    let account = NewAccount {
        email,
        role,
        password_hash,
    };
    let account = state
        .storage
        .create_operator_account(operator, account)
        .await
        .map_err(|e| match e {
            StorageError::NotFound(_) => ApiError::unprocessable(
                "unknown_store",
                format!("storeId: store {store} does not exist"),
            )
            .with_field("storeId"),
            StorageError::Conflict(_) => email_exists(),
            other => other.into(),
        })?;
    tracing::info!(operator = %account.operator.id, store = %store, role = %account.role, "operator created");
    let target = AuditTarget::new("operator", account.operator.id, Some(store));
    let mut response = (StatusCode::CREATED, Json(AccountResponse::from(account))).into_response();
    response.extensions_mut().insert(target);
    Ok(response)
}

/// A store's operators.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OperatorList {
    /// By id.
    operators: Vec<AccountResponse>,
}

/// The operators with their accounts (never a password): a store principal's its own
/// store's, an admin's every store's (or one store's with `storeId`). The console offers
/// them when a manager reassigns a conversation.
#[utoipa::path(
    get,
    path = "/operators/",
    tag = "directory",
    params(("storeId" = Option<i64>, Query, description = "Only this store's operators", minimum = 1)),
    responses(
        (status = 200, description = "The operators, by id", body = OperatorList),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 404, description = "`store_not_found`: another store", body = ErrorBody),
    )
)]
pub(crate) async fn list_operators(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(query): QueryMap,
) -> Result<Json<OperatorList>, ApiError> {
    let requested = query_store(&query)?;
    let scope = access::list_scope(&caller.principal, Listing::Operators, requested)
        .map_err(|d| denied(d, || store_not_found(requested)))?;
    let accounts = state.storage.list_accounts(scope).await?;
    Ok(Json(OperatorList {
        operators: accounts.into_iter().map(AccountResponse::from).collect(),
    }))
}

/// The query's `storeId`, if it names one; a 400 naming the field otherwise.
fn query_store(
    query: &std::collections::HashMap<String, String>,
) -> Result<Option<StoreId>, ApiError> {
    let Some(raw) = query.get("storeId") else {
        return Ok(None);
    };
    let id = parse_id(raw).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "invalid storeId {}: expected a store id",
                extract::quoted(raw)
            ),
        )
        .with_field("storeId")
    })?;
    Ok(Some(StoreId(id)))
}

fn email_exists() -> ApiError {
    ApiError::conflict(
        "operator_email_exists",
        "another operator signs in with this email",
    )
    .with_field("email")
}

fn missing_field(field: &'static str, what: &str) -> ApiError {
    ApiError::unprocessable("missing_field", format!("{field}: required ({what})"))
        .with_field(field)
}

/// `PATCH /operator/{id}/` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"password": "a new long passphrase", "currentPassword": "correct horse battery"}))]
pub(crate) struct PatchOperatorBody {
    /// A new sign-in email (`null` removes it).
    #[serde(default, deserialize_with = "crate::api::patch")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    /// A new password (at least 12 characters). Other sessions of the operator end.
    #[serde(default)]
    password: Option<String>,
    /// The current password: required when operators change their own.
    #[serde(default)]
    current_password: Option<String>,
    /// `operator` or `manager`: by a manager of the store or an admin.
    #[serde(default)]
    role: Option<String>,
}

/// Changes an operator's sign-in email, password or role.
///
/// An operator may change its own password, giving `currentPassword`; a manager sets those
/// of its store's operators; email and role take a manager (or an admin). A new password
/// ends the operator's other sessions.
#[utoipa::path(
    patch,
    path = "/operator/{id}/",
    tag = "directory",
    params(("id" = i64, Path, description = "Operator id", minimum = 1)),
    request_body = PatchOperatorBody,
    responses(
        (status = 200, description = "The operator as it is now", body = AccountResponse),
        (status = 400, description = "`invalid_id`, `invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`operator.manage`)", body = ErrorBody),
        (status = 404, description = "`operator_not_found`", body = ErrorBody),
        (status = 409, description = "`operator_email_exists`", body = ErrorBody),
        (status = 422, description = "`invalid_email`, `invalid_password`, `password_too_long`, `invalid_role`, `missing_field` (`currentPassword`), `wrong_current_password`", body = ErrorBody),
    )
)]
pub(crate) async fn patch_operator(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(body): JsonBody<PatchOperatorBody>,
) -> Result<Json<AccountResponse>, ApiError> {
    let principal = &caller.principal;
    let account = state
        .storage
        .account(UserId(id))
        .await?
        .ok_or_else(|| operator_not_found(id))?;
    let store = account.operator.store_id;
    let resource = Resource::Operator {
        store,
        id: account.operator.id,
    };
    caller.check(access::may_read(principal, &resource), || {
        operator_not_found(id)
    })?;
    for password in [&body.password, &body.current_password]
        .into_iter()
        .flatten()
    {
        if password.len() > PasswordPolicy::default().max_bytes {
            check_password("password", password)?;
        }
    }
    let mut changes = AccountChanges::default();
    if body.email.is_some() || body.role.is_some() {
        caller.check(access::may_change(principal, &resource), || {
            operator_not_found(id)
        })?;
        changes.email = match body.email {
            None => None,
            Some(email) => Some(
                email
                    .as_deref()
                    .map(|raw| parse_email("email", raw))
                    .transpose()?,
            ),
        };
        changes.role = body.role.as_deref().map(parse_operator_role).transpose()?;
    }
    if let Some(password) = body.password {
        let how = access::may_change_password(principal, store, account.operator.id)
            .map_err(|d| denied(d, || operator_not_found(id)))?;
        check_password("password", &password)?;
        if how == PasswordChange::Own {
            let current = body.current_password.ok_or_else(|| {
                missing_field(
                    "currentPassword",
                    "your current password, to change your own",
                )
            })?;
            let sign_in = match &account.email {
                Some(email) => state.storage.sign_in(email).await?,
                None => None,
            };
            let stored = sign_in.and_then(|s| s.password_hash);
            let ok = hashing(&state, move || match stored {
                Some(stored) => verify_password(&current, &stored),
                None => dummy_verify(&current),
            })
            .await?;
            if !ok {
                return Err(ApiError::unprocessable(
                    "wrong_current_password",
                    "currentPassword: not the operator's current password",
                )
                .with_field("currentPassword"));
            }
            changes.keep_session = caller.session;
        }
        let hash = hashing(&state, move || crate::credentials::hash_password(&password))
            .await?
            .map_err(|e| ApiError::internal(e.to_string()))?;
        changes.password_hash = Some(hash);
    }
    let password_changed = changes.password_hash.is_some();
    let account = state
        .storage
        .update_account(UserId(id), changes.clone())
        .await
        .map_err(|e| match e {
            StorageError::Conflict(_) => email_exists(),
            other => other.into(),
        })?
        .ok_or_else(|| operator_not_found(id))?;
    state.credentials.forget_sessions_of(UserId(id));
    tracing::info!(operator = id, password_changed, "operator account changed");
    Ok(Json(account.into()))
}

/// `POST /api-keys/` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "shop backend", "role": "integration", "storeId": 1}))]
pub(crate) struct CreateKeyBody {
    /// What the key is for.
    name: String,
    /// `admin`, `manager`, `integration`, `operator` or `inbound`.
    role: String,
    /// Required for `manager`, `integration` and `operator` keys (a manager's own store is
    /// implied); none for `admin` and `inbound`.
    #[serde(default)]
    store_id: Option<i64>,
    /// Required for `operator` keys: the operator it acts as.
    #[serde(default)]
    operator_id: Option<i64>,
}

/// An API key (never the key itself, except once in `key` when it is made).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyResponse {
    id: i64,
    name: String,
    #[schema(example = "integration")]
    role: &'static str,
    store_id: Option<i64>,
    operator_id: Option<i64>,
    created_at: String,
    revoked_at: Option<String>,
    /// The key, `ck_...`: shown this once, stored only as a hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl From<ApiKeyRecord> for KeyResponse {
    fn from(key: ApiKeyRecord) -> Self {
        Self {
            id: key.id,
            name: key.name.into_string(),
            role: key.role.as_str(),
            store_id: key.store_id.map(|s| s.0),
            operator_id: key.operator_id.map(|o| o.0),
            created_at: crate::api::rfc3339(key.created_at),
            revoked_at: key.revoked_at.map(crate::api::rfc3339),
            key: None,
        }
    }
}

/// The keys the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyList {
    keys: Vec<KeyResponse>,
}

/// Makes an API key; the answer's `key` is the only time it is shown. An admin makes any
/// key; a manager only `manager`, `integration` and `operator` keys of its store.
#[utoipa::path(
    post,
    path = "/api-keys/",
    tag = "access",
    request_body = CreateKeyBody,
    responses(
        (status = 201, description = "Made; `key` is shown this once", body = KeyResponse),
        (status = 400, description = "`invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`api_key.manage`, `admin`)", body = ErrorBody),
        (status = 404, description = "`store_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_role`, `invalid_field`, `missing_field`, `field_not_allowed`, `unknown_operator`", body = ErrorBody),
    )
)]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateKeyBody>,
) -> Result<Response, ApiError> {
    let principal = &caller.principal;
    let role = body.role.parse::<AccessRole>().map_err(|_| {
        ApiError::unprocessable(
            "invalid_role",
            format!(
                "role: {} is not a role; expected admin, manager, integration, operator or inbound",
                extract::quoted(&body.role)
            ),
        )
        .with_field("role")
    })?;
    let requested = body.store_id.map(StoreId);
    caller.check(access::may_make_key(principal, role, requested), || {
        store_not_found(requested)
    })?;
    let store = match (role.has_store(), principal.role()) {
        (true, AccessRole::Admin) | (false, _) => requested,
        (true, _) => requested.or(principal.store()),
    };
    let operator = body.operator_id.map(UserId);
    Principal::api_key(role, store, operator).map_err(|e| {
        let code = match e {
            cartloop_core::access::PrincipalError::StoreRequired { .. }
            | cartloop_core::access::PrincipalError::OperatorRequired => "missing_field",
            _ => "field_not_allowed",
        };
        ApiError::unprocessable(code, format!("{}: {e}", e.field())).with_field(e.field())
    })?;
    let name = parse_name(&body.name)?;
    let (key, hash) = ApiKey::generate();
    let record = state
        .storage
        .create_api_key(NewApiKey {
            name,
            role,
            store_id: store,
            operator_id: operator,
            hash: *hash.as_bytes(),
            created_at: state.clock.now(),
        })
        .await
        .map_err(|e| match e {
            StorageError::NotFound(_) if operator.is_some() => ApiError::unprocessable(
                "unknown_operator",
                format!(
                    "operatorId: {} is not an operator of store {}",
                    operator.map_or(0, |o| o.0),
                    store.map_or(0, |s| s.0)
                ),
            )
            .with_field("operatorId"),
            StorageError::NotFound(_) => store_not_found(store),
            other => other.into(),
        })?;
    tracing::info!(key = record.id, role = %record.role, store = ?record.store_id.map(|s| s.0), "API key made");
    let target = AuditTarget::new("api_key", record.id, record.store_id);
    let mut answer = KeyResponse::from(record);
    answer.key = Some(key);
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    response.extensions_mut().insert(target);
    Ok(response)
}

/// The API keys the caller may see (never the keys): an admin's all (or one store's with
/// `storeId`), a manager's its store's. Revoked keys are listed with `revokedAt`.
#[utoipa::path(
    get,
    path = "/api-keys/",
    tag = "access",
    params(("storeId" = Option<i64>, Query, description = "Only this store's keys", minimum = 1)),
    responses(
        (status = 200, description = "The keys", body = KeyList),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`api_key.manage`)", body = ErrorBody),
        (status = 404, description = "`store_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(query): QueryMap,
) -> Result<Json<KeyList>, ApiError> {
    let requested = query_store(&query)?;
    let scope = access::list_scope(&caller.principal, Listing::ApiKeys, requested)
        .map_err(|d| denied(d, || store_not_found(requested)))?;
    let keys = state.storage.list_api_keys(scope).await?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(KeyResponse::from).collect(),
    }))
}

/// Revokes a key: from now on every server answers it 401.
#[utoipa::path(
    delete,
    path = "/api-key/{id}/",
    tag = "access",
    params(("id" = i64, Path, description = "Key id", minimum = 1)),
    responses(
        (status = 200, description = "Revoked (also when it already was)", body = KeyResponse),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`api_key.manage`)", body = ErrorBody),
        (status = 404, description = "`api_key_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let key = state
        .storage
        .api_key(id)
        .await?
        .ok_or_else(|| key_not_found(id))?;
    let resource = Resource::ApiKey {
        store: key.store_id,
    };
    match access::may_change(&caller.principal, &resource) {
        Access::Allowed => {}
        Access::NotFound => return Err(key_not_found(id)),
        Access::Forbidden { missing } => return Err(ApiError::missing_permission(missing)),
    }
    let key = state
        .storage
        .revoke_api_key(id, state.clock.now())
        .await?
        .ok_or_else(|| key_not_found(id))?;
    state.credentials.forget_key(id);
    tracing::info!(key = id, "API key revoked");
    let target = AuditTarget::new("api_key", id, key.store_id);
    let mut response = Json(KeyResponse::from(key)).into_response();
    response.extensions_mut().insert(target);
    Ok(response)
}

/// Who did it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActorResponse {
    /// `token`, `key` or `operator`.
    #[schema(example = "operator")]
    kind: &'static str,
    /// The key's or the operator's id.
    id: Option<i64>,
    /// Its name then.
    name: Option<String>,
}

/// What it was done to.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TargetResponse {
    /// E.g. `conversation`.
    kind: Option<String>,
    /// Its id.
    id: Option<String>,
}

/// One entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditEntryResponse {
    /// Increases with every entry.
    id: i64,
    /// When (RFC 3339).
    at: String,
    /// Who; `null` for a request refused before anyone was known.
    actor: Option<ActorResponse>,
    /// What, e.g. `POST /chat/`, `login`.
    #[schema(example = "POST /chat/")]
    action: String,
    /// To what.
    target: TargetResponse,
    /// The store it concerns.
    store_id: Option<i64>,
    /// The status answered.
    status: u16,
}

impl From<AuditEntry> for AuditEntryResponse {
    fn from(e: AuditEntry) -> Self {
        let entry = e.entry;
        Self {
            id: e.id,
            at: rfc3339(entry.at),
            actor: entry.actor.map(|actor| ActorResponse {
                kind: actor.kind.as_str(),
                id: actor.id,
                name: actor.name,
            }),
            action: entry.action,
            target: TargetResponse {
                kind: entry.target_kind,
                id: entry.target_id,
            },
            store_id: entry.store_id.map(|s| s.0),
            status: entry.status,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditPage {
    /// Newest first.
    entries: Vec<AuditEntryResponse>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// The audit log, newest first: every change that succeeded, every refusal (401, 403) and
/// every sign-in. A manager sees its store's entries, an admin all (or one store's).
#[utoipa::path(
    get,
    path = "/audit/",
    tag = "access",
    params(
        ("storeId" = Option<i64>, Query, description = "Only this store's entries", minimum = 1),
        ("actor" = Option<String>, Query, description = "Only this actor's: `token`, `key:<id>` or `operator:<id>`"),
        ("limit" = Option<u32>, Query, description = "Entries per page (1 to 500, default 50)", minimum = 1),
        ("cursor" = Option<String>, Query, description = "The previous page's `nextCursor`"),
    ),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`audit.read`)", body = ErrorBody),
        (status = 404, description = "`store_not_found`: another store", body = ErrorBody),
    )
)]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(query): QueryMap,
) -> Result<Json<AuditPage>, ApiError> {
    let requested = query_store(&query)?;
    let store = access::list_scope(&caller.principal, Listing::Audit, requested).map_err(|d| {
        crate::auth::denied(d, || {
            ApiError::not_found(
                "store_not_found",
                format!("store {} not found", requested.map_or(0, |s| s.0)),
            )
        })
    })?;
    let actor = match query.get("actor") {
        None => None,
        Some(raw) => Some(parse_actor(raw)?),
    };
    let limit = match query.get("limit") {
        None => 50,
        Some(raw) => extract::parse_limit(raw, 500)?,
    };
    let before = match query.get("cursor") {
        None => None,
        Some(raw) => Some(parse_id(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "invalid cursor {}: pass a nextCursor as it was given",
                    extract::quoted(raw)
                ),
            )
            .with_field("cursor")
        })?),
    };
    state.audit.flush().await;
    let filter = AuditFilter {
        store,
        actor,
        before,
    };
    let entries = state.storage.audit(filter, limit).await?;
    let next_cursor = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Json(AuditPage {
        entries: entries.into_iter().map(AuditEntryResponse::from).collect(),
        next_cursor,
    }))
}

fn parse_actor(raw: &str) -> Result<(ActorKind, Option<i64>), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "invalid actor {}: expected `token`, `key:<id>` or `operator:<id>`",
                extract::quoted(raw)
            ),
        )
        .with_field("actor")
    };
    match raw.split_once(':') {
        None if raw == "token" => Ok((ActorKind::Token, None)),
        None => Err(invalid()),
        Some((kind, id)) => {
            let kind = ActorKind::parse(kind)
                .filter(|k| *k != ActorKind::Token)
                .ok_or_else(invalid)?;
            Ok((kind, Some(parse_id(id).ok_or_else(invalid)?)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_parse() {
        assert_eq!(parse_actor("token").unwrap(), (ActorKind::Token, None));
        assert_eq!(parse_actor("key:3").unwrap(), (ActorKind::Key, Some(3)));
        assert_eq!(
            parse_actor("operator:24").unwrap(),
            (ActorKind::Operator, Some(24))
        );
        for bad in ["", "key", "key:", "key:x", "token:1", "robot:1"] {
            assert!(parse_actor(bad).is_err(), "{bad:?}");
        }
    }
}
