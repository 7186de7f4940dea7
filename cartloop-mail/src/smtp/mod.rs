//! [`SmtpMailer`]: delivery over SMTP with lettre, pooled connections and rustls.
//!
//! `url`: the `SMTP_URL` forms; `pool`: the pooled connections; `transaction`: one
//! mail transaction on an open connection; `prepared`: an email ready for it, its bytes
//! and envelope; `classify`: what a failure means (transient, permanent, ambiguous).

mod classify;
mod pool;
mod prepared;
mod transaction;
mod url;

pub use url::{MailConfigError, TlsMode};

use async_trait::async_trait;
use cartloop_core::ports::{Email, MailError, Mailer};
use classify::{mail_error, Failure, Step};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::TlsParameters;
use lettre::transport::smtp::extension::ClientId;
use pool::{Pool, Target};
use std::fmt;
use std::time::Duration;
use url::SmtpUrl;

/// Tunables of an [`SmtpMailer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmtpOptions {
    /// Most connections open at once, and so most emails in flight; further sends wait for
    /// a free connection. Default 10.
    pub pool_size: usize,
    /// Longest wait for each network step: checking a pooled connection idle for over 2 s
    /// (`NOOP`), connecting (TCP, TLS, greeting, `EHLO`s, `AUTH` together), and the reply to
    /// each command and to the message (pipelined commands where the server offers
    /// `PIPELINING`). A send takes at most six of them, plus any wait for a free connection
    /// and one new connection when a pooled one turns out closed. Default 10 s.
    pub timeout: Duration,
    /// How long an unused connection is kept open for the next email. Default 60 s.
    pub idle_timeout: Duration,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        Self {
            pool_size: 10,
            timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Sends emails to an SMTP server (a relay or a provider's submission server), reusing up
/// to [`SmtpOptions::pool_size`] connections.
///
/// Built from a URL:
///
/// | URL | connection | default port |
/// |---|---|---|
/// | `smtp://host:port` or `?tls=none` | plain TCP, for a local relay | 25 |
/// | `smtp://host?tls=starttls` (or `tls=required`) | `STARTTLS`, required | 587 |
/// | `smtps://host` or `smtp://host?tls=tls` | implicit TLS | 465 |
///
/// Credentials go in the user info, percent-encoded: `smtp://user:p%40ss@host?tls=starttls`;
/// they are sent with `AUTH PLAIN` or `LOGIN`. TLS is rustls with the webpki roots.
///
/// Each email is the message [`build_message`](crate::build_message) writes, byte for byte
/// what the [`OutboxMailer`](crate::OutboxMailer) would write. Errors are classified for
/// the dispatcher:
///
/// - an invalid address, or a 5xx reply to `MAIL FROM`, `RCPT TO`, `DATA` or the message:
///   [`Permanent`](cartloop_core::ports::MailErrorKind::Permanent);
/// - a 4xx reply, a refused, failed or timed-out connection, a 5xx reply while connecting
///   (greeting, `STARTTLS`, `AUTH`: fixable by an operator), or any error before the
///   message was sent: [`Transient`](cartloop_core::ports::MailErrorKind::Transient);
/// - the connection lost or timed out after the message was sent, before the server's
///   reply: [`Ambiguous`](cartloop_core::ports::MailErrorKind::Ambiguous) — the server may
///   have accepted it.
///
/// Every step has a timeout ([`SmtpOptions::timeout`]), so a silent server fails a send
/// instead of blocking it; a connection whose step failed is closed, never reused.
///
/// ```no_run
/// use cartloop_mail::{SmtpMailer, SmtpOptions};
/// use std::time::Duration;
///
/// let mailer = SmtpMailer::from_url("smtp://user:secret@mail.example.com?tls=starttls")?;
/// assert_eq!(mailer.port(), 587);
/// let tuned = SmtpMailer::from_url_with(
///     "smtps://mail.example.com",
///     SmtpOptions { pool_size: 4, timeout: Duration::from_secs(5), ..Default::default() },
/// )?;
/// # Ok::<(), cartloop_mail::MailConfigError>(())
/// ```
pub struct SmtpMailer {
    pool: Pool,
    options: SmtpOptions,
}

impl SmtpMailer {
    /// A mailer for `url`, with [`SmtpOptions::default`]. See the type's docs for the URL.
    ///
    /// # Errors
    /// The URL is malformed, or TLS cannot be set up for its host.
    pub fn from_url(url: &str) -> Result<Self, MailConfigError> {
        Self::from_url_with(url, SmtpOptions::default())
    }

    /// A mailer for `url` with the given options.
    ///
    /// # Errors
    /// The URL is malformed, TLS cannot be set up for its host, or an option is zero.
    pub fn from_url_with(url: &str, options: SmtpOptions) -> Result<Self, MailConfigError> {
        let url = SmtpUrl::parse(url)?;
        if options.pool_size == 0 {
            return Err(MailConfigError::InvalidOption(
                "pool_size must be at least 1".to_owned(),
            ));
        }
        if options.timeout.is_zero() {
            return Err(MailConfigError::InvalidOption(
                "timeout must be longer than zero".to_owned(),
            ));
        }
        let tls_parameters = match url.tls {
            TlsMode::None => None,
            TlsMode::StartTls | TlsMode::Implicit => {
                Some(TlsParameters::new_rustls(url.host.clone()).map_err(|e| {
                    MailConfigError::Tls {
                        host: url.host.clone(),
                        reason: e.to_string(),
                    }
                })?)
            }
        };
        if url.credentials.is_some() && url.tls == TlsMode::None && !is_loopback(&url.host) {
            tracing::warn!(
                host = %url.host,
                "SMTP credentials will be sent unencrypted; use ?tls=starttls or smtps://"
            );
        }
        let target = Target {
            host: url.host,
            port: url.port,
            tls: url.tls,
            tls_parameters,
            credentials: url
                .credentials
                .map(|(user, password)| Credentials::new(user, password)),
            hello: ClientId::default(),
        };
        Ok(Self {
            pool: Pool::new(
                target,
                options.pool_size,
                options.timeout,
                options.idle_timeout,
            ),
            options,
        })
    }

    /// The server's host name or address.
    pub fn host(&self) -> &str {
        &self.pool.target().host
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.pool.target().port
    }

    /// How the connection is secured.
    pub fn tls(&self) -> TlsMode {
        self.pool.target().tls
    }

    /// The options in use.
    pub fn options(&self) -> SmtpOptions {
        self.options
    }

    /// Closes the idle connections politely (`QUIT`), e.g. at shutdown. Sends in flight
    /// are not affected, and later sends open new connections.
    pub async fn close(&self) {
        self.pool.close_idle().await;
    }
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host())
            .field("port", &self.port())
            .field("tls", &self.tls())
            .field("authenticated", &self.pool.target().credentials.is_some())
            .field("options", &self.options)
            .finish()
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let mail = prepared::prepare(email)?;
        loop {
            let mut lease = self
                .pool
                .lease()
                .await
                .map_err(|failure| mail_error(&failure, Step::Connect))?;
            let (unchecked, pipelining) = (lease.unchecked, lease.pipelining);
            match transaction::deliver(&mut lease.conn, &mail, self.options.timeout, pipelining)
                .await
            {
                Ok(()) => {
                    lease.release();
                    return Ok(());
                }
                // A pooled connection lent without a `NOOP` turned out closed (the server's
                // idle timeout, a restart) before the message went out: the server cannot
                // have it, so it goes again on a new connection. Once: a fresh connection
                // is never `unchecked`.
                Err((step, Failure::Smtp(e)))
                    if unchecked && step != Step::EndOfData && e.status().is_none() =>
                {
                    tracing::debug!(message_id = %email.message_id, error = %e, "a pooled SMTP connection was closed; sending on a new one");
                    self.pool.drop_idle();
                }
                Err((step, failure)) => {
                    lease.discard(&failure);
                    let error = mail_error(&failure, step);
                    tracing::debug!(message_id = %email.message_id, error = %error, "SMTP send failed");
                    return Err(error);
                }
            }
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
