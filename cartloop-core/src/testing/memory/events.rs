//! The event log and webhooks in memory: events are written under the storage's one lock
//! by the change that makes them, and queued for every webhook that selects them.

use super::{MemoryStorage, State};
use crate::event::{self, Event, EventId, EventType};
use crate::ids::{ConversationId, MessageId, StoreId, UserId};
use crate::ports::{
    ClaimedDelivery, DeliveryAttempt, DeliveryNext, DeliveryResult, DueCallback, EventFilter,
    EventLog, NewWebhook, StorageError, Webhook, WebhookChanges, WebhookId, Webhooks,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Default)]
pub(super) struct EventsState {
    events: Vec<Event>,
    next_id: i64,
    webhooks: BTreeMap<WebhookId, (Webhook, String)>,
    deliveries: BTreeMap<i64, Delivery>,
    next_delivery: i64,
    attempts: Vec<DeliveryAttempt>,
    watchers: Vec<DueCallback>,
}

#[derive(Debug, Clone)]
struct Delivery {
    webhook: WebhookId,
    event: EventId,
    conversation: Option<ConversationId>,
    created_at: DateTime<Utc>,
    done: bool,
    attempts: u32,
    due_at: DateTime<Utc>,
    lease_until: Option<DateTime<Utc>>,
}

impl Delivery {
    fn claimable(&self, now: DateTime<Utc>) -> bool {
        !self.done
            && match self.lease_until {
                Some(until) => until <= now,
                None => self.due_at <= now,
            }
    }
}

impl std::fmt::Debug for EventsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsState")
            .field("events", &self.events.len())
            .field("webhooks", &self.webhooks.len())
            .field("deliveries", &self.deliveries.len())
            .finish_non_exhaustive()
    }
}

impl EventsState {
    fn push(
        &mut self,
        kind: EventType,
        store_id: StoreId,
        conversation_id: Option<ConversationId>,
        data: serde_json::Value,
    ) {
        self.next_id += 1;
        let created_at = Utc::now();
        let event = Event {
            id: EventId(self.next_id),
            kind,
            created_at,
            store_id: Some(store_id),
            conversation_id,
            data,
        };
        for (webhook, _) in self.webhooks.values() {
            let mine = webhook.store_id.is_none_or(|s| s == store_id);
            if webhook.enabled && mine && webhook.events.selects(kind) {
                self.next_delivery += 1;
                self.deliveries.insert(
                    self.next_delivery,
                    Delivery {
                        webhook: webhook.id,
                        event: event.id,
                        conversation: conversation_id,
                        created_at,
                        done: false,
                        attempts: 0,
                        due_at: created_at,
                        lease_until: None,
                    },
                );
            }
        }
        self.events.push(event);
    }

    pub(super) fn take_watchers(&self) -> Vec<DueCallback> {
        self.watchers.clone()
    }
}

impl State {
    /// Writes the event of message `id`'s status, if it makes one.
    pub(super) fn emit_message(&mut self, id: MessageId, inserted: bool) {
        let Some(message) = self.messages.get(&id).map(|row| row.message.clone()) else {
            return;
        };
        let Some(kind) = EventType::of_message(message.status, inserted) else {
            return;
        };
        let Some(store) = self
            .conversations
            .get(&message.conversation_id)
            .map(|c| c.store_id)
        else {
            return;
        };
        let data = event::chat_data(&message);
        self.events
            .push(kind, store, Some(message.conversation_id), data);
    }

    /// Writes a conversation event.
    pub(super) fn emit_conversation(&mut self, id: ConversationId, kind: EventType) {
        let Some(conversation) = self.conversations.get(&id).cloned() else {
            return;
        };
        let group = self
            .operators
            .get(&conversation.operator_id)
            .map(|o| o.group.as_str().to_owned())
            .unwrap_or_default();
        let zone = self
            .clients
            .get(&conversation.client_id)
            .and_then(|c| c.time_zone)
            .or_else(|| self.stores.get(&conversation.store_id).map(|s| s.time_zone))
            .map(|tz| tz.name())
            .unwrap_or("UTC");
        let data = event::conversation_data(&conversation, &group, zone);
        self.events
            .push(kind, conversation.store_id, Some(id), data);
    }

    /// Writes a client event.
    pub(super) fn emit_client(&mut self, id: UserId, kind: EventType) {
        if let Some(client) = self.clients.get(&id) {
            let data = event::client_data(client);
            let store = client.store_id;
            self.events.push(kind, store, None, data);
        }
    }
}

impl MemoryStorage {
    /// Calls the event watchers, after the lock is released.
    pub(super) fn notify_events(&self) {
        let watchers = self.lock().events.take_watchers();
        for on_event in watchers {
            on_event();
        }
    }
}

#[async_trait]
impl EventLog for MemoryStorage {
    async fn events_after(
        &self,
        after: EventId,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<Event>, StorageError> {
        let state = self.lock();
        let start = state.events.events.partition_point(|e| e.id <= after);
        Ok(state.events.events[start..]
            .iter()
            .filter(|e| filter.admits(e))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn last_event_id(&self) -> Result<EventId, StorageError> {
        Ok(EventId(self.lock().events.next_id))
    }

    async fn watch_events(&self, on_event: DueCallback) -> Result<(), StorageError> {
        self.lock().events.watchers.push(on_event);
        Ok(())
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let mut state = self.lock();
        let events = &mut state.events;
        let newest = events.events.last().map(|e| e.id);
        let old: Vec<EventId> = events
            .events
            .iter()
            .filter(|e| e.created_at < before && Some(e.id) != newest)
            .map(|e| e.id)
            .collect();
        events.events.retain(|e| !old.contains(&e.id));
        events.deliveries.retain(|_, d| !old.contains(&d.event));
        events
            .attempts
            .retain(|a| a.event_id.is_none_or(|id| !old.contains(&id)) && a.at >= before);
        Ok(old.len() as u64)
    }
}

#[async_trait]
impl Webhooks for MemoryStorage {
    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook, StorageError> {
        let mut state = self.lock();
        if let Some(store) = new.store_id {
            if !state.stores.contains_key(&store) {
                return Err(StorageError::NotFound(format!("store {store}")));
            }
        }
        let events = &mut state.events;
        let id = WebhookId(events.webhooks.keys().last().map_or(1, |id| id.0 + 1));
        let webhook = Webhook {
            id,
            store_id: new.store_id,
            url: new.url,
            events: new.events,
            enabled: true,
            disabled_reason: None,
            created_at: new.created_at,
        };
        events.webhooks.insert(id, (webhook.clone(), new.secret));
        Ok(webhook)
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>, StorageError> {
        Ok(self.lock().events.webhooks.get(&id).map(|(w, _)| w.clone()))
    }

    async fn list_webhooks(&self, store: Option<StoreId>) -> Result<Vec<Webhook>, StorageError> {
        Ok(self
            .lock()
            .events
            .webhooks
            .values()
            .filter(|(w, _)| store.is_none() || w.store_id == store)
            .map(|(w, _)| w.clone())
            .collect())
    }

    async fn update_webhook(
        &self,
        id: WebhookId,
        changes: WebhookChanges,
    ) -> Result<Option<Webhook>, StorageError> {
        let mut state = self.lock();
        let Some((webhook, _)) = state.events.webhooks.get_mut(&id) else {
            return Ok(None);
        };
        if let Some(url) = changes.url {
            webhook.url = url;
        }
        if let Some(events) = changes.events {
            webhook.events = events;
        }
        if let Some(enabled) = changes.enabled {
            webhook.enabled = enabled;
            if enabled {
                webhook.disabled_reason = None;
            }
        }
        Ok(Some(webhook.clone()))
    }

    async fn delete_webhook(&self, id: WebhookId) -> Result<bool, StorageError> {
        let mut state = self.lock();
        let events = &mut state.events;
        let existed = events.webhooks.remove(&id).is_some();
        events.deliveries.retain(|_, d| d.webhook != id);
        events.attempts.retain(|a| a.webhook_id != id);
        Ok(existed)
    }

    async fn webhook_secret(&self, id: WebhookId) -> Result<Option<String>, StorageError> {
        Ok(self.lock().events.webhooks.get(&id).map(|(_, s)| s.clone()))
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StorageError> {
        let lease = chrono::Duration::from_std(lease).map_err(StorageError::other)?;
        let mut state = self.lock();
        let events = &mut state.events;
        let mut heads: BTreeMap<(WebhookId, Option<ConversationId>), i64> = BTreeMap::new();
        for (id, d) in &events.deliveries {
            if d.done {
                continue;
            }
            let key = (d.webhook, d.conversation);
            // Deliveries without a conversation are not held back by each other.
            if d.conversation.is_none() {
                heads.insert((d.webhook, Some(ConversationId(-*id))), *id);
            } else {
                heads.entry(key).or_insert(*id);
            }
        }
        let mut ids: Vec<i64> = heads.into_values().collect();
        ids.sort_unstable();
        let mut claimed = Vec::new();
        for id in ids {
            if claimed.len() >= limit as usize {
                break;
            }
            let d = &events.deliveries[&id];
            let Some((webhook, secret)) = events.webhooks.get(&d.webhook) else {
                continue;
            };
            if !webhook.enabled || !d.claimable(now) {
                continue;
            }
            let Some(event) = events.events.iter().find(|e| e.id == d.event).cloned() else {
                continue;
            };
            let (webhook, secret) = (webhook.clone(), secret.clone());
            let d = events.deliveries.get_mut(&id).expect("listed above");
            d.attempts += 1;
            d.lease_until = Some(now + lease);
            claimed.push(ClaimedDelivery {
                id,
                attempt: d.attempts,
                first_at: d.created_at,
                webhook,
                secret,
                event,
            });
        }
        Ok(claimed)
    }

    async fn record_deliveries(&self, results: Vec<DeliveryResult>) -> Result<u64, StorageError> {
        let mut state = self.lock();
        let events = &mut state.events;
        let mut held = 0;
        for result in results {
            let (id, attempt) = result.delivery;
            let fenced = events
                .deliveries
                .get(&id)
                .is_some_and(|d| !d.done && d.attempts == attempt && d.lease_until.is_some());
            if fenced {
                held += 1;
                let d = events.deliveries.get_mut(&id).expect("fenced above");
                d.lease_until = None;
                match &result.next {
                    DeliveryNext::Done => d.done = true,
                    DeliveryNext::RetryAt(at) => d.due_at = *at,
                    DeliveryNext::Disable(reason) => {
                        d.due_at = result.attempt.at;
                        let webhook = d.webhook;
                        if let Some((w, _)) = events.webhooks.get_mut(&webhook) {
                            w.enabled = false;
                            w.disabled_reason = Some(reason.clone());
                        }
                    }
                }
            }
            events.attempts.push(result.attempt);
        }
        Ok(held)
    }

    async fn release_deliveries(&self, deliveries: &[(i64, u32)]) -> Result<u64, StorageError> {
        let mut state = self.lock();
        let mut released = 0;
        for (id, attempt) in deliveries {
            if let Some(d) = state.events.deliveries.get_mut(id) {
                if !d.done && d.attempts == *attempt && d.lease_until.is_some() {
                    d.lease_until = None;
                    d.attempts -= 1;
                    released += 1;
                }
            }
        }
        Ok(released)
    }

    async fn log_attempt(&self, attempt: DeliveryAttempt) -> Result<(), StorageError> {
        self.lock().events.attempts.push(attempt);
        Ok(())
    }

    async fn delivery_log(
        &self,
        id: WebhookId,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, StorageError> {
        Ok(self
            .lock()
            .events
            .attempts
            .iter()
            .rev()
            .filter(|a| a.webhook_id == id)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn oldest_undelivered(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        let state = self.lock();
        let events = &state.events;
        Ok(events
            .deliveries
            .values()
            .filter(|d| !d.done)
            .filter(|d| {
                events
                    .webhooks
                    .get(&d.webhook)
                    .is_some_and(|(w, _)| w.enabled)
            })
            .map(|d| d.created_at)
            .min())
    }
}
