//! A pool of SMTP connections: at most `size` open at once, idle ones reused.
//!
//! Why this pool and not lettre's (`AsyncSmtpTransport` with `PoolConfig`), re-checked
//! against lettre 0.11.23 when the message writing moved to lettre's builder:
//!
//! - **Error classification.** The dispatcher must tell a failure before the message data
//!   was sent (transient: the server cannot have it) from one after the final `.` (ambiguous:
//!   it may have been accepted; see `classify.rs`). lettre's transport runs
//!   `MAIL`/`RCPT`/`DATA` inside `send` and its error does not say how far it got; driving
//!   the transaction step by step (`transaction.rs`) needs a connection of our own, which
//!   lettre's pool does not lend out.
//! - **A bound on connections.** lettre's `max_size` bounds only the *idle* connections,
//!   not how many are opened at once; here a semaphore bounds both, so a burst of due
//!   messages cannot open hundreds of connections to a relay that limits them.
//! - **A timeout on every step.** lettre's `timeout` bounds only the TCP connect, so a
//!   server that accepts and then goes silent blocks a send forever.
//! - **No reuse after a failure.** A send cancelled by an outer timeout hands its half-used
//!   connection back to lettre's pool, where the next send reads the late replies of the old
//!   transaction — a rejected email can then look accepted. Here each connection is owned by
//!   one send at a time, and a connection whose step failed or timed out is closed.
//!
//! It is about 150 lines; the throughput example (`examples/smtp_throughput.rs`) measures it.

use super::classify::Failure;
use super::url::TlsMode;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::ClientId;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Where and how to connect.
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: TlsMode,
    /// Present unless `tls` is [`TlsMode::None`].
    pub(crate) tls_parameters: Option<TlsParameters>,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) hello: ClientId,
}

impl Target {
    /// A new, ready connection: TCP (and TLS), greeting, `EHLO`, `STARTTLS`, `AUTH`; and
    /// whether the server offers `PIPELINING` (RFC 2920).
    async fn connect(&self, timeout: Duration) -> Result<(AsyncSmtpConnection, bool), Failure> {
        let implicit_tls = match self.tls {
            TlsMode::Implicit => self.tls_parameters.clone(),
            TlsMode::None | TlsMode::StartTls => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(timeout),
            &self.hello,
            implicit_tls,
            None,
        )
        .await
        .map_err(Failure::Smtp)?;
        if let (TlsMode::StartTls, Some(parameters)) = (self.tls, &self.tls_parameters) {
            // Fails when the server does not offer STARTTLS: never falls back to plain text.
            conn.starttls(parameters.clone(), &self.hello)
                .await
                .map_err(Failure::Smtp)?;
        }
        // lettre keeps only the extensions it uses from its own `EHLO`; `PIPELINING` is not
        // one of them. A second `EHLO` (allowed at any time, RFC 5321 4.1.4) lists them
        // again; before `AUTH`, so that the login is not reset by it.
        let extensions = conn
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(Failure::Smtp)?;
        let pipelining = extensions.message().skip(1).any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|keyword| keyword.eq_ignore_ascii_case("PIPELINING"))
        });
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(Failure::Smtp)?;
        }
        Ok((conn, pipelining))
    }
}

/// A connection used within this long is lent without a `NOOP` first: a send on it that
/// finds it closed before the message went out is tried again on a new connection.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(2);

struct Idle {
    conn: AsyncSmtpConnection,
    pipelining: bool,
    since: Instant,
}

/// The pool.
pub(crate) struct Pool {
    target: Target,
    timeout: Duration,
    idle_timeout: Duration,
    /// One permit per connection that may be open; a send holds one throughout.
    permits: Semaphore,
    /// Connections free for the next send, most recently used last.
    idle: Mutex<Vec<Idle>>,
}

/// A connection lent to one send, with its permit. Dropping it closes the connection;
/// [`Lease::release`] returns it to the pool instead.
pub(crate) struct Lease<'a> {
    pub(crate) conn: AsyncSmtpConnection,
    /// The server offers `PIPELINING`.
    pub(crate) pipelining: bool,
    /// A pooled connection lent without a `NOOP`: it may have been closed meanwhile.
    pub(crate) unchecked: bool,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Pool {
    pub(crate) fn new(
        target: Target,
        size: usize,
        timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            target,
            timeout,
            idle_timeout,
            permits: Semaphore::new(size),
            idle: Mutex::new(Vec::with_capacity(size)),
        }
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// Waits for a free slot, then lends the most recently used idle connection — at once
    /// when it was used within [`CHECK_AFTER_IDLE`], else if it still answers `NOOP` — or
    /// opens a new one. At most one `NOOP` and one connection attempt, each within the
    /// timeout.
    ///
    /// # Errors
    /// Connecting failed or timed out.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, Failure> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        if let Some(Idle {
            mut conn,
            pipelining,
            since,
        }) = self.take_idle()
        {
            if since.elapsed() < CHECK_AFTER_IDLE {
                return Ok(Lease {
                    conn,
                    pipelining,
                    unchecked: true,
                    pool: self,
                    _permit: permit,
                });
            }
            // The server may have closed it while it was idle.
            if let Ok(true) = tokio::time::timeout(self.timeout, conn.test_connected()).await {
                return Ok(Lease {
                    conn,
                    pipelining,
                    unchecked: false,
                    pool: self,
                    _permit: permit,
                });
            }
            // The older idle connections are most likely dead too (a restarted server, its
            // idle timeout): testing each could cost a timeout apiece. Start afresh.
            tracing::debug!("a pooled SMTP connection no longer answers; dropping the idle ones");
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        let (conn, pipelining) =
            with_timeout(self.timeout, self.target.connect(self.timeout)).await?;
        tracing::debug!(host = %self.target.host, port = self.target.port, pipelining, "opened an SMTP connection");
        Ok(Lease {
            conn,
            pipelining,
            unchecked: false,
            pool: self,
            _permit: permit,
        })
    }

    /// The most recently used idle connection; closes those idle for too long.
    fn take_idle(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let expired = idle
            .iter()
            .position(|i| i.since.elapsed() < self.idle_timeout)
            .unwrap_or(idle.len());
        for stale in idle.drain(..expired) {
            quit_in_background(stale.conn, self.timeout);
        }
        idle.pop()
    }

    /// Closes every idle connection at once (after one was found closed).
    pub(crate) fn drop_idle(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Says `QUIT` to every idle connection.
    pub(crate) async fn close_idle(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for Idle { mut conn, .. } in idle {
            let _ = tokio::time::timeout(self.timeout, conn.quit()).await;
        }
    }
}

impl Lease<'_> {
    /// Returns the connection to the pool for the next send.
    pub(crate) fn release(self) {
        if self.conn.has_broken() {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push(Idle {
            conn: self.conn,
            pipelining: self.pipelining,
            since: Instant::now(),
        });
    }

    /// Closes the connection after `failure`: politely (`QUIT`, in the background) when the
    /// server is still talking, at once otherwise — its state is unknown.
    pub(crate) fn discard(self, failure: &Failure) {
        if failure.is_reply() {
            quit_in_background(self.conn, self.pool.timeout);
        }
    }
}

fn quit_in_background(mut conn: AsyncSmtpConnection, timeout: Duration) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(timeout, conn.quit()).await;
    });
}

/// Runs one network step, failing with [`Failure::Timeout`] after `timeout`. Dropping the
/// step's future mid-way leaves its connection unusable: callers then drop the connection.
pub(crate) async fn with_timeout<T>(
    timeout: Duration,
    step: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(timeout, step)
        .await
        .unwrap_or(Err(Failure::Timeout(timeout)))
}
