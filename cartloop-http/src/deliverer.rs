//! The webhook deliverer: claims queued deliveries, sends them and records the results
//! (SPEC §10), run by the server beside the dispatcher.
//!
//! One loop claims what is due ([`Webhooks::claim_deliveries`], under a lease) whenever
//! an event may have been written ([`EventLog::watch_events`]), a result was recorded (the
//! next event of that conversation may be due now) or a short poll passes. Each claimed
//! delivery is sent on its own task, at most [`DelivererConfig::concurrency`] at once;
//! results go to one recorder task that writes them in groups
//! ([`Webhooks::record_deliveries`]). On shutdown the loop stops claiming, gives the
//! attempts in flight a few seconds, and hands back those still unanswered
//! ([`Webhooks::release_deliveries`]); a server killed instead leaves them to its lease.
//!
//! [`Webhooks::claim_deliveries`]: cartloop_core::ports::Webhooks::claim_deliveries
//! [`Webhooks::record_deliveries`]: cartloop_core::ports::Webhooks::record_deliveries
//! [`Webhooks::release_deliveries`]: cartloop_core::ports::Webhooks::release_deliveries
//! [`EventLog::watch_events`]: cartloop_core::ports::EventLog::watch_events
//!
//! The storage keeps one delivery per webhook and conversation claimable at a time, so
//! order per conversation holds across servers; the claim fences every result.

use crate::webhook_client::WebhookClient;
use cartloop_core::ports::{
    ClaimedDelivery, Clock, DeliveryAttempt, DeliveryNext, DeliveryResult, Storage,
};
use cartloop_core::webhook_retry;
use cartloop_core::webhook_signature::WebhookSecret;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;

/// How the deliverer claims and sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelivererConfig {
    /// How long a claim holds before another server may take the delivery
    /// (`WEBHOOK_LEASE`, default 30 s); longer than an attempt's 10 s.
    pub lease: Duration,
    /// Attempts in flight at most (`WEBHOOK_CONCURRENCY`, default 64).
    pub concurrency: usize,
    /// How often to look for due deliveries without a wake-up (retries come due this way).
    pub poll: Duration,
    /// How long attempts in flight may finish after shutdown before they are handed back.
    pub grace: Duration,
}

impl Default for DelivererConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            concurrency: 64,
            poll: Duration::from_millis(500),
            grace: Duration::from_secs(5),
        }
    }
}

/// What the deliverer counts, registered in the server's `/metrics` registry.
#[derive(Debug, Clone, Default)]
pub struct DeliveryMetrics {
    deliveries: Family<Vec<(String, String)>, Counter>,
    oldest: Gauge<i64, AtomicI64>,
    errors: Counter,
}

impl DeliveryMetrics {
    /// Registers `cartloop_webhook_deliveries_total{outcome}`,
    /// `cartloop_webhook_oldest_undelivered_seconds` and
    /// `cartloop_webhook_storage_errors_total` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cartloop_webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered, retrying, failed, disabled",
            self.deliveries.clone(),
        );
        registry.register(
            "cartloop_webhook_oldest_undelivered_seconds",
            "Age of the oldest event still waiting for an enabled webhook (0: none)",
            self.oldest.clone(),
        );
        registry.register(
            "cartloop_webhook_storage_errors",
            "Deliverer storage errors (claiming, recording, releasing)",
            self.errors.clone(),
        );
    }

    fn count(&self, outcome: &str) {
        self.deliveries
            .get_or_create(&vec![("outcome".to_owned(), outcome.to_owned())])
            .inc();
    }
}

/// The deliverer: cheap to clone; [`run`](Self::run) it once per server.
#[derive(Clone)]
pub struct Deliverer {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    client: WebhookClient,
    config: DelivererConfig,
    metrics: DeliveryMetrics,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

type InFlight = Arc<Mutex<HashSet<(i64, u32)>>>;

impl Deliverer {
    /// A deliverer over `storage`, sending with `client`.
    pub fn new(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        client: WebhookClient,
        config: DelivererConfig,
        metrics: DeliveryMetrics,
    ) -> Self {
        Self {
            storage,
            clock,
            client,
            config,
            metrics,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the claiming loop (events were written).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers until `shutdown` resolves; then hands back what it still holds.
    ///
    /// # Errors
    /// When the storage cannot be watched for new events; storage errors while running are
    /// logged, counted and retried on the next poll.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), cartloop_core::ports::StorageError> {
        let wake = self.wake.clone();
        self.storage
            .watch_events(Arc::new(move || wake.notify_one()))
            .await?;
        let (results, received) = mpsc::unbounded_channel::<DeliveryResult>();
        let in_flight: InFlight = Arc::default();
        let recorder = tokio::spawn(self.clone().record(received, in_flight.clone()));
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut sends = JoinSet::new();
        let mut gauge_at = tokio::time::Instant::now();
        tokio::pin!(shutdown);
        loop {
            while sends.try_join_next().is_some() {}
            let free = permits.available_permits();
            let mut claimed = 0;
            if free > 0 {
                match self
                    .storage
                    .claim_deliveries(self.clock.now(), self.config.lease, free as u32)
                    .await
                {
                    Ok(deliveries) => {
                        claimed = deliveries.len();
                        for delivery in deliveries {
                            let permit = permits.clone().try_acquire_owned();
                            let key = (delivery.id, delivery.attempt);
                            in_flight
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .insert(key);
                            let this = self.clone();
                            let results = results.clone();
                            sends.spawn(async move {
                                let _permit = permit;
                                let result = this.attempt(delivery).await;
                                let _ = results.send(result);
                            });
                        }
                    }
                    Err(e) => {
                        self.metrics.errors.inc();
                        tracing::error!(error = %e, "claiming webhook deliveries failed");
                    }
                }
            }
            if gauge_at.elapsed() >= Duration::from_secs(5) {
                gauge_at = tokio::time::Instant::now();
                self.update_gauge().await;
            }
            // A full claim: more may be due at once, as soon as a slot frees.
            let wait = if claimed > 0 && claimed == free {
                Duration::from_millis(5)
            } else {
                self.config.poll
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
            // Wait for a slot before claiming again.
            if permits.available_permits() == 0 {
                tokio::select! {
                    () = &mut shutdown => break,
                    permit = permits.clone().acquire_owned() => drop(permit),
                }
            }
        }
        // Attempts in flight get a grace; what is left then is handed back.
        let _ = tokio::time::timeout(self.config.grace, async {
            while sends.join_next().await.is_some() {}
        })
        .await;
        sends.abort_all();
        while sends.join_next().await.is_some() {}
        drop(results);
        let _ = recorder.await;
        let left: Vec<(i64, u32)> = in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        if !left.is_empty() {
            match self.storage.release_deliveries(&left).await {
                Ok(n) => tracing::info!(released = n, "webhook deliveries handed back"),
                Err(e) => {
                    self.metrics.errors.inc();
                    tracing::error!(error = %e, "handing back webhook deliveries failed");
                }
            }
        }
        Ok(())
    }

    async fn update_gauge(&self) {
        match self.storage.oldest_undelivered().await {
            Ok(oldest) => {
                let age = oldest.map_or(0, |at| (self.clock.now() - at).num_seconds().max(0));
                self.metrics.oldest.set(age);
            }
            Err(e) => {
                self.metrics.errors.inc();
                tracing::warn!(error = %e, "reading the oldest undelivered event failed");
            }
        }
    }

    /// One attempt of `delivery`, and its result.
    async fn attempt(&self, delivery: ClaimedDelivery) -> DeliveryResult {
        let now = self.clock.now();
        let sent = match WebhookSecret::parse(&delivery.secret) {
            Ok(secret) => {
                self.client
                    .send(&delivery.webhook.url, &secret, &delivery.event, now)
                    .await
            }
            Err(e) => crate::webhook_client::Sent {
                outcome: webhook_retry::Outcome::Failed,
                response_status: None,
                error: Some(format!("the stored secret: {e}")),
                duration_ms: 0,
            },
        };
        let (status, next) =
            webhook_retry::decide(&sent.outcome, delivery.attempt, delivery.first_at, now);
        let outcome = match &next {
            DeliveryNext::Disable(_) => "disabled",
            _ => status.as_str(),
        };
        self.metrics.count(outcome);
        if let Some(error) = &sent.error {
            tracing::warn!(
                webhook = delivery.webhook.id.0,
                event = %delivery.event.id,
                attempt = delivery.attempt,
                outcome,
                error = %error,
                "webhook delivery failed"
            );
        }
        DeliveryResult {
            delivery: (delivery.id, delivery.attempt),
            attempt: DeliveryAttempt {
                webhook_id: delivery.webhook.id,
                event_id: Some(delivery.event.id),
                kind: delivery.event.kind,
                attempt: delivery.attempt,
                status,
                response_status: sent.response_status,
                error: sent.error,
                duration_ms: sent.duration_ms,
                at: now,
            },
            next,
        }
    }

    /// Writes results as they come, in groups of what has arrived meanwhile.
    async fn record(
        self,
        mut received: mpsc::UnboundedReceiver<DeliveryResult>,
        in_flight: InFlight,
    ) {
        const GROUP: usize = 512;
        let mut group = Vec::with_capacity(GROUP);
        while received.recv_many(&mut group, GROUP).await > 0 {
            let keys: Vec<(i64, u32)> = group.iter().map(|r| r.delivery).collect();
            let batch = std::mem::take(&mut group);
            let mut tries = 0;
            loop {
                match self.storage.record_deliveries(batch.clone()).await {
                    Ok(_) => break,
                    Err(e) => {
                        self.metrics.errors.inc();
                        tries += 1;
                        tracing::error!(error = %e, results = batch.len(), tries, "recording webhook deliveries failed");
                        if tries >= 5 {
                            // Their leases run out and they are tried again: none lost.
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                    }
                }
            }
            {
                let mut held = in_flight.lock().unwrap_or_else(PoisonError::into_inner);
                for key in keys {
                    held.remove(&key);
                }
            }
            // The next event of those conversations may be due now.
            self.wake.notify_one();
        }
    }
}
