//! Fresh databases for the tests, and scenarios both backends run.
#![allow(dead_code)] // Each test binary uses a part.

pub mod scenarios;

/// A storage together with what must live exactly as long as it: the temporary directory of
/// its SQLite file, or a guard that drops its PostgreSQL database.
pub struct Guarded<S> {
    pub storage: S,
    // Declared after `storage`, so dropped after it.
    _guard: Box<dyn Send + Sync>,
}

impl<S> Guarded<S> {
    pub fn new(storage: S, guard: impl Send + Sync + 'static) -> Self {
        Self {
            storage,
            _guard: Box::new(guard),
        }
    }
}

/// The storage itself, for the conformance suite and the scenarios.
impl<S> std::ops::Deref for Guarded<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.storage
    }
}

#[cfg(feature = "sqlite")]
pub mod sqlite {
    use super::Guarded;
    use cartloop_sqlx::SqliteStorage;

    /// A fresh database file in a new temporary directory, and its URL.
    pub fn fresh_url() -> (String, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("cartloop.db").display());
        (url, dir)
    }

    /// A migrated storage on a fresh database file, removed when dropped.
    pub async fn fresh() -> Option<Guarded<SqliteStorage>> {
        let (url, dir) = fresh_url();
        let storage = SqliteStorage::connect(&url).await.expect("open SQLite");
        Some(Guarded::new(storage, dir))
    }
}

#[cfg(feature = "postgres")]
pub mod postgres {
    use super::Guarded;
    use cartloop_sqlx::PgStorage;
    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The server the tests create their databases on, or `None` to skip.
    ///
    /// `CARTLOOP_TEST_POSTGRES_URL`; unset, the tests are skipped, except on CI (`CI=true`)
    /// where they use `postgres://postgres@127.0.0.1:5432/test`.
    pub fn admin_url() -> Option<String> {
        match std::env::var("CARTLOOP_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var("CI").as_deref() == Ok("true") => {
                Some("postgres://postgres@127.0.0.1:5432/test".to_owned())
            }
            _ => {
                eprintln!("skipped: set CARTLOOP_TEST_POSTGRES_URL");
                None
            }
        }
    }

    /// Drops its database when dropped.
    pub struct DropDatabase {
        admin: PgConnectOptions,
        name: String,
    }

    impl Drop for DropDatabase {
        fn drop(&mut self) {
            let admin = self.admin.clone();
            let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            // Drop cannot await: run the statement on a runtime of its own.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let mut connection = admin.connect().await?;
                    sqlx::query(&statement).execute(&mut connection).await?;
                    connection.close().await
                })
            })
            .join();
            if let Ok(Err(e)) = dropped {
                eprintln!("could not drop test database {}: {e}", self.name);
            }
        }
    }

    /// A new, empty database (not migrated): options to connect to it and its guard.
    pub async fn fresh_database() -> Option<(PgConnectOptions, DropDatabase)> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin = PgConnectOptions::from_str(&admin_url()?).expect("valid PostgreSQL URL");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "cartloop_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut connection = admin.connect().await.expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut connection)
            .await
            .expect("create test database");
        connection.close().await.expect("close");
        let options = admin.clone().database(&name);
        Some((options, DropDatabase { admin, name }))
    }

    /// A migrated storage on a fresh database, dropped when the storage is.
    pub async fn fresh() -> Option<Guarded<PgStorage>> {
        let (options, guard) = fresh_database().await?;
        let storage = PgStorage::connect_with(options)
            .await
            .expect("connect to the test database");
        Some(Guarded::new(storage, guard))
    }
}
