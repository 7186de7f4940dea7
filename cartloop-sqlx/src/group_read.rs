//! Reads of one kind run together, where the dialect can read a group in one statement
//! ([`Dialect::GROUP_CONVERSATION`](crate::Dialect::GROUP_CONVERSATION),
//! [`Dialect::GROUP_CONVERSATION_PAGE`](crate::Dialect::GROUP_CONVERSATION_PAGE)), by the
//! mechanism of `group.rs`.
//!
//! Each POST reads its conversation, each GET a conversation's page. On PostgreSQL a
//! statement costs the server process far more than the rows it reads (measured with
//! `pgbench`: BENCHMARKS.md), so reads that arrive together are run together.
//!
//! Nothing is cached, and no read sees older data than it would alone: a group's statement
//! starts after each of its reads was asked for, so it sees every write committed before
//! any of them was asked for (several servers sharing the database included).

use crate::dialect::{Dialect, GroupRead, Param};
use crate::group::{Answer, GroupQueue, Grouped};
use std::sync::Arc;

/// The kinds of reads that are grouped: each has a queue of its own.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadKind {
    /// A conversation ([`sql::CONVERSATION`](crate::sql::CONVERSATION)).
    Conversation,
    /// A conversation and a page of its messages.
    ConversationPage,
}

impl ReadKind {
    /// The kind's place among the executor's read queues.
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Conversation => 0,
            Self::ConversationPage => 1,
        }
    }

    /// At most this many groups of the kind are read at once, as measured best
    /// (BENCHMARKS.md, "Design choices measured"): small reads are faster with one runner,
    /// pages of 50 chats with two. A group of large pages is a long statement in one PostgreSQL process:
    /// two let PostgreSQL use both cores; small reads are faster in fewer, larger groups.
    const fn runners(self) -> usize {
        match self {
            Self::Conversation => 1,
            Self::ConversationPage => 2,
        }
    }
}

/// Runs `single` (a read of at most one row) with `params`, together with the reads of the
/// same kind that arrive meanwhile in `queue` (the kind's own), by `group`.
pub(crate) async fn read<D: Dialect>(
    queue: &Arc<GroupQueue<D>>,
    pool: &sqlx::Pool<D::Db>,
    kind: ReadKind,
    group: GroupRead,
    single: &'static str,
    params: &[Param<'_>],
) -> Answer<D> {
    let grouped = Grouped {
        single,
        group: group.sql,
        names: group.names,
        runners: kind.runners(),
        what: "read",
    };
    queue.run(pool, grouped, params).await
}
