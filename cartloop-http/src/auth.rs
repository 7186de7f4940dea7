//! Who makes each request: the [`Caller`], resolved once per request by `authenticate`
//! from what it presents, and the refusals of the access rules as API errors.
//!
//! A request is made by one principal (`cartloop_core::access`):
//! - `Authorization: Bearer ck_...`: an API key, found by its hash; unknown or revoked: 401
//!   `invalid_api_key`.
//! - `Authorization: Bearer <token>`: the deployment token (`CARTLOOP_API_TOKEN`): `admin`.
//! - the `cartloop_session` cookie: a signed-in operator; an unknown, expired or signed-out
//!   session is 401 `invalid_session`. A request signed in this way that changes something
//!   must come from the server's own origin (`Origin`, else `Referer`), else 403
//!   `cross_origin`: that is what keeps another site from using the cookie.
//! - nothing: 401, unless the deployment has no token at all (a server on a loopback
//!   address for development, which the bundled server only allows there): `admin`.
//!
//! An embedder with its own sign-in puts a [`Principal`] into the request's extensions
//! before the router (a layer of its own): that principal is used as it is.
//!
//! The health check, the unsubscribe pages, the console's files and `POST /login` need no
//! principal. An `inbound` key may post inbound email, read `GET /me` and the OpenAPI document,
//! and nothing else.

use crate::audit::{AuditTarget, Outcome};
use crate::credentials::{KeyHash, SessionHash, API_KEY_PREFIX, SESSION_COOKIE};
use crate::error::ApiError;
use crate::extract::MatchedRoute;
use crate::AppState;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cartloop_core::access::{self, Access, Denied, Principal, Via};
use cartloop_core::ports::{Actor, ActorKind, ApiKeyRecord, SecretHash, SessionRecord};
use cartloop_core::session_lifetime;
use std::collections::HashMap;
use std::time::Instant;

/// Routes that need no principal: the health check, the unsubscribe links (their signed
/// token is the credential) and signing in.
const PUBLIC: [&str; 3] = ["/healthz", "/unsubscribe/{token}", "/login"];

/// What an `inbound` key may reach: its route, who it is, and the API's document.
const INBOUND: [&str; 3] = ["/inbound/email/", "/me", "/openapi.json"];

/// API keys and sessions recently found, so that a request need not read them from the
/// storage each time. Off (`ttl` zero) unless the deployment says its storage is this
/// process's alone (the bundled server on SQLite): a key revoked, a session ended or an
/// account changed through this process is forgotten here at once, but another process
/// sharing the database could not tell this one. On PostgreSQL every request reads the
/// database, so a revocation holds on every server at once.
#[derive(Debug, Default)]
pub struct CredentialCache {
    ttl: std::time::Duration,
    keys: std::sync::Mutex<HashMap<SecretHash, (ApiKeyRecord, Instant)>>,
    sessions: std::sync::Mutex<HashMap<SecretHash, (SessionRecord, Instant)>>,
}

/// Entries kept at most; beyond, the cache starts again empty.
const CACHE_ENTRIES: usize = 10_000;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CredentialCache {
    /// A cache keeping what it found for `ttl` (zero: off).
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            ..Self::default()
        }
    }

    fn key(&self, hash: &SecretHash) -> Option<ApiKeyRecord> {
        let keys = lock(&self.keys);
        let (key, at) = keys.get(hash)?;
        (at.elapsed() < self.ttl).then(|| key.clone())
    }

    fn keep_key(&self, hash: SecretHash, key: &ApiKeyRecord) {
        if self.ttl.is_zero() {
            return;
        }
        let mut keys = lock(&self.keys);
        if keys.len() >= CACHE_ENTRIES {
            keys.clear();
        }
        keys.insert(hash, (key.clone(), Instant::now()));
    }

    fn session(&self, hash: &SecretHash) -> Option<SessionRecord> {
        let sessions = lock(&self.sessions);
        let (session, at) = sessions.get(hash)?;
        (at.elapsed() < self.ttl).then(|| session.clone())
    }

    fn keep_session(&self, hash: SecretHash, session: &SessionRecord) {
        if self.ttl.is_zero() {
            return;
        }
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= CACHE_ENTRIES {
            sessions.clear();
        }
        sessions.insert(hash, (session.clone(), Instant::now()));
    }

    /// Forgets key `id` (it was revoked).
    pub(crate) fn forget_key(&self, id: i64) {
        lock(&self.keys).retain(|_, (key, _)| key.id != id);
    }

    /// Forgets the session with this hash (it was ended).
    pub(crate) fn forget_session(&self, hash: &SecretHash) {
        lock(&self.sessions).remove(hash);
    }

    /// Forgets every session of `operator` (its account or password changed).
    pub(crate) fn forget_sessions_of(&self, operator: cartloop_core::ids::UserId) {
        lock(&self.sessions).retain(|_, (session, _)| session.account.operator.id != operator);
    }
}

/// The principal making a request, with what the audit log and `GET /me` show of it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// What it may do.
    pub principal: Principal,
    /// Who it is, for the audit log.
    pub actor: Actor,
    /// The session's hash, when signed in by cookie (sign-out ends it; a password change
    /// keeps it and ends the others).
    pub(crate) session: Option<SecretHash>,
}

impl Caller {
    /// The deployment token's holder.
    pub(crate) fn token() -> Self {
        Self {
            principal: Principal::deployment_token(),
            actor: Actor {
                kind: ActorKind::Token,
                id: None,
                name: None,
            },
            session: None,
        }
    }

    /// A principal an embedder resolved itself.
    fn embedded(principal: Principal) -> Self {
        let (kind, id) = match principal.via() {
            Via::Token => (ActorKind::Token, None),
            Via::Key => (ActorKind::Key, None),
            Via::Session => (ActorKind::Operator, principal.operator().map(|o| o.0)),
        };
        Self {
            principal,
            actor: Actor {
                kind,
                id,
                name: None,
            },
            session: None,
        }
    }

    /// Refuses unless `access` allows; another store's thing is `not_found`.
    pub(crate) fn check(
        &self,
        access: Access,
        not_found: impl FnOnce() -> ApiError,
    ) -> Result<(), ApiError> {
        match access {
            Access::Allowed => Ok(()),
            Access::NotFound => Err(not_found()),
            Access::Forbidden { missing } => Err(ApiError::missing_permission(missing)),
        }
    }
}

/// A [`Denied`] as the API answers it: `not_found` as given, else 403 naming the permission.
pub(crate) fn denied(denied: Denied, not_found: impl FnOnce() -> ApiError) -> ApiError {
    match denied {
        Denied::NotFound => not_found(),
        Denied::Forbidden { missing } => ApiError::missing_permission(missing),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

/// Resolves the [`Caller`] of every request (before routing, so an unknown path without
/// credentials is 401 too), refuses what the principal may not reach at all, and records
/// in the audit log every change that succeeds and every refusal.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedRoute>()
        .map(|route| route.0);
    let public = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|m| crate::console::is_console_file(m.as_str()))
        || route.is_some_and(|r| PUBLIC.contains(&r));
    if public {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let resolved = match request.extensions().get::<Principal>() {
        Some(principal) => Ok(Caller::embedded(*principal)),
        None => resolve(&state, request.headers(), &method).await,
    };
    let caller = match resolved {
        Ok(caller) => caller,
        Err(refused) => {
            let response = refused.into_response();
            state.audit.record(Outcome {
                caller: None,
                method: &method,
                route,
                path: &path,
                status: response.status().as_u16(),
                target: None,
            });
            return response;
        }
    };
    let reachable = caller.principal.role() != access::AccessRole::Inbound
        || route.is_some_and(|r| INBOUND.contains(&r));
    let response = if reachable {
        request.extensions_mut().insert(caller.clone());
        next.run(request).await
    } else {
        ApiError::missing_permission(access::permission::API).into_response()
    };
    state.audit.record(Outcome {
        caller: Some((&caller.actor, caller.principal.store())),
        method: &method,
        route,
        path: &path,
        status: response.status().as_u16(),
        target: response.extensions().get::<AuditTarget>(),
    });
    response
}

/// The caller of a request from its headers.
async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Caller, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "invalid_authorization",
            "more than one Authorization header; send exactly one",
        ));
    }
    if let Some(value) = first {
        let presented = value.to_str().ok().and_then(bearer_token).ok_or_else(|| {
            ApiError::unauthenticated(
                "unauthorized",
                "the Authorization header is not `Bearer <token or API key>`",
            )
        })?;
        if presented.starts_with(API_KEY_PREFIX) {
            return key_caller(state, presented).await;
        }
        return match &state.api_token {
            Some(token) if constant_time_eq(presented.as_bytes(), token.as_bytes()) => {
                Ok(Caller::token())
            }
            Some(_) => Err(ApiError::unauthorized()),
            // An open deployment (development, on a loopback address) takes anything.
            None => Ok(Caller::token()),
        };
    }
    if let Some(cookie) = session_cookie(headers)? {
        return session_caller(state, headers, method, cookie).await;
    }
    match &state.api_token {
        Some(_) => Err(ApiError::unauthorized()),
        None => Ok(Caller::token()),
    }
}

async fn key_caller(state: &AppState, presented: &str) -> Result<Caller, ApiError> {
    let hash = KeyHash::of(presented).map_err(|e| {
        ApiError::unauthenticated("invalid_api_key", format!("malformed API key: {e}"))
    })?;
    let key = match state.credentials.key(hash.as_bytes()) {
        Some(key) => Some(key),
        None => {
            let found = state.storage.api_key_by_hash(hash.as_bytes()).await?;
            if let Some(key) = &found {
                state.credentials.keep_key(*hash.as_bytes(), key);
            }
            found
        }
    };
    let key = key.filter(|key| key.revoked_at.is_none()).ok_or_else(|| {
        ApiError::unauthenticated("invalid_api_key", "unknown or revoked API key")
    })?;
    let principal = Principal::api_key(key.role, key.store_id, key.operator_id).map_err(|e| {
        ApiError::internal(format!("stored API key {} is inconsistent: {e}", key.id))
    })?;
    Ok(Caller {
        principal,
        actor: Actor {
            kind: ActorKind::Key,
            id: Some(key.id),
            name: Some(key.name.as_str().to_owned()),
        },
        session: None,
    })
}

async fn session_caller(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    cookie: &str,
) -> Result<Caller, ApiError> {
    let hash = SessionHash::of(cookie).map_err(|e| {
        ApiError::unauthenticated(
            "invalid_session",
            format!("malformed {SESSION_COOKIE} cookie: {e}"),
        )
    })?;
    let now = state.clock.now();
    let limits = session_lifetime::LIMITS;
    // A remembered session still in its limits, whose use need not be recorded yet.
    let remembered = state.credentials.session(hash.as_bytes()).filter(|s| {
        now - s.last_used_at < limits.touch_every
            && now < session_lifetime::ends_at(s.created_at, s.last_used_at)
    });
    let session = match remembered {
        Some(session) => Some(session),
        None => {
            let found = state.storage.session(hash.as_bytes(), now, limits).await?;
            if let Some(session) = &found {
                state.credentials.keep_session(*hash.as_bytes(), session);
            }
            found
        }
    };
    let session = session.ok_or_else(|| {
        ApiError::unauthenticated(
            "invalid_session",
            "the session has ended (signed out, expired or replaced): sign in again",
        )
    })?;
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if changes {
        same_origin(state, headers)?;
    }
    let account = session.account;
    Ok(Caller {
        principal: Principal::session(account.role, account.operator.store_id, account.operator.id),
        actor: Actor {
            kind: ActorKind::Operator,
            id: Some(account.operator.id.0),
            name: Some(account.operator.name.as_str().to_owned()),
        },
        session: Some(*hash.as_bytes()),
    })
}

/// The value of the `cartloop_session` cookie, if the request has one.
///
/// # Errors
/// 401 `invalid_session` when it is there twice with different values.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let Some((name, cookie)) = pair.trim().split_once('=') else {
                continue;
            };
            if name.trim() != SESSION_COOKIE {
                continue;
            }
            let cookie = cookie.trim().trim_matches('"');
            match found {
                Some(other) if other != cookie => {
                    return Err(ApiError::unauthenticated(
                        "invalid_session",
                        format!("more than one {SESSION_COOKIE} cookie"),
                    ))
                }
                _ => found = Some(cookie),
            }
        }
    }
    Ok(found)
}

/// The origin (`scheme://host[:port]`) the console is served from: `PUBLIC_URL`'s, else the
/// request's own `Host`.
fn own_origin(state: &AppState, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &state.public_url {
        return origin_of(url);
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    Some(format!("http://{}", host.to_ascii_lowercase()))
}

/// `scheme://host[:port]` of an absolute URL, lowercased, without a default port.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, host)| host);
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("http", Some((host, "80"))) | ("https", Some((host, "443"))) => host,
        _ => authority,
    };
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// A change made by session cookie must come from the server's own pages.
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .and_then(origin_of);
    let own = own_origin(state, headers);
    match (presented, own) {
        (Some(presented), Some(own)) if presented == own => Ok(()),
        (None, _) => Err(ApiError::cross_origin(
            "a change made with the session cookie needs an Origin (or Referer) header of this server",
        )),
        (Some(presented), _) => Err(ApiError::cross_origin(format!(
            "a change made with the session cookie must come from this server's pages, not {presented}"
        ))),
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_without_default_ports_or_paths() {
        assert_eq!(
            origin_of("https://Chat.Example.com:443/x?y").as_deref(),
            Some("https://chat.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            origin_of("http://localhost:80").as_deref(),
            Some("http://localhost")
        );
        assert_eq!(origin_of("null"), None);
        assert_eq!(origin_of("https://"), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; cartloop_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(session_cookie(&headers).unwrap(), Some("abc"));
        headers.append(header::COOKIE, "cartloop_session=other".parse().unwrap());
        assert!(session_cookie(&headers).is_err());
        assert_eq!(session_cookie(&HeaderMap::new()).unwrap(), None);
    }
}
