//! Fills a cartloop database with many messages in a few statements the database runs
//! itself (not one request each): shared by `examples/bulk_load.rs` and `benches/scale.rs`.

use cartloop::core::domain::Dataset;
use cartloop::core::ports::Storage;

/// Ids of the bulk rows start here, above the demo's.
const FIRST_ID: i64 = 1000;

/// Adds `conversations` conversations of store 1 (a client each, operator 24) and
/// `messages` sent messages spread over them, to a database holding the demo data.
///
/// # Errors
/// Database failures.
pub async fn load(
    storage: &dyn Storage,
    url: &str,
    messages: i64,
    conversations: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    let last = FIRST_ID + conversations - 1;
    let statements: Vec<String> = if url.starts_with("sqlite") {
        let now = chrono::Utc::now().timestamp_micros();
        vec![
            "PRAGMA synchronous = OFF".into(),
            format!(
                "WITH RECURSIVE n(i) AS (SELECT {FIRST_ID} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
                 INSERT OR IGNORE INTO users (id, role, name, email, email_key, time_zone) \
                 SELECT i, 'client', 'Bulk client ' || i, 'bulk' || i || '@example.com', 'bulk' || i || '@example.com', 'Europe/Paris' FROM n"
            ),
            format!(
                "WITH RECURSIVE n(i) AS (SELECT {FIRST_ID} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
                 INSERT OR IGNORE INTO conversations (id, store_id, operator_id, client_id, status) \
                 SELECT i, 1, 24, i, 'open' FROM n"
            ),
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {messages} - 1) \
                 INSERT INTO messages (conversation_id, author_id, payload, status, created_at, send_at, sent_at, attempts) \
                 SELECT {FIRST_ID} + i % {conversations}, 24, 'Hi << username >>, your code is waiting.', 'sent', \
                        {now} - ({messages} - i) * 1000, {now} - ({messages} - i) * 1000, {now} - ({messages} - i) * 1000, 1 FROM n"
            ),
            "PRAGMA synchronous = FULL".into(),
            // Measurements should not pay for the load's write-ahead log.
            "PRAGMA wal_checkpoint(TRUNCATE)".into(),
        ]
    } else {
        vec![
            format!(
                "INSERT INTO users (id, role, name, email, email_key, time_zone) \
                 SELECT i, 'client', 'Bulk client ' || i, 'bulk' || i || '@example.com', 'bulk' || i || '@example.com', 'Europe/Paris' \
                 FROM generate_series({FIRST_ID}, {last}) AS i ON CONFLICT DO NOTHING"
            ),
            format!(
                "INSERT INTO conversations (id, store_id, operator_id, client_id, status) \
                 SELECT i, 1, 24, i, 'open' FROM generate_series({FIRST_ID}, {last}) AS i ON CONFLICT DO NOTHING"
            ),
            format!(
                "INSERT INTO messages (conversation_id, author_id, payload, status, created_at, send_at, sent_at, attempts) \
                 SELECT {FIRST_ID} + i % {conversations}, 24, 'Hi << username >>, your code is waiting.', 'sent', \
                        now() - ({messages} - i) * interval '1 ms', now() - ({messages} - i) * interval '1 ms', now() - ({messages} - i) * interval '1 ms', 1 \
                 FROM generate_series(0, {messages} - 1) AS i"
            ),
            // Measurements should pay neither for the load's checkpoint nor for the first
            // visit of a million rows.
            "VACUUM ANALYZE messages".into(),
            "CHECKPOINT".into(),
        ]
    };
    run(url, &statements).await?;
    // An empty import moves the id sequences past the ids given above (PostgreSQL).
    storage.import(&Dataset::default()).await?;
    Ok(())
}

async fn run(url: &str, statements: &[String]) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    if url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        for statement in statements {
            conn.execute(statement.as_str()).await?;
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        for statement in statements {
            conn.execute(statement.as_str()).await?;
        }
    }
    Ok(())
}
