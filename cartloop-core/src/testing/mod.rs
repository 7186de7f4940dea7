//! Test doubles and the storage conformance suite (feature `test-utils`).
//!
//! - [`MemoryStorage`]: a complete in-memory [`Storage`](crate::ports::Storage);
//! - [`RecordingMailer`] (`mailer`): keeps what it sends, or fails as told;
//! - [`ManualClock`]: a clock you set;
//! - [`conformance`] and [`storage_conformance_tests!`](crate::storage_conformance_tests):
//!   the contract every storage must meet, as tests.

mod clock;
#[macro_use]
pub mod conformance;
mod mailer;
mod memory;

pub use clock::ManualClock;
pub use mailer::RecordingMailer;
pub use memory::MemoryStorage;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Lets the executor's other tasks run once, as an await on a real timer or socket would,
/// without depending on a runtime: pending once (waking itself at once), then ready.
pub(crate) fn yield_now() -> impl Future<Output = ()> {
    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    YieldOnce(false)
}
