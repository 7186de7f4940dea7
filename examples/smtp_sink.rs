//! A real SMTP server on loopback for benchmarks (`benches/burst.sh`): `SmtpSink`, which
//! waits `delay_ms` before accepting each email, as a distant relay would. Prints its URL,
//! then once a second how many emails it has received, until killed.
//!
//! ```text
//! cargo run --release --example smtp_sink -- [delay_ms]
//! ```

use cartloop_mail::testing::{SinkBehavior, SmtpSink};
use std::io::Write;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let delay: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(0);
    let sink = SmtpSink::start_with(SinkBehavior::slow(Duration::from_millis(delay))).await;
    let mut out = std::io::stdout();
    writeln!(out, "{}", sink.url())?;
    out.flush()?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        writeln!(out, "received {}", sink.messages().len())?;
        out.flush()?;
    }
}
