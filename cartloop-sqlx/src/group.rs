//! What grouped inserts (`group_insert.rs`), grouped reads (`group_read.rs`) and grouped
//! records of sends (`group_sent.rs`) share: a statement that returns at most one row is
//! queued, and runner tasks run what is queued,
//! group after group.
//!
//! If fewer than its [`Grouped::runners`] are running, a runner task starts at once with
//! what is queued (a lone statement waits for no timer, and runs as it would alone);
//! otherwise the statement goes with the next group a runner takes, as soon as one is free.
//! A group of one runs the single statement; a larger one the group statement, once: the
//! parameters of all as one JSON array of objects (`ord`, its place, and the parameters by
//! name), each returned row joined back to its caller by `ord`.
//!
//! A group statement the database refuses (a value it cannot take, a constraint broken)
//! changed nothing, so the group is run again statement by statement and only the guilty
//! one fails. Any other failure (a lost connection) fails the group's callers as it would
//! have failed each of them, without running anything again: a write may have committed.
//!
//! The runners are tasks of their own, so a caller that goes away (a client that hung up)
//! never leaves a group half answered.

use crate::dialect::{DbRow, Dialect, OwnedParam, Param};
use crate::rows;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// What a caller gets back: the statement's row, if it returned one.
pub(crate) type Answer<D> = Result<Option<DbRow<D>>, sqlx::Error>;

/// A kind of statement that is grouped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grouped {
    /// The statement alone, with `$1`, `$2`, ….
    pub single: &'static str,
    /// The statement for a group: `$1` is the JSON array.
    pub group: &'static str,
    /// The names the group statement gives `$1`, `$2`, … of the single one.
    pub names: &'static [&'static str],
    /// At most this many groups run at once.
    pub runners: usize,
    /// What the statement does, for the logs ("insert", "read").
    pub what: &'static str,
}

/// The statements of one kind waiting for a runner, and how many runners there are.
struct Queue<D: Dialect> {
    waiting: Vec<Pending<D>>,
    runners: usize,
}

impl<D: Dialect> Default for Queue<D> {
    fn default() -> Self {
        Self {
            waiting: Vec::new(),
            runners: 0,
        }
    }
}

/// One statement: its parameters, and where its answer goes.
struct Pending<D: Dialect> {
    params: Vec<OwnedParam>,
    done: oneshot::Sender<Answer<D>>,
}

/// One kind of grouped statement's queue. The executor holds one per kind, behind an `Arc`
/// the runner tasks share.
pub(crate) struct GroupQueue<D: Dialect>(Mutex<Queue<D>>);

impl<D: Dialect> Default for GroupQueue<D> {
    fn default() -> Self {
        Self(Mutex::new(Queue::default()))
    }
}

impl<D: Dialect> GroupQueue<D> {
    /// Runs `grouped`'s statement with `params` on `pool`, together with those of this
    /// queue that arrive meanwhile; answers once its group has run.
    pub(crate) async fn run(
        self: &Arc<Self>,
        pool: &sqlx::Pool<D::Db>,
        grouped: Grouped,
        params: &[Param<'_>],
    ) -> Answer<D> {
        let (done, answer) = oneshot::channel();
        let pending = Pending {
            params: params.iter().map(OwnedParam::from).collect(),
            done,
        };
        let start = {
            let mut waiting = lock(&self.0);
            waiting.waiting.push(pending);
            let start = waiting.runners < grouped.runners;
            if start {
                waiting.runners += 1;
            }
            start
        };
        if start {
            let (queue, pool) = (self.clone(), pool.clone());
            tokio::spawn(async move { queue.run_queue(&pool, grouped).await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::other(format!(
                "{} abandoned",
                grouped.what
            ))))
        })
    }

    /// Runs what is queued, group after group, until nothing is.
    async fn run_queue(&self, pool: &sqlx::Pool<D::Db>, grouped: Grouped) {
        loop {
            let group = {
                let mut waiting = lock(&self.0);
                if waiting.waiting.is_empty() {
                    waiting.runners -= 1;
                    return;
                }
                std::mem::take(&mut waiting.waiting)
            };
            if group.len() == 1 {
                run_each(pool, grouped, group).await;
            } else {
                run_group(pool, grouped, group).await;
            }
        }
    }
}

/// One statement for the whole group.
async fn run_group<D: Dialect>(pool: &sqlx::Pool<D::Db>, grouped: Grouped, group: Vec<Pending<D>>) {
    let objects: Vec<serde_json::Map<String, serde_json::Value>> = group
        .iter()
        .enumerate()
        .map(|(ord, pending)| {
            let mut object = serde_json::Map::with_capacity(grouped.names.len() + 1);
            object.insert("ord".to_owned(), ord.into());
            for (name, param) in grouped.names.iter().zip(&pending.params) {
                object.insert((*name).to_owned(), json_value(&param.as_param()));
            }
            object
        })
        .collect();
    let json = serde_json::to_string(&objects).expect("JSON values serialize");
    let result = match pool.acquire().await {
        Ok(mut conn) => D::fetch(&mut conn, grouped.group, &[json.as_str().into()]).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(returned) => {
            let mut answers: Vec<Option<DbRow<D>>> = group.iter().map(|_| None).collect();
            let mut unmatched = 0;
            for row in returned {
                match rows::int::<D>(&row, "ord") {
                    Ok(ord) if (0..answers.len() as i64).contains(&ord) => {
                        answers[ord as usize] = Some(row);
                    }
                    _ => unmatched += 1,
                }
            }
            if unmatched > 0 {
                tracing::error!(
                    rows = unmatched,
                    "a group {} returned rows it did not ask for",
                    grouped.what
                );
            }
            for (pending, answer) in group.into_iter().zip(answers) {
                let _ = pending.done.send(Ok(answer));
            }
        }
        // The database refused the statement, so it changed nothing: each alone, so
        // that only the guilty one fails.
        Err(sqlx::Error::Database(e)) => {
            tracing::debug!(error = %e, "a group {} was refused; one by one", grouped.what);
            run_each(pool, grouped, group).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, statements = group.len(), "a group {} failed", grouped.what);
            fail(group, &format!("the group {} failed: {e}", grouped.what));
        }
    }
}

/// The single statement for each of `group`, one after another.
async fn run_each<D: Dialect>(pool: &sqlx::Pool<D::Db>, grouped: Grouped, group: Vec<Pending<D>>) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            fail(
                group,
                &format!("no connection for the {}: {e}", grouped.what),
            );
            return;
        }
    };
    for pending in group {
        let params: Vec<Param<'_>> = pending.params.iter().map(OwnedParam::as_param).collect();
        let answer = D::fetch(&mut conn, grouped.single, &params)
            .await
            .map(|rows| rows.into_iter().next());
        let _ = pending.done.send(answer);
    }
}

/// Answers every caller of `group` with the same failure.
fn fail<D: Dialect>(group: Vec<Pending<D>>, message: &str) {
    for pending in group {
        let _ = pending.done.send(Err(sqlx::Error::Io(std::io::Error::other(
            message.to_owned(),
        ))));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A parameter as the group statement reads it from JSON: instants in RFC 3339 with
/// microseconds.
fn json_value(param: &Param<'_>) -> serde_json::Value {
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
