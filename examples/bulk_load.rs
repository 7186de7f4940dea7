//! Fills a cartloop database with many messages fast, for benches at scale (the cost of a
//! request must stay flat at a million messages): the demo data, then `conversations` more conversations of
//! store 1 (a client each, operator 24), then `messages` sent messages spread over them,
//! inserted by the database itself in a few statements, not one request each.
//!
//! ```sh
//! cargo run --release --example bulk_load -- sqlite://big.db 1000000 10000
//! cargo run --release --example bulk_load -- postgres://postgres@127.0.0.1/big 1000000 10000
//! ```

#[path = "../benches/bulk/mod.rs"]
mod bulk;

use cartloop::core::demo::demo_data;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: bulk_load <database url> [messages] [conversations]")?;
    let messages: i64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let conversations: i64 = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let started = Instant::now();
    let storage = cartloop::sqlx::connect(&url).await?;
    storage.import(&demo_data()).await?;
    bulk::load(storage.as_ref(), &url, messages, conversations).await?;
    println!(
        "{messages} messages over {conversations} conversations loaded into {} in {:.1} s",
        cartloop::server::redact(&url),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
