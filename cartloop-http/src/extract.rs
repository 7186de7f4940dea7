//! Extractors whose rejections are [`ApiError`]s, so malformed requests get the same JSON
//! error shape as everything else.

use crate::error::ApiError;
use crate::BODY_LIMIT;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// A JSON body parsed with serde; any content type is accepted (as `curl -d` sends
/// form-encoded by default), the body must be JSON of at most [`BODY_LIMIT`] bytes.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, BODY_LIMIT).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "invalid_json",
                "request body is empty; expected JSON",
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                return ApiError::bad_request(
                    "invalid_request",
                    format!("invalid request body: {e}"),
                );
            }
            // serde_json reports some values of the wrong kind (`null` for a status) as if
            // the JSON were malformed: tell the two apart.
            if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
                return ApiError::bad_request(
                    "invalid_request",
                    format!(
                        "invalid request body: a value of the wrong kind at line {} column {}",
                        e.line(),
                        e.column()
                    ),
                );
            }
            ApiError::bad_request("invalid_json", format!("invalid request body: {e}"))
        })
    }
}

/// Reads a request body of at most `limit` bytes.
///
/// A declared `Content-Length` over the limit is refused before anything is read (so a
/// client waiting on `Expect: 100-continue` is not told to send it).
///
/// # Errors
/// 413 `payload_too_large` over the limit, 400 `invalid_body` when the body breaks off. A
/// body that stalls is the request timeout's business (408).
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::payload_too_large(limit)),
        Err(e) => {
            tracing::debug!(error = %e, "request body broke off");
            Err(ApiError::bad_request(
                "invalid_body",
                "the request body could not be read",
            ))
        }
    }
}

/// The route a request matched, as the route table names it (`/conversation/{id}/`),
/// put in the request's extensions by the outermost layer; absent when no route matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MatchedRoute(pub(crate) &'static str);

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

/// A path segment as text, e.g. the token of `/unsubscribe/{token}`.
#[derive(Debug, Clone)]
pub struct PathText(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(raw)| PathText(raw))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// The query string's parameters (the last value of a repeated one).
#[derive(Debug, Clone, Default)]
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(map)| QueryMap(map))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// A page size: decimal digits, at least 1; values over `max` are clamped to it.
pub(crate) fn parse_limit(raw: &str, max: u32) -> Result<u32, ApiError> {
    raw.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| raw.parse::<u64>().ok())
        .flatten()
        .filter(|n| *n > 0)
        .map(|n| n.min(u64::from(max)) as u32)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "invalid limit {}: expected an integer from 1 to {max}",
                    quoted(raw)
                ),
            )
        })
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
