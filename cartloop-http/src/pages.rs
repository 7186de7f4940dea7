//! The headers every page a browser loads carries: the console's files and the
//! unsubscribe pages alike.
//!
//! - [`CONTENT_SECURITY_POLICY`]: nothing loads from elsewhere, no inline script or
//!   style, no framing (clickjacking), no `<base>` rewriting, forms post only here;
//! - `X-Content-Type-Options: nosniff`: a file is only ever what its content type says;
//! - `Referrer-Policy: no-referrer`: an unsubscribe page's address holds its token, which
//!   must not travel to another site in a `Referer`.

use axum::http::{header, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

/// The policy of every page.
pub(crate) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Sets the headers every page carries, with `policy` as its CSP.
fn secure_with(headers: &mut HeaderMap, policy: HeaderValue) {
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

/// Sets the headers every page carries, with [`CONTENT_SECURITY_POLICY`].
pub(crate) fn secure(headers: &mut HeaderMap) {
    secure_with(headers, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
}

/// The headers of a page whose only style is one inline `<style>` element, `style`: the
/// policy of every page, plus that element's SHA-256, so it applies and no other inline
/// style does (no `'unsafe-inline'`).
pub(crate) fn secure_with_inline_style(headers: &mut HeaderMap, style: &str) {
    use base64::Engine;
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
    let policy = format!("{CONTENT_SECURITY_POLICY}; style-src 'sha256-{digest}'");
    secure_with(
        headers,
        HeaderValue::try_from(policy).expect("base64 is a valid header value"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_gets_the_policy_nosniff_and_no_referrer() {
        let mut headers = HeaderMap::new();
        secure(&mut headers);
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    }

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
}
