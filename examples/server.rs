//! The bundled cartloop server: the REST API and the background dispatcher in one process.
//!
//! ```sh
//! cargo run --release --example server
//! ```
//!
//! With no settings it stores data in `./cartloop.db` (SQLite) and writes emails as `.eml`
//! files to `./outbox`. Every setting is an environment variable and a flag (`--help`).

use cartloop::core::active_hours::ActiveHours;
use cartloop::core::chat::ChatRules;
use cartloop::core::dispatch::{DispatchConfig, Dispatcher, Outcome};
use cartloop::core::ports::{Clock, Mailer, Storage, SystemClock};
use cartloop::core::validate::ValidationPolicy;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

/// cartloop: conversational-commerce messaging server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Settings {
    /// Listen address.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// `sqlite://...` or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://cartloop.db")]
    database_url: String,
    /// `smtp://[user:pass@]host:port[?tls=none|starttls|tls]` or `smtps://...`; unset: write
    /// emails to the outbox directory.
    #[arg(long, env = "SMTP_URL")]
    smtp_url: Option<String>,
    /// Where the outbox mailer writes one `.eml` file per email.
    #[arg(long, env = "OUTBOX_DIR", default_value = "./outbox")]
    outbox_dir: PathBuf,
    /// Bearer token required on every route but `/healthz`.
    #[arg(long, env = "CARTLOOP_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// The delivery window in the client's local time.
    #[arg(long, env = "ACTIVE_HOURS", default_value = "09:00-20:00")]
    active_hours: ActiveHours,
    /// The longest the dispatcher sleeps; a due message wakes it at once.
    #[arg(long, env = "DISPATCH_INTERVAL", default_value = "5s", value_parser = positive_duration)]
    dispatch_interval: Duration,
    /// At most this many emails per rolling hour (unset: no cap).
    #[arg(long, env = "HOURLY_CAP", value_parser = clap::value_parser!(u32).range(1..))]
    hourly_cap: Option<u32>,
    /// Dispatcher tasks; each claims up to 100 due messages and keeps up to 8 of their
    /// emails in flight.
    #[arg(long, env = "DISPATCH_WORKERS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    dispatch_workers: u16,
    /// Longest payload, in characters (payloads must be shorter than this plus one).
    #[arg(long, env = "MAX_PAYLOAD_CHARS", default_value_t = 299, value_parser = clap::value_parser!(u32).range(1..))]
    max_payload_chars: u32,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A duration such as `5s` or `500ms`, at least 10 ms (a shorter poll interval would spin).
fn positive_duration(raw: &str) -> Result<Duration, String> {
    match humantime::parse_duration(raw) {
        Ok(d) if d < Duration::from_millis(10) => {
            Err("must be at least 10ms, e.g. 5s (a shorter poll would spin)".to_owned())
        }
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (e.g. 5s, 500ms, 1m)")),
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let settings = Settings::parse();
    if let Err(e) = run_with(settings).await {
        tracing::error!("{e}");
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run_with(settings: Settings) -> Result<(), Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&settings.bind)
        .await
        .map_err(|e| format!("invalid BIND {:?}: {e}", settings.bind))?
        .collect();
    let token = api_token(&settings);
    if token.is_none() && addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "refusing to listen on non-loopback address {} without an API token: set CARTLOOP_API_TOKEN",
            settings.bind
        )
        .into());
    }
    let storage = cartloop::sqlx::connect(&settings.database_url)
        .await
        .map_err(|e| format!("cannot open {}: {e}", redact(&settings.database_url)))?;
    let mailer: Arc<dyn Mailer> = match &settings.smtp_url {
        Some(url) => {
            tracing::info!(smtp = %redact(url), "emails go over SMTP");
            Arc::new(cartloop::mail::SmtpMailer::from_url(url)?)
        }
        None => {
            tracing::info!(outbox = %settings.outbox_dir.display(), "emails go to the outbox directory");
            Arc::new(
                cartloop::mail::OutboxMailer::new(&settings.outbox_dir).map_err(|e| {
                    format!(
                        "cannot use OUTBOX_DIR {} as the outbox directory: {e}",
                        settings.outbox_dir.display()
                    )
                })?,
            )
        }
    };
    let listener = TcpListener::bind(addrs.as_slice()).await?;
    run(listener, storage, mailer, &settings, shutdown_signal()).await
}

/// Serves the API on `listener` and runs the dispatcher until `shutdown` completes; then
/// stops accepting requests, lets in-flight requests and sends finish, and returns.
async fn run(
    listener: TcpListener,
    storage: Arc<dyn Storage>,
    mailer: Arc<dyn Mailer>,
    settings: &Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let wake = Arc::new(Notify::new());
    let rules = ChatRules {
        validation: ValidationPolicy {
            max_chars: settings.max_payload_chars as usize,
            ..Default::default()
        },
        active_hours: settings.active_hours,
    };
    let config = DispatchConfig {
        active_hours: settings.active_hours,
        hourly_cap: settings.hourly_cap,
        ..Default::default()
    };
    let dispatcher =
        Dispatcher::new(storage.clone(), mailer, clock.clone(), config).with_observer(log_outcome);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = JoinSet::new();
    for _ in 0..settings.dispatch_workers {
        workers.spawn(dispatch_loop(
            dispatcher.clone(),
            wake.clone(),
            settings.dispatch_interval,
            stop_rx.clone(),
        ));
    }

    let mut state = cartloop::http::AppState::new(storage);
    state.clock = clock;
    state.rules = Arc::new(rules);
    state.api_token = api_token(settings).map(Arc::from);
    state.dispatch_wake = Some(wake);
    let app = cartloop::http::router(state);

    tracing::info!(
        address = %listener.local_addr()?,
        database = %redact(&settings.database_url),
        active_hours = %settings.active_hours,
        "cartloop listening on http://{}",
        listener.local_addr()?
    );
    // On the signal, the HTTP side stops accepting and drains its requests while the
    // dispatchers finish the emails in flight and hand the rest of their batches back.
    let stopping = dispatcher.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("stopping: finishing in-flight requests and sends");
        stopping.stop();
        let _ = stop_tx.send(true);
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    while workers.join_next().await.is_some() {}
    tracing::info!("shut down");
    Ok(())
}

/// Runs dispatch passes until told to stop. Between passes it sleeps until the next message
/// is due, at most `interval`, and wakes at once when an operator's message is posted. On
/// stop, a pass in progress lets its emails in flight finish and hands the rest back (see
/// `Dispatcher::stop`): no email is abandoned mid-send, and none waits for a lease.
async fn dispatch_loop(
    dispatcher: Dispatcher,
    wake: Arc<Notify>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let pass_started = chrono::Utc::now();
        match dispatcher.run_once().await {
            Ok(report) if report.claimed > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "dispatch pass failed"),
        }
        let sleep = match dispatcher.next_wake().await {
            // Due before the pass began, yet not claimed: held back by the hourly cap, or
            // taken by another dispatcher. Polling again at once would spin.
            Ok(Some(at)) if at <= pass_started => interval,
            Ok(Some(at)) => (at - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(interval),
            Ok(None) => interval,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next due message");
                interval
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

fn log_outcome(message: &cartloop::core::domain::Message, outcome: &Outcome) {
    let chat = message.id;
    match outcome {
        Outcome::Sent => tracing::info!(%chat, attempt = message.attempts, "email sent"),
        Outcome::Deferred(at) => {
            tracing::info!(%chat, send_at = %at, "outside active hours; deferred")
        }
        Outcome::Retry(at, error) => {
            tracing::warn!(%chat, attempt = message.attempts, retry_at = %at, %error, "email failed; will retry")
        }
        Outcome::Failed(error) => {
            tracing::error!(%chat, attempt = message.attempts, %error, "email failed; giving up")
        }
    }
}

/// The configured token without surrounding spaces; blank counts as unset.
fn api_token(settings: &Settings) -> Option<&str> {
    settings
        .api_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A URL with its passwords hidden, for logs and errors: the one in the user info
/// (`user:secret@`) and any query parameter named like one (`?password=secret`).
fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match base[scheme + 3..at].split_once(':') {
            Some((user, password)) if !password.is_empty() => {
                format!("{}{user}:***{}", &base[..scheme + 3], &base[at..])
            }
            _ => base.to_owned(),
        },
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                    format!("{key}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden_in_logged_urls() {
        for (url, shown) in [
            ("sqlite://cartloop.db", "sqlite://cartloop.db"),
            ("postgres://app@db:5432/x", "postgres://app@db:5432/x"),
            ("postgres://app:@db/x", "postgres://app:@db/x"),
            ("postgres://app:s3cret@db/x", "postgres://app:***@db/x"),
            (
                "smtp://u:p%40ss@mail:587?tls=starttls",
                "smtp://u:***@mail:587?tls=starttls",
            ),
            (
                "postgres://db/x?user=app&password=s3cret&sslmode=require",
                "postgres://db/x?user=app&password=***&sslmode=require",
            ),
            (
                "postgres://db/x?sslpassword=k",
                "postgres://db/x?sslpassword=***",
            ),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }
}
