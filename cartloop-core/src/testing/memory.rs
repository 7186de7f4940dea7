//! [`MemoryStorage`]: every storage port in memory, behind one lock; its `accounts` module
//! holds the access ports (API keys, accounts and sessions, the audit log), its `events`
//! module the event log and webhooks.

use crate::closures::Closures;
use crate::delivery_policy::WaitingFor;
use crate::discount_code::DiscountCode;
use crate::disk_fault::{DiskFault, DiskFaultKind};
use crate::domain::{
    ClaimToken, Claimed, Client, ClientChanges, Conversation, ConversationContext,
    ConversationStatus, Dataset, Message, MessageStatus, NewClient, NewConversation, NewMessage,
    NewOperator, NewStore, Operator, Store, StoreChanges,
};
use crate::email_address::EmailAddress;
use crate::frequency_cap::FrequencyCap;
use crate::ids::{ConversationId, MessageId, StoreId, UserId};
use crate::ports::{
    ActivityKey, Admin, Backlog, ClaimLimit, ConversationFilter, ConversationSummary,
    Conversations, DeliveryFacts, Directory, DispatchQueue, DueCallback, ImportSummary, Inserted,
    Page, Reservation, Snapshot, StorageError, Transition,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

// The access ports: keys, accounts and sessions, the audit log.
mod accounts;
// The event log and webhooks, written under the same lock as the changes.
mod events;
use crate::event::EventType;

/// A complete [`Storage`](crate::ports::Storage) in memory, behind one lock. Meets the conformance suite; useful
/// for tests and for embedding without a database.
///
/// Every call is atomic (one lock), so the contracts that ask for atomicity (claims against
/// cancels, the hourly cap) hold trivially. [`watch_due`](DispatchQueue::watch_due) callbacks are
/// called after the lock is released, so a callback may call the storage.
#[derive(Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
    watchers: Mutex<Vec<DueCallback>>,
    /// Injected failures: how many of the next calls of a method fail as `Unavailable`,
    /// and whether with a full disk as the cause.
    faults: Mutex<HashMap<&'static str, (u32, bool)>>,
    /// API keys, accounts, sessions, sign-in failures and the audit log.
    accounts: Mutex<accounts::AccountsState>,
}

impl std::fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStorage")
            .field("state", &self.state)
            .field("watchers", &self.lock_watchers().len())
            .finish()
    }
}

#[derive(Debug, Default)]
struct State {
    stores: BTreeMap<StoreId, Store>,
    operators: BTreeMap<UserId, Operator>,
    clients: BTreeMap<UserId, Client>,
    conversations: BTreeMap<ConversationId, Conversation>,
    messages: BTreeMap<MessageId, Row>,
    /// Idempotency keys, scoped to their author.
    keys: HashMap<(UserId, String), MessageId>,
    secrets: HashMap<String, Vec<u8>>,
    events: events::EventsState,
}

#[derive(Debug, Clone)]
struct Row {
    message: Message,
    lease_until: Option<DateTime<Utc>>,
    /// When its send was reserved under the frequency cap (then when it was sent).
    counted_at: Option<DateTime<Utc>>,
    /// The reservation of the last attempt whose email may have gone: what a result other
    /// than a send puts `counted_at` back to.
    maybe_sent_at: Option<DateTime<Utc>>,
}

impl Row {
    /// When the row can be claimed, if it waits at all: a `new` message at its due instant,
    /// a `sending` one when its lease ends.
    fn due_at(&self) -> Option<DateTime<Utc>> {
        match self.message.status {
            MessageStatus::New => self.message.next_attempt_at.or(self.message.send_at),
            MessageStatus::Sending => self.lease_until,
            _ => None,
        }
    }
}

/// The key emails are compared by: case-insensitive.
fn email_key(email: &EmailAddress) -> String {
    email.as_str().to_lowercase()
}

/// One above the highest of `ids`, or 1.
fn next_id(ids: impl IntoIterator<Item = i64>) -> i64 {
    ids.into_iter().max().unwrap_or(0).max(0) + 1
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_watchers(&self) -> std::sync::MutexGuard<'_, Vec<DueCallback>> {
        self.watchers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify_due(&self) {
        let watchers = self.lock_watchers().clone();
        for on_due in watchers {
            on_due();
        }
    }

    /// Makes the next `times` calls of `method` (e.g. `"mark_sent"`, `"contexts"`,
    /// `"renew_leases"`) fail with [`StorageError::Unavailable`], as a database blip would,
    /// changing nothing. For tests of failure paths.
    pub fn fail_next(&self, method: &'static str, times: u32) {
        self.inject(method, times, false);
    }

    /// [`fail_next`](Self::fail_next), the failures caused by a full disk
    /// ([`DiskFault`](crate::disk_fault::DiskFault)), as a storage whose disk refuses
    /// writes reports them.
    pub fn disk_full_next(&self, method: &'static str, times: u32) {
        self.inject(method, times, true);
    }

    fn inject(&self, method: &'static str, times: u32, disk_full: bool) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(method, (times, disk_full));
    }

    /// An injected failure for `method`, if one is due.
    fn fault(&self, method: &'static str) -> Result<(), StorageError> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        match faults.get_mut(method) {
            Some((left, disk_full)) if *left > 0 => {
                *left -= 1;
                let message = format!("injected failure of {method}");
                Err(if *disk_full {
                    DiskFault::new(DiskFaultKind::Full, message).into_error()
                } else {
                    StorageError::unavailable(message)
                })
            }
            _ => Ok(()),
        }
    }

    /// Changes a conversation's discount code (for tests of rendering at send time).
    pub fn set_discount_code(&self, id: ConversationId, code: Option<DiscountCode>) {
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

    /// The lease of a `sending` message (for tests of heartbeats); `None` otherwise.
    pub fn lease_until(&self, id: MessageId) -> Option<DateTime<Utc>> {
        self.lock()
            .messages
            .get(&id)
            .filter(|row| row.message.status == MessageStatus::Sending)
            .and_then(|row| row.lease_until)
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

    /// See [`Conversations::delivery_facts`]; leaves out the message `except`.
    fn delivery_facts(
        &self,
        id: ConversationId,
        client: UserId,
        since: DateTime<Utc>,
        except: Option<MessageId>,
    ) -> DeliveryFacts {
        let mut facts = DeliveryFacts::default();
        for row in self.messages.values() {
            let Some(conversation) = self.conversations.get(&row.message.conversation_id) else {
                continue;
            };
            if row.message.conversation_id == id && row.message.status == MessageStatus::Received {
                facts.last_received = facts.last_received.max(Some(row.message.created_at));
            }
            if conversation.client_id != client || Some(row.message.id) == except {
                continue;
            }
            if let Some(at) = row.counted_at.filter(|at| *at >= since) {
                facts.recent_sends.push(at);
            }
        }
        facts.recent_sends.sort();
        facts
    }

    fn fenced(&mut self, token: ClaimToken) -> Option<&mut Row> {
        self.messages.get_mut(&token.message_id).filter(|row| {
            row.message.status == MessageStatus::Sending && row.message.attempts == token.attempt
        })
    }

    fn next_user_id(&self) -> UserId {
        let operators = self.operators.keys().map(|id| id.0);
        let clients = self.clients.keys().map(|id| id.0);
        UserId(next_id(operators.chain(clients)))
    }

    /// The client of `store` with this email; other stores' clients are other people.
    fn client_with_email(&self, store: StoreId, email: &EmailAddress) -> Option<&Client> {
        let key = email_key(email);
        self.clients
            .values()
            .find(|c| c.store_id == store && email_key(&c.email) == key)
    }

    fn page(&self, id: ConversationId, page: Page) -> Vec<Message> {
        let upper = page.before.map_or(MessageId(i64::MAX), |b| b);
        let mut out: Vec<Message> = self
            .messages
            .range(..upper)
            .rev()
            .filter(|(_, row)| row.message.conversation_id == id)
            .take(page.limit as usize)
            .map(|(_, row)| row.message.clone())
            .collect();
        out.reverse();
        out
    }

    /// Applies a status change if the message is in `from`.
    fn transition(
        &mut self,
        id: MessageId,
        from: MessageStatus,
        change: impl FnOnce(&mut Row),
    ) -> Transition {
        let Some(row) = self.messages.get_mut(&id) else {
            return Transition::NotFound;
        };
        if row.message.status != from {
            return Transition::WrongStatus(row.message.clone());
        }
        change(row);
        Transition::Done(row.message.clone())
    }
}

#[async_trait]
impl Conversations for MemoryStorage {
    async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<ConversationContext>, StorageError> {
        self.fault("conversation")?;
        Ok(self.lock().context(id))
    }

    async fn conversation_page(
        &self,
        id: ConversationId,
        page: Page,
    ) -> Result<Option<(ConversationContext, Vec<Message>)>, StorageError> {
        let state = self.lock();
        Ok(state
            .context(id)
            .map(|context| (context, state.page(id, page))))
    }

    async fn snapshot(&self) -> Result<Snapshot, StorageError> {
        let state = self.lock();
        Ok(Snapshot {
            max_message: state
                .messages
                .keys()
                .next_back()
                .copied()
                .unwrap_or(MessageId(0)),
            max_conversation: state
                .conversations
                .keys()
                .next_back()
                .copied()
                .unwrap_or(ConversationId(0)),
        })
    }

    async fn list_conversations(
        &self,
        filter: ConversationFilter,
        snapshot: Snapshot,
        after: Option<ActivityKey>,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StorageError> {
        let state = self.lock();
        // One pass over the messages: each conversation's activity within the snapshot, its
        // newest chat now and its pending count now.
        #[derive(Default)]
        struct Seen {
            activity: i64,
            last: Option<MessageId>,
            pending: u64,
        }
        let mut seen: HashMap<ConversationId, Seen> = HashMap::new();
        for (id, row) in &state.messages {
            let entry = seen.entry(row.message.conversation_id).or_default();
            if *id <= snapshot.max_message {
                entry.activity = entry.activity.max(id.0);
            }
            entry.last = entry.last.max(Some(*id));
            entry.pending += u64::from(row.message.status.is_pending());
        }
        let mut rows: Vec<(ActivityKey, &Conversation)> = state
            .conversations
            .range(..=snapshot.max_conversation)
            .map(|(_, c)| c)
            .filter(|c| filter.status.is_none_or(|s| c.status == s))
            .filter(|c| filter.store_id.is_none_or(|s| c.store_id == s))
            .filter(|c| filter.operator_id.is_none_or(|o| c.operator_id == o))
            .map(|c| {
                let activity = seen.get(&c.id).map_or(0, |s| s.activity);
                let key = ActivityKey {
                    activity,
                    conversation: c.id,
                };
                (key, c)
            })
            .filter(|(key, _)| after.is_none_or(|after| *key < after))
            .collect();
        rows.sort_by_key(|(key, _)| std::cmp::Reverse(*key));
        rows.truncate(limit as usize);
        let mut out = Vec::with_capacity(rows.len());
        for (key, conversation) in rows {
            let Some(client) = state.clients.get(&conversation.client_id) else {
                return Err(StorageError::other(format!(
                    "conversation {} names a missing client",
                    conversation.id
                )));
            };
            let Some(store) = state.stores.get(&conversation.store_id) else {
                return Err(StorageError::other(format!(
                    "conversation {} names a missing store",
                    conversation.id
                )));
            };
            let seen = seen.get(&conversation.id);
            out.push(ConversationSummary {
                conversation: conversation.clone(),
                client_name: client.name.clone(),
                client_time_zone: client.time_zone.unwrap_or(store.time_zone),
                last_chat: seen
                    .and_then(|s| s.last)
                    .map(|id| state.messages[&id].message.clone()),
                pending_count: seen.map_or(0, |s| s.pending),
                key,
            });
        }
        Ok(out)
    }

    async fn create_conversation(
        &self,
        new: NewConversation,
    ) -> Result<Conversation, StorageError> {
        let mut state = self.lock();
        if !state.stores.contains_key(&new.store_id) {
            return Err(StorageError::NotFound(format!("store {}", new.store_id)));
        }
        if !state.operators.contains_key(&new.operator_id) {
            return Err(StorageError::NotFound(format!(
                "operator {}",
                new.operator_id
            )));
        }
        let client_store = state.clients.get(&new.client_id).map(|c| c.store_id);
        if client_store != Some(new.store_id) {
            return Err(StorageError::NotFound(format!(
                "client {} of store {}",
                new.client_id, new.store_id
            )));
        }
        let id = ConversationId(next_id(state.conversations.keys().map(|id| id.0)));
        let conversation = Conversation {
            id,
            store_id: new.store_id,
            operator_id: new.operator_id,
            client_id: new.client_id,
            status: ConversationStatus::Open,
            discount_code: new.discount_code,
        };
        state.conversations.insert(id, conversation.clone());
        state.emit_conversation(id, EventType::ConversationCreated);
        drop(state);
        self.notify_events();
        Ok(conversation)
    }

    async fn set_conversation_status(
        &self,
        id: ConversationId,
        status: ConversationStatus,
    ) -> Result<bool, StorageError> {
        let mut state = self.lock();
        let Some(c) = state.conversations.get_mut(&id) else {
            return Ok(false);
        };
        if c.status != status {
            c.status = status;
            let kind = match status {
                ConversationStatus::Resolved => EventType::ConversationResolved,
                ConversationStatus::Open => EventType::ConversationReopened,
            };
            state.emit_conversation(id, kind);
            drop(state);
            self.notify_events();
        }
        Ok(true)
    }

    async fn reassign_conversation(
        &self,
        id: ConversationId,
        operator: UserId,
    ) -> Result<bool, StorageError> {
        let mut state = self.lock();
        let Some(store) = state.conversations.get(&id).map(|c| c.store_id) else {
            return Ok(false);
        };
        if state
            .operators
            .get(&operator)
            .is_none_or(|o| o.store_id != store)
        {
            return Ok(false);
        }
        let changed = match state.conversations.get_mut(&id) {
            Some(c) if c.operator_id != operator => {
                c.operator_id = operator;
                true
            }
            _ => false,
        };
        if changed {
            state.emit_conversation(id, EventType::ConversationAssigned);
            drop(state);
            self.notify_events();
        }
        Ok(true)
    }

    async fn insert_message(&self, new: NewMessage) -> Result<Inserted, StorageError> {
        let inserted = {
            let mut state = self.lock();
            if let Some(key) = &new.idempotency_key {
                if let Some(id) = state.keys.get(&(new.author_id, key.clone())) {
                    return Ok(Inserted {
                        message: state.messages[id].message.clone(),
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
            let id = MessageId(next_id(state.messages.keys().map(|id| id.0)));
            let message = Message {
                id,
                conversation_id: new.conversation_id,
                author_id: new.author_id,
                payload: new.payload,
                status: new.status,
                created_at: new.created_at,
                send_at: new.send_at,
                next_attempt_at: None,
                sent_at: None,
                attempts: 0,
                last_error: None,
                not_before: new.not_before,
                last_received: new.last_received,
                waiting_for: new.waiting_for,
            };
            if let Some(key) = new.idempotency_key {
                state.keys.insert((new.author_id, key), id);
            }
            state.messages.insert(
                id,
                Row {
                    message: message.clone(),
                    lease_until: None,
                    counted_at: None,
                    maybe_sent_at: None,
                },
            );
            state.emit_message(id, true);
            message
        };
        self.notify_events();
        if inserted.status == MessageStatus::New {
            self.notify_due();
        }
        Ok(Inserted {
            message: inserted,
            created: true,
        })
    }

    async fn delivery_facts(
        &self,
        id: ConversationId,
        client: UserId,
        since: DateTime<Utc>,
    ) -> Result<DeliveryFacts, StorageError> {
        let state = self.lock();
        Ok(state.delivery_facts(id, client, since, None))
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>, StorageError> {
        Ok(self.lock().messages.get(&id).map(|row| row.message.clone()))
    }

    async fn cancel_message(&self, id: MessageId) -> Result<Transition, StorageError> {
        let mut state = self.lock();
        let transition = state.transition(id, MessageStatus::New, |row| {
            row.message.status = MessageStatus::Cancelled;
        });
        if matches!(transition, Transition::Done(_)) {
            state.emit_message(id, false);
            drop(state);
            self.notify_events();
        }
        Ok(transition)
    }

    async fn retry_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> Result<Transition, StorageError> {
        let transition = self.lock().transition(id, MessageStatus::Failed, |row| {
            row.message.status = MessageStatus::New;
            row.message.send_at = Some(at);
            row.message.next_attempt_at = None;
            row.lease_until = None;
        });
        if matches!(transition, Transition::Done(_)) {
            self.notify_due();
        }
        Ok(transition)
    }
}

#[async_trait]
impl Directory for MemoryStorage {
    async fn create_store(&self, new: NewStore) -> Result<Store, StorageError> {
        let mut state = self.lock();
        let id = StoreId(next_id(state.stores.keys().map(|id| id.0)));
        let store = Store {
            active_hours: new.active_hours,
            ..Store::new(id, new.name, new.time_zone, new.sender_email)
        };
        state.stores.insert(id, store.clone());
        Ok(store)
    }

    async fn store(&self, id: StoreId) -> Result<Option<Store>, StorageError> {
        Ok(self.lock().stores.get(&id).cloned())
    }

    async fn update_store(
        &self,
        id: StoreId,
        changes: StoreChanges,
    ) -> Result<Option<Store>, StorageError> {
        Ok(self.lock().stores.get_mut(&id).map(|store| {
            if let Some(hours) = changes.active_hours {
                store.active_hours = hours;
            }
            if let Some(cap) = changes.max_per_client {
                store.max_per_client = cap;
            }
            if let Some(grace) = changes.reply_grace {
                store.reply_grace = grace;
            }
            store.clone()
        }))
    }

    async fn set_store_closures(
        &self,
        id: StoreId,
        closures: Closures,
    ) -> Result<Option<Store>, StorageError> {
        Ok(self.lock().stores.get_mut(&id).map(|store| {
            store.closures = closures;
            store.clone()
        }))
    }

    async fn create_operator(&self, new: NewOperator) -> Result<Operator, StorageError> {
        let mut state = self.lock();
        if !state.stores.contains_key(&new.store_id) {
            return Err(StorageError::NotFound(format!("store {}", new.store_id)));
        }
        let operator = Operator {
            id: state.next_user_id(),
            name: new.name,
            store_id: new.store_id,
            group: new.group,
        };
        state.operators.insert(operator.id, operator.clone());
        Ok(operator)
    }

    async fn operator(&self, id: UserId) -> Result<Option<Operator>, StorageError> {
        Ok(self.lock().operators.get(&id).cloned())
    }

    async fn create_client(&self, new: NewClient) -> Result<Client, StorageError> {
        let mut state = self.lock();
        if !state.stores.contains_key(&new.store_id) {
            return Err(StorageError::NotFound(format!("store {}", new.store_id)));
        }
        if let Some(existing) = state.client_with_email(new.store_id, &new.email) {
            return Err(StorageError::Conflict(format!(
                "client {} has this email",
                existing.id
            )));
        }
        let client = Client {
            id: state.next_user_id(),
            store_id: new.store_id,
            name: new.name,
            email: new.email,
            time_zone: new.time_zone,
            unsubscribed_at: None,
        };
        state.clients.insert(client.id, client.clone());
        state.emit_client(client.id, EventType::ClientCreated);
        drop(state);
        self.notify_events();
        Ok(client)
    }

    async fn client(&self, id: UserId) -> Result<Option<Client>, StorageError> {
        Ok(self.lock().clients.get(&id).cloned())
    }

    async fn client_by_email(
        &self,
        store: StoreId,
        email: &EmailAddress,
    ) -> Result<Option<Client>, StorageError> {
        Ok(self.lock().client_with_email(store, email).cloned())
    }

    async fn update_client(
        &self,
        id: UserId,
        changes: ClientChanges,
    ) -> Result<Option<Client>, StorageError> {
        let mut state = self.lock();
        let Some(store) = state.clients.get(&id).map(|c| c.store_id) else {
            return Ok(None);
        };
        if let Some(email) = &changes.email {
            if let Some(other) = state.client_with_email(store, email).filter(|c| c.id != id) {
                return Err(StorageError::Conflict(format!(
                    "client {} has this email",
                    other.id
                )));
            }
        }
        let client = state.clients.get_mut(&id).expect("checked above");
        if let Some(name) = changes.name {
            client.name = name;
        }
        if let Some(email) = changes.email {
            client.email = email;
        }
        if let Some(time_zone) = changes.time_zone {
            client.time_zone = time_zone;
        }
        Ok(Some(client.clone()))
    }

    async fn unsubscribe_client(
        &self,
        id: UserId,
        at: DateTime<Utc>,
    ) -> Result<Option<Client>, StorageError> {
        let mut state = self.lock();
        let Some(client) = state.clients.get_mut(&id) else {
            return Ok(None);
        };
        let first = client.unsubscribed_at.is_none();
        client.unsubscribed_at.get_or_insert(at);
        let client = client.clone();
        if first {
            state.emit_client(id, EventType::ClientUnsubscribed);
            drop(state);
            self.notify_events();
        }
        Ok(Some(client))
    }
}

#[async_trait]
impl DispatchQueue for MemoryStorage {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: ClaimLimit,
    ) -> Result<Vec<Claimed>, StorageError> {
        self.fault("claim_due")?;
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
                row.due_at()
                    .filter(|at| *at <= now)
                    .map(|at| (at, row.message.id))
            })
            .collect();
        due.sort();
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let until = now
            .checked_add_signed(lease)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut claimed = Vec::new();
        for (_, id) in due.into_iter().take(limit.allowed(used) as usize) {
            let row = state.messages.get_mut(&id).expect("listed above");
            row.message.status = MessageStatus::Sending;
            row.message.attempts += 1;
            row.lease_until = Some(until);
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

    async fn renew_leases(
        &self,
        tokens: &[ClaimToken],
        until: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        self.fault("renew_leases")?;
        let mut state = self.lock();
        let mut renewed = BTreeSet::new();
        for token in tokens {
            if let Some(row) = state.fenced(*token) {
                row.lease_until = Some(until);
                renewed.insert(token.message_id);
            }
        }
        Ok(renewed.len() as u64)
    }

    async fn mark_sent(&self, token: ClaimToken, at: DateTime<Utc>) -> Result<bool, StorageError> {
        self.fault("mark_sent")?;
        let mut state = self.lock();
        let Some(row) = state.fenced(token) else {
            return Ok(false);
        };
        row.message.status = MessageStatus::Sent;
        row.message.sent_at = Some(at);
        row.message.last_error = None;
        row.lease_until = None;
        row.counted_at = row.counted_at.map(|_| at);
        state.emit_message(token.message_id, false);
        drop(state);
        self.notify_events();
        Ok(true)
    }

    async fn reschedule(
        &self,
        token: ClaimToken,
        at: DateTime<Utc>,
        error: Option<String>,
    ) -> Result<bool, StorageError> {
        self.fault("reschedule")?;
        let mut state = self.lock();
        let Some(row) = state.fenced(token) else {
            return Ok(false);
        };
        row.message.status = MessageStatus::New;
        row.lease_until = None;
        row.counted_at = row.maybe_sent_at;
        match error {
            Some(error) => {
                row.message.next_attempt_at = Some(at);
                row.message.last_error = Some(error);
            }
            None => {
                row.message.send_at = Some(at);
                row.message.next_attempt_at = None;
                row.message.attempts = row.message.attempts.saturating_sub(1);
            }
        }
        Ok(true)
    }

    async fn mark_failed(&self, token: ClaimToken, error: String) -> Result<bool, StorageError> {
        self.fault("mark_failed")?;
        let mut state = self.lock();
        let Some(row) = state.fenced(token) else {
            return Ok(false);
        };
        row.message.status = MessageStatus::Failed;
        row.message.last_error = Some(error);
        row.lease_until = None;
        row.counted_at = row.maybe_sent_at;
        state.emit_message(token.message_id, false);
        drop(state);
        self.notify_events();
        Ok(true)
    }

    async fn hold(
        &self,
        token: ClaimToken,
        at: DateTime<Utc>,
        waiting_for: Option<WaitingFor>,
    ) -> Result<bool, StorageError> {
        self.fault("hold")?;
        let mut state = self.lock();
        let Some(row) = state.fenced(token) else {
            return Ok(false);
        };
        row.message.status = MessageStatus::New;
        row.message.send_at = Some(at);
        row.message.next_attempt_at = None;
        row.message.waiting_for = waiting_for;
        row.message.attempts = row.message.attempts.saturating_sub(1);
        row.lease_until = None;
        row.counted_at = row.maybe_sent_at;
        Ok(true)
    }

    async fn reserve_send(
        &self,
        token: ClaimToken,
        now: DateTime<Utc>,
        cap: FrequencyCap,
    ) -> Result<Reservation, StorageError> {
        self.fault("reserve_send")?;
        let mut state = self.lock();
        let Some(conversation) = state.fenced(token).map(|row| row.message.conversation_id) else {
            return Ok(Reservation::Lost);
        };
        let Some(client) = state.conversations.get(&conversation).map(|c| c.client_id) else {
            return Ok(Reservation::Lost);
        };
        let since = now - cap.per();
        let facts = state.delivery_facts(conversation, client, since, Some(token.message_id));
        let sends: Vec<_> = facts
            .recent_sends
            .into_iter()
            .filter(|at| *at > since)
            .collect();
        if sends.len() >= cap.count() as usize {
            return Ok(Reservation::Full(sends));
        }
        let row = state.fenced(token).expect("fenced above");
        row.counted_at = Some(now);
        Ok(Reservation::Granted)
    }

    async fn keep_reservation(&self, token: ClaimToken) -> Result<bool, StorageError> {
        self.fault("keep_reservation")?;
        let mut state = self.lock();
        let Some(row) = state.fenced(token) else {
            return Ok(false);
        };
        row.maybe_sent_at = row.counted_at.or(row.maybe_sent_at);
        Ok(true)
    }

    async fn mark_suppressed(
        &self,
        token: ClaimToken,
        reason: String,
    ) -> Result<bool, StorageError> {
        self.fault("mark_suppressed")?;
        let mut state = self.lock();
        let Some(row) = state.fenced(token) else {
            return Ok(false);
        };
        row.message.status = MessageStatus::Suppressed;
        row.message.last_error = Some(reason);
        row.message.attempts = row.message.attempts.saturating_sub(1);
        row.lease_until = None;
        row.counted_at = row.maybe_sent_at;
        state.emit_message(token.message_id, false);
        drop(state);
        self.notify_events();
        Ok(true)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.fault("next_due")?;
        Ok(self.lock().messages.values().filter_map(Row::due_at).min())
    }

    async fn backlog(&self, now: DateTime<Utc>) -> Result<Backlog, StorageError> {
        let state = self.lock();
        let mut backlog = Backlog::default();
        for row in state.messages.values() {
            if !row.message.status.is_pending() {
                continue;
            }
            backlog.waiting += 1;
            let due = match row.message.status {
                MessageStatus::New => row.due_at().is_some_and(|at| at <= now),
                _ => true,
            };
            if due {
                backlog.oldest_due = match (backlog.oldest_due, row.message.send_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Ok(backlog)
    }

    async fn watch_due(&self, on_due: DueCallback) -> Result<(), StorageError> {
        self.lock_watchers().push(on_due);
        Ok(())
    }

    async fn contexts(
        &self,
        ids: &[ConversationId],
    ) -> Result<Vec<ConversationContext>, StorageError> {
        self.fault("contexts")?;
        let state = self.lock();
        Ok(ids.iter().filter_map(|id| state.context(*id)).collect())
    }
}

#[async_trait]
impl Admin for MemoryStorage {
    async fn import(&self, data: &Dataset) -> Result<ImportSummary, StorageError> {
        let mut state = self.lock();
        let mut inserted = 0u64;
        fn add<K: Ord, V: Clone>(map: &mut BTreeMap<K, V>, key: K, value: &V) -> u64 {
            match map.entry(key) {
                std::collections::btree_map::Entry::Occupied(_) => 0,
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(value.clone());
                    1
                }
            }
        }
        for s in &data.stores {
            inserted += add(&mut state.stores, s.id, s);
        }
        for o in &data.operators {
            inserted += add(&mut state.operators, o.id, o);
        }
        for c in &data.clients {
            inserted += add(&mut state.clients, c.id, c);
        }
        for c in &data.conversations {
            inserted += add(&mut state.conversations, c.id, c);
        }
        for m in &data.messages {
            let row = Row {
                message: m.clone(),
                lease_until: None,
                counted_at: None,
                maybe_sent_at: None,
            };
            inserted += add(&mut state.messages, m.id, &row);
        }
        Ok(ImportSummary { inserted })
    }

    async fn secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>, StorageError> {
        Ok(self
            .lock()
            .secrets
            .entry(name.to_owned())
            .or_insert(candidate)
            .clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    storage_conformance_tests!(async { Some(Box::new(MemoryStorage::new())) });
}
