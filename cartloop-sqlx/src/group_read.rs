//! Reads of one kind run together, where the dialect can read a group in one statement
//! ([`Dialect::GROUP_CONVERSATION`], [`Dialect::GROUP_CONVERSATION_PAGE`]).
//!
//! Each POST reads its conversation, each GET a conversation's page. On PostgreSQL a
//! statement costs the server process far more than the rows it reads (measured with
//! `pgbench`: one conversation 24,000 statements/s; 20 conversations in one statement 13,500
//! statements/s, 270,000 conversations/s), so reads that arrive together are run together.
//!
//! A read is queued. If fewer than [`ReadKind::runners`] groups of its kind are being read,
//! a runner task starts at once with what is queued (a lone read waits for no timer, and
//! runs the single statement, as it would alone); otherwise the read goes with the next
//! group a runner takes, as soon as one is free. A larger group is one statement: the reads'
//! parameters as one JSON array, each answer joined back by its place (`ord`).
//!
//! Nothing is cached, and no read sees older data than it would alone: a group's statement
//! starts after each of its reads was asked for, so it sees every write committed before
//! any of them was asked for (several servers sharing the database included).
//!
//! A group statement the database refuses (a value it cannot take) is run again read by
//! read, so that only the guilty one fails; any other failure (a lost connection) fails
//! the group's reads as it would have failed each of them.

use crate::dialect::{DbRow, Dialect, GroupRead, OwnedParam, Param};
use crate::group_insert::{json_value, lock};
use crate::rows;
use crate::storage::SqlStorage;
use tokio::sync::oneshot;

/// The kinds of reads that are grouped: each has a queue of its own.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadKind {
    /// A conversation ([`sql::CONVERSATION`](crate::sql::CONVERSATION)).
    Conversation = 0,
    /// A conversation and a page of its messages.
    ConversationPage = 1,
}

impl ReadKind {
    /// At most this many groups of the kind are read at once. Measured with
    /// `benches/load.sh` (64 connections, PostgreSQL on the same two cores; see
    /// `BENCHMARKS.md`): with one runner, POST 10,520/s and GET 3 chats 29,696/s, against
    /// 9,003/8,658 and 21,051/25,800 with two; but GET 50 chats 6,552/s against
    /// 7,156/8,145. A group of large pages is a long statement in one PostgreSQL process:
    /// two let PostgreSQL use both cores; small reads are faster in fewer, larger groups.
    const fn runners(self) -> usize {
        match self {
            Self::Conversation => 1,
            Self::ConversationPage => 2,
        }
    }
}

/// What a caller gets back: the read's row, if there is one.
type ReadAnswer<D> = Result<Option<DbRow<D>>, sqlx::Error>;

/// The reads waiting for a runner, by kind.
pub(crate) struct ReadQueues<D: Dialect> {
    kinds: [ReadQueue<D>; 2],
}

impl<D: Dialect> Default for ReadQueues<D> {
    fn default() -> Self {
        Self {
            kinds: [ReadQueue::default(), ReadQueue::default()],
        }
    }
}

/// The reads of one kind waiting for a runner, and how many runners there are.
struct ReadQueue<D: Dialect> {
    waiting: Vec<PendingRead<D>>,
    runners: usize,
}

impl<D: Dialect> Default for ReadQueue<D> {
    fn default() -> Self {
        Self {
            waiting: Vec::new(),
            runners: 0,
        }
    }
}

/// One read: the single statement's parameters, and where its answer goes.
struct PendingRead<D: Dialect> {
    params: Vec<OwnedParam>,
    done: oneshot::Sender<ReadAnswer<D>>,
}

/// What a runner reads with: the group statement and the single one.
#[derive(Clone, Copy)]
struct Statements {
    kind: ReadKind,
    group: GroupRead,
    single: &'static str,
}

impl<D: Dialect> SqlStorage<D> {
    /// Runs `single` (a read of at most one row) with `params`, together with the reads of
    /// the same `kind` that arrive meanwhile, by `group`.
    pub(crate) async fn read_grouped(
        &self,
        kind: ReadKind,
        group: GroupRead,
        single: &'static str,
        params: &[Param<'_>],
    ) -> ReadAnswer<D> {
        let (done, answer) = oneshot::channel();
        let pending = PendingRead {
            params: params.iter().map(OwnedParam::from).collect(),
            done,
        };
        let start = {
            let mut queues = lock(self.read_queues());
            let queue = &mut queues.kinds[kind as usize];
            queue.waiting.push(pending);
            let start = queue.runners < kind.runners();
            if start {
                queue.runners += 1;
            }
            start
        };
        if start {
            let storage = self.clone();
            let statements = Statements {
                kind,
                group,
                single,
            };
            tokio::spawn(async move { storage.run_reads(statements).await });
        }
        answer.await.unwrap_or_else(|_| Err(abandoned()))
    }

    /// Reads what is queued, group after group, until nothing is.
    async fn run_reads(&self, statements: Statements) {
        loop {
            let reads = {
                let mut queues = lock(self.read_queues());
                let queue = &mut queues.kinds[statements.kind as usize];
                if queue.waiting.is_empty() {
                    queue.runners -= 1;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            if reads.len() == 1 {
                self.read_each(statements.single, reads).await;
            } else {
                self.read_group(statements, reads).await;
            }
        }
    }

    /// One statement for the whole group.
    async fn read_group(&self, statements: Statements, reads: Vec<PendingRead<D>>) {
        let names = statements.group.names;
        let objects: Vec<serde_json::Map<String, serde_json::Value>> = reads
            .iter()
            .enumerate()
            .map(|(ord, read)| {
                let mut object = serde_json::Map::with_capacity(names.len() + 1);
                object.insert("ord".to_owned(), ord.into());
                for (name, param) in names.iter().zip(&read.params) {
                    object.insert((*name).to_owned(), json_value(&param.as_param()));
                }
                object
            })
            .collect();
        let json = serde_json::to_string(&objects).expect("JSON values serialize");
        let result = match self.pool().acquire().await {
            Ok(mut conn) => {
                D::fetch(&mut conn, statements.group.sql, &[json.as_str().into()]).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(found) => {
                let mut answers: Vec<Option<DbRow<D>>> = reads.iter().map(|_| None).collect();
                for row in found {
                    match rows::int::<D>(&row, "ord") {
                        Ok(ord) if (0..answers.len() as i64).contains(&ord) => {
                            answers[ord as usize] = Some(row);
                        }
                        _ => tracing::error!("a group read returned a row it did not ask for"),
                    }
                }
                for (read, answer) in reads.into_iter().zip(answers) {
                    let _ = read.done.send(Ok(answer));
                }
            }
            Err(sqlx::Error::Database(e)) => {
                tracing::debug!(error = %e, "a group read was refused; reading one by one");
                self.read_each(statements.single, reads).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, reads = reads.len(), "a group read failed");
                for read in reads {
                    let _ = read
                        .done
                        .send(Err(sqlx::Error::Io(std::io::Error::other(format!(
                            "the group read failed: {e}"
                        )))));
                }
            }
        }
    }

    /// The single statement for each read of `reads`, one after another.
    async fn read_each(&self, single: &'static str, reads: Vec<PendingRead<D>>) {
        let mut conn = match self.pool().acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                for read in reads {
                    let _ = read
                        .done
                        .send(Err(sqlx::Error::Io(std::io::Error::other(format!(
                            "no connection for the read: {e}"
                        )))));
                }
                return;
            }
        };
        for read in reads {
            let params: Vec<Param<'_>> = read.params.iter().map(OwnedParam::as_param).collect();
            let answer = D::fetch(&mut conn, single, &params)
                .await
                .map(|rows| rows.into_iter().next());
            let _ = read.done.send(answer);
        }
    }
}

fn abandoned() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other("read abandoned"))
}
