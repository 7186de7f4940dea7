//! Messages inserted together, where the dialect can insert a group in one statement
//! ([`Dialect::GROUP_INSERT`], PostgreSQL).
//!
//! A new message is queued. If fewer than [`RUNNERS`] groups are being inserted, a runner
//! task starts at once with what is queued (a lone insert waits for no timer); otherwise
//! the message goes with the next group a runner takes, as soon as the group before it is
//! committed. A group of one is the ordinary single-row insert; a larger one is one
//! statement (rows passed as one JSON array) and one commit for all: a statement, a round
//! trip and a WAL flush per group instead of per message. Each caller is answered with its
//! own row once the group is committed.
//!
//! Every rule holds per message: an idempotency key taken (by an earlier message or by one
//! before it in the same group) skips that row only, and its caller reads the message
//! that holds the key. A statement the database refuses (a constraint broken by a
//! conversation deleted meanwhile, a value it cannot store) stored nothing, so its group is
//! inserted again one message at a time and only the guilty one fails. Any other failure (a
//! lost connection) fails the group's callers as one failed write would, without inserting
//! again: the commit may have happened, and a second insert could store a message twice.
//!
//! The runners are tasks of their own, so a caller that goes away (a client that hung up)
//! never leaves a group half answered.

use crate::dialect::{DbRow, Dialect, OwnedParam, Param};
use crate::rows;
use crate::sql;
use crate::storage::SqlStorage;
use std::sync::{Mutex, PoisonError};
use tokio::sync::oneshot;

/// At most this many groups are inserted at once. Measured with `benches/load.sh` (64
/// connections, PostgreSQL on the same two cores): 1 runner 7,176 and 6,694 POST/s, 2
/// runners 6,249 and 6,813, 4 runners 6,084 and 6,234 (two rounds, same run). More
/// runners make smaller groups: more statements and commits for the same rows.
const RUNNERS: usize = 1;

/// What a caller gets back: its row, or none when its idempotency key was taken.
pub(crate) type InsertAnswer<D> = Result<Option<DbRow<D>>, sqlx::Error>;

/// The messages waiting for a runner, and how many runners there are.
pub(crate) struct InsertQueue<D: Dialect> {
    waiting: Vec<PendingInsert<D>>,
    runners: usize,
}

impl<D: Dialect> Default for InsertQueue<D> {
    fn default() -> Self {
        Self {
            waiting: Vec::new(),
            runners: 0,
        }
    }
}

/// One message to insert: its parameters as the single-row insert takes them, its row as
/// the group statement takes it, and where its answer goes.
struct PendingInsert<D: Dialect> {
    params: Vec<OwnedParam>,
    row: serde_json::Map<String, serde_json::Value>,
    done: oneshot::Sender<InsertAnswer<D>>,
}

impl<D: Dialect> SqlStorage<D> {
    /// Inserts the message of `params` ([`sql::INSERT_MESSAGE`]'s parameters) with the
    /// others that arrive meanwhile, by `group_sql`; answers once it is committed.
    pub(crate) async fn insert_grouped(
        &self,
        group_sql: &'static str,
        params: &[Param<'_>],
    ) -> InsertAnswer<D> {
        let (done, answer) = oneshot::channel();
        let pending = PendingInsert {
            row: group_row(params),
            params: params.iter().map(OwnedParam::from).collect(),
            done,
        };
        let start = {
            let mut queue = lock(self.insert_queue());
            queue.waiting.push(pending);
            let start = queue.runners < RUNNERS;
            if start {
                queue.runners += 1;
            }
            start
        };
        if start {
            let storage = self.clone();
            tokio::spawn(async move { storage.run_inserts(group_sql).await });
        }
        answer.await.unwrap_or_else(|_| Err(abandoned()))
    }

    /// Inserts what is queued, group after group, until nothing is.
    async fn run_inserts(&self, group_sql: &'static str) {
        loop {
            let group = {
                let mut queue = lock(self.insert_queue());
                if queue.waiting.is_empty() {
                    queue.runners -= 1;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            if group.len() == 1 {
                self.insert_each(group).await;
            } else {
                self.insert_group(group_sql, group).await;
            }
        }
    }

    /// One statement for the whole group.
    async fn insert_group(&self, group_sql: &'static str, mut group: Vec<PendingInsert<D>>) {
        // `ord` says which caller a returned row is for.
        for (ord, pending) in group.iter_mut().enumerate() {
            pending.row.insert("ord".to_owned(), ord.into());
        }
        let rows: Vec<&serde_json::Map<_, _>> = group.iter().map(|pending| &pending.row).collect();
        let json = serde_json::to_string(&rows).expect("JSON values serialize");
        let result = match self.pool().acquire().await {
            Ok(mut conn) => D::fetch(&mut conn, group_sql, &[json.as_str().into()]).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(inserted) => {
                let mut answers: Vec<Option<DbRow<D>>> = group.iter().map(|_| None).collect();
                let mut unmatched = Vec::new();
                for row in inserted {
                    match rows::int::<D>(&row, "ord") {
                        Ok(ord) if (0..answers.len() as i64).contains(&ord) => {
                            answers[ord as usize] = Some(row);
                        }
                        _ => unmatched.push(row),
                    }
                }
                if !unmatched.is_empty() {
                    tracing::error!(
                        rows = unmatched.len(),
                        "a group insert returned rows it did not ask for"
                    );
                }
                for (pending, answer) in group.into_iter().zip(answers) {
                    let _ = pending.done.send(Ok(answer));
                }
            }
            // The database refused the statement, so nothing was stored: each message alone,
            // so that only the guilty one fails.
            Err(sqlx::Error::Database(e)) => {
                tracing::debug!(error = %e, "a group insert was refused; inserting one by one");
                self.insert_each(group).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, messages = group.len(), "a group insert failed");
                for pending in group {
                    let _ =
                        pending
                            .done
                            .send(Err(sqlx::Error::Io(std::io::Error::other(format!(
                                "the group insert failed: {e}"
                            )))));
                }
            }
        }
    }

    /// The single-row insert for each message of `group`, one after another.
    async fn insert_each(&self, group: Vec<PendingInsert<D>>) {
        let mut conn =
            match self.pool().acquire().await {
                Ok(conn) => conn,
                Err(e) => {
                    for pending in group {
                        let _ = pending.done.send(Err(sqlx::Error::Io(std::io::Error::other(
                            format!("no connection for the insert: {e}"),
                        ))));
                    }
                    return;
                }
            };
        for pending in group {
            let params: Vec<Param<'_>> = pending.params.iter().map(OwnedParam::as_param).collect();
            let answer = D::fetch(&mut conn, sql::INSERT_MESSAGE, &params)
                .await
                .map(|rows| rows.into_iter().next());
            let _ = pending.done.send(answer);
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn abandoned() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other("insert abandoned"))
}

/// The row of [`sql::INSERT_MESSAGE`]'s parameters as the group statement reads it: an
/// object with one key per column, instants in RFC 3339 with microseconds.
fn group_row(params: &[Param<'_>]) -> serde_json::Map<String, serde_json::Value> {
    const COLUMNS: [&str; 7] = [
        "conversation_id",
        "author_id",
        "payload",
        "status",
        "created_at",
        "send_at",
        "idempotency_key",
    ];
    let mut row = serde_json::Map::with_capacity(COLUMNS.len());
    for (column, param) in COLUMNS.iter().zip(params) {
        row.insert((*column).to_owned(), json_value(param));
    }
    row
}

pub(crate) fn json_value(param: &Param<'_>) -> serde_json::Value {
    use serde_json::Value;
    match *param {
        Param::Int(v) => v.into(),
        Param::OptInt(v) => v.map_or(Value::Null, Value::from),
        Param::Text(v) => v.into(),
        Param::OptText(v) => v.map_or(Value::Null, Value::from),
        Param::Bool(v) => v.into(),
        Param::Bytes(v) => String::from_utf8_lossy(v).into_owned().into(),
        Param::Time(v) => v.map_or(Value::Null, |at| {
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into()
        }),
    }
}
