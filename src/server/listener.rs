//! The accept loop: HTTP/1.1 connections served by hyper, with the limits a public server
//! needs against idle and slow clients (slowloris).
//!
//! - A new connection's first request headers must arrive within
//!   [`ConnectionLimits::header_read_timeout`], and a keep-alive connection is closed once it
//!   has been idle (or sending its next request's headers) for
//!   [`ConnectionLimits::keep_alive_timeout`]: a sweeper closes the connections that have sent
//!   no complete request for that long. A connection is busy from its request's headers
//!   until its response's body is written, so a long answer (the event stream) is never
//!   closed as idle.
//! - At most [`ConnectionLimits::max_connections`] connections are open. When a new one
//!   arrives at the limit, the connection that has been idle (or waiting for headers) the
//!   longest is closed to make room: slow or idle clients cannot lock out working ones.
//! - `accept` errors (`EMFILE` when the process runs out of file descriptors, aborted
//!   handshakes) are logged and survived: the loop frees the longest-idle connection, waits
//!   a moment and goes on.
//!
//! On shutdown the loop stops accepting, asks every connection to finish its request in
//! flight and close, and waits for them (at most [`ConnectionLimits::drain_timeout`]).

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Limits on the server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once; at the limit the longest-idle one is closed.
    pub max_connections: usize,
    /// Longest a new connection may take to send its first request's headers.
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may stay idle between requests (or take to send the
    /// next request's headers).
    pub keep_alive_timeout: Duration,
    /// Longest shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// What a connection is doing, as the sweeper sees it.
const WAITING: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;

/// One open connection's activity, shared by its task, its service and the sweeper.
#[derive(Debug)]
struct Activity {
    state: AtomicU8,
    /// Milliseconds since the tracker started, at the last change of `state`.
    since: AtomicU64,
    close: Notify,
}

/// The open connections.
#[derive(Debug)]
struct Tracker {
    started: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Tracker {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self) -> (u64, Arc<Activity>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            state: AtomicU8::new(WAITING),
            since: AtomicU64::new(self.now_ms()),
            close: Notify::new(),
        });
        self.open().insert(id, activity.clone());
        (id, activity)
    }

    fn set(&self, activity: &Activity, state: u8) {
        activity.since.store(self.now_ms(), Ordering::Relaxed);
        activity.state.store(state, Ordering::Relaxed);
    }

    /// Closes the connection that has been idle or waiting the longest; false if every
    /// connection is busy.
    fn evict_one(&self) -> bool {
        let open = self.open();
        let oldest = open
            .values()
            .filter(|a| a.state.load(Ordering::Relaxed) != BUSY)
            .min_by_key(|a| a.since.load(Ordering::Relaxed));
        match oldest {
            Some(activity) => {
                activity.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Closes the connections idle or waiting for longer than the limits allow.
    fn sweep(&self, limits: &ConnectionLimits) {
        let now = self.now_ms();
        let waiting = limits.header_read_timeout.as_millis() as u64;
        let idle = limits.keep_alive_timeout.as_millis() as u64;
        for activity in self.open().values() {
            let age = now.saturating_sub(activity.since.load(Ordering::Relaxed));
            let expired = match activity.state.load(Ordering::Relaxed) {
                WAITING => age > waiting,
                IDLE => age > idle,
                _ => false,
            };
            if expired {
                activity.close.notify_one();
            }
        }
    }
}

/// A response body that marks its connection idle once it is written (or dropped).
struct WrittenBody {
    inner: axum::body::Body,
    idle: Option<(Arc<Tracker>, Arc<Activity>)>,
}

impl WrittenBody {
    fn done(&mut self) {
        if let Some((tracker, activity)) = self.idle.take() {
            tracker.set(&activity, IDLE);
        }
    }
}

impl hyper::body::Body for WrittenBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None | Some(Err(_)))) {
            self.done();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WrittenBody {
    fn drop(&mut self) {
        self.done();
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let tracker = Arc::new(Tracker {
        started: Instant::now(),
        next_id: AtomicU64::new(0),
        open: Mutex::new(HashMap::new()),
    });
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let sweeper = tokio::spawn({
        let tracker = tracker.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                tracker.sweep(&limits);
            }
        }
    });
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_error_log: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
            // Reap finished connection tasks as we go.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE/ENFILE, or a connection reset before it was accepted: free a slot
                // and go on. Logged at most once a second, so a flood does not flood logs.
                if last_error_log.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
                    tracing::warn!(error = %e, open = tracker.open().len(), "accept failed; closing the longest-idle connection");
                    last_error_log = Some(Instant::now());
                }
                tracker.evict_one();
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if tracker.open().len() >= limits.max_connections && !tracker.evict_one() {
            // Every connection is busy with a request: refuse this one.
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (id, activity) = tracker.add();
        let service = {
            let (app, tracker, activity) = (app.clone(), tracker.clone(), activity.clone());
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let (app, tracker, activity) = (app.clone(), tracker.clone(), activity.clone());
                async move {
                    tracker.set(&activity, BUSY);
                    let response = app.oneshot(request.map(axum::body::Body::new)).await;
                    // Busy until the body is written, not just the head: an event stream
                    // is one long answer, neither idle nor to be closed to make room.
                    response.map(|r| {
                        r.map(|body| {
                            axum::body::Body::new(WrittenBody {
                                inner: body,
                                idle: Some((tracker, activity)),
                            })
                        })
                    })
                }
            })
        };
        let (tracker, mut stopped) = (tracker.clone(), stopped.clone());
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            // hyper's own header timeout also runs while a keep-alive connection is idle
            // between requests, so it would close idle connections after the header timeout
            // rather than the keep-alive one, racing clients that reuse them. The sweeper
            // applies both limits instead.
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(None)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                // Idle too long, or evicted to make room: close at once.
                _ = activity.close.notified() => {}
                // Shutdown: finish the request in flight, then close.
                _ = async { let _ = stopped.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            tracker.open().remove(&id);
        });
    }
    drop(listener);
    sweeper.abort();
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "connections still busy after the drain timeout; closing them"
        );
        connections.abort_all();
    }
    Ok(())
}
