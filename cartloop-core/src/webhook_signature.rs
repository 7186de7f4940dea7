//! Signing webhook deliveries the Standard Webhooks way (SPEC §10).
//!
//! A webhook's secret is `whsec_` and the base64 of 32 random bytes, shown once when the
//! webhook is made. Each attempt is signed over `"{id}.{timestamp}.{body}"` (the event id,
//! the attempt's Unix seconds, the JSON body as sent) with HMAC-SHA256 keyed by the secret's
//! decoded bytes; the `webhook-signature` header is `v1,` and the base64 of the MAC.
//!
//! The random bytes come from the caller (this crate does no I/O). A [`WebhookSecret`]'s
//! `Debug` hides it, so it never reaches a log by accident.
//!
//! # Example
//! ```
//! use cartloop_core::webhook_signature::WebhookSecret;
//!
//! let secret = WebhookSecret::from_bytes([7; 32]);
//! let again = WebhookSecret::parse(secret.expose())?;
//! let signature = again.sign("evt_000000000001", 1_700_000_000, br#"{"id":"evt_000000000001"}"#);
//! assert!(signature.starts_with("v1,"));
//! assert!(secret.verify("evt_000000000001", 1_700_000_000, br#"{"id":"evt_000000000001"}"#, &signature));
//! assert_eq!(format!("{secret:?}"), "WebhookSecret(whsec_…)");
//! # Ok::<(), cartloop_core::webhook_signature::SecretError>(())
//! ```

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// What a secret starts with.
pub const PREFIX: &str = "whsec_";

/// How many random bytes a new secret holds.
pub const SECRET_BYTES: usize = 32;

/// A webhook's signing secret: `whsec_` and base64.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

/// Why a stored secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// It does not start with `whsec_`.
    #[error("a webhook secret starts with whsec_")]
    Prefix,
    /// The rest is not base64 of at least one byte.
    #[error("a webhook secret is whsec_ and base64")]
    Encoding,
}

impl WebhookSecret {
    /// A new secret of these (random) bytes.
    pub fn from_bytes(bytes: [u8; SECRET_BYTES]) -> Self {
        Self {
            text: format!("{PREFIX}{}", STANDARD.encode(bytes)),
            key: bytes.to_vec(),
        }
    }

    /// The secret `text` shows.
    ///
    /// # Errors
    /// [`SecretError`] when it lacks the prefix or is not base64.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Encoding)?;
        if key.is_empty() {
            return Err(SecretError::Encoding);
        }
        Ok(Self {
            text: text.to_owned(),
            key,
        })
    }

    /// The secret as text, to show once or store; never to log.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The `webhook-signature` header of an attempt: `v1,` and base64 of
    /// HMAC-SHA256 over `"{id}.{timestamp}.{body}"`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    /// Whether `header` (one or more space-separated signatures) holds a `v1` signature of
    /// this secret over the attempt; compared in constant time.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header.split(' ').any(|part| {
            part.strip_prefix("v1,")
                .and_then(|sig| STANDARD.decode(sig).ok())
                .is_some_and(|sig| {
                    let mut mac = self.keyed();
                    update(&mut mac, id, timestamp, body);
                    mac.verify_slice(&sig).is_ok()
                })
        })
    }

    fn keyed(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let mut mac = self.keyed();
        update(&mut mac, id, timestamp, body);
        mac.finalize().into_bytes().to_vec()
    }
}

fn update(mac: &mut Hmac<Sha256>, id: &str, timestamp: i64, body: &[u8]) {
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret({PREFIX}…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks reference vector (standard-webhooks/standard-webhooks, spec tests).
    #[test]
    fn matches_the_standard_webhooks_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn new_secrets_round_trip_and_verify() {
        let secret = WebhookSecret::from_bytes([42; SECRET_BYTES]);
        assert!(secret.expose().starts_with(PREFIX));
        let parsed = WebhookSecret::parse(secret.expose()).unwrap();
        assert_eq!(parsed, secret);
        let sig = secret.sign("evt_000000000001", 5, b"{}");
        assert!(secret.verify("evt_000000000001", 5, b"{}", &format!("v1,bad {sig}")));
        assert!(!secret.verify("evt_000000000001", 6, b"{}", &sig));
        assert!(!WebhookSecret::from_bytes([1; 32]).verify("evt_000000000001", 5, b"{}", &sig));
    }

    #[test]
    fn bad_secrets() {
        assert_eq!(WebhookSecret::parse("abc"), Err(SecretError::Prefix));
        assert_eq!(WebhookSecret::parse("whsec_"), Err(SecretError::Encoding));
        assert_eq!(WebhookSecret::parse("whsec_!!"), Err(SecretError::Encoding));
    }

    #[test]
    fn debug_hides_the_secret() {
        let secret = WebhookSecret::from_bytes([9; SECRET_BYTES]);
        let shown = format!("{secret:?}");
        assert!(!shown.contains(&secret.expose()[PREFIX.len()..]), "{shown}");
    }
}
