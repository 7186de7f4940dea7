//! The pages a browser loads: the operator console (its page, script and stylesheet), and
//! the headers every page carries, the unsubscribe pages' too.
//!
//! The console is three files embedded at compile time, so the Content-Security-Policy can
//! allow scripts and styles from the server's own origin only: an injected inline script
//! or `style` attribute does not run. The headers on every page:
//!
//! - [`CONTENT_SECURITY_POLICY`]: nothing loads from elsewhere, no inline script or
//!   style, no framing (clickjacking), no `<base>` rewriting, forms post only here;
//! - `X-Content-Type-Options: nosniff`: a file is only ever what its content type says;
//! - `Referrer-Policy: no-referrer`: an unsubscribe page's address holds its token, which
//!   must not travel to another site in a `Referer`.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The policy of every page.
pub(crate) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// The console page's paths.
pub(crate) const CONSOLE_PAGE_PATHS: [&str; 3] = ["/", "/console", "/console/"];
/// The console's script.
pub(crate) const CONSOLE_JS_PATH: &str = "/console/console.js";
/// The console's stylesheet.
pub(crate) const CONSOLE_CSS_PATH: &str = "/console/console.css";

/// Whether `path` (a matched route) is one of the console's files, which load without the
/// API token: they hold no data, and the page asks for the token itself.
pub(crate) fn is_console_file(path: &str) -> bool {
    CONSOLE_PAGE_PATHS.contains(&path) || path == CONSOLE_JS_PATH || path == CONSOLE_CSS_PATH
}

/// Sets the headers every page carries, with `policy` as its CSP.
fn secure(headers: &mut HeaderMap, policy: HeaderValue) {
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// Sets the headers every page carries on a console response.
fn console_headers(headers: &mut HeaderMap) {
    secure(headers, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
}

/// The headers of a page whose only style is one inline `<style>` element, `style`: the
/// policy of every page, plus that element's SHA-256, so it applies and no other inline
/// style does (no `'unsafe-inline'`).
pub(crate) fn secure_with_inline_style(headers: &mut HeaderMap, style: &str) {
    use base64::Engine;
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
    let policy = format!("{CONTENT_SECURITY_POLICY}; style-src 'sha256-{digest}'");
    secure(
        headers,
        HeaderValue::try_from(policy).expect("base64 is a valid header value"),
    );
}

/// A console file: `body` as `content_type`, revalidated on every load (a new build's
/// console replaces the old at once).
fn console_file(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    console_headers(response.headers_mut());
    response
}

/// The operator console page.
pub(crate) async fn console_page() -> Response {
    console_file(
        "text/html; charset=utf-8",
        include_str!("../assets/console/index.html"),
    )
}

/// The console's script.
pub(crate) async fn console_js() -> Response {
    console_file(
        "text/javascript; charset=utf-8",
        include_str!("../assets/console/console.js"),
    )
}

/// The console's stylesheet.
pub(crate) async fn console_css() -> Response {
    console_file(
        "text/css; charset=utf-8",
        include_str!("../assets/console/console.css"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inline_style_is_allowed_by_its_hash_alone() {
        let mut headers = HeaderMap::new();
        secure_with_inline_style(&mut headers, "body{margin:0}");
        // printf '%s' 'body{margin:0}' | openssl dgst -sha256 -binary | base64
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            format!(
                "{CONTENT_SECURITY_POLICY}; style-src 'sha256-{}'",
                "IAdwN3biDCQ3brrgp1m8kBEsPQYyqfREKOEfeoREopc="
            )
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    }

    #[test]
    fn the_console_files_are_public_and_nothing_else_is() {
        for path in [
            "/",
            "/console",
            "/console/",
            "/console/console.js",
            "/console/console.css",
        ] {
            assert!(is_console_file(path), "{path}");
        }
        for path in ["/console/other.js", "/conversations/", "/console.js"] {
            assert!(!is_console_file(path), "{path}");
        }
    }
}
