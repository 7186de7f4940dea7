//! # cartloop-mail
//!
//! The mailers of cartloop: implementations of the core's
//! [`Mailer`](cartloop_core::ports::Mailer) port, which delivers one
//! [`Email`](cartloop_core::ports::Email) and classifies its failures so that the
//! dispatcher knows whether to retry; and the reading of a client's reply.
//!
//! - [`SmtpMailer`] (feature `smtp`, on by default): SMTP over lettre and rustls, with a
//!   bounded pool of reused connections and a timeout on every network step. Built from a
//!   URL: `smtp://[user:pass@]host[:port][?tls=none|starttls|tls]` or `smtps://host[:port]`.
//! - [`OutboxMailer`] (always): writes each email as an `.eml` file into a directory — the
//!   embedded default, when no SMTP server is configured.
//! - [`inbound::parse_reply`] (feature `inbound`, on by default): a reply's raw RFC 822
//!   bytes as the core's [`InboundEmail`](cartloop_core::inbound::InboundEmail): its ids,
//!   recipients and only the new text (quotes and signature removed).
//!
//! Both mailers write one message, built by [`build_message`] with lettre's builder:
//! `From: <store> <sender>`, `To: <client> <address>`, `Reply-To` and one-click
//! `List-Unsubscribe` (RFC 8058) when the email has them, the subject,
//! `Message-ID: <cartloop.message.<id>.<created ms>@<domain>>` (stable across retries, so
//! receivers can drop duplicates), `Date`, and the rendered message as UTF-8 `text/plain`.
//! The outbox file holds exactly the bytes SMTP sends.
//!
//! # Layout
//! - `message.rs`: [`build_message`], the one email writer.
//! - `smtp/`: [`SmtpMailer`] — `url.rs` (the URL and [`MailConfigError`]), `prepared.rs`
//!   (envelope and `DATA`), `pool.rs` (connections), `transaction.rs` (`MAIL`/`RCPT`/`DATA`),
//!   `classify.rs` (transient, permanent or ambiguous).
//! - `outbox.rs`: [`OutboxMailer`].
//! - `inbound/`: [`inbound::parse_reply`] — `html.rs` (an HTML part as text), `quotes.rs`
//!   (the quoted original and the signature).
//! - [`testing`] (feature `test-utils`): [`SmtpSink`](testing::SmtpSink), a real SMTP server
//!   on a local port that records what it receives, for this and other crates' tests.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cartloop_core::ports::Mailer;
//! use cartloop_mail::OutboxMailer;
//! use std::sync::Arc;
//!
//! let dir = std::env::temp_dir().join(format!("cartloop-outbox-{}", std::process::id()));
//! // The server picks one of the mailers at start-up and holds it as a trait object.
//! let mailer: Arc<dyn Mailer> = match std::env::var("SMTP_URL") {
//!     # #[cfg(feature = "smtp")]
//!     Ok(url) => Arc::new(cartloop_mail::SmtpMailer::from_url(&url)?),
//!     _ => Arc::new(OutboxMailer::new(&dir)?),
//! };
//! # let _ = mailer;
//! # let _ = std::fs::remove_dir_all(&dir);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "inbound")]
pub mod inbound;
mod message;
mod outbox;
#[cfg(feature = "smtp")]
mod smtp;

#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

/// lettre, whose [`Message`](lettre::Message) [`build_message`] returns.
pub use lettre;
pub use message::build_message;
pub use outbox::OutboxMailer;
#[cfg(feature = "smtp")]
pub use smtp::{MailConfigError, SmtpMailer, SmtpOptions, TlsMode};
