//! The demo data set, as data, so every storage imports exactly the same rows.
//!
//! Ids start at 1. Operators and clients share one id space: 21–25 are operators, 1–20 and
//! 26–29 clients. Conversation 1 is the original task's sample conversation (operator 24,
//! client 27, discount code `PROMO50`, three messages). The clients' zones span the day, so
//! at any hour some are inside their active hours and some outside; client 13 has no zone
//! and falls back to the store's. Every client has an open conversation; conversations 24
//! and 25 are resolved.
//!
//! Clients belong to a store (SPEC §9), by the rule an upgraded database follows: each
//! client is of the store of its lowest-numbered conversation. Olivia Smith shops at two
//! stores, so she is two clients: 1 at Sneaker Hub (conversation 2) and 29 at Berlin Books
//! (the resolved conversation 24, and her open one there, 26). Conversations 1–25 keep the
//! numbers, statuses and operators they had when clients were shared by all stores.

use crate::discount_code::DiscountCode;
use crate::domain::{
    Client, Conversation, ConversationStatus, Dataset, Message, MessageStatus, Operator, Store,
};
use crate::email_address::EmailAddress;
use crate::ids::{ConversationId, MessageId, StoreId, UserId};
use crate::name::Name;
use crate::validate::Payload;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

const STORES: &[(i64, &str, Tz, &str)] = &[
    (
        1,
        "Sneaker Hub",
        chrono_tz::America::New_York,
        "hello@sneakerhub.example.com",
    ),
    (
        2,
        "Berlin Books",
        chrono_tz::Europe::Berlin,
        "team@berlinbooks.example.com",
    ),
    (
        3,
        "Tokyo Tea House",
        chrono_tz::Asia::Tokyo,
        "shop@tokyotea.example.com",
    ),
];

const OPERATORS: &[(i64, &str, i64, &str)] = &[
    (21, "Alice Martin", 1, "support"),
    (22, "Bruno Keller", 2, "sales"),
    (23, "Chiara Rossi", 3, "sales"),
    (24, "Dan Brooks", 1, "sales"),
    (25, "Emi Sato", 3, "support"),
];

/// (id, name, email local part, zone)
const CLIENTS: &[(i64, &str, &str, Option<Tz>)] = &[
    (
        1,
        "Olivia Smith",
        "olivia.smith",
        Some(chrono_tz::America::New_York),
    ),
    (
        2,
        "Liam Johnson",
        "liam.johnson",
        Some(chrono_tz::America::Los_Angeles),
    ),
    (
        3,
        "Emma Walsh",
        "emma.walsh",
        Some(chrono_tz::America::St_Johns),
    ),
    (
        4,
        "Noah Taylor",
        "noah.taylor",
        Some(chrono_tz::Europe::London),
    ),
    (
        5,
        "Mia M\u{fc}ller",
        "mia.mueller",
        Some(chrono_tz::Europe::Berlin),
    ),
    (
        6,
        "Arjun Patel",
        "arjun.patel",
        Some(chrono_tz::Asia::Kolkata),
    ),
    (
        7,
        "Sita Sharma",
        "sita.sharma",
        Some(chrono_tz::Asia::Kathmandu),
    ),
    (
        8,
        "Yuki Tanaka",
        "yuki.tanaka",
        Some(chrono_tz::Asia::Tokyo),
    ),
    (
        9,
        "Jack Wilson",
        "jack.wilson",
        Some(chrono_tz::Australia::Adelaide),
    ),
    (
        10,
        "Chloe Brown",
        "chloe.brown",
        Some(chrono_tz::Australia::Lord_Howe),
    ),
    (
        11,
        "Aroha Ngata",
        "aroha.ngata",
        Some(chrono_tz::Pacific::Auckland),
    ),
    (
        12,
        "Kai Kahale",
        "kai.kahale",
        Some(chrono_tz::Pacific::Honolulu),
    ),
    (13, "Sam Doe", "sam.doe", None),
    (
        14,
        "Lucas Silva",
        "lucas.silva",
        Some(chrono_tz::America::Sao_Paulo),
    ),
    (
        15,
        "Omar Haddad",
        "omar.haddad",
        Some(chrono_tz::Asia::Dubai),
    ),
    (16, "Wei Chen", "wei.chen", Some(chrono_tz::Asia::Singapore)),
    (
        17,
        "Ana L\u{f3}pez",
        "ana.lopez",
        Some(chrono_tz::America::Mexico_City),
    ),
    (
        18,
        "Teiki Tane",
        "teiki.tane",
        Some(chrono_tz::Pacific::Kiritimati),
    ),
    (
        19,
        "Tala Faleolo",
        "tala.faleolo",
        Some(chrono_tz::Pacific::Pago_Pago),
    ),
    (
        20,
        "Sara Ahmed",
        "sara.ahmed",
        Some(chrono_tz::Africa::Cairo),
    ),
    (
        26,
        "Ivan Petrov",
        "ivan.petrov",
        Some(chrono_tz::Europe::Moscow),
    ),
    (
        27,
        "John Carter",
        "john.carter",
        Some(chrono_tz::America::Chicago),
    ),
    (
        28,
        "Leila Karimi",
        "leila.karimi",
        Some(chrono_tz::Asia::Tehran),
    ),
    // Client 1's person at store 2, as the upgrade to clients per store made her.
    (
        29,
        "Olivia Smith",
        "olivia.smith",
        Some(chrono_tz::America::New_York),
    ),
];

/// Open conversations 2–23, one per client other than 27: (client, store, operator, code).
const OPEN: &[(i64, i64, i64, Option<&str>)] = &[
    (1, 1, 21, Some("WELCOME10")),
    (2, 1, 24, Some("SUMMER15")),
    (3, 1, 21, None),
    (4, 2, 22, Some("BOOKS20")),
    (5, 2, 22, Some("LESEN5")),
    (6, 3, 23, Some("CHAI25")),
    (7, 3, 25, None),
    (8, 3, 23, Some("MATCHA30")),
    (9, 1, 24, Some("AUSSIE10")),
    (10, 1, 21, Some("ISLAND12")),
    (11, 3, 25, Some("KIWI15")),
    (12, 1, 24, None),
    (13, 2, 22, Some("NOZONE5")),
    (14, 1, 21, Some("BRASIL10")),
    (15, 2, 22, Some("DESERT20")),
    (16, 3, 23, Some("LION8")),
    (17, 1, 24, Some("HOLA15")),
    (18, 3, 25, Some("FIRST14")),
    (19, 1, 21, Some("SAMOA11")),
    (20, 2, 22, Some("NILE9")),
    (26, 2, 22, None),
    (28, 3, 23, Some("PERSIA7")),
];

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 12, day, hour, minute, 0)
        .single()
        .expect("fixed demo instants are valid")
}

/// The demo data set.
///
/// ```
/// let data = cartloop_core::demo::demo_data();
/// let first = &data.conversations[0];
/// assert_eq!((first.id.0, first.operator_id.0, first.client_id.0), (1, 24, 27));
/// assert_eq!(first.discount_code.as_deref(), Some("PROMO50"));
/// ```
pub fn demo_data() -> Dataset {
    let stores = STORES
        .iter()
        .map(|&(id, name, time_zone, sender)| {
            Store::new(StoreId(id), self::name(name), time_zone, address(sender))
        })
        .collect();
    let operators = OPERATORS
        .iter()
        .map(|&(id, name, store, group)| Operator {
            id: UserId(id),
            name: self::name(name),
            store_id: StoreId(store),
            group: self::name(group),
        })
        .collect();
    let mut conversations = vec![Conversation {
        id: ConversationId(1),
        store_id: StoreId(1),
        operator_id: UserId(24),
        client_id: UserId(27),
        status: ConversationStatus::Open,
        discount_code: Some(code("PROMO50")),
    }];
    for (n, &(client, store, operator, code)) in OPEN.iter().enumerate() {
        conversations.push(Conversation {
            id: ConversationId(n as i64 + 2),
            store_id: StoreId(store),
            operator_id: UserId(operator),
            client_id: UserId(client),
            status: ConversationStatus::Open,
            discount_code: code.map(self::code),
        });
    }
    let resolved = |id, client, store, operator, code: Option<&str>| Conversation {
        id: ConversationId(id),
        store_id: StoreId(store),
        operator_id: UserId(operator),
        client_id: UserId(client),
        status: ConversationStatus::Resolved,
        discount_code: code.map(self::code),
    };
    conversations.push(resolved(24, 29, 2, 22, Some("WINTER10")));
    conversations.push(resolved(25, 8, 3, 25, None));
    conversations.push(Conversation {
        id: ConversationId(26),
        store_id: StoreId(2),
        operator_id: UserId(22),
        client_id: UserId(29),
        status: ConversationStatus::Open,
        discount_code: None,
    });

    // Each client is of the store of its lowest-numbered conversation (the upgrade's rule);
    // the conversations are in id order.
    let store_of = |client: i64| {
        conversations
            .iter()
            .find(|c| c.client_id == UserId(client))
            .map(|c| c.store_id)
            .expect("every demo client has a conversation")
    };
    let clients = CLIENTS
        .iter()
        .map(|&(id, name, local, time_zone)| Client {
            id: UserId(id),
            store_id: store_of(id),
            name: self::name(name),
            email: address(&format!("{local}@example.com")),
            time_zone,
            unsubscribed_at: None,
        })
        .collect();

    let sent = |id, conversation, author, payload: &str, when: DateTime<Utc>| Message {
        id: MessageId(id),
        conversation_id: ConversationId(conversation),
        author_id: UserId(author),
        payload: valid(payload),
        status: MessageStatus::Sent,
        created_at: when,
        send_at: Some(when),
        next_attempt_at: None,
        sent_at: Some(when),
        attempts: 1,
        last_error: None,
        not_before: None,
        last_received: None,
        waiting_for: None,
    };
    let received = |id, conversation, author, payload: &str, when: DateTime<Utc>| Message {
        id: MessageId(id),
        conversation_id: ConversationId(conversation),
        author_id: UserId(author),
        payload: valid(payload),
        status: MessageStatus::Received,
        created_at: when,
        send_at: None,
        next_attempt_at: None,
        sent_at: None,
        attempts: 0,
        last_error: None,
        not_before: None,
        last_received: None,
        waiting_for: None,
    };
    let messages = vec![
        sent(
            1,
            1,
            24,
            "Hi << username >>, this is << operator.Name >> from Sneaker Hub. The sneakers in your cart are still waiting for you!",
            at(3, 15, 0),
        ),
        received(
            2,
            1,
            27,
            "Hi, do you have a discount for the sneakers?",
            at(3, 15, 20),
        ),
        sent(
            3,
            1,
            24,
            "Sure {{ username }}. Here is your code {{ discountCode }}",
            at(3, 15, 25),
        ),
        sent(
            4,
            24,
            22,
            "Hello << username >>, your order is ready. Use << discountCode >> next time!",
            at(4, 9, 0),
        ),
        received(5, 24, 29, "Thank you, all good.", at(4, 9, 30)),
    ];

    Dataset {
        stores,
        operators,
        clients,
        conversations,
        messages,
    }
}

/// Why the demo data was not imported.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// An id the demo data uses holds other data (created through the API before the
    /// import): importing would attach demo rows to it.
    #[error("the demo data cannot be imported: {0} already holds other data (import the demo into an empty database)")]
    Conflict(String),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] crate::ports::StorageError),
}

/// Imports the [`demo_data`] set: into an empty database, or again into one that holds it
/// (then nothing changes). Refused, with nothing stored, when one of the demo's ids already
/// holds other data — a store, user, conversation or chat created through the API — so
/// that demo rows are never attached to a deployment's own.
///
/// A demo row counts as already there when the row with its id is the same kind and has
/// the fields the API cannot change: a store's name, zone and sender; an operator's name,
/// store and group; a client's store and email; a conversation's store, operator and client; a chat's
/// conversation, author and payload.
///
/// # Errors
/// [`DemoError::Conflict`] naming the first clash; storage failures.
pub async fn import_demo(
    storage: &dyn crate::ports::Storage,
) -> Result<crate::ports::ImportSummary, DemoError> {
    let data = demo_data();
    let clash = |what: String| Err(DemoError::Conflict(what));
    for store in &data.stores {
        if let Some(found) = storage.store(store.id).await? {
            let same = found.name == store.name
                && found.time_zone == store.time_zone
                && found.sender_email == store.sender_email;
            if !same {
                return clash(format!("store {}", store.id));
            }
        }
    }
    for operator in &data.operators {
        match storage.operator(operator.id).await? {
            Some(found)
                if found.name != operator.name
                    || found.store_id != operator.store_id
                    || found.group != operator.group =>
            {
                return clash(format!("user {}", operator.id));
            }
            Some(_) => {}
            None if storage.client(operator.id).await?.is_some() => {
                return clash(format!("user {}", operator.id));
            }
            None => {}
        }
    }
    for client in &data.clients {
        match storage.client(client.id).await? {
            Some(found)
                if found.store_id != client.store_id
                    || !found
                        .email
                        .as_str()
                        .eq_ignore_ascii_case(client.email.as_str()) =>
            {
                return clash(format!("user {}", client.id));
            }
            Some(_) => {}
            None if storage.operator(client.id).await?.is_some() => {
                return clash(format!("user {}", client.id));
            }
            None => {
                let other = storage
                    .client_by_email(client.store_id, &client.email)
                    .await?;
                if let Some(other) = other {
                    return clash(format!("the email {} (client {})", client.email, other.id));
                }
            }
        }
    }
    for conversation in &data.conversations {
        if let Some(found) = storage.conversation(conversation.id).await? {
            let found = found.conversation;
            let same = found.store_id == conversation.store_id
                && found.operator_id == conversation.operator_id
                && found.client_id == conversation.client_id;
            if !same {
                return clash(format!("conversation {}", conversation.id));
            }
        }
    }
    for message in &data.messages {
        if let Some(found) = storage.message(message.id).await? {
            let same = found.conversation_id == message.conversation_id
                && found.author_id == message.author_id
                && found.payload.as_str() == message.payload.as_str();
            if !same {
                return clash(format!("chat {}", message.id));
            }
        }
    }
    Ok(storage.import(&data).await?)
}

/// A demo address; the demo's addresses are all valid (a test checks each).
fn address(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).unwrap_or_else(|e| panic!("demo data: {e}"))
}

fn name(raw: &str) -> Name {
    Name::parse(raw).unwrap_or_else(|e| panic!("demo data: name {raw:?}: {e}"))
}

fn code(raw: &str) -> DiscountCode {
    DiscountCode::parse(raw).unwrap_or_else(|e| panic!("demo data: discount code {raw:?}: {e}"))
}

/// A demo payload; the demo's payloads are all valid (a test checks each).
fn valid(raw: &str) -> Payload {
    Payload::parse(raw, &crate::validate::ValidationPolicy::default())
        .unwrap_or_else(|e| panic!("demo data: {raw:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::prelude::*;
    use crate::testing::MemoryStorage;

    #[tokio::test]
    async fn the_demo_imports_once_and_never_into_other_data() {
        let storage = MemoryStorage::new();
        assert!(import_demo(&storage).await.unwrap().inserted > 0);
        assert_eq!(import_demo(&storage).await.unwrap().inserted, 0);

        // A store created first takes id 1: the demo is refused, nothing is stored.
        let taken = MemoryStorage::new();
        taken
            .create_store(crate::domain::NewStore {
                name: name("My Shop"),
                time_zone: chrono_tz::Europe::Paris,
                sender_email: EmailAddress::parse("me@myshop.example.com").unwrap(),
                active_hours: None,
            })
            .await
            .unwrap();
        let err = import_demo(&taken).await.unwrap_err();
        assert!(err.to_string().contains("store 1 already holds"), "{err}");
        assert!(taken.operator(UserId(21)).await.unwrap().is_none());

        // A client created first (of a store the demo does not have) takes user id 1.
        let taken = MemoryStorage::new();
        let own_store = Store::new(
            StoreId(99),
            name("My Shop"),
            chrono_tz::Europe::Paris,
            EmailAddress::parse("me@myshop.example.com").unwrap(),
        );
        taken
            .import(&Dataset {
                stores: vec![own_store],
                ..Dataset::default()
            })
            .await
            .unwrap();
        taken
            .create_client(crate::domain::NewClient {
                store_id: StoreId(99),
                name: name("Zed"),
                email: EmailAddress::parse("zed@example.org").unwrap(),
                time_zone: None,
            })
            .await
            .unwrap();
        let err = import_demo(&taken).await.unwrap_err();
        assert!(err.to_string().contains("user 1"), "{err}");
        assert!(taken.store(StoreId(1)).await.unwrap().is_none());

        // A client of demo store 2 (id 99) has the email of demo client 29: the demo
        // would make her twice in one store.
        let taken = MemoryStorage::new();
        let mut data = demo_data();
        data.stores.retain(|s| s.id == StoreId(2));
        data.clients = vec![Client {
            id: UserId(99),
            store_id: StoreId(2),
            name: name("Liv"),
            email: EmailAddress::parse("Olivia.Smith@example.com").unwrap(),
            time_zone: None,
            unsubscribed_at: None,
        }];
        data.operators.clear();
        data.conversations.clear();
        data.messages.clear();
        taken.import(&data).await.unwrap();
        let err = import_demo(&taken).await.unwrap_err();
        assert!(
            err.to_string().contains("olivia.smith@example.com"),
            "{err}"
        );
    }

    #[test]
    fn clients_belong_to_the_store_of_their_conversations() {
        let data = demo_data();
        let client = |id: UserId| data.clients.iter().find(|c| c.id == id).unwrap();
        for c in &data.conversations {
            assert_eq!(client(c.client_id).store_id, c.store_id, "{}", c.id);
        }
        // An email is unique within its store, not across stores: Olivia Smith is client 1
        // at store 1 and client 29 at store 2.
        let mut seen = HashSet::new();
        for c in &data.clients {
            let key = (c.store_id, c.email.as_str().to_lowercase());
            assert!(seen.insert(key), "client {}", c.id);
        }
        let (one, other) = (client(UserId(1)), client(UserId(29)));
        assert_eq!((one.store_id, other.store_id), (StoreId(1), StoreId(2)));
        assert_eq!(
            (&one.name, &one.email, one.time_zone),
            (&other.name, &other.email, other.time_zone)
        );
        // Her reply in the resolved conversation 24 is by her store-2 self.
        let reply = data.messages.iter().find(|m| m.id == MessageId(5)).unwrap();
        assert_eq!(
            (reply.conversation_id, reply.author_id),
            (ConversationId(24), UserId(29))
        );
    }

    #[test]
    fn conversations_1_to_25_keep_numbers_statuses_and_operators() {
        // As they were when clients were shared by every store.
        const OPERATORS: [i64; 25] = [
            24, 21, 24, 21, 22, 22, 23, 25, 23, 24, 21, 25, 24, 22, 21, 22, 23, 24, 25, 21, 22, 22,
            23, 22, 25,
        ];
        let data = demo_data();
        for (n, &operator) in OPERATORS.iter().enumerate() {
            let id = ConversationId(n as i64 + 1);
            let c = data.conversations.iter().find(|c| c.id == id).unwrap();
            let status = if id.0 >= 24 {
                ConversationStatus::Resolved
            } else {
                ConversationStatus::Open
            };
            assert_eq!(
                (c.operator_id, c.status),
                (UserId(operator), status),
                "{id}"
            );
        }
    }
    use crate::validate::{Payload, ValidationPolicy};
    use std::collections::{BTreeSet, HashSet};

    #[test]
    fn demo_set_has_the_promised_shape() {
        let data = demo_data();
        assert!(data.stores.len() >= 3);
        assert!(data.operators.len() >= 5);
        assert!(data.clients.len() >= 15);
        let zones: BTreeSet<&str> = data
            .clients
            .iter()
            .filter_map(|c| c.time_zone)
            .map(|z| z.name())
            .collect();
        assert!(zones.len() >= 10);
        for name in [
            "America/New_York",
            "America/Los_Angeles",
            "America/St_Johns",
            "Europe/London",
            "Europe/Berlin",
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "Asia/Tokyo",
            "Australia/Adelaide",
            "Australia/Lord_Howe",
            "Pacific/Auckland",
            "Pacific/Honolulu",
        ] {
            assert!(zones.contains(name), "{name}");
        }
        assert!(data.clients.iter().any(|c| c.time_zone.is_none()));
        // Every client has an open conversation; some conversation is resolved.
        for client in &data.clients {
            assert!(data
                .conversations
                .iter()
                .any(|c| c.client_id == client.id && c.status == ConversationStatus::Open));
        }
        assert!(data
            .conversations
            .iter()
            .any(|c| c.status == ConversationStatus::Resolved));
        // One id space for users.
        let mut ids = HashSet::new();
        for id in data
            .operators
            .iter()
            .map(|o| o.id)
            .chain(data.clients.iter().map(|c| c.id))
        {
            assert!(ids.insert(id), "duplicate user id {id}");
        }
        // Conversations reference real rows, and operators work for the conversation's store.
        for c in &data.conversations {
            let op = data
                .operators
                .iter()
                .find(|o| o.id == c.operator_id)
                .unwrap();
            assert_eq!(op.store_id, c.store_id);
            assert!(data.clients.iter().any(|cl| cl.id == c.client_id));
        }
    }

    #[test]
    fn demo_messages_are_valid_payloads() {
        let data = demo_data();
        for m in &data.messages {
            Payload::parse(m.payload.as_str(), &ValidationPolicy::default()).unwrap();
        }
        let first: Vec<_> = data
            .messages
            .iter()
            .filter(|m| m.conversation_id == ConversationId(1))
            .collect();
        assert_eq!(first.len(), 3);
    }

    #[test]
    fn clients_span_the_day() {
        // At every hour of a day, someone is inside 09:00-20:00 and someone outside.
        let data = demo_data();
        let hours = crate::active_hours::ActiveHours::default();
        for hour in 0..24 {
            let now = Utc.with_ymd_and_hms(2026, 11, 25, hour, 0, 0).unwrap();
            let inside = data
                .clients
                .iter()
                .filter_map(|c| c.time_zone)
                .filter(|tz| hours.contains(now, *tz))
                .count();
            assert!(
                inside > 0 && inside < data.clients.len() - 1,
                "hour {hour}: {inside}"
            );
        }
    }
}
