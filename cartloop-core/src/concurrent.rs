//! Running several futures at once on one task, with no runtime: how a dispatch pass keeps
//! a bounded number of emails in flight, renews its leases while it sends, and how the
//! dispatch loop waits for "a message may be due" — all while staying runtime-agnostic.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, Waker};

/// Runs `main` and `side` together on the calling task and returns `main`'s output as soon
/// as it is ready; `side` (e.g. a heartbeat loop) is dropped then. Once `side` finishes,
/// only `main` is polled.
pub(crate) async fn while_running<M: Future, S: Future>(main: M, side: S) -> M::Output {
    let mut main = pin!(main);
    let mut side = pin!(side);
    let mut side_done = false;
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(output) = main.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        if !side_done && side.as_mut().poll(cx).is_ready() {
            side_done = true;
        }
        Poll::Pending
    })
    .await
}

/// Waits for whichever of `a` and `b` finishes first; the other is dropped.
pub(crate) async fn first<A: Future, B: Future>(a: A, b: B) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    std::future::poll_fn(move |cx| {
        if a.as_mut().poll(cx).is_ready() || b.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// A runtime-agnostic wake-up signal shared by several waiters (the dispatch loop's
/// workers): [`notify_one`](Self::notify_one) wakes one waiter, or lets the next one through
/// at once when none waits, so a notification is never lost; [`close`](Self::close) wakes
/// everyone, for good.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    state: Mutex<SignalState>,
}

#[derive(Debug, Default)]
struct SignalState {
    permit: bool,
    closed: bool,
    next_id: u64,
    waiting: VecDeque<(u64, Waker)>,
    woken: HashSet<u64>,
}

impl Signal {
    fn lock(&self) -> MutexGuard<'_, SignalState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes one waiter, or stores one permit for the next.
    pub(crate) fn notify_one(&self) {
        let waker = {
            let mut state = self.lock();
            match state.waiting.pop_front() {
                Some((id, waker)) => {
                    state.woken.insert(id);
                    Some(waker)
                }
                None => {
                    state.permit = true;
                    None
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes every waiter, now and later.
    pub(crate) fn close(&self) {
        let wakers: Vec<Waker> = {
            let mut state = self.lock();
            state.closed = true;
            state.waiting.drain(..).map(|(_, w)| w).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Resolves at the next notification (or at once if a permit is stored or the signal
    /// is closed).
    pub(crate) fn notified(&self) -> Notified<'_> {
        Notified {
            signal: self,
            id: None,
        }
    }
}

/// The future of [`Signal::notified`].
pub(crate) struct Notified<'a> {
    signal: &'a Signal,
    id: Option<u64>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let mut state = self.signal.lock();
        if state.closed {
            return Poll::Ready(());
        }
        if let Some(id) = self.id {
            if state.woken.remove(&id) {
                drop(state);
                self.id = None;
                return Poll::Ready(());
            }
        }
        if state.permit {
            state.permit = false;
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = state.next_id;
                state.next_id += 1;
                id
            }
        };
        match state.waiting.iter_mut().find(|(i, _)| *i == id) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => state.waiting.push_back((id, cx.waker().clone())),
        }
        drop(state);
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let handed_on = {
            let mut state = self.signal.lock();
            state.waiting.retain(|(i, _)| *i != id);
            state.woken.remove(&id)
        };
        // Woken but gone before it saw the notification: pass it on, so none is lost.
        if handed_on {
            self.signal.notify_one();
        }
    }
}

/// Runs `start(item)` for every item, at most `limit` at a time (at least one), all on the
/// calling task. Each item is started only when a slot is free, so `start` sees the state
/// of the world at that moment. Returns the outputs in the order they finished.
pub(crate) async fn run_bounded<I, F, S>(items: I, limit: usize, mut start: S) -> Vec<F::Output>
where
    I: IntoIterator,
    S: FnMut(I::Item) -> F,
    F: Future,
{
    let limit = limit.max(1);
    let mut items = items.into_iter().fuse();
    let mut running: Vec<Pin<Box<F>>> = Vec::with_capacity(limit);
    let mut finished = Vec::new();
    std::future::poll_fn(move |cx| loop {
        while running.len() < limit {
            match items.next() {
                Some(item) => running.push(Box::pin(start(item))),
                None => break,
            }
        }
        if running.is_empty() {
            // Nothing running after filling the slots: every item has finished.
            return Poll::Ready(std::mem::take(&mut finished));
        }
        let before = running.len();
        let mut i = 0;
        while i < running.len() {
            match running[i].as_mut().poll(cx) {
                Poll::Ready(output) => {
                    finished.push(output);
                    drop(running.swap_remove(i));
                }
                Poll::Pending => i += 1,
            }
        }
        if running.len() == before {
            // Every running future registered a wake-up; none freed a slot.
            return Poll::Pending;
        }
        // Slots were freed: start the next items and poll them at once.
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
    async fn while_running_drops_the_side_future_when_main_ends() {
        let out = while_running(async { 7 }, std::future::pending::<()>()).await;
        assert_eq!(out, 7);
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
