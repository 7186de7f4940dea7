//! Extractors whose rejections are [`ApiError`]s, so malformed requests get the same JSON
//! error shape as everything else.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body parsed with serde; any content type is accepted (as `curl -d` sends
/// form-encoded by default), the body must be JSON.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "invalid_json",
                "request body is empty; expected JSON",
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            let code = match e.classify() {
                serde_json::error::Category::Data => "invalid_request",
                _ => "invalid_json",
            };
            ApiError::bad_request(code, format!("invalid request body: {e}"))
        })
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(crate::BODY_LIMIT)
    } else {
        ApiError::bad_request("invalid_body", rejection.body_text())
    }
}

/// A positive integer id from the path, e.g. `/conversation/{id}/`.
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::bad_request("invalid_id", e.body_text()))?;
        parse_id(&raw).map(PathId).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_id",
                format!("invalid id {raw:?}: expected a positive integer"),
            )
        })
    }
}

/// A positive 64-bit integer, or `None`.
pub(crate) fn parse_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}
