//! Test doubles and the storage conformance suite (feature `test-utils`).
//!
//! - [`MemoryStorage`]: a complete in-memory [`Storage`](crate::ports::Storage);
//! - [`RecordingMailer`]: keeps what it sends, or fails as told;
//! - [`ManualClock`]: a clock you set;
//! - [`conformance`] and [`storage_conformance_tests!`](crate::storage_conformance_tests):
//!   the contract every storage must meet, as tests.

mod clock;
pub mod conformance;
mod mailer;
mod memory;

pub use clock::ManualClock;
pub use mailer::RecordingMailer;
pub use memory::MemoryStorage;
