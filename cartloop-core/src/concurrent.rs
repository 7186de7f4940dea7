//! Running several futures at once on one task, with no runtime: how a dispatch pass keeps
//! a bounded number of emails in flight, renews its leases while it sends, and how the
//! dispatch loop waits for "a message may be due". Built on `futures-util` (select, a
//! bounded unordered buffer) and `event-listener` (the wake-up); what is here is only how
//! the dispatcher uses them.

use event_listener::Event;
use futures_util::future::{select, Either};
use futures_util::stream::{self, StreamExt};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `main` and `side` together on the calling task and returns `main`'s output as soon
/// as it is ready; `side` (e.g. a heartbeat loop) is dropped then. Once `side` finishes,
/// only `main` is polled.
pub(crate) async fn while_running<M: Future, S: Future>(main: M, side: S) -> M::Output {
    let side = async {
        side.await;
        std::future::pending::<()>().await
    };
    match select(pin!(main), pin!(side)).await {
        Either::Left((output, _)) => output,
        Either::Right(((), _)) => unreachable!("the side future never resolves"),
    }
}

/// Waits for whichever of `a` and `b` finishes first; the other is dropped.
pub(crate) async fn first<A: Future, B: Future>(a: A, b: B) {
    let _ = select(pin!(a), pin!(b)).await;
}

/// A wake-up signal shared by several waiters (the dispatch loop's workers):
/// [`notify_one`](Self::notify_one) wakes one waiter, or lets the next one through at once
/// when none waits, so a notification is never lost; [`close`](Self::close) wakes everyone,
/// for good. Notifications that arrive before a waiter takes the first are one: the woken
/// worker's pass claims everything due.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    event: Event,
    permit: AtomicBool,
    closed: AtomicBool,
}

impl Signal {
    /// Wakes one waiter, or stores one permit for the next.
    pub(crate) fn notify_one(&self) {
        self.permit.store(true, Ordering::SeqCst);
        // A listener notified but dropped before it saw this passes it on.
        self.event.notify(1);
    }

    /// Wakes every waiter, now and later.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    fn taken(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.permit.swap(false, Ordering::SeqCst)
    }

    /// Resolves at the next notification (or at once if a permit is stored or the signal
    /// is closed).
    pub(crate) async fn notified(&self) {
        loop {
            if self.taken() {
                return;
            }
            let listener = self.event.listen();
            // A notification between the check above and listening is seen here.
            if self.taken() {
                return;
            }
            listener.await;
        }
    }
}

/// Runs `start(item)` for every item, at most `limit` at a time (at least one), all on the
/// calling task. Each item is started only when a slot is free, so `start` sees the state
/// of the world at that moment. Returns the outputs in the order they finished.
pub(crate) async fn run_bounded<I, F, S>(items: I, limit: usize, start: S) -> Vec<F::Output>
where
    I: IntoIterator,
    S: FnMut(I::Item) -> F,
    F: Future,
{
    stream::iter(items)
        .map(start)
        .buffer_unordered(limit.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn runs_all_with_at_most_limit_in_flight() {
        let in_flight = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let outputs = run_bounded(0..20, 6, |n| {
            let (in_flight, most) = (&in_flight, &most);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                for _ in 0..(n % 4) + 1 {
                    tokio::task::yield_now().await;
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
                n
            }
        })
        .await;
        let mut sorted = outputs.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn a_notification_reaches_one_waiter_or_the_next() {
        let signal = std::sync::Arc::new(Signal::default());
        signal.notify_one();
        // Stored for the next waiter.
        signal.notified().await;
        let s = signal.clone();
        let waiter = tokio::spawn(async move { s.notified().await });
        tokio::task::yield_now().await;
        // Waiting by now or not yet: either way the waiter gets through.
        signal.notify_one();
        waiter.await.unwrap();
        signal.close();
        signal.notified().await;
        signal.notified().await;
    }

    #[tokio::test]
    async fn a_waiter_dropped_after_its_notification_passes_it_on() {
        let signal = std::sync::Arc::new(Signal::default());
        let (a, b) = (signal.clone(), signal.clone());
        let first_waiter = tokio::spawn(async move { a.notified().await });
        let second_waiter = tokio::spawn(async move { b.notified().await });
        tokio::task::yield_now().await;
        first_waiter.abort();
        signal.notify_one();
        tokio::time::timeout(std::time::Duration::from_secs(5), second_waiter)
            .await
            .expect("the notification reached the waiter still there")
            .unwrap();
    }

    #[tokio::test]
    async fn while_running_drops_the_side_future_when_main_ends() {
        let out = while_running(async { 7 }, std::future::pending::<()>()).await;
        assert_eq!(out, 7);
        let out = while_running(
            async {
                tokio::task::yield_now().await;
                8
            },
            async {},
        )
        .await;
        assert_eq!(out, 8);
        first(std::future::pending::<()>(), async {}).await;
    }

    #[tokio::test]
    async fn a_limit_of_one_runs_in_order() {
        let outputs = run_bounded(0..5, 1, |n| async move {
            tokio::task::yield_now().await;
            n
        })
        .await;
        assert_eq!(outputs, [0, 1, 2, 3, 4]);
        let none: Vec<u8> = run_bounded(Vec::<u8>::new(), 0, |n| async move { n }).await;
        assert!(none.is_empty());
    }
}
