//! How a webhook delivery is signed (SPEC §10, the Standard Webhooks convention): the
//! secret is `whsec_` and the base64 of its key bytes; the `webhook-signature` header is
//! `v1,` and the base64 of HMAC-SHA256 with the key over `{id}.{timestamp}.{body}`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What every webhook secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a secret is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedSecret {
    /// It does not start with `whsec_`.
    #[error("a webhook secret starts with \"whsec_\"")]
    Prefix,
    /// What follows is not base64.
    #[error("a webhook secret is base64 after \"whsec_\"")]
    Base64,
}

/// A signing key, decoded from its secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<hidden>)")
    }
}

impl SigningKey {
    /// The key of `secret` (`whsec_…`).
    ///
    /// # Errors
    /// [`MalformedSecret`] when it is not `whsec_` and base64.
    pub fn from_secret(secret: &str) -> Result<Self, MalformedSecret> {
        let encoded = secret
            .strip_prefix(SECRET_PREFIX)
            .ok_or(MalformedSecret::Prefix)?;
        STANDARD
            .decode(encoded)
            .map(Self)
            .map_err(|_| MalformedSecret::Base64)
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `webhook-signature` header of a delivery with `id` (the event id), `timestamp`
    /// (Unix seconds of this attempt) and `body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (its "Verifying" section).
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_secret_is_whsec_and_base64() {
        assert_eq!(SigningKey::from_secret("abc"), Err(MalformedSecret::Prefix));
        assert_eq!(
            SigningKey::from_secret("whsec_!!"),
            Err(MalformedSecret::Base64)
        );
        let key = SigningKey::from_secret("whsec_AAAA").unwrap();
        assert_eq!(key.bytes(), [0, 0, 0]);
        assert_eq!(format!("{key:?}"), "SigningKey(<hidden>)");
    }
}
