//! Rows to domain values, the same for both dialects. Whatever the database holds, a bad
//! value becomes [`StorageError::Other`] naming the row, never a panic.

use crate::dialect::{DbRow, Driver};
use crate::sql::MessageColumns;
use cartloop_core::calendar::Calendar;
use cartloop_core::closures::Closures;
use cartloop_core::delivery_policy::WaitingFor;
use cartloop_core::discount_code::DiscountCode;
use cartloop_core::domain::{
    Client, Conversation, ConversationContext, Message, MessageStatus, Operator, Store,
};
use cartloop_core::email_address::EmailAddress;
use cartloop_core::frequency_cap::FrequencyCap;
use cartloop_core::ids::{ConversationId, MessageId, StoreId, UserId};
use cartloop_core::name::Name;
use cartloop_core::ports::StorageError;
use cartloop_core::reply_grace::ReplyGrace;
use cartloop_core::validate::Payload;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::fmt::Display;

/// `value`, or an error naming the NULL `column`.
fn required<T>(value: Option<T>, column: &str) -> Result<T, StorageError> {
    value.ok_or_else(|| StorageError::other(format!("column {column} is NULL")))
}

/// An error saying what `owner` holds that cannot be read.
fn bad(owner: impl Display, what: &str, error: impl Display) -> StorageError {
    StorageError::other(format!("{owner}: stored {what} unreadable: {error}"))
}

pub(crate) fn int<D: Driver>(row: &DbRow<D>, column: &str) -> Result<i64, StorageError> {
    required(D::int(row, column)?, column)
}

pub(crate) fn text<'r, D: Driver>(
    row: &'r DbRow<D>,
    column: &str,
) -> Result<&'r str, StorageError> {
    required(D::str(row, column)?, column)
}

pub(crate) fn time<D: Driver>(row: &DbRow<D>, column: &str) -> Result<DateTime<Utc>, StorageError> {
    required(D::time(row, column)?, column)
}

/// A message's columns as read, before they are checked.
pub(crate) struct MessageParts<'a> {
    pub id: i64,
    pub conversation_id: i64,
    pub author_id: i64,
    pub payload: &'a str,
    pub status: &'a str,
    pub created_at: DateTime<Utc>,
    pub send_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub last_received: Option<DateTime<Utc>>,
    pub waiting_for: Option<&'a str>,
}

/// The message of `parts`, checked.
pub(crate) fn checked_message(parts: MessageParts<'_>) -> Result<Message, StorageError> {
    let id = MessageId(parts.id);
    let owner = || format!("message {id}");
    let status: MessageStatus = parts
        .status
        .parse()
        .map_err(|e| bad(owner(), "status", e))?;
    // A client's reply is kept as written; an operator's payload was validated when written.
    let payload = if status == MessageStatus::Received {
        Payload::text(parts.payload)
    } else {
        Payload::stored(parts.payload).map_err(|e| bad(owner(), "payload", e))?
    };
    Ok(Message {
        id,
        conversation_id: ConversationId(parts.conversation_id),
        author_id: UserId(parts.author_id),
        payload,
        status,
        created_at: parts.created_at,
        send_at: parts.send_at,
        next_attempt_at: parts.next_attempt_at,
        sent_at: parts.sent_at,
        attempts: u32::try_from(parts.attempts).map_err(|e| bad(owner(), "attempts", e))?,
        last_error: parts.last_error,
        not_before: parts.not_before,
        last_received: parts.last_received,
        waiting_for: parts
            .waiting_for
            .map(|raw| {
                serde_json::from_value::<WaitingFor>(serde_json::Value::from(raw))
                    .map_err(|e| bad(owner(), "waiting_for", e))
            })
            .transpose()?,
    })
}

/// A message with the column names of `names`.
pub(crate) fn message<D: Driver>(
    row: &DbRow<D>,
    names: &MessageColumns,
) -> Result<Message, StorageError> {
    checked_message(MessageParts {
        id: int::<D>(row, names.id)?,
        conversation_id: int::<D>(row, names.conversation_id)?,
        author_id: int::<D>(row, names.author_id)?,
        payload: text::<D>(row, names.payload)?,
        status: text::<D>(row, names.status)?,
        created_at: time::<D>(row, names.created_at)?,
        send_at: D::time(row, names.send_at)?,
        sent_at: D::time(row, names.sent_at)?,
        next_attempt_at: D::time(row, names.next_attempt_at)?,
        attempts: required(D::int32(row, names.attempts)?, names.attempts)?.into(),
        last_error: D::str(row, names.last_error)?.map(str::to_owned),
        not_before: D::time(row, names.not_before)?,
        last_received: D::time(row, names.last_received)?,
        waiting_for: D::str(row, names.waiting_for)?,
    })
}

/// One message of the page's JSON (`sql::SQLITE_CONVERSATION_PAGE`): its columns in order,
/// instants as integer microseconds.
#[cfg(feature = "sqlite")]
type PageEntry = (
    i64,
    i64,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// The messages of a page's JSON, oldest first.
#[cfg(feature = "sqlite")]
pub(crate) fn page_json(json: &str) -> Result<Vec<Message>, StorageError> {
    let entries: Vec<PageEntry> =
        serde_json::from_str(json).map_err(|e| bad("a page of messages", "JSON", e))?;
    let mut messages = entries
        .into_iter()
        .map(|entry| {
            let (id, conversation_id, author_id, payload, status, created, send, sent, next) = (
                entry.0, entry.1, entry.2, &entry.3, &entry.4, entry.5, entry.6, entry.7, entry.8,
            );
            let at = |micros: i64| {
                DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                    bad(
                        format!("message {id}"),
                        "instant",
                        format!("{micros} out of range"),
                    )
                })
            };
            checked_message(MessageParts {
                id,
                conversation_id,
                author_id,
                payload,
                status,
                created_at: at(created)?,
                send_at: send.map(at).transpose()?,
                sent_at: sent.map(at).transpose()?,
                next_attempt_at: next.map(at).transpose()?,
                attempts: entry.9,
                last_error: entry.10,
                not_before: entry.11.map(at).transpose()?,
                last_received: entry.12.map(at).transpose()?,
                waiting_for: entry.13.as_deref(),
            })
        })
        .collect::<Result<Vec<_>, StorageError>>()?;
    messages.sort_by_key(|m| m.id);
    Ok(messages)
}

/// A row of `store_columns!`.
pub(crate) fn store<D: Driver>(row: &DbRow<D>) -> Result<Store, StorageError> {
    let id = StoreId(int::<D>(row, "store_id")?);
    let owner = || format!("store {id}");
    Ok(Store {
        id,
        name: name(text::<D>(row, "store_name")?, "name", owner)?,
        time_zone: zone(text::<D>(row, "store_time_zone")?, owner)?,
        sender_email: email(text::<D>(row, "store_sender_email")?, owner)?,
        active_hours: D::str(row, "store_active_hours")?
            .map(|raw| {
                raw.parse::<Calendar>()
                    .map_err(|e| bad(owner(), "active hours", e))
            })
            .transpose()?,
        closures: text::<D>(row, "store_closures")?
            .parse::<Closures>()
            .map_err(|e| bad(owner(), "closures", e))?,
        max_per_client: D::str(row, "store_max_per_client")?
            .map(|raw| {
                serde_json::from_str::<FrequencyCap>(raw)
                    .map_err(|e| bad(owner(), "frequency cap", e))
            })
            .transpose()?,
        reply_grace: D::str(row, "store_reply_grace")?
            .map(|raw| {
                raw.parse::<ReplyGrace>()
                    .map_err(|e| bad(owner(), "reply grace", e))
            })
            .transpose()?
            .unwrap_or_default(),
    })
}

/// A row of `operator_columns!`.
pub(crate) fn operator<D: Driver>(row: &DbRow<D>) -> Result<Operator, StorageError> {
    let id = UserId(int::<D>(row, "operator_id")?);
    let owner = || format!("operator {id}");
    Ok(Operator {
        id,
        name: name(text::<D>(row, "operator_name")?, "name", owner)?,
        store_id: StoreId(int::<D>(row, "operator_store_id")?),
        group: name(text::<D>(row, "operator_group")?, "group", owner)?,
    })
}

/// A row of `client_columns!`.
pub(crate) fn client<D: Driver>(row: &DbRow<D>) -> Result<Client, StorageError> {
    let id = UserId(int::<D>(row, "client_id")?);
    let owner = || format!("client {id}");
    Ok(Client {
        id,
        store_id: StoreId(int::<D>(row, "client_store_id")?),
        name: name(text::<D>(row, "client_name")?, "name", owner)?,
        email: email(text::<D>(row, "client_email")?, owner)?,
        time_zone: D::str(row, "client_time_zone")?
            .map(|name| zone(name, owner))
            .transpose()?,
        unsubscribed_at: D::time(row, "client_unsubscribed_at")?,
    })
}

/// A row of `context_columns!`.
pub(crate) fn context<D: Driver>(row: &DbRow<D>) -> Result<ConversationContext, StorageError> {
    let id = ConversationId(int::<D>(row, "c_id")?);
    let store = store::<D>(row)?;
    let operator = operator::<D>(row)?;
    let client = client::<D>(row)?;
    Ok(ConversationContext {
        conversation: Conversation {
            id,
            store_id: store.id,
            operator_id: operator.id,
            client_id: client.id,
            status: text::<D>(row, "c_status")?
                .parse()
                .map_err(|e| bad(format!("conversation {id}"), "status", e))?,
            discount_code: D::str(row, "c_discount_code")?
                .map(|raw| discount_code(raw, || format!("conversation {id}")))
                .transpose()?,
        },
        store,
        operator,
        client,
    })
}

/// Parses a stored IANA zone name of `owner`.
fn zone<O: Display>(name: &str, owner: impl FnOnce() -> O) -> Result<Tz, StorageError> {
    name.parse::<Tz>()
        .map_err(|_| bad(owner(), "time zone", format!("unknown zone {name:?}")))
}

/// Parses a stored name (`what`: `name`, `group`) of `owner`.
fn name<O: Display>(
    raw: &str,
    what: &str,
    owner: impl FnOnce() -> O,
) -> Result<Name, StorageError> {
    Name::parse(raw).map_err(|e| bad(owner(), what, e))
}

/// Parses a stored discount code of `owner`.
fn discount_code<O: Display>(
    raw: &str,
    owner: impl FnOnce() -> O,
) -> Result<DiscountCode, StorageError> {
    DiscountCode::parse(raw).map_err(|e| bad(owner(), "discount code", e))
}

/// Parses a stored email address of `owner`.
fn email<O: Display>(raw: &str, owner: impl FnOnce() -> O) -> Result<EmailAddress, StorageError> {
    EmailAddress::parse(raw).map_err(|e| bad(owner(), "email", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_zone_is_an_error_not_a_panic() {
        let err = zone("Mars/Olympus_Mons", || "store 1").unwrap_err();
        assert!(matches!(err, StorageError::Other(_)), "{err:?}");
        assert_eq!(
            err.detail(),
            "storage error: store 1: stored time zone unreadable: unknown zone \"Mars/Olympus_Mons\""
        );
        assert_eq!(
            zone("Asia/Kathmandu", || "store 1").unwrap(),
            chrono_tz::Asia::Kathmandu
        );
    }

    #[test]
    fn bad_name_or_code_is_an_error_not_a_panic() {
        let err = name(" ", "group", || "operator 21").unwrap_err();
        assert!(matches!(err, StorageError::Other(_)), "{err:?}");
        assert_eq!(
            err.detail(),
            "storage error: operator 21: stored group unreadable: must not be empty"
        );
        assert_eq!(name("Dana", "name", || "operator 21").unwrap(), "Dana");
        let err = discount_code("50% OFF", || "conversation 1").unwrap_err();
        assert!(matches!(err, StorageError::Other(_)), "{err:?}");
        assert!(
            err.detail()
                .contains("conversation 1: stored discount code unreadable"),
            "{}",
            err.detail()
        );
        assert_eq!(
            discount_code("PROMO50", || "conversation 1").unwrap(),
            "PROMO50"
        );
    }

    #[test]
    fn bad_email_is_an_error_not_a_panic() {
        let err = email("not an address", || "client 27").unwrap_err();
        assert!(matches!(err, StorageError::Other(_)), "{err:?}");
        assert!(
            err.detail().contains("client 27: stored email"),
            "{}",
            err.detail()
        );
    }
}
