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
                format!(
                    "invalid id {}: expected a positive integer below 2^63",
                    quoted(&raw)
                ),
            )
        })
    }
}

/// A positive 64-bit integer written in decimal digits, or `None`.
pub(crate) fn parse_id(raw: &str) -> Option<i64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

/// How much of a value from the request an error message shows.
const SHOWN: usize = 40;

/// `raw` quoted for an error message, cut to its first 40 characters.
pub(crate) fn quoted(raw: &str) -> String {
    let (shown, more) = shown(raw);
    format!("{shown:?}{more}")
}

/// `raw` cut to its first 40 characters for an error message, unquoted (e.g. a path).
pub(crate) fn cut(raw: &str) -> String {
    let (shown, more) = shown(raw);
    format!("{shown}{more}")
}

/// The first 40 characters of `raw`, and `"..."` if there were more.
fn shown(raw: &str) -> (&str, &'static str) {
    match raw.char_indices().nth(SHOWN) {
        Some((end, _)) => (&raw[..end], "..."),
        None => (raw, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_decimal_integers() {
        assert_eq!(parse_id("1"), Some(1));
        assert_eq!(parse_id("0042"), Some(42));
        assert_eq!(parse_id("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1.5",
            " 1",
            "abc",
            "9223372036854775808",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        assert_eq!(quoted("abc"), "\"abc\"");
        let long = "9".repeat(10_000);
        assert_eq!(quoted(&long), format!("{:?}...", "9".repeat(40)));
    }
}
