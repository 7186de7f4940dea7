//! The `Message-ID` of a message's emails: the same for every retry, so that receivers drop
//! duplicates, and unique beyond one database's ids.

use crate::ids::MessageId;
use chrono::{DateTime, Utc};

/// The `Message-ID` (without angle brackets) for a message created at `created_at` and
/// sent from `sender`: `cartloop.message.<id>.<created_at in ms>@<sender domain>`.
///
/// Every retry of a message carries the same id, so receivers can drop duplicates. The
/// creation time keeps it unique beyond one database's ids: a message 7 written after
/// the database was reset must not be dropped as a duplicate of the old message 7.
///
/// ```
/// use cartloop_core::ids::MessageId;
/// use cartloop_core::message_id;
/// use chrono::{TimeZone, Utc};
/// let created = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
/// assert_eq!(
///     message_id::format(MessageId(7), created, "shop@example.com"),
///     "cartloop.message.7.1795597200000@example.com"
/// );
/// ```
pub fn format(id: MessageId, created_at: DateTime<Utc>, sender: &str) -> String {
    let domain = sender
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
        .unwrap_or("cartloop.invalid");
    let created = created_at.timestamp_millis();
    format!("cartloop.message.{id}.{created}@{domain}")
}

/// The message id and creation instant (ms) in a `Message-ID` made by [`format()`], with or
/// without angle brackets; `None` for anyone else's.
///
/// ```
/// use cartloop_core::ids::MessageId;
/// use cartloop_core::message_id;
/// assert_eq!(
///     message_id::parse("<cartloop.message.7.1795597200000@example.com>"),
///     Some((MessageId(7), 1795597200000))
/// );
/// assert_eq!(message_id::parse("<CAF=abc@mail.gmail.com>"), None);
/// ```
pub fn parse(value: &str) -> Option<(MessageId, i64)> {
    let value = value.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, _domain) = value.split_once('@')?;
    let rest = local.strip_prefix("cartloop.message.")?;
    let (id, created) = rest.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(id) || !digits(created) {
        return None;
    }
    Some((MessageId(id.parse().ok()?), created.parse().ok()?))
}
