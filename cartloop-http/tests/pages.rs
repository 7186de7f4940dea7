//! The pages a browser loads, the console's and the unsubscribe ones: each carries the
//! security headers, loads without the API token, and the console has no inline script or
//! style for its Content-Security-Policy to refuse.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine;
use cartloop_core::domain::ConversationContext;
use cartloop_core::email_address::EmailAddress;
use cartloop_core::ids::ConversationId;
use cartloop_core::ids::UserId;
use cartloop_core::ports::Links;
use common::{app_with, text_of, App};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The policy of every page, as written out for browsers.
const POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Links whose unsubscribe token for client `n` is `u<n>-ok` (the signing is the runtime's
/// and tested there; these pages only need a token that holds and one that does not).
struct StandInLinks;

fn links() -> StandInLinks {
    StandInLinks
}

fn unsubscribe_token(client: UserId) -> String {
    format!("u{}-ok", client.0)
}

impl Links for StandInLinks {
    fn reply_to(&self, _context: &ConversationContext) -> Option<EmailAddress> {
        None
    }

    fn unsubscribe_url(&self, context: &ConversationContext) -> Option<String> {
        Some(format!(
            "https://chat.example.com/unsubscribe/{}",
            unsubscribe_token(context.client.id)
        ))
    }

    fn conversation_of_reply(&self, _address: &str) -> Option<ConversationId> {
        None
    }

    fn client_of_unsubscribe(&self, token: &str) -> Option<UserId> {
        let id = token.strip_prefix('u')?.strip_suffix("-ok")?;
        id.parse().ok().map(UserId)
    }
}

/// With a token configured, so the pages show they need none.
async fn pages_app() -> App {
    app_with(|state| {
        state.links = Some(Arc::new(links()));
        state.api_token = Some("s3cret".into());
    })
    .await
}

/// A page's status, headers and text.
async fn load(app: &App, method: &str, uri: &str) -> (StatusCode, HeaderMap, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = app.call(request).await;
    let headers = response.headers().clone();
    let (status, _, text) = text_of(response).await;
    (status, headers, text)
}

/// The headers every page carries, with `policy` as its CSP.
fn assert_page_headers(uri: &str, headers: &HeaderMap, policy: &str) {
    assert_eq!(headers["content-security-policy"], policy, "{uri}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{uri}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{uri}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("unsafe-inline"), "{uri}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{uri}: {csp}");
}

#[tokio::test]
async fn the_console_and_its_files_carry_the_headers_and_need_no_token() {
    let app = pages_app().await;
    let files = [
        ("/", "text/html; charset=utf-8"),
        ("/console", "text/html; charset=utf-8"),
        ("/console/", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
    ];
    for (uri, content_type) in files {
        let (status, headers, body) = load(&app, "GET", uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(headers["content-type"], content_type, "{uri}");
        assert_eq!(headers["cache-control"], "no-cache", "{uri}");
        assert_page_headers(uri, &headers, POLICY);
        assert!(!body.is_empty(), "{uri}");
    }
    // Only those files: anything else under /console/ is the API's, and needs the token.
    let (status, _, _) = load(&app, "GET", "/console/other.js").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_console_page_loads_its_script_and_stylesheet_and_has_nothing_inline() {
    let app = pages_app().await;
    let (_, _, html) = load(&app, "GET", "/console/").await;
    assert!(
        html.contains(r#"<script src="/console/console.js"></script>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<link rel="stylesheet" href="/console/console.css">"#),
        "{html}"
    );
    let lower = html.to_ascii_lowercase();
    assert_eq!(
        lower.matches("<script").count(),
        1,
        "one script element, the file"
    );
    for inline in ["<style", " style=", "javascript:"] {
        assert!(!lower.contains(inline), "the page holds {inline:?}");
    }
    // No inline event handler attribute (onclick=, onload=, ...).
    let handler = lower
        .split(|c: char| c.is_whitespace())
        .find(|word| word.starts_with("on") && word.contains('='));
    assert_eq!(handler, None);

    let (_, _, script) = load(&app, "GET", "/console/console.js").await;
    assert!(script.starts_with("'use strict';"), "{}", &script[..40]);
    assert!(!script.contains("</script>"));
    let (_, _, css) = load(&app, "GET", "/console/console.css").await;
    assert!(css.starts_with(":root {"), "{}", &css[..40]);
}

/// The policy of an unsubscribe page: every page's, plus its one inline style by hash.
fn assert_unsubscribe_headers(uri: &str, headers: &HeaderMap, html: &str) {
    let style = html
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .map(|(style, _)| style)
        .expect("the page's style");
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
    let policy = format!("{POLICY}; style-src 'sha256-{digest}'");
    assert_page_headers(uri, headers, &policy);
    assert_eq!(headers["cache-control"], "no-store", "{uri}");
    assert_eq!(html.matches("<style>").count(), 1, "{uri}: one style");
    assert!(!html.contains("<script"), "{uri}");
    assert!(!html.contains(" style="), "{uri}");
}

#[tokio::test]
async fn the_unsubscribe_pages_carry_the_headers() {
    let app = pages_app().await;
    let path = format!("/unsubscribe/{}", unsubscribe_token(UserId(27)));

    // The confirm page, with and without the trailing slash.
    for uri in [path.clone(), format!("{path}/")] {
        let (status, headers, html) = load(&app, "GET", &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(html.contains("<form method=\"post\">"), "{html}");
        assert_unsubscribe_headers(&uri, &headers, &html);
    }

    // The answer page of the POST, and the page once unsubscribed.
    let (status, headers, html) = load(&app, "POST", &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("You are unsubscribed"), "{html}");
    assert_unsubscribe_headers(&path, &headers, &html);
    let (status, headers, html) = load(&app, "GET", &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<form"), "{html}");
    assert_unsubscribe_headers(&path, &headers, &html);

    // A link that is not valid: a page too, saying so.
    let uri = "/unsubscribe/u27-0000";
    let (status, headers, html) = load(&app, "GET", uri).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("not valid"), "{html}");
    assert_unsubscribe_headers(uri, &headers, &html);
}
