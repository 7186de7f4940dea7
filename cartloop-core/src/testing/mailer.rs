use crate::ports::{Email, MailError, Mailer};
use async_trait::async_trait;
use std::sync::Mutex;

/// A mailer that records every email it accepts, or fails as told.
#[derive(Debug, Default)]
pub struct RecordingMailer {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sent: Vec<Email>,
    error: Option<MailError>,
    fail_next: u32,
    attempts: u32,
}

impl RecordingMailer {
    /// Accepts every email.
    pub fn new_ok() -> Self {
        Self::default()
    }

    /// Fails every email with `error`.
    pub fn new_error(error: MailError) -> Self {
        let mailer = Self::default();
        mailer.set_error(Some(error));
        mailer
    }

    /// From now on fail with `error` (or succeed, with `None`).
    pub fn set_error(&self, error: Option<MailError>) {
        let mut state = self.state.lock().expect("mailer lock");
        state.error = error;
        state.fail_next = u32::MAX;
    }

    /// Fails the next `n` emails with `error`, then accepts again.
    pub fn fail_next(&self, n: u32, error: MailError) {
        let mut state = self.state.lock().expect("mailer lock");
        state.error = Some(error);
        state.fail_next = n;
    }

    /// The emails accepted so far, in order.
    pub fn messages(&self) -> Vec<Email> {
        self.state.lock().expect("mailer lock").sent.clone()
    }

    /// How many sends were attempted, failed ones included.
    pub fn attempts(&self) -> u32 {
        self.state.lock().expect("mailer lock").attempts
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let mut state = self.state.lock().expect("mailer lock");
        state.attempts += 1;
        if state.fail_next > 0 {
            if let Some(error) = state.error.clone() {
                state.fail_next -= 1;
                return Err(error);
            }
        }
        state.sent.push(email.clone());
        Ok(())
    }
}
