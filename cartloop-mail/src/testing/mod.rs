//! Test helpers (feature `test-utils`): [`SmtpSink`], a real SMTP server that records what
//! it receives (`sink`), and [`ParsedEmail`] (`email`) to read what it received.
//!
//! Other crates' tests use them too, e.g. to point the server binary at an SMTP server:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use cartloop_mail::testing::{SinkBehavior, SmtpSink};
//!
//! let sink = SmtpSink::start_with(SinkBehavior::reject_rcpt("550 5.1.1 no such user")).await;
//! assert!(sink.url().starts_with("smtp://127.0.0.1:"));
//! # }
//! ```

mod email;
mod sink;

pub use email::{decode_encoded_words, ParsedEmail, ReceivedMail};
pub use sink::{Fault, SinkBehavior, SmtpSink};

/// Standard base64 (line breaks and spaces ignored), `None` if `text` is not base64.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    mail_parser::decoders::base64::base64_decode(text.as_bytes())
}
