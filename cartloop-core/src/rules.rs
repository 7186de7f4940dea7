//! The rules a deployment sets once and every part keeps to: how a payload is validated and
//! the default delivery window. Writing a message ([`crate::chat`]) and sending it
//! ([`crate::dispatch`]) read the same [`Rules`], so the window is configured in one place.

use crate::active_hours::ActiveHours;
use crate::validate::ValidationPolicy;

/// The deployment's rules. The defaults: the original API's payload rules and a 09:00-20:00 window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Length and characters of payloads.
    pub validation: ValidationPolicy,
    /// When emails may go out, in the client's local time, for stores without their own
    /// window.
    pub active_hours: ActiveHours,
}
