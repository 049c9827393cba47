//! The embedded store: durable, single-node, a write-ahead log over a redb
//! B-tree.
//!
//! - **Writes** go through one writer thread with group commit
//!   ([`writer`]): a group of writes becomes row images appended to the
//!   log ([`wal`]) with one `fdatasync`. Only then are they applied to the
//!   memtable ([`memtable`]) and acknowledged: every acknowledged write
//!   survives `kill -9` or power loss.
//! - **Checkpoints** ([`checkpoint`]) write the memtable into the B-tree in
//!   the background, every [`EmbeddedOptions::checkpoint_interval`] or
//!   [`EmbeddedOptions::checkpoint_bytes`], and delete the log segments the
//!   B-tree then holds. So a group commit is a sequential append, not a
//!   B-tree rewrite.
//! - **Reads** look in the memtables, then in a shared B-tree snapshot, and
//!   never wait for the writer: an acknowledged write is visible at once.
//! - **Recovery** replays the log after the last checkpoint. A torn last
//!   group (a crash mid-append) is discarded; any other damage refuses to
//!   open, naming the file and offset.
//! - **Layout** ([`keys`], [`rows`]): rows, a continue-watching order per
//!   profile (only titles in progress, newest first, so a profile's row is
//!   read only as far as its limit), and a row count per profile with an
//!   order by count (profiles over a cap are a range).
//!
//! Data files of the previous layout (one `progress_v1` table, fsynced per
//! group) are migrated on first open.

mod checkpoint;
mod keys;
mod memtable;
mod rows;
mod wal;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use playmark_core::library::{self, HistoryCursor, SeriesActivity, SeriesPointer};
use playmark_core::{Entry, ProfileKey, Progress, ProgressKey, SeriesId, StaleGuard, Timestamp, VideoId};
use redb::{Database, ReadableTable, TableDefinition, TableHandle};
use tokio::sync::{mpsc, oneshot};

use crate::{ProgressStore, StoreError, Written};
use memtable::{Memtables, View};
use writer::{Command, Op};

const BACKEND: &str = "embedded";
/// The key space: rows, orders, counts, meta (see [`keys`]).
const KV: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("kv_v2");
/// The previous layout: rows only, keyed without a kind byte.
const LEGACY: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("progress_v1");
/// The database file inside the data directory.
pub const FILE_NAME: &str = "playmark.redb";
/// The log's directory inside the data directory.
pub const WAL_DIR: &str = "wal";
/// Rows examined per step of an expiry or trim scan.
const SCAN_STEP: usize = 2_000;

/// Tuning for the embedded store. The defaults suit a laptop-class machine.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// redb's page cache, in bytes.
    pub cache_size_bytes: usize,
    /// Writes that may wait for the writer before callers are held back.
    pub queue_capacity: usize,
    /// The most writes in one group commit.
    pub max_batch: usize,
    /// Checkpoint once the memtable holds this many bytes of changes.
    pub checkpoint_bytes: usize,
    /// Checkpoint at least this often while there are changes (bounds the
    /// log replayed at start).
    pub checkpoint_interval: Duration,
    /// When a data file of the previous layout is migrated: titles watched
    /// past this percent count as finished (that layout did not store it).
    pub legacy_finished_percent: f64,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            cache_size_bytes: 1024 * 1024 * 1024,
            queue_capacity: 8_192,
            max_batch: 1_024,
            checkpoint_bytes: 32 * 1024 * 1024,
            checkpoint_interval: Duration::from_secs(10),
            legacy_finished_percent: 90.0,
        }
    }
}

/// The embedded [`ProgressStore`].
pub struct EmbeddedStore {
    view: Arc<View>,
    path: PathBuf,
    writes: mpsc::Sender<Command>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stopping: Arc<AtomicBool>,
    /// Where the last expiry batch stopped scanning, so a sweep's calls walk
    /// the rows once between them.
    expiry_cursor: Mutex<Option<Vec<u8>>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn unavailable(reason: impl Into<String>) -> StoreError {
    StoreError::Unavailable { backend: BACKEND, reason: reason.into() }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir`, creating the directory if
    /// needed: migrates a data file of the previous layout, replays the log
    /// after the last checkpoint, and starts the writer and checkpoint
    /// threads.
    pub fn open(data_dir: &Path, options: EmbeddedOptions) -> Result<Self, StoreError> {
        let wal_dir = data_dir.join(WAL_DIR);
        std::fs::create_dir_all(&wal_dir)
            .map_err(|e| unavailable(format!("cannot create data directory {}: {e}", wal_dir.display())))?;
        let path = data_dir.join(FILE_NAME);
        let db = Database::builder().set_cache_size(options.cache_size_bytes).create(&path).map_err(|e| {
            unavailable(match e {
                redb::DatabaseError::DatabaseAlreadyOpen => format!(
                    "{} is in use by another process (is another playmark running on this data directory?)",
                    path.display()
                ),
                e => format!("cannot open {}: {e}", path.display()),
            })
        })?;
        let db = Arc::new(db);
        init(&db, &options)?;

        let started = std::time::Instant::now();
        let checkpointed = checkpoint_lsn(&db)?;
        let (groups, next) = wal::replay(&wal_dir, checkpointed).map_err(|e| match e {
            wal::LogError::Corrupt { .. } => StoreError::Corrupt { backend: BACKEND, detail: e.to_string() },
            wal::LogError::Io { .. } => unavailable(e.to_string()),
        })?;
        let mut tables = Memtables::new();
        let replayed = groups.len();
        for group in groups {
            tables.apply(group.mutations);
        }
        if replayed > 0 {
            tracing::info!(groups = replayed, took = ?started.elapsed(), "replayed the log after the last checkpoint");
        }
        let log = wal::Log::create(&wal_dir, next).map_err(|e| unavailable(e.to_string()))?;
        let view = Arc::new(View::new(Arc::clone(&db), tables));

        let (writes, rx) = mpsc::channel(options.queue_capacity.max(1));
        let stopping = Arc::new(AtomicBool::new(false));
        let (jobs_tx, jobs) = std::sync::mpsc::channel();
        let writer = writer::Writer {
            view: Arc::clone(&view),
            log,
            rx,
            max_batch: options.max_batch.max(1),
            policy: writer::CheckpointPolicy {
                bytes: options.checkpoint_bytes.max(1),
                interval: options.checkpoint_interval,
            },
            checkpoints: jobs_tx,
        };
        let checkpointer = checkpoint::Checkpointer {
            db,
            view: Arc::clone(&view),
            wal_dir,
            jobs,
            writer: writes.downgrade(),
            interval: options.checkpoint_interval.max(Duration::from_millis(10)),
            stopping: Arc::clone(&stopping),
        };
        let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(work)
                .map_err(|e| unavailable(format!("cannot start the {name} thread: {e}")))
        };
        let threads = vec![
            spawn("playmark-writer", Box::new(move || writer.run()))?,
            spawn("playmark-checkpoint", Box::new(move || checkpointer.run()))?,
        ];
        tracing::info!(path = %path.display(), "embedded store open");
        Ok(Self {
            view,
            path,
            writes,
            threads: Mutex::new(threads),
            stopping,
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

    /// The first `limit` entries of one of the profile's time orders
    /// (continue-watching, episodes, history), from `from` when given.
    fn order(
        &self,
        kind: u8,
        profile: &ProfileKey,
        from: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        let prefix = keys::profile_prefix(kind, profile);
        let end = keys::prefix_end(&prefix);
        let found = self.view.range(from.as_deref().unwrap_or(&prefix), &end, limit)?;
        found.iter().map(|(k, v)| writer::cw_entry(k, v, prefix.len())).collect()
    }

    /// Up to `want` row keys of `[from, ..)` that `pick` chooses, looking
    /// at most at [`SCAN_STEP`] rows (memtables and B-tree); and where the
    /// next scan starts (`None` at the end of the rows).
    async fn scan_rows(
        &self,
        from: Option<Vec<u8>>,
        want: usize,
        pick: impl Fn(&rows::Stored) -> bool + Send + 'static,
    ) -> Result<(Vec<Vec<u8>>, Option<Vec<u8>>), StoreError> {
        let view = Arc::clone(&self.view);
        blocking(move || {
            let start = from.unwrap_or_else(|| vec![keys::ROW]);
            let mut found = view.range(&start, &keys::kind_end(keys::ROW), SCAN_STEP + 1)?;
            let next = (found.len() > SCAN_STEP).then(|| found.pop().map(|(k, _)| k)).flatten();
            let mut picked = Vec::new();
            for (k, v) in found {
                if picked.len() == want {
                    // Resume right here next time.
                    return Ok((picked, Some(k)));
                }
                // A corrupt row is left alone for a person to inspect.
                if rows::decode(&v).is_ok_and(|s| pick(&s)) {
                    picked.push(k);
                }
            }
            Ok((picked, next))
        })
        .await
    }
}

/// Creates the key space, and migrates a data file of the previous layout.
fn init(db: &Database, options: &EmbeddedOptions) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(|e| redb_error(e.into()))?;
    txn.open_table(KV).map_err(|e| redb_error(e.into()))?;
    let legacy = txn.list_tables().map_err(|e| redb_error(e.into()))?.any(|t| t.name() == LEGACY.name());
    txn.commit().map_err(|e| redb_error(e.into()))?;
    if legacy {
        migrate(db, options.legacy_finished_percent)?;
    }
    build_history(db)
}

/// Puts every finished row of a data file that predates the history order
/// into it, once (`M history` marks it done), in one durable transaction.
/// Finished rows of such a file count as finished at their last write.
fn build_history(db: &Database) -> Result<(), StoreError> {
    let err = |e: redb::Error| redb_error(e);
    let mut txn = db.begin_write().map_err(|e| err(e.into()))?;
    txn.set_durability(redb::Durability::Immediate).map_err(|e| err(e.into()))?;
    let mut added = 0u64;
    {
        let mut kv = txn.open_table(KV).map_err(|e| err(e.into()))?;
        if kv.get(keys::HISTORY_BUILT).map_err(|e| err(e.into()))?.is_some() {
            return Ok(());
        }
        let mut finished = Vec::new();
        for row in kv
            .range([keys::ROW].as_slice()..keys::kind_end(keys::ROW).as_slice())
            .map_err(|e| err(e.into()))?
        {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let stored = rows::decode(v.value())?;
            if let Some(at) = stored.entry.live().and_then(Progress::finish_time) {
                let key = keys::decode_row(k.value())?;
                finished.push((
                    keys::timed(keys::HISTORY, &key.profile(), at, key.video_id.as_str()),
                    v.value().to_vec(),
                ));
            }
        }
        for (k, v) in finished {
            kv.insert(k.as_slice(), v.as_slice()).map_err(|e| err(e.into()))?;
            added += 1;
        }
        kv.insert(keys::HISTORY_BUILT, [].as_slice()).map_err(|e| err(e.into()))?;
    }
    txn.commit().map_err(|e| err(e.into()))?;
    if added > 0 {
        tracing::info!(titles = added, "built the history order of a data file that predates it");
    }
    Ok(())
}

/// Copies the previous layout's rows into the key space, building the
/// continue-watching order and the counts on the way, in one durable
/// transaction, and drops the old table.
fn migrate(db: &Database, finished_percent: f64) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let err = |e: redb::Error| redb_error(e);
    let mut txn = db.begin_write().map_err(|e| err(e.into()))?;
    txn.set_durability(redb::Durability::Immediate).map_err(|e| err(e.into()))?;
    let mut migrated = 0u64;
    {
        let old = txn.open_table(LEGACY).map_err(|e| err(e.into()))?;
        let mut kv = txn.open_table(KV).map_err(|e| err(e.into()))?;
        let mut counts: std::collections::BTreeMap<Vec<u8>, u64> = std::collections::BTreeMap::new();
        for row in old.iter().map_err(|e| err(e.into()))? {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            let row_key = [&[keys::ROW][..], k.value()].concat();
            let key = keys::decode_row(&row_key)?;
            let mut stored = rows::decode(v.value())?;
            if let Entry::Live(p) = &mut stored.entry {
                p.finished = p.duration.is_some_and(|d| {
                    p.position.as_millis() as f64 * 100.0 / d.as_millis() as f64 > finished_percent
                });
            }
            let bytes = rows::encode(&stored.entry, stored.touched_at);
            if let Some(p) = stored.entry.live().filter(|p| p.in_progress()) {
                kv.insert(keys::cw(&key.profile(), &key.video_id, p.updated_at).as_slice(), bytes.as_slice())
                    .map_err(|e| err(e.into()))?;
            }
            kv.insert(row_key.as_slice(), bytes.as_slice()).map_err(|e| err(e.into()))?;
            *counts.entry(keys::count(&key.profile())).or_default() += 1;
            migrated += 1;
        }
        for (count_key, n) in counts {
            let profile = keys::decode_profile(&count_key)?;
            kv.insert(count_key.as_slice(), keys::encode_count(n).as_slice()).map_err(|e| err(e.into()))?;
            kv.insert(keys::by_count(n, &profile).as_slice(), [].as_slice()).map_err(|e| err(e.into()))?;
        }
    }
    txn.delete_table(LEGACY).map_err(|e| err(e.into()))?;
    txn.commit().map_err(|e| err(e.into()))?;
    tracing::info!(rows = migrated, took = ?started.elapsed(), "migrated the data file to the logged layout");
    Ok(())
}

/// The LSN of the last log group the B-tree holds (0: none).
fn checkpoint_lsn(db: &Database) -> Result<u64, StoreError> {
    let tree = memtable::open_tree(db)?;
    let value = tree.get(keys::CHECKPOINT_LSN).map_err(|e| redb_error(e.into()))?;
    Ok(value.and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes)).unwrap_or(0))
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
        let key = key.clone();
        self.submit(|reply| Op::Upsert { key, progress, now, guard, reply }).await
    }

    async fn hide(&self, key: &ProgressKey) -> Result<Option<Progress>, StoreError> {
        let key = key.clone();
        self.submit(|reply| Op::Hide { key, reply }).await
    }

    async fn get(&self, key: &ProgressKey) -> Result<Option<Entry>, StoreError> {
        self.view.get(&keys::row(key))?.map(|v| rows::decode(&v).map(|s| s.entry)).transpose()
    }

    async fn continue_watching(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        // Two ranges in the same order: the first `limit` of their merge.
        let mut rows = self.order(keys::CW, profile, None, limit)?;
        rows.extend(self.order(keys::EPISODES, profile, None, limit)?);
        Ok(library::newest_first(rows, limit))
    }

    async fn standalone_in_progress(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        self.order(keys::CW, profile, None, limit)
    }

    async fn history(
        &self,
        profile: &ProfileKey,
        after: Option<&HistoryCursor>,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        let from =
            after.map(|c| past(keys::timed(keys::HISTORY, profile, c.finished_at, c.video_id.as_str())));
        self.order(keys::HISTORY, profile, from, limit)
    }

    async fn series_activity(
        &self,
        profile: &ProfileKey,
        after: Option<&(Timestamp, SeriesId)>,
        limit: usize,
    ) -> Result<Vec<SeriesActivity>, StoreError> {
        let prefix = keys::profile_prefix(keys::ACTIVITY, profile);
        let start = match after {
            Some((at, series)) => past(keys::timed(keys::ACTIVITY, profile, *at, series.as_str())),
            None => prefix.clone(),
        };
        let found = self.view.range(&start, &keys::prefix_end(&prefix), limit)?;
        let mut out = Vec::with_capacity(found.len());
        for (k, v) in found {
            let (at, series) = keys::decode_timed(&k, prefix.len())?;
            let corrupt = |what: &str| StoreError::Corrupt {
                backend: BACKEND,
                detail: format!("a series activity key holds {what}"),
            };
            let series = SeriesId::parse(series).map_err(|_| corrupt("an invalid series id"))?;
            let video = std::str::from_utf8(&v)
                .ok()
                .and_then(|v| VideoId::parse(v).ok())
                .ok_or_else(|| corrupt("an invalid video id"))?;
            let row = keys::row(&ProgressKey {
                account_id: profile.account_id.clone(),
                profile_id: profile.profile_id.clone(),
                video_id: video.clone(),
            });
            let latest = self.view.get(&row)?.map(|v| rows::decode(&v).map(|s| s.entry)).transpose()?;
            out.push(SeriesActivity { series, pointer: SeriesPointer { at, video_id: video }, latest });
        }
        Ok(out)
    }

    async fn delete(&self, key: &ProgressKey, now: Timestamp) -> Result<Written, StoreError> {
        let key = key.clone();
        self.submit(|reply| Op::Delete { key, now, reply }).await
    }

    async fn expire(&self, untouched_since: Timestamp, limit: usize) -> Result<Vec<ProgressKey>, StoreError> {
        let mut from = self.expiry_cursor.lock().map_err(|_| closed())?.take();
        let mut purged = Vec::new();
        while purged.len() < limit {
            let want = limit - purged.len();
            let (idle, next) = self.scan_rows(from, want, move |s| s.touched_at < untouched_since).await?;
            if !idle.is_empty() {
                purged.extend(
                    self.submit(|reply| Op::Expire { rows: idle, cutoff: untouched_since, reply }).await?,
                );
            }
            match next {
                Some(n) => from = Some(n),
                // The end of the rows: the next call starts a new pass.
                None => return Ok(purged),
            }
        }
        *self.expiry_cursor.lock().map_err(|_| closed())? = from;
        Ok(purged)
    }

    async fn trim(&self, max_titles: usize, limit: usize) -> Result<Vec<ProgressKey>, StoreError> {
        let cap = u64::try_from(max_titles).unwrap_or(u64::MAX);
        let over = self.view.range(&keys::by_count_above(cap), &keys::kind_end(keys::BY_COUNT), limit)?;
        let mut trimmed = Vec::new();
        for (key, _) in over {
            if trimmed.len() >= limit {
                break;
            }
            let profile = keys::decode_by_count(&key)?;
            let prefix = keys::profile_prefix(keys::ROW, &profile);
            let rows = self.view.range(&prefix, &keys::prefix_end(&prefix), usize::MAX)?;
            let excess = rows.len().saturating_sub(max_titles).min(limit - trimmed.len());
            if excess == 0 {
                continue;
            }
            // The least recently written go first (ties: the video id).
            let mut by_age = Vec::with_capacity(rows.len());
            for (k, v) in rows {
                by_age.push((rows::decode(&v)?.entry.updated_at(), k));
            }
            by_age.sort();
            let oldest: Vec<Vec<u8>> = by_age.into_iter().take(excess).map(|(_, k)| k).collect();
            trimmed.extend(self.submit(|reply| Op::Trim { rows: oldest, reply }).await?);
        }
        Ok(trimmed)
    }

    /// A durable write through the writer: a store that cannot write (a
    /// full disk, a broken log) is not ready.
    async fn ping(&self) -> Result<(), StoreError> {
        let now = Timestamp::from_millis(
            u64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis()),
            )
            .unwrap_or(u64::MAX),
        );
        self.submit(|reply| Op::Probe { now, reply }).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        let (reply, done) = oneshot::channel();
        if self.writes.send(Command::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
        let threads = std::mem::take(&mut *self.threads.lock().map_err(|_| closed())?);
        for handle in threads {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| StoreError::Backend { backend: BACKEND, source: Box::new(e) })?
                .map_err(|_| unavailable("a store thread panicked"))?;
        }
        tracing::info!(path = %self.path.display(), "embedded store closed");
        Ok(())
    }
}

/// The first key after `key` in an order: ids hold no NUL, so `key NUL`
/// sorts right after it and before every other key that follows it.
fn past(mut key: Vec<u8>) -> Vec<u8> {
    key.push(0);
    key
}

fn closed() -> StoreError {
    unavailable("the store is closed")
}

/// Maps a redb error to its kind: I/O failures (a full disk among them:
/// nothing was written) are `Unavailable`, a damaged file is `Corrupt`,
/// anything else is a bug.
fn redb_error(e: redb::Error) -> StoreError {
    match e {
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed => {
            unavailable(e.to_string())
        }
        redb::Error::Corrupted(detail) => StoreError::Corrupt { backend: BACKEND, detail },
        e => StoreError::Backend { backend: BACKEND, source: Box::new(e) },
    }
}
