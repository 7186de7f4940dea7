//! The bundled server's settings: each an environment variable and a flag of the same
//! meaning, parsed with clap. Embedders with a CLI of their own can
//! `#[command(flatten)]` them.

use super::{open_mailer_with, redact, ConnectionLimits, Server, ServerBuilder, ServerError};
use cartloop_core::active_hours::ActiveHours;
use cartloop_core::dispatch::DispatchConfig;
use cartloop_core::rules::Rules;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// cartloop: conversational-commerce messaging server. Every flag is also an environment
/// variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about)]
pub struct Settings {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Listen address.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Also serve `GET /metrics` on this address, without the API token (unset: only the
    /// API's `/metrics`, behind the token).
    #[arg(long, env = "METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// `sqlite://path` (created if missing) or `postgres://user:pass@host:port/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://cartloop.db")]
    pub database_url: String,
    /// `smtp://[user:pass@]host:port[?tls=none|starttls|tls]` or `smtps://...`; unset:
    /// write emails to the outbox directory.
    #[arg(long, env = "SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Where the outbox mailer writes one `.eml` file per email.
    #[arg(long, env = "OUTBOX_DIR", default_value = "./outbox")]
    pub outbox_dir: PathBuf,
    /// Bearer token required on every route but `/healthz` and the unsubscribe pages.
    #[arg(long, env = "CARTLOOP_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// The default delivery window in the client's local time (`24:00` and overnight
    /// windows such as `21:00-08:00` allowed).
    #[arg(long, env = "ACTIVE_HOURS", default_value = "09:00-20:00")]
    pub active_hours: ActiveHours,
    /// The longest the dispatcher sleeps; every new message wakes it.
    #[arg(long, env = "DISPATCH_INTERVAL", default_value = "5s", value_parser = at_least_10ms)]
    pub dispatch_interval: Duration,
    /// Dispatcher tasks, each claiming up to 100 due messages and keeping up to
    /// `DISPATCH_CONCURRENCY` emails in flight.
    #[arg(long, env = "DISPATCH_WORKERS", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub dispatch_workers: u16,
    /// Most emails of one dispatcher task in flight at once (of the up to 100 it claims per
    /// pass); the server's total is this times `DISPATCH_WORKERS`, bounded by
    /// `SMTP_POOL_SIZE`.
    #[arg(long, env = "DISPATCH_CONCURRENCY", default_value_t = 50,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub dispatch_concurrency: u16,
    /// Most SMTP connections open at once, and so most emails in flight to the relay.
    #[arg(long, env = "SMTP_POOL_SIZE", default_value_t = 128,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub smtp_pool_size: u16,
    /// At most this many emails per rolling hour, across every server on the database.
    #[arg(long, env = "HOURLY_CAP", value_parser = clap::value_parser!(u32).range(1..))]
    pub hourly_cap: Option<u32>,
    /// How long transient failures are retried: a send that fails once the message is this
    /// old (counted from its `sendAt`) fails it for good.
    #[arg(long, env = "MAX_MESSAGE_AGE", default_value = "24h", value_parser = message_age)]
    pub max_message_age: Duration,
    /// The first wait before retrying a transient failure; it doubles with each attempt.
    #[arg(long, env = "RETRY_BACKOFF", default_value = "30s", value_parser = at_least_10ms)]
    pub retry_backoff: Duration,
    /// The longest wait between retries.
    #[arg(long, env = "RETRY_BACKOFF_MAX", default_value = "15m", value_parser = at_least_10ms)]
    pub retry_backoff_max: Duration,
    /// How long a claimed message is held before another dispatcher may take it; renewed
    /// every third of it while the email is being sent.
    #[arg(long, env = "LEASE", default_value = "30s", value_parser = lease)]
    pub lease: Duration,
    /// Longest payload, in characters (payloads must be shorter than this plus one).
    #[arg(long, env = "MAX_PAYLOAD_CHARS", default_value_t = 299,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_payload_chars: u32,
    /// Most open connections; at the limit the longest-idle one is closed.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Longest a new connection may take to send its first request's headers.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = at_least_10ms)]
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may stay idle between requests.
    #[arg(long, env = "KEEP_ALIVE_TIMEOUT", default_value = "30s", value_parser = at_least_10ms)]
    pub keep_alive_timeout: Duration,
    /// Longest a request may take; a body that does not arrive in time is answered 408.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = at_least_10ms)]
    pub request_timeout: Duration,
    /// How long audit log entries are kept.
    #[arg(long, env = "AUDIT_RETENTION", default_value = "90days", value_parser = humantime::parse_duration)]
    pub audit_retention: Duration,
    /// How long events are kept for webhooks and the stream's `Last-Event-ID`.
    #[arg(long, env = "EVENT_RETENTION", default_value = "7days", value_parser = humantime::parse_duration)]
    pub event_retention: Duration,
    /// This server's address as clients' mail programs and browsers reach it: unsubscribe
    /// links, the origin the console's changes must come from, and `Secure` session cookies
    /// when it is https (default `http://<BIND>`).
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The domain of `reply+<token>@` addresses (default: each store's sender domain).
    #[arg(long, env = "REPLY_DOMAIN")]
    pub reply_domain: Option<String>,
    /// Signs reply and unsubscribe tokens, at least 16 characters (default: generated once
    /// and kept in the database).
    #[arg(long, env = "CARTLOOP_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Let webhooks deliver to loopback, private, link-local and unique-local addresses
    /// (refused by default, when made and at every delivery). `--webhook-allow-private`
    /// alone means true.
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", default_value_t = false, num_args = 0..=1,
          require_equals = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub webhook_allow_private: bool,
    /// How long a server holds a claimed webhook delivery before another may take it
    /// (keep it above the 10 s an attempt may take).
    #[arg(long, env = "WEBHOOK_LEASE", default_value = "30s", value_parser = lease)]
    pub webhook_lease: Duration,
    /// Webhook delivery attempts in flight at most, per server.
    #[arg(long, env = "WEBHOOK_CONCURRENCY", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub webhook_concurrency: u16,
}

/// What the binary does instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Copies the SQLite database of `DATABASE_URL` to a new file, consistent, while
    /// servers go on using it (PostgreSQL: use pg_dump). Restore: stop the server, put the
    /// copy in place of the database file, remove the old file's -wal and -shm, start.
    Backup {
        /// The new file (it must not exist).
        path: PathBuf,
    },
}

/// A duration such as `5s` or `500ms` within `[min, max]`: a value outside would make the
/// server spin (too short) or overflow its clocks and stop sending (absurdly long).
fn between(raw: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    match humantime::parse_duration(raw) {
        Ok(d) if d < min => Err(format!(
            "must be at least {}",
            humantime::format_duration(min)
        )),
        Ok(d) if d > max => Err(format!(
            "must be at most {}",
            humantime::format_duration(max)
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (e.g. 5s, 500ms, 1m, 24h)")),
    }
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn at_least_10ms(raw: &str) -> Result<Duration, String> {
    between(raw, Duration::from_millis(10), DAY)
}

fn lease(raw: &str) -> Result<Duration, String> {
    between(raw, Duration::from_secs(1), HOUR)
}

fn message_age(raw: &str) -> Result<Duration, String> {
    between(raw, Duration::from_secs(1), 365 * DAY)
}

async fn listen(name: &'static str, address: &str) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| ServerError::Setting {
            name,
            message: format!("cannot listen on {address}: {e}"),
        })
}

impl Settings {
    /// Opens the database and the mailer these settings name, builds the server, binds
    /// `BIND` and serves until `shutdown` resolves.
    ///
    /// # Errors
    /// Whatever stops the server from starting (a database it cannot open, an address it
    /// cannot bind, a public address without a token) or ends it.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        if let Some(Command::Backup { path }) = &self.command {
            return self.backup(path).await;
        }
        let bind = self.bind.clone();
        let metrics_bind = self.metrics_bind.clone();
        let mut server = self.server().await?;
        let listener = listen("BIND", &bind).await?;
        if let Some(metrics_bind) = metrics_bind {
            server = server.with_metrics_listener(listen("METRICS_BIND", &metrics_bind).await?);
        }
        server.serve(listener, shutdown).await
    }

    /// Opens the database and the mailer these settings name and builds the server, without
    /// binding (tests serve it on a listener of their own).
    ///
    /// # Errors
    /// A database or mailer that cannot be opened, an unusable secret.
    pub async fn server(self) -> Result<Server, ServerError> {
        self.builder().await?.build().await
    }

    /// Opens the database and the mailer these settings name and gives the builder with every
    /// setting applied, so that an embedder (or a test, with its own clock) can change more
    /// before [`build`](ServerBuilder::build).
    ///
    /// # Errors
    /// A database or mailer that cannot be opened.
    pub async fn builder(self) -> Result<ServerBuilder, ServerError> {
        let database = redact(&self.database_url);
        let storage = cartloop_sqlx::connect(&self.database_url)
            .await
            .map_err(|e| ServerError::Setting {
                name: "DATABASE_URL",
                message: format!("cannot open {database}: {}", e.detail()),
            })?;
        tracing::info!(%database, "database ready");
        let mailer = open_mailer_with(
            self.smtp_url.as_deref(),
            &self.outbox_dir,
            self.smtp_pool_size.into(),
        )?;
        Ok(Server::builder(storage, mailer)
            .rules(self.rules())
            .dispatch(self.dispatch())
            .workers(self.dispatch_workers.into())
            .api_token(self.api_token.clone())
            .public_url(self.public_url.clone())
            .reply_domain(self.reply_domain.clone())
            .secret(self.secret.clone().map(String::into_bytes))
            .connection_limits(ConnectionLimits {
                max_connections: self.max_connections as usize,
                header_read_timeout: self.header_read_timeout,
                keep_alive_timeout: self.keep_alive_timeout,
                ..ConnectionLimits::default()
            })
            .request_timeout(self.request_timeout)
            .audit_retention(self.audit_retention)
            .event_retention(self.event_retention)
            .webhook_allow_private(self.webhook_allow_private)
            .webhooks(cartloop_http::deliverer::DelivererConfig {
                lease: self.webhook_lease,
                concurrency: self.webhook_concurrency.into(),
                ..Default::default()
            })
            // SQLite is one server's own database: what it revokes, it forgets at once.
            .credential_cache(if self.database_url.starts_with("sqlite:") {
                Duration::from_secs(60)
            } else {
                Duration::ZERO
            }))
    }

    /// The `backup` command: copies the database and prints what it wrote.
    async fn backup(&self, path: &std::path::Path) -> Result<(), ServerError> {
        let database = redact(&self.database_url);
        let failed = |message: String| ServerError::Setting {
            name: "DATABASE_URL",
            message,
        };
        #[cfg(feature = "sqlite")]
        {
            let summary = cartloop_sqlx::backup(&self.database_url, path)
                .await
                .map_err(|e| failed(format!("cannot back up {database}: {}", e.detail())))?;
            println!(
                "backed up {database} to {}: {} messages, {} bytes, integrity ok",
                summary.path.display(),
                summary.messages,
                summary.bytes
            );
            Ok(())
        }
        #[cfg(not(feature = "sqlite"))]
        {
            let _ = path;
            Err(failed(format!(
                "cannot back up {database}: this build has no SQLite support"
            )))
        }
    }

    fn rules(&self) -> Rules {
        let mut rules = Rules {
            active_hours: self.active_hours,
            ..Rules::default()
        };
        rules.validation.max_chars = self.max_payload_chars as usize;
        rules
    }

    fn dispatch(&self) -> DispatchConfig {
        DispatchConfig {
            poll_interval: self.dispatch_interval,
            hourly_cap: self.hourly_cap,
            max_message_age: self.max_message_age,
            backoff_base: self.retry_backoff,
            backoff_max: self.retry_backoff_max,
            lease: self.lease,
            concurrency: self.dispatch_concurrency.into(),
            ..DispatchConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        Settings::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
    }

    #[test]
    fn backup_is_a_command_with_a_path() {
        let settings = parse(&["backup", "./cartloop-backup.db"]).unwrap();
        assert!(matches!(
            settings.command,
            Some(Command::Backup { path }) if path == std::path::Path::new("./cartloop-backup.db")
        ));
        assert!(parse(&["backup"]).is_err());
        assert!(parse(&[]).unwrap().command.is_none());
    }

    #[test]
    fn durations_are_bounded_both_ways() {
        assert!(parse(&["--lease", "45s"]).is_ok());
        for (flag, value) in [
            ("--lease", "10000000000000h"),
            ("--lease", "2h"),
            ("--lease", "10ms"),
            ("--dispatch-interval", "1ms"),
            ("--max-message-age", "400d"),
            ("--retry-backoff-max", "soon"),
        ] {
            assert!(parse(&[flag, value]).is_err(), "{flag} {value}");
        }
    }

    #[test]
    fn webhook_allow_private_is_a_flag_or_a_value() {
        assert!(!parse(&[]).unwrap().webhook_allow_private);
        assert!(
            parse(&["--webhook-allow-private"])
                .unwrap()
                .webhook_allow_private
        );
        assert!(
            parse(&["--webhook-allow-private=true"])
                .unwrap()
                .webhook_allow_private
        );
        assert!(
            !parse(&["--webhook-allow-private=false"])
                .unwrap()
                .webhook_allow_private
        );
        // The flag alone takes no value: a command after it is still a command.
        let settings = parse(&["--webhook-allow-private", "backup", "x.db"]).unwrap();
        assert!(settings.webhook_allow_private && settings.command.is_some());
        assert!(parse(&["--webhook-allow-private=maybe"]).is_err());
        assert_eq!(
            parse(&["--webhook-concurrency", "8"])
                .unwrap()
                .webhook_concurrency,
            8
        );
        assert!(parse(&["--webhook-concurrency", "0"]).is_err());
        assert!(parse(&["--webhook-lease", "2s"]).is_ok());
    }
}
