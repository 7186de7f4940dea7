//! Identifiers of the domain's entities.
//!
//! Ids are plain integers, as in the original API (`"conversationId": 1`), wrapped so that a
//! conversation id can never be passed where a message id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw integer value.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<i64> for $name {
            fn from(value: i64) -> Self {
                Self(value)
            }
        }
    };
}

id_type!(
    /// Identifies a store.
    StoreId
);
id_type!(
    /// Identifies a user: operators and clients share one id space (`userId` in the API).
    UserId
);
id_type!(
    /// Identifies a conversation between one operator and one client.
    ConversationId
);
id_type!(
    /// Identifies a message ("chat" in the API).
    MessageId
);
