//! Sends recorded together, where the dialect can record a group in one statement
//! ([`Dialect::GROUP_MARK_SENT`](crate::Dialect::GROUP_MARK_SENT), PostgreSQL), by the
//! mechanism of `group.rs`.
//!
//! A dispatcher keeps many emails in flight; each accepted one is recorded `sent` as soon
//! as the mail server answers. The records that arrive while a group is being written go
//! in the next one: a statement, a round trip, a commit and one run of the chat events'
//! trigger (with its event-log lock) per group instead of per email.
//!
//! The guarantee is the single statement's: each caller is answered once its group is
//! committed, every row is fenced by its own claim (a claim taken over is left alone and
//! answered `false`), and a group that fails (a lost connection) fails each of its callers,
//! who retry while their claims hold. A crash before the commit can send again only the
//! emails of the groups not yet committed, each with its own `Message-ID`.

use crate::dialect::{Dialect, Param};
use crate::group::{Answer, GroupQueue, Grouped};
use crate::sql;
use std::sync::Arc;

/// At most this many groups are written at once: as for inserts, one runner makes the
/// largest groups.
const RUNNERS: usize = 1;

/// The names the group statement gives [`sql::MARK_SENT`]'s parameters.
const NAMES: &[&str] = &["id", "attempts", "at"];

/// Records the send of `params` ([`sql::MARK_SENT`]'s parameters) with the others that
/// arrive meanwhile in `queue`, by `group_sql`; answers once it is committed: a row when
/// its claim held.
pub(crate) async fn mark_sent<D: Dialect>(
    queue: &Arc<GroupQueue<D>>,
    pool: &sqlx::Pool<D::Db>,
    group_sql: &'static str,
    params: &[Param<'_>],
) -> Answer<D> {
    let grouped = Grouped {
        single: sql::MARK_SENT,
        group: group_sql,
        names: NAMES,
        runners: RUNNERS,
        what: "record of sends",
    };
    queue.run(pool, grouped, params).await
}
