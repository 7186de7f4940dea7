//! Sending one webhook attempt: the HTTP client every delivery and test send shares, and
//! its guard against requests into the server's own network (SSRF).
//!
//! One [`reqwest::Client`] (rustls, connections reused), 10 s to connect and 10 s in all,
//! no redirects followed (a 3xx is a failed attempt) and no proxies from the environment.
//! Its DNS resolver resolves each host and refuses the answer when any address is outside
//! what [`AddressPolicy`] allows, at every attempt: a name that once pointed outside and
//! now points at `127.0.0.1` gets a failed attempt. IP-literal URLs never reach a resolver,
//! so [`WebhookClient::send`] checks those itself.

use cartloop_core::event::Event;
use cartloop_core::webhook_retry::Outcome;
use cartloop_core::webhook_signature::WebhookSecret;
use cartloop_core::webhook_url::{AddressPolicy, WebhookUrl};
use chrono::{DateTime, Utc};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an attempt may take, connecting included (SPEC §10: a 2xx within 10 s).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a receiver's answer read (so its connection can be reused); the rest is
/// dropped.
const ANSWER_READ: usize = 16 * 1024;

/// Resolves names and refuses addresses the policy does not allow.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver {
    policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let addrs = resolve_checked(policy, name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Why a host may not be delivered to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// DNS had no address for it.
    #[error("cannot resolve {host}: {cause}")]
    Unresolved {
        /// The host.
        host: String,
        /// What the resolver said.
        cause: String,
    },
    /// It resolves to an address the policy refuses.
    #[error("{host} resolves to {address}, which is not a public address")]
    NotAllowed {
        /// The host.
        host: String,
        /// The refused address.
        address: std::net::IpAddr,
    },
}

/// The addresses `host` resolves to, all of them allowed by `policy`.
async fn resolve_checked(
    policy: AddressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, HostError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| HostError::Unresolved {
            host: host.to_owned(),
            cause: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(HostError::Unresolved {
            host: host.to_owned(),
            cause: "no addresses".into(),
        });
    }
    // One refused address refuses the name: a receiver cannot choose which one we use.
    if let Some(bad) = addrs.iter().find(|a| policy.check(a.ip()).is_err()) {
        return Err(HostError::NotAllowed {
            host: host.to_owned(),
            address: bad.ip(),
        });
    }
    Ok(addrs)
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Delivered, gone (410) or failed.
    pub outcome: Outcome,
    /// The receiver's status, if it answered.
    pub response_status: Option<u16>,
    /// What went wrong, if anything did (never the secret).
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

/// The client every delivery shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    policy: AddressPolicy,
}

impl Default for WebhookClient {
    fn default() -> Self {
        Self::new(AddressPolicy::default())
    }
}

impl WebhookClient {
    /// A client that delivers where `policy` allows.
    ///
    /// # Panics
    /// If the TLS backend cannot be set up (no usable root certificates at all).
    pub fn new(policy: AddressPolicy) -> Self {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(256)
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .user_agent(concat!("cartloop-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the webhook HTTP client builds");
        Self { http, policy }
    }

    /// Which addresses it delivers to.
    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// Checks that `url`'s host is one deliveries may go to now: a literal address, or a
    /// name resolved (DNS now) to addresses all allowed.
    ///
    /// # Errors
    /// [`HostError`] when it does not resolve or an address is refused.
    pub async fn check_host(&self, url: &WebhookUrl) -> Result<(), HostError> {
        if let Some(ip) = url.literal_ip() {
            return self.policy.check(ip).map_err(|_| HostError::NotAllowed {
                host: url.host().to_owned(),
                address: ip,
            });
        }
        if self.policy.allow_private {
            return Ok(());
        }
        resolve_checked(self.policy, url.host(), url.port())
            .await
            .map(drop)
    }

    /// Sends `event` to `url`, signed with `secret`, stamped `now`; never fails: every
    /// failure is an outcome with its cause.
    pub async fn send(
        &self,
        url: &str,
        secret: &WebhookSecret,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Sent {
        let started = Instant::now();
        let elapsed =
            |started: Instant| started.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        let failed = |error: String, status: Option<u16>| Sent {
            outcome: Outcome::Failed,
            response_status: status,
            error: Some(error),
            duration_ms: elapsed(started),
        };
        let parsed = match WebhookUrl::parse(url) {
            Ok(parsed) => parsed,
            Err(e) => return failed(e.to_string(), None),
        };
        if let Some(ip) = parsed.literal_ip() {
            if let Err(e) = self.policy.check(ip) {
                return failed(e.to_string(), None);
            }
        }
        let id = event.id.to_text();
        let body = event.to_json().to_string();
        let timestamp = now.timestamp();
        let signature = secret.sign(&id, timestamp, body.as_bytes());
        let answer = self
            .http
            .post(parsed.as_str())
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let mut answer = match answer {
            Ok(answer) => answer,
            Err(e) => return failed(describe(&e), None),
        };
        let status = answer.status();
        // Read a little of the answer so the connection can go back to the pool.
        let mut read = 0;
        while read < ANSWER_READ {
            match answer.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        let code = Some(status.as_u16());
        if status.is_success() {
            Sent {
                outcome: Outcome::Delivered,
                response_status: code,
                error: None,
                duration_ms: elapsed(started),
            }
        } else if status == reqwest::StatusCode::GONE {
            let reason = format!(
                "the receiver answered 410 Gone at {}",
                cartloop_core::event::time(now)
            );
            Sent {
                outcome: Outcome::Gone(reason.clone()),
                response_status: code,
                error: Some(reason),
                duration_ms: elapsed(started),
            }
        } else {
            failed(format!("the receiver answered {status}"), code)
        }
    }
}

/// A reqwest error with its causes, e.g. "error sending request: … is not a public
/// address"; never the URL's query (it may hold a token of the receiver's).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        format!("timed out after {} s", TIMEOUT.as_secs())
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
