//! Rows to domain values, the same for both backends: each backend only says how to read
//! an integer, a text and an instant from its rows ([`Columns`]). Whatever the database holds,
//! a bad value becomes [`StorageError::Other`], never a panic.

use cartloop_core::domain::{
    Client, Conversation, ConversationContext, ConversationStatus, Message, MessageStatus,
    Operator, Store,
};
use cartloop_core::ids::{ConversationId, MessageId, StoreId, UserId};
use cartloop_core::ports::StorageError;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Typed access to the columns of one backend's rows.
pub(crate) trait Columns {
    /// A `BIGINT` (PostgreSQL) or `INTEGER` (SQLite) column.
    fn int(&self, column: &str) -> Result<i64, StorageError>;
    /// An `INTEGER` column, 32 bits on PostgreSQL.
    fn int32(&self, column: &str) -> Result<i32, StorageError>;
    /// A nullable text column.
    fn opt_text(&self, column: &str) -> Result<Option<String>, StorageError>;
    /// A nullable instant column.
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StorageError>;

    /// A text column that must not be NULL.
    fn text(&self, column: &str) -> Result<String, StorageError> {
        self.opt_text(column)?
            .ok_or_else(|| StorageError::Other(format!("column {column} is NULL")))
    }

    /// An instant column that must not be NULL.
    fn time(&self, column: &str) -> Result<DateTime<Utc>, StorageError> {
        self.opt_time(column)?
            .ok_or_else(|| StorageError::Other(format!("column {column} is NULL")))
    }
}

/// A row of [`crate::sql::message_columns`].
pub(crate) fn message(row: &impl Columns) -> Result<Message, StorageError> {
    let id = MessageId(row.int("id")?);
    let status = row.text("status")?;
    let attempts = row.int32("attempts")?;
    Ok(Message {
        id,
        conversation_id: ConversationId(row.int("conversation_id")?),
        author_id: UserId(row.int("author_id")?),
        payload: row.text("payload")?,
        status: status
            .parse::<MessageStatus>()
            .map_err(|e| StorageError::Other(format!("message {id}: {e}")))?,
        created_at: row.time("created_at")?,
        send_at: row.opt_time("send_at")?,
        sent_at: row.opt_time("sent_at")?,
        attempts: u32::try_from(attempts).map_err(|_| {
            StorageError::Other(format!("message {id}: negative attempts {attempts}"))
        })?,
        last_error: row.opt_text("last_error")?,
    })
}

/// A row of [`crate::sql::CONVERSATION`].
pub(crate) fn conversation_context(
    row: &impl Columns,
) -> Result<ConversationContext, StorageError> {
    let id = ConversationId(row.int("id")?);
    let store_id = StoreId(row.int("store_id")?);
    let operator_id = UserId(row.int("operator_id")?);
    let client_id = UserId(row.int("client_id")?);
    let status = row.text("status")?;
    let client_zone = row.opt_text("client_time_zone")?;
    Ok(ConversationContext {
        conversation: Conversation {
            id,
            store_id,
            operator_id,
            client_id,
            status: status
                .parse::<ConversationStatus>()
                .map_err(|e| StorageError::Other(format!("conversation {id}: {e}")))?,
            discount_code: row.opt_text("discount_code")?,
        },
        store: Store {
            id: store_id,
            name: row.text("store_name")?,
            time_zone: zone(&row.text("store_time_zone")?, || {
                format!("store {store_id}")
            })?,
            sender_email: row.text("sender_email")?,
        },
        operator: Operator {
            id: operator_id,
            name: row.text("operator_name")?,
            store_id: StoreId(row.int("operator_store_id")?),
            group: row.text("operator_group")?,
        },
        client: Client {
            id: client_id,
            name: row.text("client_name")?,
            email: row.text("client_email")?,
            time_zone: client_zone
                .map(|name| zone(&name, || format!("client {client_id}")))
                .transpose()?,
        },
    })
}

/// Parses a stored IANA zone name; `owner` says whose it is, for the error.
fn zone(name: &str, owner: impl FnOnce() -> String) -> Result<Tz, StorageError> {
    name.parse::<Tz>()
        .map_err(|_| StorageError::Other(format!("{}: unknown time zone {name:?} stored", owner())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_zone_is_an_error_not_a_panic() {
        let err = zone("Mars/Olympus_Mons", || "store 1".to_owned()).unwrap_err();
        assert_eq!(
            err,
            StorageError::Other("store 1: unknown time zone \"Mars/Olympus_Mons\" stored".into())
        );
        assert_eq!(
            zone("Asia/Kathmandu", String::new).unwrap(),
            chrono_tz::Asia::Kathmandu
        );
    }
}
