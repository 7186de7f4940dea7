//! The secrets the server makes and checks: API keys, session tokens, operators'
//! passwords and webhook secrets.
//!
//! - API keys are `ck_` and 32 random bytes in base64url without padding (43 characters);
//!   a session token is the same 32 random bytes without the prefix (the value of the
//!   `cartloop_session` cookie). Both are shown once and stored only as their SHA-256
//!   ([`KeyHash`], [`SessionHash`]), so a copy of the database opens nothing.
//! - Passwords are hashed with Argon2id into a PHC string ([`hash_password`],
//!   [`verify_password`]), after [`PasswordPolicy`] has checked their length.
//! - Webhook secrets are `whsec_` and 32 random bytes in standard base64. They sign every
//!   delivery, so the server keeps them as they are: unlike a key, a secret the server must
//!   use cannot be stored as a hash.
//!
//! # Why two kinds of hash
//! A key or a session token is 256 random bits: finding one from its hash means trying on
//! the order of 2^255 candidates, which no amount of hardware does, however fast the hash.
//! So a fast hash is enough, and it is what a lookup needs: every request presents its key,
//! the server hashes it once (microseconds) and finds the row by that hash, an index
//! lookup. A slow hash would cost every request, and a salt would make the lookup
//! impossible.
//!
//! A password is chosen by a person and has far fewer bits than its length suggests; a
//! stolen hash can be attacked with a dictionary at billions of guesses per second if the
//! hash is fast. So passwords get the opposite: a random salt each (no precomputed tables,
//! no two alike) and Argon2id with the OWASP parameters (19 MiB of memory, 2 passes, 1
//! lane), which makes every guess cost memory and time. Checking one takes tens of
//! milliseconds of CPU: run [`hash_password`] and [`verify_password`] on the hashing
//! threads ([`on_hashing_thread`]), which [`hash_password_blocking`] and
//! [`verify_password_blocking`] do, never on
//! the async worker threads (they would stall every other request on that thread).
//!
//! Nothing here prints a secret: the types that hold one show only a redacted form in
//! their `Debug`, and errors about a presented key never repeat it.
//!
//! # Example
//! ```
//! use cartloop_http::credentials::{ApiKey, KeyHash};
//!
//! let (key, stored) = ApiKey::generate(); // show `key` once, keep `stored`
//! assert!(key.starts_with("ck_"));
//! assert_eq!(KeyHash::of(&key), Ok(stored)); // what a later request presents
//! assert!(KeyHash::of("ck_too-short").is_err());
//! ```

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cartloop_core::webhook_signature::WebhookSecret;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::OnceLock;
use subtle::ConstantTimeEq;

/// Random bytes in every key, session token and webhook secret.
pub const SECRET_BYTES: usize = 32;
/// Characters of [`SECRET_BYTES`] in base64url without padding.
const ENCODED_CHARS: usize = 43;
/// What every API key starts with.
pub const API_KEY_PREFIX: &str = "ck_";
/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "cartloop_session";

/// `N` bytes from the operating system's random number generator.
///
/// # Panics
/// If the operating system gives none: nothing secret can be made then.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator");
    bytes
}

/// A SHA-256 digest, compared in constant time.
#[derive(Clone, Copy, Eq)]
struct Digest32([u8; 32]);

impl Digest32 {
    fn of(text: &str) -> Self {
        Self(Sha256::digest(text.as_bytes()).into())
    }

    fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl PartialEq for Digest32 {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for Digest32 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for Digest32 {
    /// The first four bytes: enough to tell two apart in a log, not enough to look one up.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// What is wrong with a presented key or token's text. Checked before anything is hashed
/// or looked up; the presented text itself is never repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Length(usize),
    Character(usize),
    Trailing,
}

/// Checks that `text` is [`SECRET_BYTES`] in base64url without padding, as this server
/// writes them.
fn check_encoded(text: &str) -> Result<(), Shape> {
    if let Some(position) = text
        .chars()
        .position(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(Shape::Character(position));
    }
    if text.len() != ENCODED_CHARS {
        return Err(Shape::Length(text.len()));
    }
    // 43 characters carry 258 bits for 256: the decoder refuses non-zero spare bits, so
    // every key has exactly one spelling.
    URL_SAFE_NO_PAD
        .decode(text)
        .map(|_| ())
        .map_err(|_| Shape::Trailing)
}

/// Why a presented API key is not one (401 for the request that sent it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedKey {
    /// It does not start with `ck_`.
    #[error("an API key starts with \"ck_\"")]
    MissingPrefix,
    /// Not 43 characters after the prefix.
    #[error("an API key has 43 characters after \"ck_\", this one has {0}")]
    WrongLength(usize),
    /// A character outside base64url's alphabet, at this position after the prefix.
    #[error(
        "an API key has only letters, digits, '-' and '_' after \"ck_\"; position {0} is not one"
    )]
    InvalidCharacter(usize),
    /// The right characters, but not a spelling this server writes.
    #[error("not an API key this server made")]
    NotCanonical,
}

/// The stored form of an API key: the SHA-256 of its text. Two are compared in constant
/// time; `Debug` shows only the first bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(Digest32);

impl KeyHash {
    /// The hash of a presented key (`Authorization: Bearer ck_...`), to look its row up by.
    ///
    /// # Errors
    /// [`MalformedKey`] when `presented` is not `ck_` and 43 base64url characters, checked
    /// before it is hashed.
    ///
    /// ```
    /// use cartloop_http::credentials::{KeyHash, MalformedKey};
    ///
    /// assert_eq!(KeyHash::of("Bearer ck_abc"), Err(MalformedKey::MissingPrefix));
    /// assert_eq!(KeyHash::of("ck_abc"), Err(MalformedKey::WrongLength(3)));
    /// ```
    pub fn of(presented: &str) -> Result<Self, MalformedKey> {
        let encoded = presented
            .strip_prefix(API_KEY_PREFIX)
            .ok_or(MalformedKey::MissingPrefix)?;
        check_encoded(encoded).map_err(|shape| match shape {
            Shape::Length(n) => MalformedKey::WrongLength(n),
            Shape::Character(at) => MalformedKey::InvalidCharacter(at),
            Shape::Trailing => MalformedKey::NotCanonical,
        })?;
        Ok(Self(Digest32::of(presented)))
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0 .0
    }

    /// The digest as 64 lowercase hex digits: the form a database keeps.
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    /// A stored hash read back; `None` unless it is 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        Digest32::from_hex(hex).map(Self)
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({:?})", self.0)
    }
}

/// Making API keys.
#[derive(Debug)]
pub enum ApiKey {}

impl ApiKey {
    /// A new key: its text, to show once (`ck_` and 43 base64url characters), and the hash
    /// to store.
    ///
    /// # Panics
    /// If the operating system has no random numbers to give.
    pub fn generate() -> (String, KeyHash) {
        let key = format!(
            "{API_KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>())
        );
        let hash = KeyHash(Digest32::of(&key));
        (key, hash)
    }
}

/// Why a session cookie's value is not a session token (the request is then as if it had
/// none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedSession {
    /// Not 43 characters.
    #[error("a session token has 43 characters, this one has {0}")]
    WrongLength(usize),
    /// A character outside base64url's alphabet, at this position.
    #[error("a session token has only letters, digits, '-' and '_'; position {0} is not one")]
    InvalidCharacter(usize),
    /// The right characters, but not a spelling this server writes.
    #[error("not a session token this server made")]
    NotCanonical,
}

/// The stored form of a session token: its SHA-256, as for keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHash(Digest32);

impl SessionHash {
    /// The hash of a presented session cookie's value.
    ///
    /// # Errors
    /// [`MalformedSession`] when `cookie` is not 43 base64url characters, checked before it
    /// is hashed.
    ///
    /// ```
    /// use cartloop_http::credentials::{MalformedSession, SessionHash};
    ///
    /// assert_eq!(SessionHash::of("x y"), Err(MalformedSession::InvalidCharacter(1)));
    /// ```
    pub fn of(cookie: &str) -> Result<Self, MalformedSession> {
        check_encoded(cookie).map_err(|shape| match shape {
            Shape::Length(n) => MalformedSession::WrongLength(n),
            Shape::Character(at) => MalformedSession::InvalidCharacter(at),
            Shape::Trailing => MalformedSession::NotCanonical,
        })?;
        Ok(Self(Digest32::of(cookie)))
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0 .0
    }

    /// The digest as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    /// A stored hash read back; `None` unless it is 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        Digest32::from_hex(hex).map(Self)
    }
}

impl fmt::Debug for SessionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHash({:?})", self.0)
    }
}

/// Making session tokens.
#[derive(Debug)]
pub enum SessionToken {}

impl SessionToken {
    /// A new session: the cookie's value (43 base64url characters) and the hash to store.
    ///
    /// # Panics
    /// If the operating system has no random numbers to give.
    pub fn generate() -> (String, SessionHash) {
        let token = URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>());
        let hash = SessionHash(Digest32::of(&token));
        (token, hash)
    }
}

/// A new webhook secret: `whsec_` and 32 random bytes in standard base64, shown once and
/// kept to sign deliveries (read back with
/// [`WebhookSecret::parse`](cartloop_core::webhook_signature::WebhookSecret::parse)).
///
/// # Panics
/// If the operating system has no random numbers to give.
///
/// ```
/// let secret = cartloop_http::credentials::new_webhook_secret();
/// assert!(secret.expose().starts_with("whsec_"));
/// ```
pub fn new_webhook_secret() -> WebhookSecret {
    WebhookSecret::from_bytes(random_bytes::<SECRET_BYTES>())
}

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer characters than the policy's minimum.
    #[error("a password has at least {min} characters")]
    TooShort {
        /// The minimum, in characters.
        min: usize,
    },
    /// More bytes than the policy's maximum; refused before any hashing.
    #[error("a password has at most {max_bytes} bytes")]
    TooLong {
        /// The maximum, in bytes of UTF-8.
        max_bytes: usize,
    },
    /// The hasher failed (not the password's fault).
    #[error("the password could not be hashed: {0}")]
    Hashing(String),
}

/// What a new password must be: long enough to resist guessing, short enough that hashing
/// it costs a bounded amount (a megabyte-long "password" is a denial of service, not a
/// password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values).
    pub min_chars: usize,
    /// Most bytes of UTF-8.
    pub max_bytes: usize,
}

impl Default for PasswordPolicy {
    /// At least 12 characters, at most 1 KiB.
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_bytes: 1024,
        }
    }
}

impl PasswordPolicy {
    /// Checks `password`'s length. The byte limit is checked first, so an over-long input
    /// is refused without even counting its characters.
    ///
    /// # Errors
    /// [`PasswordError::TooLong`], [`PasswordError::TooShort`].
    pub fn check(&self, password: &str) -> Result<(), PasswordError> {
        if password.len() > self.max_bytes {
            return Err(PasswordError::TooLong {
                max_bytes: self.max_bytes,
            });
        }
        if password.chars().count() < self.min_chars {
            return Err(PasswordError::TooShort {
                min: self.min_chars,
            });
        }
        Ok(())
    }

    /// Checks `password`, then hashes it ([`hash_password`] with this policy).
    ///
    /// # Errors
    /// As [`check`](Self::check), or [`PasswordError::Hashing`].
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        self.check(password)?;
        argon2_hash(password)
    }
}

/// Argon2id with the OWASP parameters: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn argon2_hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Hashes a new password under the default [`PasswordPolicy`]: a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) with a fresh random salt, to store.
/// CPU-heavy: in async code call [`hash_password_blocking`].
///
/// # Errors
/// [`PasswordError::TooLong`] or [`PasswordError::TooShort`], before any hashing;
/// [`PasswordError::Hashing`] if the hasher fails.
///
/// ```
/// use cartloop_http::credentials::{hash_password, verify_password};
///
/// let stored = hash_password("correct horse battery")?;
/// assert!(verify_password("correct horse battery", &stored));
/// assert!(!verify_password("Correct horse battery", &stored));
/// # Ok::<(), cartloop_http::credentials::PasswordError>(())
/// ```
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    PasswordPolicy::default().hash(password)
}

/// Whether `password` is the one `stored` (a PHC string) was made from. The parameters are
/// the stored hash's own, so hashes made under older parameters still verify. `false` for
/// a stored value that is not a PHC string, and for a password over the default policy's
/// byte limit (without hashing it). The minimum length is not checked: it applies to new
/// passwords. CPU-heavy: in async code call [`verify_password_blocking`].
pub fn verify_password(password: &str, stored: &str) -> bool {
    if password.len() > PasswordPolicy::default().max_bytes {
        return false;
    }
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    argon2().verify_password(password.as_bytes(), &hash).is_ok()
}

/// Verifies `password` against a hash of a random password made once per process, and
/// answers `false`. Signing in with an unknown email calls this, so it costs the same time
/// as a wrong password for a known one, and the answer's timing does not tell which emails
/// have accounts.
pub fn dummy_verify(password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        let password = URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>());
        argon2_hash(&password).expect("hashing a random password")
    });
    // Nobody knows the random password: this is always false, but it does the work.
    let _ = verify_password(password, dummy);
    false
}

/// How many hashes may run at once: half the cores, at least one. Argon2id is memory- and
/// CPU-bound; the other half stays for the API.
pub fn hashing_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Runs `work` on one of the process's hashing threads: plain threads of lower priority
/// (nice 10 on Linux), started on first use, [`hashing_parallelism`] of them. Not Tokio's
/// blocking pool: there the hashes would compete with the API's threads as equals, and a
/// storm of sign-ins would stall every other request. `None` if `work` panicked.
pub async fn on_hashing_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    let job: HashJob = Box::new(move || {
        let _ = done.send(work());
    });
    hash_threads().send(job).ok()?;
    result.await.ok()
}

type HashJob = Box<dyn FnOnce() + Send>;

/// The hashing threads' queue, started on first use: as many threads as the default number
/// of permits (half the cores, at least one).
fn hash_threads() -> &'static std::sync::mpsc::Sender<HashJob> {
    static QUEUE: std::sync::OnceLock<std::sync::mpsc::Sender<HashJob>> =
        std::sync::OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel::<HashJob>();
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for n in 0..hashing_parallelism() {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("cartloop-hash-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = receiver
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        match job {
                            // A panicking job drops its answer: its caller gets an error.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        sender
    })
}

/// Nice 10 for the calling thread (Linux keeps a nice value per thread).
#[cfg(target_os = "linux")]
fn lower_priority() {
    let me = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(me), 10) {
        tracing::warn!(error = %e, "password hashing runs at normal priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// [`hash_password`] on a hashing thread ([`on_hashing_thread`]).
///
/// # Errors
/// As [`hash_password`]; [`PasswordError::Hashing`] if the hashing thread failed.
pub async fn hash_password_blocking(password: String) -> Result<String, PasswordError> {
    on_hashing_thread(move || hash_password(&password))
        .await
        .unwrap_or_else(|| Err(PasswordError::Hashing("the hashing thread failed".into())))
}

/// [`verify_password`] on a hashing thread; `false` if it failed.
pub async fn verify_password_blocking(password: String, stored: String) -> bool {
    on_hashing_thread(move || verify_password(&password, &stored))
        .await
        .unwrap_or(false)
}

/// [`dummy_verify`] on a hashing thread.
pub async fn dummy_verify_blocking(password: String) -> bool {
    on_hashing_thread(move || dummy_verify(&password))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn base64url(text: &str) -> bool {
        text.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    #[test]
    fn a_key_is_ck_and_43_base64url_characters_of_32_random_bytes() {
        let (key, hash) = ApiKey::generate();
        let encoded = key.strip_prefix("ck_").expect("the prefix");
        assert_eq!(encoded.len(), 43);
        assert!(base64url(encoded), "{key}");
        assert_eq!(URL_SAFE_NO_PAD.decode(encoded).unwrap().len(), 32);
        assert_eq!(KeyHash::of(&key), Ok(hash));
        let (other, other_hash) = ApiKey::generate();
        assert_ne!(key, other);
        assert_ne!(hash, other_hash);
    }

    #[test]
    fn a_key_hash_is_the_sha256_of_the_key_text() {
        // printf '%s' ck_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA | sha256sum
        let key = format!("ck_{}", "A".repeat(43));
        let hash = KeyHash::of(&key).unwrap();
        assert_eq!(
            hash.to_hex(),
            "670704c98c73f39e873ec8683357fa5ed42db7c901e4287f6b1dabecb72d5222"
        );
        assert_eq!(KeyHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(hash.as_bytes()[..2], [0x67, 0x07]);
    }

    #[test]
    fn malformed_keys_are_refused_before_hashing() {
        let good = "A".repeat(43);
        let cases = [
            (String::new(), MalformedKey::MissingPrefix),
            (good.clone(), MalformedKey::MissingPrefix),
            (format!("CK_{good}"), MalformedKey::MissingPrefix),
            (format!("Bearer ck_{good}"), MalformedKey::MissingPrefix),
            ("ck_".to_owned(), MalformedKey::WrongLength(0)),
            (format!("ck_{}", &good[..42]), MalformedKey::WrongLength(42)),
            (format!("ck_{good}A"), MalformedKey::WrongLength(44)),
            (
                format!("ck_{}=", &good[..42]),
                MalformedKey::InvalidCharacter(42),
            ),
            (
                format!("ck_+{}", &good[1..]),
                MalformedKey::InvalidCharacter(0),
            ),
            (
                format!("ck_{} ", &good[..42]),
                MalformedKey::InvalidCharacter(42),
            ),
            (
                format!("ck_é{}", &good[2..]),
                MalformedKey::InvalidCharacter(0),
            ),
            // The last character carries two spare bits, which must be zero.
            (format!("ck_{}B", &good[..42]), MalformedKey::NotCanonical),
        ];
        for (presented, expected) in cases {
            assert_eq!(KeyHash::of(&presented), Err(expected), "{presented:?}");
        }
    }

    #[test]
    fn errors_about_a_key_do_not_repeat_it() {
        let presented = format!("ck_{}!", "s3cret".repeat(7));
        let error = KeyHash::of(&presented).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn a_session_token_is_43_base64url_characters_stored_hashed() {
        let (token, hash) = SessionToken::generate();
        assert_eq!(token.len(), 43);
        assert!(base64url(&token));
        assert_eq!(SessionHash::of(&token), Ok(hash));
        assert_eq!(SessionHash::from_hex(&hash.to_hex()), Some(hash));
        assert_ne!(SessionToken::generate().0, token);
    }

    #[test]
    fn malformed_session_cookies_are_refused() {
        let good = "A".repeat(43);
        assert_eq!(SessionHash::of(""), Err(MalformedSession::WrongLength(0)));
        assert_eq!(
            SessionHash::of(&format!("{good}A")),
            Err(MalformedSession::WrongLength(44))
        );
        assert_eq!(
            SessionHash::of(&format!("{}%", &good[..42])),
            Err(MalformedSession::InvalidCharacter(42))
        );
        assert_eq!(
            SessionHash::of(&format!("{}B", &good[..42])),
            Err(MalformedSession::NotCanonical)
        );
    }

    #[test]
    fn a_session_hash_is_the_sha256_of_the_cookie_value() {
        // printf '%s' AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA | sha256sum
        let text = "A".repeat(43);
        assert_eq!(
            SessionHash::of(&text).unwrap().to_hex(),
            "0f007385b6f9d4b7eeb2748605afe1a984a0a3bfa3f014d09e2a784ce9e5cd1a"
        );
    }

    #[test]
    fn hex_that_is_not_a_digest_is_refused() {
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(63), &"é".repeat(32)] {
            assert_eq!(KeyHash::from_hex(bad), None, "{bad:?}");
            assert_eq!(SessionHash::from_hex(bad), None, "{bad:?}");
        }
        let upper = "AB".repeat(32);
        assert_eq!(
            KeyHash::from_hex(&upper).map(|h| h.to_hex()),
            Some("ab".repeat(32))
        );
    }

    #[test]
    fn debug_shows_no_whole_digest() {
        let (_, hash) = ApiKey::generate();
        let shown = format!("{hash:?}");
        assert!(shown.starts_with("KeyHash("), "{shown}");
        assert!(!shown.contains(&hash.to_hex()), "{shown}");
        assert!(shown.contains(&hash.to_hex()[..8]), "{shown}");
        let (_, session) = SessionToken::generate();
        assert!(!format!("{session:?}").contains(&session.to_hex()));
    }

    #[test]
    fn a_webhook_secret_is_whsec_and_standard_base64_of_32_bytes() {
        let secret = new_webhook_secret();
        let text = secret.expose().to_owned();
        let encoded = text.strip_prefix("whsec_").expect("the prefix");
        assert_eq!(encoded.len(), 44, "{text}");
        assert!(encoded.ends_with('='), "{text}");
        assert_eq!(STANDARD.decode(encoded).unwrap().len(), 32);
        assert_eq!(WebhookSecret::parse(&text), Ok(secret.clone()));
        assert_ne!(new_webhook_secret(), secret);
    }

    #[test]
    fn the_policy_wants_12_characters_and_at_most_1_kib() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("eleven char"),
            Err(PasswordError::TooShort { min: 12 })
        );
        assert_eq!(policy.check("twelve chars"), Ok(()));
        // Characters, not bytes: twelve é are 24 bytes and enough.
        assert_eq!(policy.check(&"é".repeat(12)), Ok(()));
        assert_eq!(
            policy.check(&"é".repeat(11)),
            Err(PasswordError::TooShort { min: 12 })
        );
        assert_eq!(policy.check(&"a".repeat(1024)), Ok(()));
        assert_eq!(
            policy.check(&"a".repeat(1025)),
            Err(PasswordError::TooLong { max_bytes: 1024 })
        );
        // 513 two-byte characters are 1026 bytes.
        assert_eq!(
            policy.check(&"é".repeat(513)),
            Err(PasswordError::TooLong { max_bytes: 1024 })
        );
    }

    #[test]
    fn an_over_long_password_is_refused_without_hashing() {
        // `hash` runs `check` before the hasher: a megabyte is refused at once, whatever
        // its characters, and so is a short one.
        let long = "a".repeat(1024 * 1024);
        assert_eq!(
            hash_password(&long),
            Err(PasswordError::TooLong { max_bytes: 1024 })
        );
        assert_eq!(
            hash_password("short"),
            Err(PasswordError::TooShort { min: 12 })
        );
        assert!(!verify_password(
            &long,
            &hash_password("a".repeat(12).as_str()).unwrap()
        ));
    }

    #[test]
    fn a_password_hash_is_argon2id_with_the_owasp_parameters_and_a_fresh_salt() {
        let first = hash_password("correct horse battery").unwrap();
        let second = hash_password("correct horse battery").unwrap();
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second, "each hash has its own salt");
        assert!(verify_password("correct horse battery", &first));
        assert!(verify_password("correct horse battery", &second));
        assert!(!verify_password("correct horse batterY", &first));
        assert!(!verify_password("", &first));
    }

    #[test]
    fn a_stored_hash_of_other_parameters_still_verifies() {
        // The reference implementation's test vector: "password", salt "somesalt",
        // Argon2id, 64 MiB, 2 passes, 1 lane.
        let stored = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(verify_password("password", stored));
        assert!(!verify_password("passwore", stored));
    }

    #[test]
    fn a_stored_value_that_is_no_hash_verifies_nothing() {
        for stored in ["", "password", "$argon2id$", "$2b$12$notbcryptreally"] {
            assert!(!verify_password("password", stored), "{stored:?}");
        }
    }

    #[test]
    fn the_dummy_verification_is_always_false() {
        assert!(!dummy_verify("correct horse battery"));
        assert!(!dummy_verify(""));
        assert!(!dummy_verify(&"a".repeat(2048)));
    }

    #[tokio::test]
    async fn the_blocking_pool_wrappers_answer_as_the_functions() {
        let stored = hash_password_blocking("correct horse battery".to_owned())
            .await
            .unwrap();
        assert!(verify_password_blocking("correct horse battery".to_owned(), stored.clone()).await);
        assert!(!verify_password_blocking("wrong horse battery".to_owned(), stored).await);
        assert_eq!(
            hash_password_blocking("short".to_owned()).await,
            Err(PasswordError::TooShort { min: 12 })
        );
        assert!(!dummy_verify_blocking("correct horse battery".to_owned()).await);
    }
}
