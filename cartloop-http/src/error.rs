//! The one error type of the API: every failure becomes
//! `{"error":{"code","message",...}}` with the status it implies.
//!
//! Besides `code` and `message`, an error may carry `position` (the 0-based character a
//! payload error points at), `field` (the request field a 422 is about) or `clientId` (the
//! existing client of a 409 `client_exists`). A 5xx body is generic; its cause is logged.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cartloop_core::chat::{ChatError, PostChatError};
use cartloop_core::conversations::InvalidCursor;
use cartloop_core::directory::DirectoryError;
use cartloop_core::disk_fault::DiskFault;
use cartloop_core::inbound::InboundError;
use cartloop_core::ports::StorageError;
use cartloop_core::validate::ValidationError;
use serde::Serialize;
use utoipa::ToSchema;

/// An API error: a status, a stable code, a message that says what and where, and the
/// cause of a server fault (logged, never sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    position: Option<usize>,
    field: Option<&'static str>,
    /// Rarely set, so boxed: the error stays small for the `Result`s that carry it.
    extra: Option<Box<Extra>>,
    cause: Option<String>,
}

/// What few errors carry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Extra {
    client_id: Option<i64>,
    permission: Option<&'static str>,
    retry_after: Option<u64>,
}

/// How long a client is told to wait before retrying a write the full disk refused: an
/// operator frees space in minutes, not milliseconds, and a shorter wait would only add
/// load.
pub const STORAGE_FULL_RETRY_AFTER_SECS: u32 = 30;

/// Set on the response of a request refused because the storage's disk is full or
/// failing, for the metrics layer to count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StorageFullAnswered;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    error: ErrorObject,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorObject {
    /// A stable, machine-readable code, e.g. `invalid_character`, `conversation_not_found`.
    #[schema(example = "invalid_character")]
    code: &'static str,
    /// What and where, for people.
    #[schema(example = "invalid character 'é' at position 10")]
    message: String,
    /// The 0-based character index a payload error points at.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<usize>,
    /// The request field a 422 is about (`timeZone`, `email`, `storeId`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
    /// With `client_exists`: the client that has this email.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<i64>,
    /// With `forbidden`: the permission the caller lacks, e.g. `conversation.assigned_to_you`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "conversation.assigned_to_you")]
    permission: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            position: None,
            field: None,
            extra: None,
            cause: None,
        }
    }

    /// 400: malformed JSON, wrong types, missing fields, bad ids or query parameters.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 `unauthorized`: the bearer token is missing or wrong.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    }

    /// 401 with its own code and message: `invalid_credentials` (a wrong email or
    /// password), `invalid_api_key`, `invalid_session`.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403 `forbidden` naming the permission the caller lacks (one of
    /// `cartloop_core::access::permission`'s).
    pub fn missing_permission(permission: &'static str) -> Self {
        let mut e = Self::forbidden(format!(
            "not allowed: this needs the {permission} permission"
        ));
        e.extra = Some(Box::new(Extra {
            permission: Some(permission),
            ..Extra::default()
        }));
        e
    }

    /// 403 `cross_origin`: a request signed in by its session cookie that changes something
    /// came from another site.
    pub fn cross_origin(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "cross_origin", message)
    }

    /// 429 `too_many_attempts` with `Retry-After`: sign-ins for this email are locked out.
    pub fn too_many_attempts(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed sign-ins for this email: try again in {retry_after_secs} s"),
        );
        e.extra = Some(Box::new(Extra {
            retry_after: Some(retry_after_secs),
            ..Extra::default()
        }));
        e
    }

    /// 404 with a code such as `conversation_not_found`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 405 `method_not_allowed`: the route exists, the method does not.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        )
    }

    /// 408 `request_timeout`: the request body did not arrive in time.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    }

    /// 409 with a code such as `conversation_resolved`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 413 `payload_too_large`: the body is over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 422 with a code such as `invalid_time_zone`; see [`with_field`](Self::with_field).
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 422: the payload failed validation; the code is the validation error's and
    /// `position` is set when it points at a character.
    pub fn validation(error: &ValidationError) -> Self {
        let mut e = Self::unprocessable(error.code(), error.to_string());
        e.position = error.position();
        e
    }

    /// 501 `not_configured`: the deployment did not set up what this route needs.
    pub fn not_configured(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "not_configured", message)
    }

    /// 503 `unavailable`: the storage cannot be reached, or the request took too long on
    /// our side. `cause` is logged.
    pub fn unavailable(cause: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "service temporarily unavailable, retry later",
        );
        e.cause = Some(cause.into());
        e
    }

    /// 503 `storage_full` with `Retry-After`: the storage cannot write to its disk (full or
    /// failing), a passing fault; nothing was stored. `cause` is not logged per request:
    /// the storage logs the fault, at most once a minute.
    pub fn storage_full(cause: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_full",
            "the database's disk is full or failing: nothing was stored; retry later",
        );
        e.cause = Some(cause.into());
        e
    }

    /// 500 `internal`: a bug or an unexpected storage failure. `cause` is logged.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        );
        e.cause = Some(cause.into());
        e
    }

    /// The same error, about request field `field`.
    pub fn with_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The permission a `forbidden` lacks, if it names one.
    pub fn permission(&self) -> Option<&'static str> {
        self.extra.as_ref().and_then(|x| x.permission)
    }

    /// The request field the error is about, if any.
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let storage_full = self.code == "storage_full";
        if let Some(cause) = &self.cause {
            if storage_full {
                tracing::debug!(code = self.code, %cause, "unavailable");
            } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(code = self.code, %cause, "unavailable");
            } else {
                tracing::error!(code = self.code, %cause, "internal error");
            }
        }
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let retry_after = self.extra.as_ref().and_then(|x| x.retry_after);
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code,
                message: self.message,
                position: self.position,
                field: self.field,
                client_id: self.extra.as_ref().and_then(|x| x.client_id),
                permission: self.extra.as_ref().and_then(|x| x.permission),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if storage_full {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(STORAGE_FULL_RETRY_AFTER_SECS),
            );
            response.extensions_mut().insert(StorageFullAnswered);
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        // The variants' texts are safe to show; the causes (database messages) are only
        // logged.
        match &e {
            StorageError::Unavailable(_) if DiskFault::of(&e).is_some() => {
                Self::storage_full(e.detail())
            }
            StorageError::Unavailable(_) => Self::unavailable(e.detail()),
            StorageError::NotFound(_) => Self::not_found("not_found", e.to_string()),
            StorageError::Conflict(_) => Self::conflict("conflict", e.to_string()),
            StorageError::Other(_) => Self::internal(e.detail()),
        }
    }
}

impl From<PostChatError> for ApiError {
    fn from(e: PostChatError) -> Self {
        match e {
            PostChatError::ConversationNotFound(_) => {
                Self::not_found("conversation_not_found", e.to_string())
            }
            PostChatError::NotInConversation { .. } => Self::forbidden(e.to_string()),
            PostChatError::Forbidden { missing } => Self::missing_permission(missing),
            PostChatError::ConversationResolved(_) => {
                Self::conflict("conversation_resolved", e.to_string())
            }
            PostChatError::ClientUnsubscribed(_) => {
                Self::conflict("client_unsubscribed", e.to_string())
            }
            PostChatError::IdempotencyKeyReused => {
                Self::conflict("idempotency_key_reused", e.to_string())
            }
            PostChatError::Invalid(v) => Self::validation(&v),
            PostChatError::InvalidSendAt(e) => {
                Self::unprocessable("invalid_send_at", e.to_string()).with_field("sendAt")
            }
            PostChatError::Storage(s) => s.into(),
        }
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::InvalidField { field, .. } => {
                Self::unprocessable("invalid_field", e.to_string()).with_field(field)
            }
            DirectoryError::UnknownReference { field, what, .. } => {
                let code = match what {
                    "store" => "unknown_store",
                    "operator" => "unknown_operator",
                    "client" => "unknown_client",
                    _ => "unknown_reference",
                };
                Self::unprocessable(code, e.to_string()).with_field(field)
            }
            DirectoryError::OperatorNotInStore { .. } => {
                Self::unprocessable("operator_not_in_store", e.to_string()).with_field("operatorId")
            }
            DirectoryError::ClientNotInStore { .. } => {
                Self::unprocessable("client_not_in_store", e.to_string()).with_field("clientId")
            }
            DirectoryError::ClientExists { existing, .. } => {
                let mut error = Self::conflict("client_exists", e.to_string()).with_field("email");
                error.extra.get_or_insert_with(Box::default).client_id = Some(existing.0);
                error
            }
            DirectoryError::NotFound { what, .. } => {
                let code = match what {
                    "store" => "store_not_found",
                    "client" => "client_not_found",
                    "operator" => "operator_not_found",
                    "conversation" => "conversation_not_found",
                    _ => "not_found",
                };
                Self::not_found(code, e.to_string())
            }
            DirectoryError::Storage(s) => s.into(),
        }
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::NotFound(_) => Self::not_found("chat_not_found", e.to_string()),
            ChatError::NotCancellable { .. } => Self::conflict("not_cancellable", e.to_string()),
            ChatError::NotRetryable { .. } => Self::conflict("not_retryable", e.to_string()),
            ChatError::Storage(s) => s.into(),
        }
    }
}

impl From<InboundError> for ApiError {
    fn from(e: InboundError) -> Self {
        match e {
            InboundError::Unmatched => Self::unprocessable("unmatched_reply", e.to_string()),
            InboundError::Empty => Self::unprocessable("empty_reply", e.to_string()),
            InboundError::Storage(s) => s.into(),
        }
    }
}

impl From<cartloop_core::demo::DemoError> for ApiError {
    fn from(e: cartloop_core::demo::DemoError) -> Self {
        match e {
            cartloop_core::demo::DemoError::Conflict(_) => {
                Self::conflict("import_conflict", e.to_string())
            }
            cartloop_core::demo::DemoError::Storage(s) => s.into(),
        }
    }
}

impl From<InvalidCursor> for ApiError {
    fn from(e: InvalidCursor) -> Self {
        Self::bad_request("invalid_cursor", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn storage_causes_never_reach_the_body() {
        let secret = "password authentication failed for user \"cartloop\" at 10.0.0.5";
        for e in [
            StorageError::unavailable(secret),
            StorageError::other(secret),
        ] {
            let (status, value) = body(e.into()).await;
            assert!(status.is_server_error());
            assert!(!value.to_string().contains("password"), "{value}");
        }
    }

    #[tokio::test]
    async fn a_full_disk_is_503_storage_full_with_retry_after() {
        use cartloop_core::disk_fault::DiskFaultKind;
        let e = DiskFault::new(DiskFaultKind::Full, "database or disk is full").into_error();
        let response = ApiError::from(e).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
        assert!(response.extensions().get::<StorageFullAnswered>().is_some());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["error"]["code"], "storage_full");
        assert!(!value.to_string().contains("database or disk"), "{value}");
        // Another unavailable storage stays a plain 503.
        let (status, value) = body(StorageError::unavailable("pool timed out").into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(value["error"]["code"], "unavailable");
    }

    #[tokio::test]
    async fn client_exists_carries_the_client_id() {
        let e = DirectoryError::ClientExists {
            email: "ann@example.com".into(),
            existing: cartloop_core::ids::UserId(27),
        };
        let (status, value) = body(e.into()).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(value["error"]["code"], "client_exists");
        assert_eq!(value["error"]["clientId"], 27);
    }
}
