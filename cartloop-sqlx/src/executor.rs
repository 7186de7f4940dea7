//! [`Executor`]: how statements reach the database — the pool, this process's turn to
//! write (SQLite), the group commit, the queues of grouped inserts and reads, the fault
//! watch and the due-watch. The storage (`storage/`) says what to run; the executor runs it.

use crate::dialect::{fetch, DbRow, Dialect, GroupRead, OwnedParam, Param};
use crate::due::DueWatch;
use crate::error::{disk_fault, storage_error, violation, GroupFailed};
use crate::fault::FaultWatch;
use crate::group::{Answer, GroupQueue};
use crate::group_insert;
use crate::group_read::{self, ReadKind};
use crate::group_sent;
use crate::tx::Tx;
use cartloop_core::ports::StorageError;
use std::sync::{Arc, Mutex, PoisonError};

/// Runs the storage's statements; shared by every clone of a storage.
pub(crate) struct Executor<D: Dialect> {
    pub(crate) pool: sqlx::Pool<D::Db>,
    /// Taken by every write where [`Dialect::SERIAL_WRITES`]: SQLite has one writer at a
    /// time, and writers of this process queue here instead of in SQLite's busy handler,
    /// which polls with sleeps of up to 100 ms and so adds tail latency under load. Other
    /// processes on the same file still wait in the busy handler.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Writes waiting for the next group commit, where [`Dialect::SERIAL_WRITES`].
    group: Mutex<Vec<GroupedWrite<D>>>,
    /// Messages waiting for a grouped insert, where [`Dialect::GROUP_INSERT`].
    inserts: Arc<GroupQueue<D>>,
    /// Sends waiting to be recorded together, where [`Dialect::GROUP_MARK_SENT`].
    sents: Arc<GroupQueue<D>>,
    /// Reads waiting for a grouped read, one queue per [`ReadKind`].
    reads: [Arc<GroupQueue<D>>; 2],
    /// Who is told of due messages.
    pub(crate) due: Arc<DueWatch>,
    /// Who is told of new events (the event log's watchers, SPEC §10).
    pub(crate) events: Arc<DueWatch>,
    /// Whether the disk took the last writes.
    pub(crate) fault: Arc<FaultWatch>,
}

/// One statement waiting for a group commit, and where its result goes.
struct GroupedWrite<D: Dialect> {
    sql: &'static str,
    params: Vec<OwnedParam>,
    done: tokio::sync::oneshot::Sender<Result<Vec<DbRow<D>>, sqlx::Error>>,
}

/// The most statements of one script in a group commit: 8 measured as fast as 4 and faster
/// than 32, and each connection caches its scripts' prepared statements, so larger scripts
/// also cost memory (BENCHMARKS.md, "Design choices measured").
const SCRIPT_MAX: usize = 8;

/// `size` copies of `sql`, which has `params` parameters, as one script: the parameters of
/// the n-th copy renumbered to follow those of the copies before it.
fn script(sql: &str, size: usize, params: usize) -> std::borrow::Cow<'_, str> {
    if size == 1 {
        return sql.into();
    }
    let mut script = String::with_capacity((sql.len() + 8) * size);
    for copy in 0..size {
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            script.push_str(&rest[..=at]);
            match rest[at + 1..at + 1 + digits].parse::<usize>() {
                Ok(n) => script.push_str(&(n + copy * params).to_string()),
                Err(_) => script.push_str(&rest[at + 1..at + 1 + digits]),
            }
            rest = &rest[at + 1 + digits..];
        }
        script.push_str(rest);
        script.push_str(";\n");
    }
    script.into()
}

/// The same failure for every write of a group whose transaction failed: the database's
/// own error goes to the log, each caller gets an I/O error (unavailable: try again) that
/// says whether the disk was at fault. A disk fault is logged by the storage's
/// [`FaultWatch`] instead, at most once a minute: it fails every group while it lasts.
fn group_failed(error: &sqlx::Error) -> sqlx::Error {
    let disk = disk_fault(error);
    if disk.is_none() {
        tracing::warn!(%error, "group commit failed; none of its writes was stored");
    }
    sqlx::Error::Io(std::io::Error::other(GroupFailed { disk }))
}

impl<D: Dialect> Executor<D> {
    /// An executor on `pool`.
    pub(crate) fn new(pool: sqlx::Pool<D::Db>) -> Self {
        Self {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            group: Mutex::new(Vec::new()),
            inserts: Arc::default(),
            sents: Arc::default(),
            reads: Default::default(),
            due: Arc::new(DueWatch::default()),
            events: Arc::new(DueWatch::default()),
            fault: Arc::default(),
        }
    }

    /// Inserts a message with those that arrive meanwhile, by the dialect's `group_sql`.
    pub(crate) async fn insert_grouped(
        &self,
        group_sql: &'static str,
        params: &[Param<'_>],
    ) -> Answer<D> {
        group_insert::insert(&self.inserts, &self.pool, group_sql, params).await
    }

    /// Records a send ([`sql::MARK_SENT`](crate::sql::MARK_SENT)'s parameters) with those
    /// that arrive meanwhile, by the dialect's `group_sql`; a row when its claim held. Tells
    /// the fault watch what the write met, as [`write`](Self::write) does.
    pub(crate) async fn mark_sent_grouped(
        &self,
        group_sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Option<DbRow<D>>, StorageError> {
        let answer = group_sent::mark_sent(&self.sents, &self.pool, group_sql, params).await;
        match &answer {
            Ok(Some(_)) => self.fault.stored(),
            Ok(None) => {}
            Err(e) => self.fault.note_sqlx(e),
        }
        answer.map_err(storage_error)
    }

    /// Waits for this process's turn to write, where the dialect needs one.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if D::SERIAL_WRITES {
            Some(self.writer.lock().await)
        } else {
            None
        }
    }

    pub(crate) async fn connection(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<D::Db>, StorageError> {
        self.pool.acquire().await.map_err(storage_error)
    }

    /// Runs a statement that reads.
    pub(crate) async fn read(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<DbRow<D>>, StorageError> {
        let rows = fetch::<D>(&mut *self.connection().await?, sql, params).await;
        self.noted(rows)
    }

    /// `result`, after telling the fault watch about a disk fault in it.
    pub(crate) fn noted<T>(&self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e) = &result {
            self.fault.note(e);
        }
        result
    }

    /// Runs a statement that reads at most one row.
    pub(crate) async fn read_one(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<DbRow<D>>, StorageError> {
        Ok(self.read(sql, params).await?.into_iter().next())
    }

    /// [`read_one`](Self::read_one) of `single`, in a group of reads of its `kind` where
    /// the dialect has the `group` statement.
    pub(crate) async fn read_one_grouped(
        &self,
        kind: ReadKind,
        group: Option<GroupRead>,
        single: &'static str,
        params: &[Param<'_>],
    ) -> Result<Option<DbRow<D>>, StorageError> {
        match group {
            Some(group) => (group_read::read(
                &self.reads[kind.index()],
                &self.pool,
                kind,
                group,
                single,
                params,
            )
            .await)
                .map_err(storage_error),
            None => self.read_one(single, params).await,
        }
    }

    /// Runs a statement that writes; errors as sqlx gives them, for the caller to name the
    /// rows a violated constraint is about. Answers once the write is committed.
    ///
    /// Where writes take turns ([`Dialect::SERIAL_WRITES`], SQLite) they are group
    /// committed: the statements that arrive while a commit is in progress are run together
    /// in the next transaction, one `fsync` for all, each answered after that commit. A
    /// write that finds no commit in progress runs at once, alone: no timer. A statement
    /// that breaks a constraint fails alone (SQLite rolls back that statement only); any
    /// other failure fails the whole group, and nothing of it is stored.
    ///
    /// A write that stored a row tells the fault watch that the disk takes writes; one that
    /// met a disk fault, that it does not.
    pub(crate) async fn write(
        self: &Arc<Self>,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<DbRow<D>>, sqlx::Error> {
        let result = self.write_unwatched(sql, params).await;
        match &result {
            Ok(rows) if !rows.is_empty() => self.fault.stored(),
            Ok(_) => {}
            Err(e) => self.fault.note_sqlx(e),
        }
        result
    }

    /// [`write`](Self::write), without telling the fault watch.
    async fn write_unwatched(
        self: &Arc<Self>,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<DbRow<D>>, sqlx::Error> {
        if !D::SERIAL_WRITES {
            let mut conn = self.pool.acquire().await?;
            return D::fetch(&mut conn, sql, params).await;
        }
        let (done, mut result) = tokio::sync::oneshot::channel();
        self.group
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(GroupedWrite {
                sql,
                params: params.iter().map(OwnedParam::from).collect(),
                done,
            });
        let turn = self.writer.clone().lock_owned().await;
        // A writer before us may have committed ours with its group.
        match result.try_recv() {
            Ok(answer) => return answer,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                return Err(sqlx::Error::Io(std::io::Error::other("write abandoned")));
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
        }
        let group = std::mem::take(&mut *self.group.lock().unwrap_or_else(PoisonError::into_inner));
        // On a task of its own: if this caller goes away (a client that hung up, a request
        // timeout), the group still commits or rolls back, and its connection never goes
        // back to the pool inside an open transaction holding the write lock.
        let executor = self.clone();
        tokio::spawn(async move {
            executor.commit_group(group).await;
            drop(turn);
        });
        result
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::Io(std::io::Error::other("write abandoned"))))
    }

    /// Runs `group` in one transaction and answers each write after the commit.
    async fn commit_group(&self, group: Vec<GroupedWrite<D>>) {
        if group.len() == 1 {
            // Alone: autocommit, no transaction statements around it.
            for write in group {
                let answer = match self.pool.acquire().await {
                    Ok(mut conn) => {
                        let params: Vec<Param<'_>> =
                            write.params.iter().map(OwnedParam::as_param).collect();
                        D::fetch(&mut conn, write.sql, &params).await
                    }
                    Err(e) => Err(group_failed(&e)),
                };
                let _ = write.done.send(answer);
            }
            return;
        }
        let mut tx = match Tx::<D>::begin(&self.pool, D::BEGIN_WRITE).await {
            Ok(tx) => tx,
            Err(e) => {
                for write in group {
                    let _ = write.done.send(Err(group_failed(&e)));
                }
                return;
            }
        };
        let mut answers = Vec::with_capacity(group.len());
        let mut failure = None;
        let mut start = 0;
        while failure.is_none() && start < group.len() {
            // Consecutive writes of one statement go to the database as one script of 2, 4,
            // … or SCRIPT_MAX statements (few scripts to prepare and cache): one hand-off
            // to the connection's thread instead of one per write.
            let sql = group[start].sql;
            let same = group[start..].iter().take_while(|w| w.sql == sql).count();
            let size = 1 << same.min(SCRIPT_MAX).ilog2();
            let chunk = &group[start..start + size];
            let script = script(sql, size, chunk[0].params.len());
            let params: Vec<Param<'_>> = chunk
                .iter()
                .flat_map(|write| write.params.iter().map(OwnedParam::as_param))
                .collect();
            let (done, error) = D::fetch_each(tx.conn(), &script, &params).await;
            let completed = done.len();
            answers.extend(done.into_iter().map(Ok));
            match error {
                // SQLite undid that statement only: the others stand.
                Some(e) if violation(&e).is_some() => {
                    answers.push(Err(e));
                    start += completed + 1;
                }
                Some(e) => failure = Some(e),
                None if completed == size => start += size,
                None => {
                    failure = Some(sqlx::Error::Protocol(format!(
                        "a script of {size} statements completed {completed}"
                    )))
                }
            }
        }
        let failure = match failure {
            None => tx.commit().await.err(),
            Some(e) => {
                tx.rollback().await;
                Some(e)
            }
        };
        match failure {
            None => {
                for (write, answer) in group.into_iter().zip(answers) {
                    let _ = write.done.send(answer);
                }
            }
            Some(e) => {
                for write in group {
                    let _ = write.done.send(Err(group_failed(&e)));
                }
            }
        }
    }

    /// Runs a statement that writes at most one row.
    pub(crate) async fn write_one(
        self: &Arc<Self>,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Option<DbRow<D>>, StorageError> {
        let rows = self.write(sql, params).await.map_err(storage_error)?;
        Ok(rows.into_iter().next())
    }

    /// Opens a transaction that writes, in this process's turn (held by the caller).
    pub(crate) async fn begin_write(&self) -> Result<Tx<D>, StorageError> {
        let tx = Tx::begin(&self.pool, D::BEGIN_WRITE).await;
        self.noted(tx.map_err(storage_error))
    }

    /// A committed write made a message due: wake this process's watchers and tell the
    /// others.
    pub(crate) fn made_due(&self) {
        self.due.wake();
        D::announce_due(&self.pool, &self.due);
    }
}

#[cfg(test)]
mod tests {
    use super::script;

    #[test]
    fn a_script_numbers_each_copy_after_the_ones_before() {
        let sql = "INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT DO UPDATE SET b = $2";
        assert_eq!(script(sql, 1, 2), sql);
        assert_eq!(
            script(sql, 3, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT DO UPDATE SET b = $2;\n\
             INSERT INTO t (a, b) VALUES ($3, $4) ON CONFLICT DO UPDATE SET b = $4;\n\
             INSERT INTO t (a, b) VALUES ($5, $6) ON CONFLICT DO UPDATE SET b = $6;\n"
        );
        assert_eq!(
            script("SELECT '$', $10", 2, 10),
            "SELECT '$', $10;\nSELECT '$', $20;\n"
        );
    }
}
