//! [`Tx`]: a transaction on a pooled connection that never goes back to the pool inside
//! the transaction, whatever ended it.
//!
//! Why not `sqlx::Transaction`: sqlx counts the transactions it opened on each connection
//! and only counts one as closed when its `COMMIT` or `ROLLBACK` succeeds. When SQLite
//! meets a full disk or an I/O error (most often at `COMMIT`, appending to the write-ahead
//! log), it rolls the transaction back by itself; sqlx's `ROLLBACK` then fails ("no
//! transaction is active"), the count stays at one, and the connection goes back to the
//! pool where every later `BEGIN` on it fails ("attempted to call begin_with at non-zero
//! transaction depth") until the process restarts. `Tx` runs the transaction statements
//! itself and, when it cannot tell the connection's state, closes the connection instead
//! of returning it.

use crate::dialect::{Conn, Dialect};
use crate::error::storage_error;
use cartloop_core::ports::StorageError;
use sqlx::pool::PoolConnection;

/// An open transaction. End it with [`commit`](Self::commit),
/// [`rollback`](Self::rollback) or [`finish`](Self::finish); dropped before that (a
/// future cancelled mid-way), its connection is closed, which makes the database roll the
/// transaction back.
pub(crate) struct Tx<D: Dialect> {
    /// `None` once the transaction has ended.
    conn: Option<PoolConnection<D::Db>>,
}

impl<D: Dialect> Tx<D> {
    /// Takes a connection from `pool` and runs `begin` on it (`BEGIN`, `BEGIN IMMEDIATE`).
    ///
    /// # Errors
    /// No connection, or `begin` failed (the connection goes back to the pool: a `BEGIN`
    /// that failed opened nothing).
    pub(crate) async fn begin(
        pool: &sqlx::Pool<D::Db>,
        begin: &'static str,
    ) -> Result<Self, sqlx::Error> {
        // Held by the transaction before `begin` runs: a caller that gives up while it
        // runs closes the connection rather than returning it with `begin` in flight.
        let mut tx = Self {
            conn: Some(pool.acquire().await?),
        };
        match D::fetch(tx.conn(), begin, &[]).await {
            Ok(_) => Ok(tx),
            Err(e) => {
                tx.release();
                Err(e)
            }
        }
    }

    /// The connection, to run the transaction's statements on.
    pub(crate) fn conn(&mut self) -> &mut Conn<D> {
        self.conn
            .as_mut()
            .expect("a transaction holds its connection until it ends")
    }

    /// Commits. When the commit fails the transaction is rolled back (or the connection
    /// closed), so the connection never goes back to the pool inside it.
    ///
    /// # Errors
    /// The `COMMIT`'s error: nothing of the transaction is stored.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        match D::fetch(self.conn(), "COMMIT", &[]).await {
            Ok(_) => {
                self.release();
                Ok(())
            }
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }

    /// Rolls back. A `ROLLBACK` that fails is either one SQLite refuses because it has
    /// rolled back already (after a full disk or an I/O error) or a connection in an
    /// unknown state; a new transaction that opens and rolls back tells the first from the
    /// second. In the second case the connection is closed.
    pub(crate) async fn rollback(mut self) {
        let conn = self.conn();
        if D::fetch(conn, "ROLLBACK", &[]).await.is_ok()
            || (D::fetch(conn, "BEGIN", &[]).await.is_ok()
                && D::fetch(conn, "ROLLBACK", &[]).await.is_ok())
        {
            self.release();
        }
        // Otherwise `drop` closes the connection.
    }

    /// Commits when `result` is `Ok`, rolls back when it is an error, and returns it (or
    /// the commit's error).
    ///
    /// # Errors
    /// `result`'s error, or the commit's.
    pub(crate) async fn finish<T>(
        self,
        result: Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        match result {
            Ok(value) => self.commit().await.map(|()| value).map_err(storage_error),
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }

    /// Returns the connection to the pool: it is outside any transaction.
    fn release(&mut self) {
        drop(self.conn.take());
    }
}

impl<D: Dialect> Drop for Tx<D> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Neither committed nor rolled back: a cancelled future, or a rollback that
            // failed. Closing the connection ends the transaction in the database; the
            // pool opens another when it needs one.
            tracing::debug!("closing a connection whose transaction did not end cleanly");
            drop(conn.detach());
        }
    }
}
