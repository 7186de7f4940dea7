//! Which failures a retry can fix: the [`MailErrorKind`] of a failed SMTP step.
//!
//! The mailer drives the SMTP transaction itself, one step at a time, so it knows how far a
//! failure got — lettre's error alone does not say whether the message data was sent.

use cartloop_core::ports::{MailError, MailErrorKind};
use std::fmt;
use std::time::Duration;

/// A step of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Connecting: TCP, greeting, `EHLO`, TLS, `AUTH`.
    Connect,
    /// `MAIL FROM`.
    MailFrom,
    /// `RCPT TO`.
    RcptTo,
    /// The `DATA` command, before the message is sent.
    Data,
    /// The message and its final `.` have been sent; waiting for the server's verdict.
    EndOfData,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Connect => "connect",
            Step::MailFrom => "MAIL FROM",
            Step::RcptTo => "RCPT TO",
            Step::Data => "DATA",
            Step::EndOfData => "end of data",
        })
    }
}

/// Why a step failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// lettre's error: a 4xx/5xx reply, or a network, TLS, protocol or client error.
    Smtp(lettre::transport::smtp::Error),
    /// No reply within the configured timeout.
    Timeout(Duration),
    /// The email needs an extension the server does not offer (`SMTPUTF8`, `8BITMIME`).
    Unsupported(&'static str),
}

impl Failure {
    /// Whether the server answered (a 4xx or 5xx reply), so the connection still works.
    pub(crate) fn is_reply(&self) -> bool {
        matches!(self, Failure::Smtp(e) if e.status().is_some())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Smtp(e) => e.fmt(f),
            Failure::Timeout(after) => write!(f, "no reply within {after:?}"),
            Failure::Unsupported(extension) => {
                write!(
                    f,
                    "the server does not support {extension}, which this email needs"
                )
            }
        }
    }
}

/// How a failure at `step` should be treated:
///
/// - a 4xx reply → [`Transient`](MailErrorKind::Transient), at any step;
/// - a 5xx reply to `MAIL FROM`, `RCPT TO`, `DATA` or to the message → `Permanent`: the
///   server refused this email;
/// - a 5xx reply while connecting (greeting, `STARTTLS`, `AUTH`) → `Transient`: it refuses
///   the connection, not the email — typically bad credentials or a blocked address that an
///   operator can fix; the dispatcher's attempt limit still ends the retries;
/// - a missing `SMTPUTF8`/`8BITMIME` extension the email needs → `Permanent`;
/// - no reply (connection refused or lost, timeout, TLS or protocol error) before the
///   message was sent → `Transient`: the server cannot have the email;
/// - no reply after the message and its final `.` were sent → `Ambiguous`: the server may
///   have accepted it. The dispatcher retries; the stable `Message-ID` lets receivers drop
///   the duplicate.
pub(crate) fn classify(failure: &Failure, step: Step) -> MailErrorKind {
    match failure {
        Failure::Smtp(e) if e.is_transient() => MailErrorKind::Transient,
        Failure::Smtp(e) if e.is_permanent() && step != Step::Connect => MailErrorKind::Permanent,
        Failure::Smtp(e) if e.is_permanent() => MailErrorKind::Transient,
        Failure::Unsupported(_) => MailErrorKind::Permanent,
        _ if step == Step::EndOfData => MailErrorKind::Ambiguous,
        _ => MailErrorKind::Transient,
    }
}

/// The [`MailError`] for a failure at `step`.
pub(crate) fn mail_error(failure: &Failure, step: Step) -> MailError {
    MailError {
        kind: classify(failure, step),
        message: format!("SMTP {step} failed: {failure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_ambiguous_only_after_the_data() {
        let timeout = Failure::Timeout(Duration::from_secs(1));
        for step in [Step::Connect, Step::MailFrom, Step::RcptTo, Step::Data] {
            assert_eq!(classify(&timeout, step), MailErrorKind::Transient, "{step}");
        }
        assert_eq!(
            classify(&timeout, Step::EndOfData),
            MailErrorKind::Ambiguous
        );
    }

    #[test]
    fn missing_extensions_are_permanent() {
        let failure = Failure::Unsupported("SMTPUTF8");
        assert_eq!(classify(&failure, Step::MailFrom), MailErrorKind::Permanent);
        let error = mail_error(&failure, Step::MailFrom);
        assert_eq!(
            error.message,
            "SMTP MAIL FROM failed: the server does not support SMTPUTF8, which this email needs"
        );
    }
    // Replies (4xx/5xx) and network errors are lettre errors, which only lettre can create:
    // tests/smtp.rs covers them against a real server.
}
