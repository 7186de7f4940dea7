use crate::demo::DemoData;
use crate::domain::{
    ClaimToken, Claimed, Client, Conversation, ConversationContext, Message, MessageStatus,
    NewMessage, Operator, Store,
};
use crate::ids::{ConversationId, MessageId, StoreId, UserId};
use crate::ports::{ClaimLimit, ImportSummary, Inserted, Page, Storage, StorageError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// A complete [`Storage`] in memory, behind one lock. Meets the conformance suite; useful
/// for tests and for embedding without a database.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    stores: HashMap<StoreId, Store>,
    operators: HashMap<UserId, Operator>,
    clients: HashMap<UserId, Client>,
    conversations: HashMap<ConversationId, Conversation>,
    messages: BTreeMap<MessageId, Row>,
    keys: HashMap<String, MessageId>,
    next_id: i64,
}

#[derive(Debug, Clone)]
struct Row {
    message: Message,
    lease_until: Option<DateTime<Utc>>,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes a conversation's discount code (for tests of rendering at send time).
    pub fn set_discount_code(&self, id: ConversationId, code: Option<String>) {
        if let Some(c) = self.lock().conversations.get_mut(&id) {
            c.discount_code = code;
        }
    }

    /// Changes a client's time zone (for tests of the send-time window check).
    pub fn set_client_time_zone(&self, id: UserId, tz: Option<chrono_tz::Tz>) {
        if let Some(c) = self.lock().clients.get_mut(&id) {
            c.time_zone = tz;
        }
    }
}

impl State {
    fn context(&self, id: ConversationId) -> Option<ConversationContext> {
        let conversation = self.conversations.get(&id)?.clone();
        Some(ConversationContext {
            store: self.stores.get(&conversation.store_id)?.clone(),
            operator: self.operators.get(&conversation.operator_id)?.clone(),
            client: self.clients.get(&conversation.client_id)?.clone(),
            conversation,
        })
    }

    fn fenced(&mut self, token: ClaimToken) -> Option<&mut Row> {
        self.messages.get_mut(&token.message_id).filter(|row| {
            row.message.status == MessageStatus::Sending && row.message.attempts == token.attempt
        })
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<ConversationContext>, StorageError> {
        Ok(self.lock().context(id))
    }

    async fn messages(&self, id: ConversationId, page: Page) -> Result<Vec<Message>, StorageError> {
        let state = self.lock();
        let upper = page.before.map_or(i64::MAX, |b| b.0);
        let mut out: Vec<Message> = state
            .messages
            .range(..MessageId(upper))
            .rev()
            .filter(|(_, row)| row.message.conversation_id == id)
            .take(page.limit as usize)
            .map(|(_, row)| row.message.clone())
            .collect();
        out.reverse();
        Ok(out)
    }

    async fn insert_message(&self, new: NewMessage) -> Result<Inserted, StorageError> {
        let mut state = self.lock();
        if let Some(key) = &new.idempotency_key {
            if let Some(id) = state.keys.get(key) {
                let message = state.messages[id].message.clone();
                return Ok(Inserted {
                    message,
                    created: false,
                });
            }
        }
        if !state.conversations.contains_key(&new.conversation_id) {
            return Err(StorageError::NotFound(format!(
                "conversation {}",
                new.conversation_id
            )));
        }
        let next = state
            .messages
            .keys()
            .next_back()
            .map_or(0, |id| id.0)
            .max(state.next_id)
            + 1;
        state.next_id = next;
        let message = Message {
            id: MessageId(next),
            conversation_id: new.conversation_id,
            author_id: new.author_id,
            payload: new.payload,
            status: new.status,
            created_at: new.created_at,
            send_at: new.send_at,
            sent_at: None,
            attempts: 0,
            last_error: None,
        };
        if let Some(key) = new.idempotency_key {
            state.keys.insert(key, message.id);
        }
        state.messages.insert(
            message.id,
            Row {
                message: message.clone(),
                lease_until: None,
            },
        );
        Ok(Inserted {
            message,
            created: true,
        })
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>, StorageError> {
        Ok(self.lock().messages.get(&id).map(|row| row.message.clone()))
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: ClaimLimit,
    ) -> Result<Vec<Claimed>, StorageError> {
        let mut state = self.lock();
        let used = match limit.hourly_cap {
            None => 0,
            Some(_) => {
                let hour_ago = now - chrono::Duration::hours(1);
                state
                    .messages
                    .values()
                    .filter(|row| match row.message.status {
                        MessageStatus::Sent => row.message.sent_at.is_some_and(|at| at >= hour_ago),
                        MessageStatus::Sending => row.lease_until.is_some_and(|at| at > now),
                        _ => false,
                    })
                    .count() as u64
            }
        };
        let mut due: Vec<(DateTime<Utc>, MessageId)> = state
            .messages
            .values()
            .filter_map(|row| {
                let m = &row.message;
                match m.status {
                    MessageStatus::New => m.send_at.filter(|at| *at <= now),
                    MessageStatus::Sending => row.lease_until.filter(|at| *at <= now),
                    _ => None,
                }
                .map(|at| (at, m.id))
            })
            .collect();
        due.sort();
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let mut claimed = Vec::new();
        for (_, id) in due.into_iter().take(limit.allowed(used) as usize) {
            let row = state.messages.get_mut(&id).expect("listed above");
            row.message.status = MessageStatus::Sending;
            row.message.attempts += 1;
            row.lease_until = Some(now + lease);
            claimed.push(Claimed {
                token: ClaimToken {
                    message_id: id,
                    attempt: row.message.attempts,
                },
                message: row.message.clone(),
            });
        }
        Ok(claimed)
    }

    async fn mark_sent(&self, token: ClaimToken, at: DateTime<Utc>) -> Result<bool, StorageError> {
        let mut state = self.lock();
        let Some(row) = state.fenced(token) else {
            return Ok(false);
        };
        row.message.status = MessageStatus::Sent;
        row.message.sent_at = Some(at);
        row.message.last_error = None;
        row.lease_until = None;
        Ok(true)
    }

    async fn reschedule(
        &self,
        token: ClaimToken,
        at: DateTime<Utc>,
        error: Option<String>,
    ) -> Result<bool, StorageError> {
        let mut state = self.lock();
        let Some(row) = state.fenced(token) else {
            return Ok(false);
        };
        row.message.status = MessageStatus::New;
        row.message.send_at = Some(at);
        row.lease_until = None;
        match error {
            Some(error) => row.message.last_error = Some(error),
            None => row.message.attempts -= 1,
        }
        Ok(true)
    }

    async fn mark_failed(&self, token: ClaimToken, error: String) -> Result<bool, StorageError> {
        let mut state = self.lock();
        let Some(row) = state.fenced(token) else {
            return Ok(false);
        };
        row.message.status = MessageStatus::Failed;
        row.message.last_error = Some(error);
        row.lease_until = None;
        Ok(true)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        let state = self.lock();
        Ok(state
            .messages
            .values()
            .filter_map(|row| match row.message.status {
                MessageStatus::New => row.message.send_at,
                MessageStatus::Sending => row.lease_until,
                _ => None,
            })
            .min())
    }

    async fn import(&self, data: &DemoData) -> Result<ImportSummary, StorageError> {
        let mut state = self.lock();
        let mut inserted = 0u64;
        let mut count = |fresh: bool| inserted += u64::from(fresh);
        for s in &data.stores {
            count(state.stores.try_insert_owned(s.id, s.clone()));
        }
        for o in &data.operators {
            count(state.operators.try_insert_owned(o.id, o.clone()));
        }
        for c in &data.clients {
            count(state.clients.try_insert_owned(c.id, c.clone()));
        }
        for c in &data.conversations {
            count(state.conversations.try_insert_owned(c.id, c.clone()));
        }
        for m in &data.messages {
            let fresh = !state.messages.contains_key(&m.id);
            if fresh {
                state.messages.insert(
                    m.id,
                    Row {
                        message: m.clone(),
                        lease_until: None,
                    },
                );
            }
            count(fresh);
        }
        Ok(ImportSummary { inserted })
    }
}

trait TryInsertOwned<K, V> {
    fn try_insert_owned(&mut self, key: K, value: V) -> bool;
}

impl<K: std::hash::Hash + Eq, V> TryInsertOwned<K, V> for HashMap<K, V> {
    fn try_insert_owned(&mut self, key: K, value: V) -> bool {
        match self.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(value);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::storage_conformance_tests!(async { Some(MemoryStorage::new()) });
}
