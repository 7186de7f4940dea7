//! One mail transaction on an open connection: `MAIL FROM`, `RCPT TO`, `DATA`, the message.
//!
//! Where the server offers `PIPELINING` (RFC 2920), `MAIL FROM`, the `RCPT TO`s and `DATA`
//! go in one write and their replies are read in turn: two round trips an email (the
//! commands, then the message) instead of one per command. The message itself waits for
//! the `354` reply to `DATA`, as RFC 2920 requires.

use super::classify::{Failure, Step};
use super::pool::with_timeout;
use super::prepared::Prepared;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use std::time::Duration;

/// Sends `mail`, each step within `timeout`, pipelining the commands when `pipelining`
/// (the server offers it), and says which step failed. After an error the connection is in
/// an unknown state and must not be reused.
pub(crate) async fn deliver(
    conn: &mut AsyncSmtpConnection,
    mail: &Prepared,
    timeout: Duration,
    pipelining: bool,
) -> Result<(), (Step, Failure)> {
    let mut parameters = Vec::new();
    if mail.needs_smtputf8 {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err((Step::MailFrom, Failure::Unsupported("SMTPUTF8")));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if mail.needs_8bitmime {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err((Step::MailFrom, Failure::Unsupported("8BITMIME")));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }

    let from = mail.envelope.from().cloned();
    let mail_from = Mail::new(from, parameters);
    if pipelining {
        use std::fmt::Write as _;
        let mut commands = mail_from.to_string();
        for to in mail.envelope.to() {
            let _ = write!(commands, "{}", Rcpt::new(to.clone(), Vec::new()));
        }
        let _ = write!(commands, "{Data}");
        // One write; the first reply is `MAIL FROM`'s, then one per `RCPT TO`, then `DATA`'s.
        // After a refusal the later replies are left unread: the connection is closed.
        step(Step::MailFrom, timeout, conn.command(commands)).await?;
        for _ in mail.envelope.to() {
            step(Step::RcptTo, timeout, conn.read_response()).await?;
        }
        step(Step::Data, timeout, conn.read_response()).await?;
    } else {
        step(Step::MailFrom, timeout, conn.command(mail_from)).await?;
        for to in mail.envelope.to() {
            step(
                Step::RcptTo,
                timeout,
                conn.command(Rcpt::new(to.clone(), Vec::new())),
            )
            .await?;
        }
        step(Step::Data, timeout, conn.command(Data)).await?;
    }
    // Not `conn.message(..)`: it writes the message and the final "." in two writes, and
    // lettre's socket has Nagle's algorithm on, so the second write waits for the server's
    // delayed ACK, tens of milliseconds per email on Linux (BENCHMARKS.md).
    // One write: every exchange is then a single request and its reply.
    step(Step::EndOfData, timeout, conn.command(&mail.data)).await?;
    Ok(())
}

async fn step<T>(
    name: Step,
    timeout: Duration,
    future: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, (Step, Failure)> {
    with_timeout(timeout, async { future.await.map_err(Failure::Smtp) })
        .await
        .map_err(|failure| (name, failure))
}
