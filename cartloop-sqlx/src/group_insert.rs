//! Messages inserted together, where the dialect can insert a group in one statement
//! ([`Dialect::GROUP_INSERT`](crate::Dialect::GROUP_INSERT), PostgreSQL), by the mechanism of
//! `group.rs`.
//!
//! A group of one is the ordinary single-row insert; a larger one is one statement and one
//! commit for all: a statement, a round trip and a WAL flush per group instead of per
//! message. Each caller is answered with its own row once the group is committed.
//!
//! Every rule holds per message: an idempotency key taken (by an earlier message or by one
//! before it in the same group) skips that row only, and its caller reads the message
//! that holds the key. A statement the database refuses (a constraint broken by a
//! conversation deleted meanwhile, a value it cannot store) stored nothing, so its group is
//! inserted again one message at a time and only the guilty one fails. Any other failure (a
//! lost connection) fails the group's callers as one failed write would, without inserting
//! again: the commit may have happened, and a second insert could store a message twice.

use crate::dialect::{Dialect, Param};
use crate::group::{Answer, GroupQueue, Grouped};
use crate::sql;
use std::sync::Arc;

/// At most this many groups are inserted at once: one measured fastest (BENCHMARKS.md,
/// "Design choices measured"). More runners make smaller groups: more statements and
/// commits for the same rows.
const RUNNERS: usize = 1;

/// The names the group statement gives the columns of [`sql::INSERT_MESSAGE`]'s parameters.
const COLUMNS: &[&str] = &[
    "conversation_id",
    "author_id",
    "payload",
    "status",
    "created_at",
    "send_at",
    "idempotency_key",
    "not_before",
    "last_received",
    "waiting_for",
];

/// Inserts the message of `params` ([`sql::INSERT_MESSAGE`]'s parameters) with the others
/// that arrive meanwhile in `queue`, by `group_sql`; answers once it is committed: its row,
/// or none when its idempotency key was taken.
pub(crate) async fn insert<D: Dialect>(
    queue: &Arc<GroupQueue<D>>,
    pool: &sqlx::Pool<D::Db>,
    group_sql: &'static str,
    params: &[Param<'_>],
) -> Answer<D> {
    let grouped = Grouped {
        single: sql::INSERT_MESSAGE,
        group: group_sql,
        names: COLUMNS,
        runners: RUNNERS,
        what: "insert",
    };
    queue.run(pool, grouped, params).await
}
