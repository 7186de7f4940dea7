//! [`OutboxMailer`]: "sends" each email by writing it to a directory as an `.eml` file.

use async_trait::async_trait;
use cartloop_core::ids::MessageId;
use cartloop_core::ports::{Email, MailError, Mailer};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes one RFC 5322 `.eml` file per email into a directory: the embedded default, for
/// development and demos, where no SMTP server is needed.
///
/// The file for message 7 is `message-7.eml`. It is written atomically — to a hidden
/// temporary file in the same directory, flushed to disk, then renamed — so a reader never
/// sees half a file, and sending the same message again replaces its file instead of adding
/// a second one. The content is the message of [`build_message`](crate::build_message):
/// exactly the bytes the SMTP mailer sends after `DATA` (before dot-stuffing).
///
/// Errors: an email [`build_message`](crate::build_message) refuses (an invalid address or
/// `Message-ID`) is [`MailErrorKind::Permanent`]; any I/O error (disk full, permissions)
/// is [`MailErrorKind::Transient`].
///
/// [`MailErrorKind::Permanent`]: cartloop_core::ports::MailErrorKind::Permanent
/// [`MailErrorKind::Transient`]: cartloop_core::ports::MailErrorKind::Transient
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cartloop_core::email_address::EmailAddress;
/// use cartloop_core::ids::MessageId;
/// use cartloop_core::ports::{Email, Mailer};
/// use cartloop_mail::OutboxMailer;
///
/// let dir = std::env::temp_dir().join(format!("outbox-doc-{}", std::process::id()));
/// let outbox = OutboxMailer::new(&dir)?;
/// let email = Email {
///     message_id: MessageId(7),
///     message_id_header: "cartloop.message.7@shop.example".into(),
///     from_name: "Sneaker Hub".into(),
///     from_address: EmailAddress::parse("hello@shop.example")?,
///     to_name: "Mia Müller".into(),
///     to_address: EmailAddress::parse("mia@example.com")?,
///     reply_to: None,
///     unsubscribe_url: None,
///     subject: "A message from Sneaker Hub".into(),
///     body: "Your code is PROMO50".into(),
///     date: chrono::Utc::now(),
/// };
/// outbox.send(&email).await?;
/// let eml = std::fs::read_to_string(outbox.path_for(MessageId(7)))?;
/// assert!(eml.contains("Message-ID: <cartloop.message.7@shop.example>\r\n"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// An outbox writing into `dir`, which is created (with its parents) if missing.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The directory the files are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file the email for message `id` is written to: `<dir>/message-<id>.eml`.
    pub fn path_for(&self, id: MessageId) -> PathBuf {
        self.dir.join(format!("message-{id}.eml"))
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let content = crate::message::wire_bytes(&crate::build_message(email)?);
        let path = self.path_for(email.message_id);
        let dir = self.dir.clone();
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&dir, &target, &content))
            .await
            .map_err(|e| MailError::transient(format!("outbox writer task failed: {e}")))?
            .map_err(|e| MailError::transient(format!("cannot write {}: {e}", path.display())))?;
        tracing::debug!(path = %path.display(), "email written to the outbox");
        Ok(())
    }
}

/// Writes `content` to a unique temporary file in `dir`, syncs it, and renames it to
/// `target`; the temporary file is removed if anything fails.
fn write_atomically(dir: &Path, target: &Path, content: &[u8]) -> io::Result<()> {
    // Unique per write, so that two concurrent sends of one message never share a file.
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map_or_else(|| "message".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&temp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result?;
    sync_dir(dir);
    Ok(())
}

/// Makes the rename durable where the platform allows it; best effort, since the file's
/// content is already on disk.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
