//! A SQLite database whose disk fills up and then gets space back, in the same process:
//! writes are refused as a passing fault while it is full, reads go on, and everything
//! works again as soon as there is room, on every pooled connection.
//!
//! `PRAGMA max_page_count` makes the database full on demand without root: every
//! connection of the storage is opened with a page limit a little above the data, a filler
//! table takes the rest, and deleting the filler gives the space back (its pages go to the
//! free list, which later writes reuse).

mod common;

use cartloop_core::disk_fault::{DiskFault, DiskFaultKind};
use cartloop_core::ids::{ConversationId, MessageId};
use cartloop_core::ports::prelude::*;
use cartloop_core::ports::{ClaimLimit, Page, StorageError};
use cartloop_sqlx::SqliteStorage;
use common::scenarios::operator_message;
use sqlx::sqlite::SqliteConnectOptions;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Messages due before the disk fills.
const DUE: usize = 300;
const LEASE: Duration = Duration::from_secs(60);

/// A storage on a database holding the demo data and [`DUE`] due messages, whose
/// connections may not grow the file more than `headroom` pages beyond it.
async fn limited(headroom: u32) -> (Arc<SqliteStorage>, tempfile::TempDir) {
    let (url, dir) = common::sqlite::fresh_url();
    let unlimited = SqliteStorage::connect(&url).await.unwrap();
    unlimited
        .import(&cartloop_core::demo::demo_data())
        .await
        .unwrap();
    let now = chrono::Utc::now();
    for n in 0..DUE {
        unlimited
            .insert_message(operator_message(&format!("due {n}"), now))
            .await
            .unwrap();
    }
    sqlx::query("CREATE TABLE filler (b BLOB)")
        .execute(unlimited.pool())
        .await
        .unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(unlimited.pool())
        .await
        .unwrap();
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(unlimited.pool())
        .await
        .unwrap();
    unlimited.pool().close().await;
    let options = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .pragma("max_page_count", (pages + i64::from(headroom)).to_string());
    let storage = SqliteStorage::connect_with(options).await.unwrap();
    (Arc::new(storage), dir)
}

/// Fills the database up to its page limit, and then the room left in the messages'
/// pages, so that the next message needs a page there is no room for.
async fn fill(storage: &SqliteStorage) {
    for size in [1000, 100, 10] {
        let sql = format!("INSERT INTO filler VALUES (randomblob({size}))");
        let mut inserted = 0;
        while sqlx::query(&sql).execute(storage.pool()).await.is_ok() {
            inserted += 1;
            assert!(
                inserted < 100_000,
                "the page limit never stopped the filler"
            );
        }
    }
    let now = chrono::Utc::now();
    for n in 0..1_000 {
        let message = operator_message(&format!("last {n}"), now);
        if storage.insert_message(message).await.is_err() {
            return;
        }
    }
    panic!("the page limit never stopped the messages");
}

/// Gives the filler's pages back.
async fn free(storage: &SqliteStorage) {
    sqlx::query("DELETE FROM filler")
        .execute(storage.pool())
        .await
        .unwrap();
}

/// Claims from `tasks` dispatchers at once, `rounds` times; the messages claimed and the
/// errors met.
async fn claim_rounds(
    storage: &Arc<SqliteStorage>,
    tasks: usize,
    rounds: usize,
) -> (Vec<MessageId>, Vec<StorageError>) {
    let (mut claimed, mut errors) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let claims: Vec<_> = (0..tasks)
            .map(|_| {
                let storage = storage.clone();
                tokio::spawn(async move {
                    let now = chrono::Utc::now() + chrono::Duration::seconds(1);
                    storage.claim_due(now, LEASE, ClaimLimit::batch(7)).await
                })
            })
            .collect();
        for claim in claims {
            match claim.await.unwrap() {
                Ok(batch) => claimed.extend(batch.into_iter().map(|c| c.message.id)),
                Err(e) => errors.push(e),
            }
        }
    }
    (claimed, errors)
}

/// The dispatcher's claims fail while the disk is full, and every pooled connection claims
/// again once there is room: none is left inside the transaction that failed. Each due
/// message is claimed once, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_work_again_on_every_connection_after_the_disk_had_filled() {
    let (storage, _dir) = limited(8).await;
    fill(&storage).await;
    // A statement without RETURNING that meets the full disk makes SQLite roll the whole
    // transaction back itself: sqlx's own ROLLBACK then fails, and sqlx believes the
    // connection still inside it.
    for _ in 0..10 {
        let mut tx = storage.pool().begin().await.unwrap();
        let insert = sqlx::query("INSERT INTO filler VALUES (randomblob(5000))");
        assert!(insert.execute(&mut *tx).await.is_err());
    }
    let (during, errors) = claim_rounds(&storage, 10, 5).await;
    assert!(
        !errors.is_empty(),
        "no claim met the full disk: the test did not test anything"
    );
    for e in &errors {
        assert!(e.is_transient(), "{}", e.detail());
    }
    free(&storage).await;
    let (after, errors) = claim_rounds(&storage, 10, 10).await;
    let errors: Vec<String> = errors.iter().map(StorageError::detail).collect();
    assert!(
        errors.is_empty(),
        "claims failed after space came back: {errors:?}"
    );
    // And so do the embedder's transactions, on every connection of the pool.
    for _ in 0..20 {
        let mut tx = storage.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO filler VALUES (x'00')")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let all: Vec<MessageId> = during.iter().chain(&after).copied().collect();
    let distinct: HashSet<MessageId> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a message was claimed twice");
    let (_, left) = claim_rounds(&storage, 1, 1).await;
    assert!(left.is_empty());
    let filled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE payload LIKE 'last %'")
            .fetch_one(storage.pool())
            .await
            .unwrap();
    assert_eq!(
        distinct.len(),
        DUE + usize::try_from(filled).unwrap(),
        "every due message is claimed once"
    );
}

/// Writes while the disk is full fail as unavailable (a passing fault, 503), never as
/// another error; reads go on; writes succeed again once there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_as_unavailable_and_reads_go_on() {
    let (storage, _dir) = limited(8).await;
    fill(&storage).await;
    let now = chrono::Utc::now();
    let writes: Vec<_> = (0..60)
        .map(|n| {
            let storage = storage.clone();
            tokio::spawn(async move {
                storage
                    .insert_message(operator_message(&format!("full more {n}"), now))
                    .await
            })
        })
        .collect();
    for write in writes {
        match write.await.unwrap() {
            Err(e) => assert_eq!(
                DiskFault::of(&e).map(DiskFault::kind),
                Some(DiskFaultKind::Full),
                "{}",
                e.detail()
            ),
            Ok(inserted) => panic!("stored on a full disk: {:?}", inserted.message.id),
        }
    }
    let page = Page {
        limit: 1000,
        before: None,
    };
    let (_, messages) = storage
        .conversation_page(ConversationId(1), page)
        .await
        .unwrap()
        .unwrap();
    assert!(messages.len() > 3 + DUE);
    // The storage answers, and says it cannot write.
    let e = storage.ping().await.unwrap_err();
    assert!(DiskFault::of(&e).is_some(), "{}", e.detail());

    free(&storage).await;
    for n in 0..20 {
        storage
            .insert_message(operator_message(&format!("after {n}"), now))
            .await
            .unwrap();
    }
    storage.ping().await.unwrap();
}

/// `count` client messages of conversation 1 that are not stored yet.
fn replies(count: i64) -> cartloop_core::domain::Dataset {
    let template = cartloop_core::demo::demo_data()
        .messages
        .into_iter()
        .find(|m| m.status == cartloop_core::domain::MessageStatus::Received)
        .unwrap();
    cartloop_core::domain::Dataset {
        stores: Vec::new(),
        operators: Vec::new(),
        clients: Vec::new(),
        conversations: Vec::new(),
        messages: (0..count)
            .map(|n| cartloop_core::domain::Message {
                id: MessageId(100_000 + n),
                ..template.clone()
            })
            .collect(),
    }
}

/// A transaction whose statement meets the full disk is rolled back by SQLite itself; the
/// connection must still go back to the pool able to open the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_that_meet_a_full_disk_leave_no_connection_in_a_transaction() {
    let (storage, _dir) = limited(8).await;
    fill(&storage).await;
    for _ in 0..10 {
        let e = storage.import(&replies(500)).await.unwrap_err();
        assert!(e.is_transient(), "{}", e.detail());
    }
    free(&storage).await;
    let (claimed, errors) = claim_rounds(&storage, 10, 10).await;
    let errors: Vec<String> = errors.iter().map(StorageError::detail).collect();
    assert!(
        errors.is_empty(),
        "claims failed after space came back: {errors:?}"
    );
    assert!(claimed.len() >= DUE);
    assert_eq!(storage.import(&replies(5)).await.unwrap().inserted, 5);
}

/// A tmpfs of `size` mounted on a new temporary directory, unmounted when dropped; `None`
/// (the reason printed) where this process may not mount. Under `CI=true` as root it must
/// work.
struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Self { dir }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                let root = std::fs::read_to_string("/proc/self/status")
                    .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")));
                assert!(
                    !(root && std::env::var("CI").as_deref() == Ok("true")),
                    "CI as root must be able to mount a tmpfs: {why}"
                );
                eprintln!("skipped: cannot mount a small tmpfs here ({why})");
                None
            }
        }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path().join("filler")).unwrap();
        for chunk in [65_536, 4_096, 512] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
        let _ = file.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// On a real filesystem that fills up, SQLite fails at commit, when it appends to the
/// write-ahead log, and rolls the transaction back itself. Writes and claims are refused
/// as a passing fault meanwhile; once the space is back every connection works, and each
/// due message is claimed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_real_small_filesystem_that_fills_up_everything_works_again() {
    let Some(fs) = SmallFilesystem::mount("16m") else {
        return;
    };
    let url = format!("sqlite://{}", fs.path().join("cartloop.db").display());
    let storage = Arc::new(SqliteStorage::connect(&url).await.unwrap());
    storage
        .import(&cartloop_core::demo::demo_data())
        .await
        .unwrap();
    let now = chrono::Utc::now();
    for n in 0..DUE {
        storage
            .insert_message(operator_message(&format!("due {n}"), now))
            .await
            .unwrap();
    }
    fs.fill();
    // The write-ahead log reuses the room it already has before it needs more.
    let mut n = 0;
    while storage
        .insert_message(operator_message(&format!("full {n}"), now))
        .await
        .is_ok()
    {
        n += 1;
        assert!(n < 100_000, "the full filesystem never refused a write");
    }
    let writes: Vec<_> = (0..40)
        .map(|n| {
            let storage = storage.clone();
            tokio::spawn(async move {
                storage
                    .insert_message(operator_message(&format!("full more {n}"), now))
                    .await
            })
        })
        .collect();
    let mut refused = 0;
    for write in writes {
        if let Err(e) = write.await.unwrap() {
            assert!(e.is_transient(), "{}", e.detail());
            refused += 1;
        }
    }
    let (during, errors) = claim_rounds(&storage, 10, 5).await;
    for e in &errors {
        assert!(e.is_transient(), "{}", e.detail());
    }
    assert!(
        refused > 0 && !errors.is_empty(),
        "the full filesystem refused nothing: the test did not test anything"
    );
    let page = Page {
        limit: 10,
        before: None,
    };
    assert!(storage
        .conversation_page(ConversationId(1), page)
        .await
        .unwrap()
        .is_some());

    let e = storage.ping().await.unwrap_err();
    assert!(DiskFault::of(&e).is_some(), "{}", e.detail());

    fs.free();
    let (after, errors) = claim_rounds(&storage, 10, 10).await;
    let errors: Vec<String> = errors.iter().map(StorageError::detail).collect();
    assert!(
        errors.is_empty(),
        "claims failed after space came back: {errors:?}"
    );
    for n in 0..20 {
        storage
            .insert_message(operator_message(&format!("after {n}"), now))
            .await
            .unwrap();
    }
    storage.ping().await.unwrap();
    let all: Vec<MessageId> = during.iter().chain(&after).copied().collect();
    let distinct: HashSet<MessageId> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a message was claimed twice");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE payload LIKE 'due %' OR payload LIKE 'full %'",
    )
    .fetch_one(storage.pool())
    .await
    .unwrap();
    assert_eq!(
        distinct.len() as i64,
        stored,
        "every due message is claimed once"
    );
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(storage.pool())
        .await
        .unwrap();
    assert_eq!(check, "ok");
}
