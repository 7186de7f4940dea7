//! Running several futures at once on one task, with no runtime: how a dispatch pass keeps
//! a bounded number of emails in flight while staying runtime-agnostic.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

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
