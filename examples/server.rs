//! The bundled cartloop server: settings, logging, and one call to the library's runtime.
//!
//! ```sh
//! cargo run --release --example server            # SQLite file + outbox directory
//! cargo run --release --example server -- --help  # every setting
//! ```
//!
//! Everything it does is in [`cartloop::server`]: embed that instead of copying this file.

use clap::Parser;

// mimalloc instead of the system allocator: a request allocates and frees many small
// buffers, and glibc's malloc took about 6% of the server's time under load (`perf`, see
// BENCHMARKS.md). A library leaves this choice to the application that embeds it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let settings = cartloop::server::Settings::parse();
    if let Err(e) = settings.run(cartloop::server::shutdown_signal()).await {
        tracing::error!("{e}");
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
