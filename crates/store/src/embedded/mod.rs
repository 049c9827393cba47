//! The embedded store: durable, single-node, on [redb](https://docs.rs/redb).
//!
//! - Writes go through one writer thread with group commit ([`writer`]):
//!   every acknowledged write has been fsynced (`Durability::Immediate`) and
//!   survives `kill -9` or power loss.
//! - Reads use an MVCC snapshot and never wait for the writer. The writer
//!   publishes a snapshot of each commit ([`Latest`]) before it answers, so
//!   readers share it instead of opening a transaction per request. A point
//!   read is a B-tree lookup in redb's page cache, microseconds long, so `get`
//!   runs inline on the async task like a short mutex section would; the scans
//!   (`list_profile`, `expire`) run on the blocking pool.
//! - Layout: see [`codec`].

mod codec;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use playmark_core::{Entry, ProfileKey, Progress, ProgressKey, StaleGuard, Timestamp, VideoId};
use redb::{Database, ReadOnlyTable, ReadableDatabase, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::{ProgressStore, StoreError, Written};
use codec::{decode_key, decode_value, encode_key, prefix_end, profile_prefix, video_of};
use writer::{Command, Op};

const BACKEND: &str = "embedded";
type ProgressTable = ReadOnlyTable<&'static [u8], &'static [u8]>;
const PROGRESS: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("progress_v1");
/// The database file inside the data directory.
pub const FILE_NAME: &str = "playmark.redb";
/// Rows examined per step of an expiry scan, and so the most a single expiry
/// transaction can touch: small enough that the writer is never held up long.
const EXPIRE_SCAN_STEP: usize = 2_000;

/// Tuning for the embedded store. The defaults suit a laptop-class machine.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// redb's page cache, in bytes.
    pub cache_size_bytes: usize,
    /// Writes that may wait for the writer before callers are held back.
    pub queue_capacity: usize,
    /// The most writes committed in one transaction.
    pub max_batch: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self { cache_size_bytes: 1024 * 1024 * 1024, queue_capacity: 8_192, max_batch: 1_024 }
    }
}

/// The redb-backed [`ProgressStore`].
pub struct EmbeddedStore {
    db: Arc<Database>,
    latest: Arc<Latest>,
    path: PathBuf,
    writes: mpsc::Sender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Where the last expiry batch stopped scanning, so a sweep's calls walk
    /// the table once between them.
    expiry_cursor: Mutex<Option<Vec<u8>>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir`, creating the directory if
    /// needed, and starts its writer thread.
    pub fn open(data_dir: &Path, options: EmbeddedOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Unavailable {
            backend: BACKEND,
            reason: format!("cannot create data directory {}: {e}", data_dir.display()),
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = Database::builder()
            .set_cache_size(options.cache_size_bytes)
            .create(&path)
            .map_err(|e| StoreError::Unavailable {
                backend: BACKEND,
                reason: match e {
                    redb::DatabaseError::DatabaseAlreadyOpen => format!(
                        "{} is in use by another process (is another playmark running on this data directory?)",
                        path.display()
                    ),
                    e => format!("cannot open {}: {e}", path.display()),
                },
            })?;
        // Create the table up front so read transactions always find it.
        let init = || -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            txn.open_table(PROGRESS)?;
            txn.commit()?;
            Ok(())
        };
        init().map_err(backend_error)?;

        let db = Arc::new(db);
        let latest = Arc::new(Latest::default());
        latest.refresh(&db);
        let (writes, rx) = mpsc::channel(options.queue_capacity.max(1));
        let (writer_db, writer_latest) = (Arc::clone(&db), Arc::clone(&latest));
        let max_batch = options.max_batch.max(1);
        let writer = std::thread::Builder::new()
            .name("playmark-writer".into())
            .spawn(move || writer::run(writer_db, writer_latest, rx, max_batch))
            .map_err(|e| StoreError::Unavailable {
                backend: BACKEND,
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        tracing::info!(path = %path.display(), "embedded store open");
        Ok(Self {
            db,
            latest,
            path,
            writes,
            writer: Mutex::new(Some(writer)),
            expiry_cursor: Mutex::new(None),
        })
    }

    /// Where the database file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes.send(Command::Op(make(reply))).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// A read-only view of the progress table in a fresh snapshot.
fn read_table(db: &Database) -> Result<ProgressTable, StoreError> {
    let txn = db.begin_read().map_err(|e| backend_error(e.into()))?;
    txn.open_table(PROGRESS).map_err(|e| backend_error(e.into()))
}

/// The progress table as of the newest commit, shared by every reader.
///
/// Opening a read transaction per request costs a lock in redb's
/// transaction tracker and a table-tree lookup; sharing one snapshot costs a
/// reference count. The writer calls [`Latest::refresh`] after each commit
/// and before it answers anyone, so a read that starts after a write was
/// acknowledged sees that write. If a snapshot cannot be opened, readers
/// open their own until the next commit succeeds in publishing one. A held
/// snapshot pins only the pages the next commit frees, until it is replaced.
#[derive(Default)]
pub(crate) struct Latest {
    table: RwLock<Option<Arc<ProgressTable>>>,
}

impl Latest {
    /// Publishes a snapshot of what is committed now.
    pub(crate) fn refresh(&self, db: &Database) {
        let fresh = match read_table(db) {
            Ok(table) => Some(Arc::new(table)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a read snapshot; readers will open their own");
                None
            }
        };
        *self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    }

    /// The newest snapshot, or a fresh one of the reader's own.
    fn table(&self, db: &Database) -> Result<Arc<ProgressTable>, StoreError> {
        let shared = self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match shared {
            Some(table) => Ok(table),
            None => read_table(db).map(Arc::new),
        }
    }
}

/// One step of an expiry scan.
struct ScanStep {
    /// Keys of rows untouched since the cutoff.
    idle: Vec<Vec<u8>>,
    /// Where the next step starts; `None` when the table is exhausted.
    next: Option<Vec<u8>>,
}

/// Scans up to [`EXPIRE_SCAN_STEP`] rows from `from` on for at most `want`
/// idle ones.
fn scan_idle(
    db: &Database,
    from: Option<Vec<u8>>,
    cutoff: Timestamp,
    want: usize,
) -> Result<ScanStep, StoreError> {
    let table = read_table(db)?;
    let mut range = match &from {
        Some(start) => table.range(start.as_slice()..),
        None => table.range::<&[u8]>(..),
    }
    .map_err(|e| backend_error(e.into()))?;
    let mut idle = Vec::new();
    for _ in 0..EXPIRE_SCAN_STEP {
        if idle.len() == want {
            break;
        }
        let Some(row) = range.next() else {
            return Ok(ScanStep { idle, next: None });
        };
        let (k, v) = row.map_err(|e| backend_error(e.into()))?;
        // A corrupt row is left alone for a person to inspect.
        if decode_value(v.value()).is_ok_and(|s| s.touched_at < cutoff) {
            idle.push(k.value().to_vec());
        }
    }
    let next =
        range.next().transpose().map_err(|e| backend_error(e.into()))?.map(|(k, _)| k.value().to_vec());
    Ok(ScanStep { idle, next })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Backend { backend: BACKEND, source: Box::new(e) })?
}

#[async_trait]
impl ProgressStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn upsert(
        &self,
        key: &ProgressKey,
        progress: Progress,
        now: Timestamp,
        guard: Option<StaleGuard>,
    ) -> Result<Written, StoreError> {
        let key = encode_key(key);
        self.submit(|reply| Op::Upsert { key, progress, now, guard, reply }).await
    }

    async fn hide(&self, key: &ProgressKey) -> Result<Option<Progress>, StoreError> {
        let key = encode_key(key);
        self.submit(|reply| Op::Hide { key, reply }).await
    }

    async fn get(&self, key: &ProgressKey) -> Result<Option<Entry>, StoreError> {
        let table = self.latest.table(&self.db)?;
        let row = table.get(encode_key(key).as_slice()).map_err(|e| backend_error(e.into()))?;
        row.map(|v| decode_value(v.value()).map(|s| s.entry)).transpose()
    }

    async fn list_profile(&self, profile: &ProfileKey) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        let table = self.latest.table(&self.db)?;
        let prefix = profile_prefix(profile);
        blocking(move || {
            let end = prefix_end(&prefix);
            let range =
                table.range(prefix.as_slice()..end.as_slice()).map_err(|e| backend_error(e.into()))?;
            let mut rows = Vec::new();
            for row in range {
                let (k, v) = row.map_err(|e| backend_error(e.into()))?;
                if let Entry::Live(progress) = decode_value(v.value())?.entry {
                    rows.push((video_of(k.value(), prefix.len())?, progress));
                }
            }
            Ok(rows)
        })
        .await
    }

    async fn delete(&self, key: &ProgressKey, now: Timestamp) -> Result<Written, StoreError> {
        let key = encode_key(key);
        self.submit(|reply| Op::Delete { key, now, reply }).await
    }

    async fn expire(&self, untouched_since: Timestamp, limit: usize) -> Result<Vec<ProgressKey>, StoreError> {
        let mut from = self.expiry_cursor.lock().map_err(|_| closed())?.take();
        let mut purged = Vec::new();
        while purged.len() < limit {
            let (db, want) = (Arc::clone(&self.db), limit - purged.len());
            let ScanStep { idle, next } =
                blocking(move || scan_idle(&db, from, untouched_since, want)).await?;
            if !idle.is_empty() {
                let removed =
                    self.submit(|reply| Op::Expire { keys: idle, cutoff: untouched_since, reply }).await?;
                for key in removed {
                    purged.push(decode_key(&key)?);
                }
            }
            match next {
                Some(n) => from = Some(n),
                // The end of the table: the next call starts a new pass.
                None => return Ok(purged),
            }
        }
        *self.expiry_cursor.lock().map_err(|_| closed())? = from;
        Ok(purged)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.writes.is_closed() {
            return Err(closed());
        }
        read_table(&self.db).map(drop)
    }

    async fn close(&self) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        if self.writes.send(Command::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
        let handle = self.writer.lock().map_err(|_| closed())?.take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| StoreError::Backend { backend: BACKEND, source: Box::new(e) })?
                .map_err(|_| StoreError::Unavailable {
                    backend: BACKEND,
                    reason: "the writer thread panicked".into(),
                })?;
        }
        tracing::info!(path = %self.path.display(), "embedded store closed");
        Ok(())
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable { backend: BACKEND, reason: "the store is closed".into() }
}

/// Maps a redb error to its kind: I/O failures (a full disk among them:
/// nothing was written) are `Unavailable`, a damaged file is `Corrupt`,
/// anything else is a bug.
fn backend_error(e: redb::Error) -> StoreError {
    match e {
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed => {
            StoreError::Unavailable { backend: BACKEND, reason: e.to_string() }
        }
        redb::Error::Corrupted(detail) => StoreError::Corrupt { backend: BACKEND, detail },
        e => StoreError::Backend { backend: BACKEND, source: Box::new(e) },
    }
}
