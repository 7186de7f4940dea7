//! The operator console: one page for people, embedded at compile time and served without
//! the API token (the API calls it makes need one).

use axum::http::header;
use axum::response::IntoResponse;

/// Where the console is served.
pub(crate) const PATHS: [&str; 3] = ["/", "/console", "/console/"];

/// The console page.
pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../assets/console/index.html"),
    )
}
