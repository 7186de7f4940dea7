//! The operator console: a page, its script and its stylesheet, embedded at compile time
//! and served without the API token (the API calls it makes need one: the page signs an
//! operator in with `POST /login`, or takes the deployment token or a key for admins, and
//! asks `GET /me` who it is). Nothing in the page is inline, so its Content-Security-Policy (see `pages`) refuses every inline script and
//! style: an injected one does not run.

use crate::pages;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Where the console page is served.
pub(crate) const PATHS: [&str; 3] = ["/", "/console", "/console/"];
/// The console's script.
pub(crate) const JS_PATH: &str = "/console/console.js";
/// The console's stylesheet.
pub(crate) const CSS_PATH: &str = "/console/console.css";

/// Whether `path` (a matched route) is one of the console's files, which load without the
/// API token: they hold no data, and the page asks for the token itself.
pub(crate) fn is_console_file(path: &str) -> bool {
    PATHS.contains(&path) || path == JS_PATH || path == CSS_PATH
}

/// A console file: `body` as `content_type`, revalidated on every load (a new build's
/// console replaces the old at once), with the headers of every page.
fn file(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    pages::secure(response.headers_mut());
    response
}

/// The console page.
pub(crate) async fn page() -> Response {
    file(
        "text/html; charset=utf-8",
        include_str!("../assets/console/index.html"),
    )
}

/// The console's script.
pub(crate) async fn script() -> Response {
    file(
        "text/javascript; charset=utf-8",
        include_str!("../assets/console/console.js"),
    )
}

/// The console's stylesheet.
pub(crate) async fn stylesheet() -> Response {
    file(
        "text/css; charset=utf-8",
        include_str!("../assets/console/console.css"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
