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
/// temporary file in the same directory, flushed to disk, renamed, and the directory
/// flushed too — so a reader never sees half a file, a send reported done survives a power
/// loss, and sending the same message again replaces its file instead of adding a second
/// one. The content is the message of [`build_message`](crate::build_message): exactly the
/// bytes the SMTP mailer sends after `DATA` (before dot-stuffing).
///
/// Errors: an email [`build_message`](crate::build_message) refuses (an invalid address or
/// `Message-ID`) is [`MailErrorKind::Permanent`]; any I/O error (a full disk, a read-only
/// or missing directory, permissions) is [`MailErrorKind::Transient`]: the dispatcher
/// retries it with backoff, by age, and a failed write leaves no file behind.
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
    /// Temporary files a killed process left there (older than a minute) are removed.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        remove_stale_temporaries(&dir);
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
            .map_err(|e| {
                let why = if e.kind() == io::ErrorKind::StorageFull {
                    "the outbox's disk is full: "
                } else {
                    ""
                };
                MailError::transient(format!("{why}cannot write {}: {e}", path.display()))
            })?;
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
    // Until the directory is on disk, a power loss may undo the rename: the send is not
    // done (it is retried, and the retry replaces the file).
    sync_dir(dir)
}

/// Makes the rename durable where the platform allows it (some filesystems cannot sync a
/// directory and say so: there is nothing more to do on those).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    match std::fs::File::open(dir)?.sync_all() {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
            ) => {}
        other => other?,
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Removes the temporary files of writes that never finished (a process killed mid-write),
/// once they are old enough that no live write can still own them.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(60));
        if name.starts_with(".message-") && name.ends_with(".tmp") && stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
