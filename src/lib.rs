//! # cartloop
//!
//! A conversational-commerce messaging backend: a store's operators write templated
//! messages to its clients; each message is validated when written, rendered for the client
//! and emailed only during the client's active hours (09:00–20:00 in the client's zone).
//!
//! This facade re-exports the crates; features pick the adapters:
//!
//! | feature | crate | what |
//! |---|---|---|
//! | (always) | [`core`] | domain, validation, templates, active hours, dispatch rules, ports |
//! | `sqlite`, `postgres` | `sqlx` | storage on SQLite (embedded default) or PostgreSQL |
//! | `http` | `http` | the REST API as an axum router |
//! | `outbox`, `smtp` | `mail` | the file outbox mailer; SMTP delivery with lettre |
//! | `inbound` | `mail::inbound` | parsing clients' replies (raw emails) |
//! | `server` | `server` | the runtime: API + dispatcher in one value, the accept loop, settings |
//! | `test-utils` | [`core::testing`] | in-memory storage, recording mailer, manual clock |
//!
//! # Layout
//! - `cartloop-core/`: pure domain, no I/O.
//! - `cartloop-sqlx/`, `cartloop-mail/`, `cartloop-http/`: the adapters.
//! - `src/server/`: the runtime (feature `server`).
//! - `examples/server.rs`: the bundled server, a thin shell over [`server`]; the other
//!   examples embed cartloop in apps of their own.
//! - `benches/`: criterion benches.

pub use cartloop_core as core;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use cartloop_sqlx as sqlx;

#[cfg(feature = "http")]
pub use cartloop_http as http;

#[cfg(any(feature = "smtp", feature = "outbox"))]
pub use cartloop_mail as mail;

#[cfg(feature = "server")]
pub mod server;

/// The README's Rust examples, compiled and run as doctests so the front door stays true.
#[cfg(all(doctest, feature = "server", feature = "sqlite"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
