//! The one error type of the API: every failure becomes `{"error":{"code","message"}}` with
//! the status its variant implies.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cartloop_core::chat::PostChatError;
use cartloop_core::ports::StorageError;
use cartloop_core::validate::ValidationError;
use serde::Serialize;

/// An API error. Client errors say what and where; server errors are generic in the body
/// and logged in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: malformed JSON, wrong types, missing fields, bad ids or query parameters.
    BadRequest {
        /// Stable code, e.g. `invalid_json`.
        code: &'static str,
        /// What and where.
        message: String,
    },
    /// 401: the bearer token is missing or wrong.
    Unauthorized,
    /// 403: the user is not part of the conversation.
    Forbidden(String),
    /// 404: unknown conversation or route.
    NotFound {
        /// Stable code.
        code: &'static str,
        /// What was not found.
        message: String,
    },
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: the conversation is resolved, or an idempotency key was reused.
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// 413: the body is larger than the limit.
    PayloadTooLarge(usize),
    /// 422: the payload failed validation.
    Validation(ValidationError),
    /// 503: storage unavailable or the request timed out.
    Unavailable(String),
    /// 500: a bug or an unexpected storage failure; the cause is logged, not returned.
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<usize>,
}

impl ApiError {
    /// A 400 with a code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Validation(e) => e.code(),
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The human message sent to the client.
    pub fn message(&self) -> String {
        match self {
            Self::BadRequest { message, .. }
            | Self::NotFound { message, .. }
            | Self::Conflict { message, .. }
            | Self::Forbidden(message) => message.clone(),
            Self::Unauthorized => "missing or invalid bearer token".to_owned(),
            Self::MethodNotAllowed => "method not allowed on this route".to_owned(),
            Self::PayloadTooLarge(limit) => format!("request body is larger than {limit} bytes"),
            Self::Validation(e) => e.to_string(),
            Self::Unavailable(_) => "service temporarily unavailable, retry later".to_owned(),
            Self::Internal(_) => "internal server error".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(%cause, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "unavailable"),
            _ => {}
        }
        let position = match &self {
            Self::Validation(e) => e.position(),
            _ => None,
        };
        let message = self.message();
        let body = Body {
            error: Inner {
                code: self.code(),
                message: &message,
                position,
            },
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        if self == Self::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(cause) => Self::Unavailable(cause),
            StorageError::NotFound(what) => Self::NotFound {
                code: "not_found",
                message: format!("{what} not found"),
            },
            StorageError::Conflict(what) => Self::Conflict {
                code: "conflict",
                message: what,
            },
            StorageError::Other(cause) => Self::Internal(cause),
        }
    }
}

impl From<PostChatError> for ApiError {
    fn from(e: PostChatError) -> Self {
        match e {
            PostChatError::ConversationNotFound(_) => Self::NotFound {
                code: "conversation_not_found",
                message: e.to_string(),
            },
            PostChatError::NotInConversation { .. } => Self::Forbidden(e.to_string()),
            PostChatError::ConversationResolved(_) => Self::Conflict {
                code: "conversation_resolved",
                message: e.to_string(),
            },
            PostChatError::IdempotencyKeyReused => Self::Conflict {
                code: "idempotency_key_reused",
                message: e.to_string(),
            },
            PostChatError::Invalid(v) => Self::Validation(v),
            PostChatError::Storage(s) => s.into(),
        }
    }
}
