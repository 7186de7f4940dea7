//! The cartloop server as a library (feature `server`): the REST API and the background
//! dispatcher in one value, built from a storage, a mailer and settings, served on a
//! listener you bind until a shutdown future resolves.
//!
//! ```no_run
//! # async fn run() -> Result<(), cartloop::server::ServerError> {
//! use cartloop::server::Server;
//!
//! let storage = cartloop::sqlx::connect("sqlite://cartloop.db").await?;
//! let mailer = cartloop::server::outbox_mailer("./outbox")?;
//! let server = Server::builder(storage, mailer).build().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server.serve(listener, cartloop::server::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! The pieces are usable apart: [`Server::router`] is the API alone (to mount under a path
//! of your own axum app), [`Server::dispatcher`] the dispatcher alone (to run its workers
//! in a process without HTTP).
//!
//! # Layout
//! - this module: [`Server`], [`ServerBuilder`], [`ServerError`] and the helpers the
//!   bundled binary uses ([`open_mailer`], [`open_mailer_with`], [`redact`], [`shutdown_signal`]);
//! - `clock`: [`SystemClock`], the core's `Clock` on the system time and Tokio's timer;
//! - `links`: [`SignedLinks`] and [`TokenKey`], the signed reply addresses and unsubscribe
//!   links;
//! - `listener`: the accept loop with its [`ConnectionLimits`];
//! - `observe`: what the dispatcher reports, logged and counted in `/metrics`;
//! - `retention`: pruning the event log after `EVENT_RETENTION`;
//! - `settings`: [`Settings`], the bundled server's settings (flags and environment).

mod clock;
mod links;
mod listener;
mod observe;
mod retention;
mod settings;

pub use clock::SystemClock;
pub use links::{SignedLinks, TokenKey};
pub use listener::ConnectionLimits;
pub use retention::DEFAULT_EVENT_RETENTION;
pub use settings::{Command, Settings};

use cartloop_core::dispatch::{DispatchConfig, Dispatcher};
use cartloop_core::ports::{Clock, Links, Mailer, Storage, StorageError};
use cartloop_core::rules::Rules;
use cartloop_core::webhook_url::AddressPolicy;
use cartloop_http::deliverer::{Deliverer, DelivererConfig, DeliveryMetrics};
use cartloop_http::metrics::Metrics;
use cartloop_http::webhook_client::WebhookClient;
use cartloop_http::AppState;
use observe::DispatchMetrics;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The name the token secret is kept under in the storage (see `Storage::secret`).
const SECRET_NAME: &str = "tokens";

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Listening on a public address without an API token would expose every route.
    #[error("refusing to listen on non-loopback address {0} without an API token: set one (CARTLOOP_API_TOKEN)")]
    PublicWithoutToken(SocketAddr),
    /// A setting is not usable.
    #[error("invalid setting {name}: {message}")]
    Setting {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The storage failed (connecting, migrating, reading the secret).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The mailer could not be set up.
    #[error("mailer: {0}")]
    Mailer(String),
    /// Listening or accepting failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Builds a [`Server`]; see [`Server::builder`].
#[must_use]
pub struct ServerBuilder {
    storage: Arc<dyn Storage>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    rules: Rules,
    dispatch: DispatchConfig,
    workers: usize,
    api_token: Option<String>,
    public_url: Option<String>,
    reply_domain: Option<String>,
    secret: Option<Vec<u8>>,
    limits: ConnectionLimits,
    request_timeout: Duration,
    audit_retention: Duration,
    event_retention: Duration,
    credential_cache: Duration,
    // Webhooks (SPEC §10): where deliveries may go, how they are claimed and sent.
    webhook_allow_private: bool,
    webhooks: DelivererConfig,
    event_stream: cartloop_http::hub::HubSettings,
}

impl ServerBuilder {
    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Validation and the default delivery window (default: the bundled rules, 09:00–20:00
    /// in the client's zone).
    pub fn rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// How the dispatcher claims, sends and retries.
    pub fn dispatch(mut self, config: DispatchConfig) -> Self {
        self.dispatch = config;
        self
    }

    /// Dispatcher workers, each claiming its own batches (default 4, at least 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The bearer token every route but `/healthz` and the unsubscribe pages requires.
    /// Blank counts as none.
    pub fn api_token(mut self, token: Option<String>) -> Self {
        self.api_token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        self
    }

    /// The server's address as clients' mail programs reach it, for unsubscribe links
    /// (default: `http://<the listener's address>`).
    pub fn public_url(mut self, url: Option<String>) -> Self {
        self.public_url = url
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty());
        self
    }

    /// The domain of `reply+<token>@` addresses (default: each store's sender domain).
    pub fn reply_domain(mut self, domain: Option<String>) -> Self {
        self.reply_domain = domain
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        self
    }

    /// The secret that signs reply and unsubscribe tokens (default: generated once and kept
    /// in the storage, shared by every server on it).
    pub fn secret(mut self, secret: Option<Vec<u8>>) -> Self {
        self.secret = secret.filter(|s| !s.iter().all(u8::is_ascii_whitespace));
        self
    }

    /// Limits on connections (timeouts, maximum).
    pub fn connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Longest a request may take (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long API keys and sessions found in the storage are remembered by this process
    /// (default zero: every request reads them). Only for a storage no other process writes
    /// to (the bundled server sets 60 s on SQLite): revocations, sign-outs and account
    /// changes made through this process are forgotten here at once, another process's are
    /// not seen until the entry is that old.
    pub fn credential_cache(mut self, ttl: Duration) -> Self {
        self.credential_cache = ttl;
        self
    }

    /// How long audit log entries are kept (default 90 days).
    pub fn audit_retention(mut self, retention: Duration) -> Self {
        self.audit_retention = retention;
        self
    }

    /// How long events are kept for webhooks and the stream's `Last-Event-ID` (default 7
    /// days, [`DEFAULT_EVENT_RETENTION`]).
    pub fn event_retention(mut self, retention: Duration) -> Self {
        self.event_retention = retention;
        self
    }

    /// Whether webhooks may deliver to private, loopback and link-local addresses
    /// (`WEBHOOK_ALLOW_PRIVATE`; default false).
    pub fn webhook_allow_private(mut self, allow: bool) -> Self {
        self.webhook_allow_private = allow;
        self
    }

    /// How the webhook deliverer claims and sends (`WEBHOOK_LEASE`, `WEBHOOK_CONCURRENCY`).
    pub fn webhooks(mut self, config: DelivererConfig) -> Self {
        self.webhooks = config;
        self
    }

    /// How the live stream behaves: how far a client may fall behind before it is cut off,
    /// and how often an idle stream gets a keep-alive comment (default 10,000 events and
    /// 15 s).
    pub fn event_stream(mut self, settings: cartloop_http::hub::HubSettings) -> Self {
        self.event_stream = settings;
        self
    }

    /// Reads (or creates) the token secret and assembles the server.
    ///
    /// # Errors
    /// [`ServerError::Storage`] when the secret cannot be read or stored;
    /// [`ServerError::Setting`] for a secret shorter than 16 bytes.
    pub async fn build(self) -> Result<Server, ServerError> {
        if let Some(url) = &self.public_url {
            check_public_url(url)?;
        }
        if let Some(domain) = &self.reply_domain {
            check_reply_domain(domain)?;
        }
        let secret = match self.secret {
            Some(secret) if secret.trim_ascii().len() < 16 => {
                return Err(ServerError::Setting {
                    name: "CARTLOOP_SECRET",
                    message: "must be at least 16 characters".to_owned(),
                })
            }
            Some(secret) => secret,
            None => {
                let mut candidate = vec![0u8; 32];
                getrandom::fill(&mut candidate).map_err(|e| ServerError::Setting {
                    name: "CARTLOOP_SECRET",
                    message: format!("cannot generate one: {e}"),
                })?;
                self.storage.secret(SECRET_NAME, candidate).await?
            }
        };
        // One registry per server: the dispatcher counts into it, the API serves it.
        let mut registry = Registry::default();
        let dispatch_metrics = DispatchMetrics::register(&mut registry);
        let delivery_metrics = DeliveryMetrics::default();
        delivery_metrics.register(&mut registry);
        let metrics = Metrics::with_registry(registry);
        let dispatch_metrics = dispatch_metrics.with_api(&metrics);
        Ok(Server {
            storage: self.storage.clone(),
            mailer: self.mailer,
            clock: self.clock.clone(),
            rules: Arc::new(self.rules),
            dispatch: self.dispatch,
            workers: self.workers,
            api_token: self.api_token.map(Arc::from),
            public_url: self.public_url,
            reply_domain: self.reply_domain,
            key: TokenKey::new(&secret),
            limits: self.limits,
            request_timeout: self.request_timeout,
            credentials: Arc::new(cartloop_http::auth::CredentialCache::new(
                self.credential_cache,
            )),
            audit: cartloop_http::audit::AuditSink::new(
                self.storage.clone(),
                self.clock.clone(),
                self.audit_retention,
            ),
            event_retention: self.event_retention,
            metrics,
            dispatch_metrics,
            metrics_listener: None,
            webhook_client: WebhookClient::new(AddressPolicy {
                allow_private: self.webhook_allow_private,
            }),
            webhooks: self.webhooks,
            delivery_metrics,
            hub: cartloop_http::hub::Hub::new(self.storage.clone(), self.event_stream),
        })
    }
}

/// The API and the dispatcher over one storage and one mailer.
pub struct Server {
    storage: Arc<dyn Storage>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    rules: Arc<Rules>,
    dispatch: DispatchConfig,
    workers: usize,
    api_token: Option<Arc<str>>,
    public_url: Option<String>,
    reply_domain: Option<String>,
    key: TokenKey,
    limits: ConnectionLimits,
    request_timeout: Duration,
    audit: cartloop_http::audit::AuditSink,
    credentials: Arc<cartloop_http::auth::CredentialCache>,
    event_retention: Duration,
    metrics: Metrics,
    dispatch_metrics: DispatchMetrics,
    metrics_listener: Option<TcpListener>,
    webhook_client: WebhookClient,
    webhooks: DelivererConfig,
    delivery_metrics: DeliveryMetrics,
    /// The live stream's reader of the event log, shared by the server's routers.
    hub: cartloop_http::hub::Hub,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("rules", &self.rules)
            .field("dispatch", &self.dispatch)
            .field("workers", &self.workers)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A builder over `storage` and `mailer`, with the defaults of the bundled server.
    pub fn builder(storage: Arc<dyn Storage>, mailer: Arc<dyn Mailer>) -> ServerBuilder {
        ServerBuilder {
            storage,
            mailer,
            clock: Arc::new(SystemClock),
            rules: Rules::default(),
            dispatch: DispatchConfig::default(),
            workers: 4,
            api_token: None,
            public_url: None,
            reply_domain: None,
            secret: None,
            limits: ConnectionLimits::default(),
            request_timeout: Duration::from_secs(30),
            audit_retention: cartloop_http::audit::DEFAULT_RETENTION,
            event_retention: DEFAULT_EVENT_RETENTION,
            credential_cache: Duration::ZERO,
            webhook_allow_private: false,
            webhooks: DelivererConfig::default(),
            event_stream: cartloop_http::hub::HubSettings::default(),
        }
    }

    fn links(&self, public_url: &str) -> Arc<dyn Links> {
        Arc::new(SignedLinks {
            key: self.key.clone(),
            public_url: self.public_url.as_deref().unwrap_or(public_url).to_owned(),
            reply_domain: self.reply_domain.clone(),
        })
    }

    fn state(&self, public_url: &str) -> AppState {
        let mut state = AppState::new(self.storage.clone(), self.clock.clone());
        state.rules = self.rules.clone();
        state.api_token = self.api_token.clone();
        state.request_timeout = self.request_timeout;
        state.links = Some(self.links(public_url));
        state.metrics = self.metrics.clone();
        state.public_url = self.public_url.as_deref().map(Arc::from);
        state.audit = self.audit.clone();
        state.credentials = self.credentials.clone();
        state.webhook_client = self.webhook_client.clone();
        state.hub = self.hub.clone();
        state.inbound_parser = Some(Arc::new(|raw: &[u8]| {
            cartloop_mail::inbound::parse_reply(raw).map_err(|e| e.to_string())
        }));
        state
    }

    /// The API alone, as an axum router: mount it where you like (`Router::nest`). Its
    /// unsubscribe links point at the public URL set on the builder (else
    /// `http://localhost`).
    pub fn router(&self) -> axum::Router {
        cartloop_http::router(self.state("http://localhost"))
    }

    /// `GET /metrics` alone, without the API token, for an address only the scraper reaches;
    /// the same figures as the API's `/metrics`.
    pub fn metrics_router(&self) -> axum::Router {
        cartloop_http::metrics_router(self.state("http://localhost"))
    }

    /// Also serve `GET /metrics`, without the API token, on `listener` (see
    /// [`Server::metrics_router`]); [`Server::serve`] serves it beside the API and stops it
    /// with the API. The API's own `/metrics` stays behind the token.
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    /// Every event after `after` (`EventId(0)`: the oldest kept) that passes `filter`:
    /// first those still kept in the event log, then live ones as they are written, on this
    /// server or another on the same database; none missed, none twice. The stream ends
    /// with an error when it falls [`HubSettings::capacity`] events behind or the log
    /// cannot be read (resume with the error's `last` id), and ends when the server stops.
    ///
    /// It applies **no access rules**: the embedder is trusted and sees every store's
    /// events unless `filter` says otherwise (`GET /events/` is the API's stream, which
    /// does apply them). It shares the server's one reader of the log with `GET /events/`.
    ///
    /// [`HubSettings::capacity`]: cartloop_http::hub::HubSettings::capacity
    ///
    /// ```no_run
    /// # async fn run(server: cartloop::server::Server) {
    /// use cartloop_core::event::EventId;
    /// use cartloop_core::ports::EventFilter;
    /// use futures_util::StreamExt;
    ///
    /// let mut events = std::pin::pin!(server.events(EventId(0), EventFilter::default()));
    /// while let Some(Ok(event)) = events.next().await {
    ///     println!("{} {}", event.id, event.kind);
    /// }
    /// # }
    /// ```
    pub fn events(
        &self,
        after: cartloop_core::event::EventId,
        filter: cartloop_core::ports::EventFilter,
    ) -> impl futures_util::Stream<
        Item = Result<cartloop_core::event::Event, cartloop_http::hub::FollowError>,
    > + Send
           + 'static {
        self.hub.events(Some(after), filter)
    }

    /// The dispatcher alone: call [`Dispatcher::run`] on as many clones as you want
    /// workers, and [`Dispatcher::stop`] to end them. It logs and counts what it does.
    pub fn dispatcher(&self) -> Dispatcher {
        self.dispatcher_for("http://localhost")
    }

    fn dispatcher_for(&self, public_url: &str) -> Dispatcher {
        let metrics = self.dispatch_metrics.clone();
        Dispatcher::new(
            self.storage.clone().into_queue(),
            self.mailer.clone(),
            self.clock.clone(),
            self.rules.clone(),
            self.dispatch.clone(),
        )
        .with_links(self.links(public_url))
        .with_observer(move |event| observe::event(&metrics, event))
    }

    /// Runs the dispatcher's workers until `shutdown` resolves; then the emails in flight
    /// finish and the rest of each claimed batch is handed back. Meanwhile the event log
    /// is pruned every hour.
    ///
    /// # Errors
    /// [`ServerError::Storage`] when the storage cannot be watched for new messages.
    pub async fn run_dispatcher(
        &self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let dispatcher = self.dispatcher();
        self.run_workers(dispatcher, shutdown).await
    }

    async fn run_workers(
        &self,
        dispatcher: Dispatcher,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        self.storage.watch_due(dispatcher.waker()).await?;
        let pruning = tokio::spawn(retention::prune_events(
            self.storage.clone(),
            self.clock.clone(),
            self.event_retention,
        ));
        // The webhook deliverer runs beside the dispatcher and stops with it.
        let (stop_deliverer, deliverer_stopped) = tokio::sync::oneshot::channel::<()>();
        // Not spawned: dropping this future (a server aborted) drops the attempts in flight
        // too, as a crash would; their leases bring them back.
        let deliverer = Deliverer::new(
            self.storage.clone(),
            self.clock.clone(),
            self.webhook_client.clone(),
            self.webhooks,
            self.delivery_metrics.clone(),
        )
        .run(async move {
            let _ = deliverer_stopped.await;
        });
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.workers {
            let dispatcher = dispatcher.clone();
            workers.spawn(async move { dispatcher.run().await });
        }
        let stopping = async {
            shutdown.await;
            let _ = stop_deliverer.send(());
        };
        let ((), delivered) = tokio::join!(stopping, deliverer);
        if let Err(e) = delivered {
            tracing::error!(error = %e, "the webhook deliverer could not run");
        }
        pruning.abort();
        dispatcher.stop();
        while let Some(result) = workers.join_next().await {
            if let Err(e) = result {
                tracing::error!(error = %e, "a dispatcher worker panicked");
            }
        }
        Ok(())
    }

    /// Serves the API on `listener` and runs the dispatcher until `shutdown` resolves; then
    /// stops accepting, lets the requests and sends in flight finish, hands the messages it
    /// claimed but did not start back to the storage, and returns.
    ///
    /// # Errors
    /// [`ServerError::PublicWithoutToken`] when the listener is not on a loopback address
    /// and no API token is set; I/O and storage failures.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let address = listener.local_addr()?;
        if self.api_token.is_none() && !address.ip().is_loopback() {
            return Err(ServerError::PublicWithoutToken(address));
        }
        let local_url = format!("http://{address}");
        let app = cartloop_http::router(self.state(&local_url));
        let dispatcher = self.dispatcher_for(&local_url);
        tracing::info!(
            %address,
            active_hours = %self.rules.active_hours,
            workers = self.workers,
            "cartloop listening on {local_url} (operator console: {local_url}/)"
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let hub = self.hub.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("stopping: finishing in-flight requests and sends");
            // Event streams never finish by themselves: end them (clients resume).
            hub.close();
            let _ = stop.send(true);
        };
        let http_stopped = {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let dispatch_stopped = {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let metrics_stopped = {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let metrics_listener = self.metrics_listener.take();
        let metrics = async {
            match metrics_listener {
                Some(metrics_listener) => {
                    let address = metrics_listener.local_addr()?;
                    tracing::info!(%address, "metrics on http://{address}/metrics (no token)");
                    let app = self.metrics_router();
                    listener::serve(metrics_listener, app, self.limits, metrics_stopped).await
                }
                None => Ok(()),
            }
        };
        let (_, http, workers, metrics) = tokio::join!(
            signal,
            listener::serve(listener, app, self.limits, http_stopped),
            self.run_workers(dispatcher, dispatch_stopped),
            metrics,
        );
        http?;
        workers?;
        metrics?;
        tracing::info!("shut down");
        Ok(())
    }
}

/// `PUBLIC_URL` starts every unsubscribe link: an absolute `http(s)` URL without query or
/// fragment.
fn check_public_url(url: &str) -> Result<(), ServerError> {
    let invalid = |why: &str| ServerError::Setting {
        name: "PUBLIC_URL",
        message: format!("{url:?} {why}: expected e.g. https://chat.shop.example.com"),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("is not an http(s) URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(invalid("has no host"));
    }
    if rest.contains(['?', '#'])
        || !url.is_ascii()
        || url.contains(|c: char| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(invalid("must be plain ASCII without a query or fragment"));
    }
    Ok(())
}

/// `REPLY_DOMAIN` is the domain of every `Reply-To` address: it must make valid addresses.
fn check_reply_domain(domain: &str) -> Result<(), ServerError> {
    cartloop_core::email_address::EmailAddress::parse(&format!("reply@{domain}"))
        .map(|_| ())
        .map_err(|e| ServerError::Setting {
            name: "REPLY_DOMAIN",
            message: format!(
                "{domain:?} is not a domain emails can be sent to ({})",
                e.reason
            ),
        })
}

/// The mailer `SMTP_URL` names (`smtp://`, `smtps://`), or the outbox directory when unset.
///
/// # Errors
/// [`ServerError::Mailer`] for a malformed URL or an unusable directory.
pub fn open_mailer(
    smtp_url: Option<&str>,
    outbox_dir: &Path,
) -> Result<Arc<dyn Mailer>, ServerError> {
    open_mailer_with(
        smtp_url,
        outbox_dir,
        cartloop_mail::SmtpOptions::default().pool_size,
    )
}

/// [`open_mailer`] with at most `pool_size` SMTP connections open at once (the server's
/// `SMTP_POOL_SIZE`).
///
/// # Errors
/// As [`open_mailer`].
pub fn open_mailer_with(
    smtp_url: Option<&str>,
    outbox_dir: &Path,
    pool_size: usize,
) -> Result<Arc<dyn Mailer>, ServerError> {
    match smtp_url {
        Some(url) => {
            tracing::info!(smtp = %redact(url), pool_size, "emails go over SMTP");
            let options = cartloop_mail::SmtpOptions {
                pool_size,
                ..cartloop_mail::SmtpOptions::default()
            };
            let mailer = cartloop_mail::SmtpMailer::from_url_with(url, options)
                .map_err(|e| ServerError::Mailer(e.to_string()))?;
            Ok(Arc::new(mailer))
        }
        None => outbox_mailer(outbox_dir),
    }
}

/// The file outbox mailer: one `.eml` file per email in `dir` (created if missing).
///
/// # Errors
/// [`ServerError::Mailer`] when the directory cannot be used.
pub fn outbox_mailer(dir: impl AsRef<Path>) -> Result<Arc<dyn Mailer>, ServerError> {
    let dir = dir.as_ref();
    tracing::info!(outbox = %dir.display(), "emails go to the outbox directory");
    let mailer = cartloop_mail::OutboxMailer::new(dir).map_err(|e| {
        ServerError::Mailer(format!(
            "cannot use {} as the outbox directory: {e}",
            dir.display()
        ))
    })?;
    Ok(Arc::new(mailer))
}

/// A URL with its passwords hidden, for logs and errors: the one in the user info
/// (`user:secret@`) and any query parameter named like one (`?password=secret`).
///
/// ```
/// use cartloop::server::redact;
/// assert_eq!(redact("postgres://app:s3cret@db/x"), "postgres://app:***@db/x");
/// assert_eq!(redact("postgres://db/x?password=s3cret&sslmode=require"), "postgres://db/x?password=***&sslmode=require");
/// ```
pub fn redact(url: &str) -> String {
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

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
    use super::{check_public_url, check_reply_domain, redact};

    #[test]
    fn public_urls_and_reply_domains_are_checked() {
        for ok in [
            "https://chat.shop.example.com",
            "http://127.0.0.1:8080/base",
        ] {
            assert!(check_public_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "notaurl",
            "ftp://x",
            "http://x/?q=1",
            "https://",
            "http://x/#f",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
        assert!(check_reply_domain("replies.shop.example.com").is_ok());
        for bad in ["@x.com", "bad_domain", "ex\u{e4}mple.com", "localhost"] {
            assert!(check_reply_domain(bad).is_err(), "{bad}");
        }
    }

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
