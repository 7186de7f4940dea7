//! # cartloop-core
//!
//! The pure domain of cartloop, a conversational-commerce messaging backend: a store's
//! operators write templated messages to clients, which are validated when written,
//! rendered for the client, and emailed only during the client's active hours.
//!
//! This crate does no I/O. It defines the rules and the [`ports`] (storage, mailer, clock)
//! that adapters implement: `cartloop-sqlx`, `cartloop-mail`, `cartloop-http`.
//!
//! # Layout
//! - [`ids`], [`domain`], [`email_address`]: the vocabulary — stores, operators, clients,
//!   conversations, messages and their statuses; addresses checked once where they enter.
//! - [`name`]: display names (stores, operators, clients, groups), checked once.
//! - [`discount_code`]: a conversation's discount code, checked once.
//! - [`validate`]: payload validation (length, characters, placeholders).
//! - [`template`]: templates parsed once into segments and rendered per conversation.
//! - [`active_hours`]: the delivery window and the send-instant rule, across DST.
//! - [`rules`]: what a deployment sets once (validation, the default window).
//! - [`delivery_policy`]: when a message may go, one decision over the rules below, and
//!   which of them holds it now:
//!   - [`calendar`]: the week's windows per day (or one window every day), across DST.
//!   - [`closures`]: local days and stretches when a store sends nothing.
//!   - [`frequency_cap`]: at most N emails to one client in any rolling span.
//!   - [`reply_grace`]: whether a message answers a client who is writing right now.
//!   - [`send_at`]: a requested send instant, no more than a minute back or 90 days ahead.
//!   - `duration_text`: spans written `90m`, `24h`, `7d`.
//!   - [`json`]: settings read from JSON with typed errors naming the part at fault.
//! - [`directory`]: creating and changing stores, operators, clients and conversations.
//! - [`chat`]: writing a message (`POST /chat/`) and reading a conversation.
//! - [`conversations`]: the conversations list, paged stably while chats arrive.
//! - [`inbound`]: a client's reply by email, matched to its conversation.
//! - [`dispatch`]: claiming, rendering, sending and recording due messages.
//! - [`compose`]: the email that delivers a message; [`message_id`]: its `Message-ID`.
//! - [`hourly_cap`]: how many emails a claim may take under the hourly cap.
//! - `concurrent`: running a pass's sends, heartbeat and wake-ups on one task.
//! - [`ports`]: the storage ports (one per concern), `Mailer`, `Links` and `Clock`;
//!   [`disk_fault`]: the cause a storage gives when its disk is full or failing.
//! - [`access`]: who may do what: principals, their roles and stores, one rule per question.
//! - [`lockout`]: failed sign-ins that lock an email out; [`session_lifetime`]: how long a
//!   session lasts.
//! - [`event`]: the events every change writes (SPEC §10): types, ids and shapes.
//! - [`webhook_url`]: where a webhook may deliver (http(s), public addresses only);
//!   [`webhook_signature`]: its secret and the Standard Webhooks signature;
//!   [`webhook_retry`]: when a failed delivery is tried again, and when given up.
//! - [`demo`]: the demo data set every storage imports.
//! - [`text`]: small text helpers for error messages.
//! - `testing` (feature `test-utils`): in-memory storage, recording mailer, manual clock and
//!   the storage conformance suite.
//!
//! # Example
//! ```
//! use cartloop_core::active_hours::ActiveHours;
//! use cartloop_core::template::RenderValues;
//! use cartloop_core::validate::{Payload, ValidationPolicy};
//! use chrono::{TimeZone, Utc};
//!
//! let policy = ValidationPolicy::default();
//! let payload = Payload::parse("Sure << username >>, here is your code << discountCode >>", &policy)?;
//! let values = RenderValues { username: "Ann", discount_code: Some("PROMO50"), operator: "Dan" };
//! assert_eq!(payload.render_checked(&values, &policy)?, "Sure Ann, here is your code PROMO50");
//!
//! // 07:00 in New York: the email waits for 09:00 local.
//! let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
//! let at = ActiveHours::default().next_send_instant(now, chrono_tz::America::New_York);
//! assert_eq!(at, Utc.with_ymd_and_hms(2026, 11, 25, 14, 0, 0).unwrap());
//! # Ok::<(), cartloop_core::validate::ValidationError>(())
//! ```

pub mod access;
pub mod active_hours;
pub mod calendar;
pub mod chat;
pub mod closures;
pub mod compose;
mod concurrent;
pub mod conversations;
pub mod delivery_policy;
pub mod demo;
pub mod directory;
pub mod discount_code;
pub mod disk_fault;
pub mod dispatch;
pub mod domain;
mod duration_text;
pub mod email_address;
pub mod event;
pub mod frequency_cap;
pub mod hourly_cap;
pub mod ids;
pub mod inbound;
pub mod json;
pub mod lockout;
pub mod message_id;
pub mod name;
pub mod ports;
pub mod reply_grace;
pub mod rules;
pub mod send_at;
pub mod session_lifetime;
pub mod template;
pub mod text;
pub mod validate;
pub mod webhook_retry;
pub mod webhook_signature;
pub mod webhook_url;

#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use chrono_tz::Tz;
