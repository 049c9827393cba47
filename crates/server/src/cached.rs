//! The hybrid read and write flow (docs/design.md#write-flow and
//! #read-flow): a cache in front of the store.
//!
//! [`CachedStore`] is itself a [`ProgressStore`], so the service is the same
//! with or without a cache. It owns the cache policy:
//!
//! - **Write:** the store first (durable), then the cache, under the same
//!   merge rule (compare-and-set), waiting for it up to the cache write
//!   timeout. The updates of concurrent writes go to the cache together, in
//!   one pipelined call. A cache update that fails or times out never fails the write:
//!   the key goes on a repair list that a background task replays
//!   (compare-and-set again, so replaying is always safe) as soon as the
//!   cache answers. Until it is repaired, this node reads that key from the
//!   store, so the write's own node never answers with an older cached
//!   value. A store write that
//!   fails, times out or is abandoned may still commit: its key is removed
//!   from the cache at once and again [`SUSPECT_RECHECK`] later. Entries also
//!   expire after the cache TTL, which bounds anything the repair list lost.
//! - **Read:** the cache with a short timeout. A hit answers; a miss, an
//!   error or a timeout goes to the store, and the answer is put back into
//!   the cache off the request path. If the store is down, cached entries
//!   are still served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use playmark_core::library::{HistoryCursor, SeriesActivity};
use playmark_core::{Entry, ProfileKey, Progress, ProgressKey, SeriesId, StaleGuard, Timestamp, VideoId};
use playmark_store::{ProgressCache, ProgressStore, StoreError, Written};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::metrics::{CacheLabels, Metrics};

/// When a write's fate is unknown (it failed, timed out or was abandoned,
/// and may still commit), its cache entry is removed at once and again after
/// this long, by when a late commit has landed: reads then refill from the
/// store. A deadline or a departing client can never leave an older cached
/// value in front of a committed write for longer than this.
const SUSPECT_RECHECK: Duration = Duration::from_secs(2);

/// Most keys waiting for repair; beyond it the TTL is the only bound.
const MAX_PENDING_REPAIRS: usize = 100_000;
/// Repairs run concurrently in chunks of this size.
const REPAIR_CHUNK: usize = 256;

/// A store with a cache in front of it.
#[derive(Debug)]
pub struct CachedStore {
    store: Arc<dyn ProgressStore>,
    cache: Arc<dyn ProgressCache>,
    /// Each cache read (and removal) waits this long at most.
    timeout: Duration,
    /// A write waits this long at most for its cache update.
    write_timeout: Duration,
    metrics: Arc<Metrics>,
    repairs: Arc<Repairs>,
    /// To the cache writer.
    writes: mpsc::Sender<CacheWrite>,
}

#[derive(Debug, Default)]
struct Repairs {
    pending: Mutex<HashMap<ProgressKey, Entry>>,
    wake: Notify,
    stop: Notify,
}

impl CachedStore {
    /// Wraps `store` with `cache`: cache reads get `timeout` each, a
    /// write's cache update `write_timeout`.
    pub fn new(
        store: Arc<dyn ProgressStore>,
        cache: Arc<dyn ProgressCache>,
        timeout: Duration,
        write_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let repairs = Arc::new(Repairs::default());
        tokio::spawn(repair_loop(
            Arc::clone(&cache),
            Arc::clone(&repairs),
            write_timeout,
            Arc::clone(&metrics),
        ));
        let (writes, queued) = mpsc::channel(CACHE_QUEUE);
        tokio::spawn(cache_writer(
            Arc::clone(&cache),
            queued,
            Arc::clone(&repairs),
            Arc::clone(&metrics),
            write_timeout,
        ));
        Self { store, cache, timeout, write_timeout, metrics, repairs, writes }
    }

    fn lookup(&self, result: &'static str) {
        self.metrics.cache_lookups.get_or_create(&CacheLabels { result }).inc();
    }

    /// Removes rows the store purged from the cache: they must not live on
    /// there. A write that lands between the purge and this removal only
    /// costs a cache miss.
    async fn forget(&self, purged: &[ProgressKey]) {
        let removals = purged.iter().map(|key| tokio::time::timeout(self.timeout, self.cache.remove(key)));
        for (key, removed) in purged.iter().zip(futures::future::join_all(removals).await) {
            if !matches!(removed, Ok(Ok(()))) {
                // The entry lives until the cache TTL; nothing else can
                // reach it, so record it for the operator.
                self.metrics.cache_update_failures.inc();
                tracing::debug!(%key, "could not remove a purged entry from the cache");
            }
        }
    }

    fn suspect(&self, key: &ProgressKey) -> Suspect {
        Suspect { cache: Arc::clone(&self.cache), key: Some(key.clone()), timeout: self.timeout }
    }

    /// A store write, then the cache update ([`update_cache`](Self::update_cache));
    /// a store write whose fate is unknown invalidates the key ([`Suspect`]).
    async fn write_through(
        &self,
        key: &ProgressKey,
        write: impl std::future::Future<Output = Result<Written, StoreError>>,
    ) -> Result<Written, StoreError> {
        let suspect = self.suspect(key);
        let written = write.await?;
        suspect.disarm();
        self.update_cache(key.clone(), written.standing.clone()).await;
        Ok(written)
    }

    /// Puts what the store now holds into the cache. The update goes to the
    /// cache writer ([`cache_writer`]), which sends the updates of
    /// concurrent writes together, and completes it even if the caller stops
    /// waiting. If it fails, or does not answer within the cache write
    /// timeout, the key is queued for repair (and read from the store until
    /// then) before the write is answered.
    async fn update_cache(&self, key: ProgressKey, standing: Entry) {
        let (done, answer) = oneshot::channel();
        let queued = self.writes.try_send(CacheWrite { key: key.clone(), entry: standing.clone(), done });
        let stored =
            queued.is_ok() && matches!(tokio::time::timeout(self.write_timeout, answer).await, Ok(Ok(true)));
        if !stored {
            if queued.is_err() {
                // The writer's queue is full: the cache is far behind.
                self.metrics.cache_update_failures.inc();
            }
            self.repairs.push(key, standing, &self.metrics);
        }
    }
}

/// Most cache updates sent in one call.
const CACHE_BATCH: usize = 256;
/// Cache updates waiting for the cache writer; past this, an update goes
/// straight to the repair list.
const CACHE_QUEUE: usize = 16 * 1024;
/// Cache calls in flight at once; while they are, updates gather into the
/// next batch.
const CACHE_CALLS: usize = 8;

/// One write's cache update, and who waits for it.
struct CacheWrite {
    key: ProgressKey,
    entry: Entry,
    /// Whether it is in the cache now.
    done: oneshot::Sender<bool>,
}

/// Sends the cache updates of concurrent writes together: whatever waits
/// when a call can go is one [`ProgressCache::put_many`] (one pipelined
/// round trip on Redis), so a group of checkpoints the store coalesced does
/// not cost one cache round trip each. A failed call queues every update in
/// it for repair.
async fn cache_writer(
    cache: Arc<dyn ProgressCache>,
    mut writes: mpsc::Receiver<CacheWrite>,
    repairs: Arc<Repairs>,
    metrics: Arc<Metrics>,
    timeout: Duration,
) {
    let calls = Arc::new(tokio::sync::Semaphore::new(CACHE_CALLS));
    let mut batch = Vec::with_capacity(CACHE_BATCH);
    loop {
        // A call first: while every call is busy, updates gather.
        let Ok(call) = Arc::clone(&calls).acquire_owned().await else { return };
        if writes.recv_many(&mut batch, CACHE_BATCH).await == 0 {
            return;
        }
        let (entries, waiting): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|w| ((w.key, w.entry), w.done)).unzip();
        let (cache, repairs, metrics) = (Arc::clone(&cache), Arc::clone(&repairs), Arc::clone(&metrics));
        tokio::spawn(async move {
            let stored = match tokio::time::timeout(timeout, cache.put_many(&entries)).await {
                Ok(Ok(_)) => true,
                failed => {
                    metrics.cache_update_failures.inc_by(entries.len() as u64);
                    let reason = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".into(),
                    };
                    tracing::debug!(error = %reason, updates = entries.len(), "cache update failed; queued for repair");
                    for (key, entry) in entries {
                        repairs.push(key, entry, &metrics);
                    }
                    false
                }
            };
            for done in waiting {
                let _ = done.send(stored);
            }
            drop(call);
        });
    }
}

/// Armed before a store write; unless disarmed (the write's answer arrived
/// and the cache update is under way), dropping it invalidates the key.
struct Suspect {
    cache: Arc<dyn ProgressCache>,
    key: Option<ProgressKey>,
    timeout: Duration,
}

impl Suspect {
    fn disarm(mut self) {
        self.key = None;
    }
}

impl Drop for Suspect {
    fn drop(&mut self) {
        let (Some(key), Ok(runtime)) = (self.key.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let (cache, timeout) = (Arc::clone(&self.cache), self.timeout);
        runtime.spawn(async move {
            let _ = tokio::time::timeout(timeout, cache.remove(&key)).await;
            tokio::time::sleep(SUSPECT_RECHECK).await;
            let _ = tokio::time::timeout(timeout, cache.remove(&key)).await;
        });
    }
}

impl Repairs {
    fn push(&self, key: ProgressKey, entry: Entry, metrics: &Metrics) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.len() >= MAX_PENDING_REPAIRS && !pending.contains_key(&key) {
            metrics.cache_repairs_dropped.inc();
            return;
        }
        let slot = pending.entry(key).or_insert_with(|| entry.clone());
        if entry > *slot {
            *slot = entry;
        }
        metrics.cache_repairs_pending.set(pending.len() as i64);
        drop(pending);
        self.wake.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProgressKey, Entry>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `key`'s cache entry may be older than the store's.
    fn is_pending(&self, key: &ProgressKey) -> bool {
        let pending = self.lock();
        !pending.is_empty() && pending.contains_key(key)
    }

    /// What waits for repair now. The keys stay pending (and read from the
    /// store) until [`repaired`](Self::repaired) says they landed.
    fn snapshot(&self) -> Vec<(ProgressKey, Entry)> {
        self.lock().iter().map(|(k, e)| (k.clone(), e.clone())).collect()
    }

    /// These entries are in the cache now: their keys are no longer
    /// pending, unless a newer entry was queued for them meanwhile.
    fn repaired(&self, done: &[(ProgressKey, Entry)], metrics: &Metrics) {
        let mut pending = self.lock();
        for (key, entry) in done {
            if pending.get(key) == Some(entry) {
                pending.remove(key);
            }
        }
        metrics.cache_repairs_pending.set(pending.len() as i64);
    }
}

/// Replays failed cache updates until they stick. Waits for the cache to
/// answer a ping before each round, so a dead cache costs one ping per round.
async fn repair_loop(
    cache: Arc<dyn ProgressCache>,
    repairs: Arc<Repairs>,
    timeout: Duration,
    metrics: Arc<Metrics>,
) {
    let mut pause = Duration::from_millis(50);
    loop {
        tokio::select! {
            _ = repairs.wake.notified() => {}
            _ = repairs.stop.notified() => return,
        }
        loop {
            let batch = repairs.snapshot();
            if batch.is_empty() {
                metrics.cache_repairs_pending.set(0);
                break;
            }
            let reachable = matches!(tokio::time::timeout(timeout, cache.ping()).await, Ok(Ok(())));
            let mut done = Vec::new();
            if reachable {
                for chunk in batch.chunks(REPAIR_CHUNK) {
                    let puts = chunk.iter().map(|(k, e)| tokio::time::timeout(timeout, cache.put(k, e)));
                    for (repair, result) in chunk.iter().zip(futures::future::join_all(puts).await) {
                        if matches!(result, Ok(Ok(_))) {
                            done.push(repair.clone());
                        }
                    }
                }
            }
            repairs.repaired(&done, &metrics);
            if done.len() == batch.len() {
                pause = Duration::from_millis(50);
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = repairs.stop.notified() => return,
            }
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

#[async_trait]
impl ProgressStore for CachedStore {
    fn backend(&self) -> &'static str {
        self.store.backend()
    }

    async fn upsert(
        &self,
        key: &ProgressKey,
        progress: Progress,
        now: Timestamp,
        guard: Option<StaleGuard>,
    ) -> Result<Written, StoreError> {
        self.write_through(key, self.store.upsert(key, progress, now, guard)).await
    }

    async fn get(&self, key: &ProgressKey) -> Result<Option<Entry>, StoreError> {
        if self.repairs.is_pending(key) {
            // A write of this node did not reach the cache yet: the cached
            // entry may be older than what this node acknowledged.
            self.lookup("bypass");
        } else {
            match tokio::time::timeout(self.timeout, self.cache.get(key)).await {
                Ok(Ok(Some(entry))) => {
                    self.lookup("hit");
                    return Ok(Some(entry));
                }
                Ok(Ok(None)) => self.lookup("miss"),
                Ok(Err(e)) => {
                    self.lookup("error");
                    tracing::debug!(error = %e, "cache read failed; reading the store");
                }
                Err(_) => self.lookup("timeout"),
            }
        }
        let entry = self.store.get(key).await?;
        if let Some(entry) = &entry {
            // Refill off the request path; compare-and-set keeps a racing
            // newer write from being overwritten by this older read.
            let (cache, key, entry, timeout) =
                (Arc::clone(&self.cache), key.clone(), entry.clone(), self.timeout);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(timeout, cache.put(&key, &entry)).await;
            });
        }
        Ok(entry)
    }

    async fn continue_watching(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        self.store.continue_watching(profile, limit).await
    }

    async fn standalone_in_progress(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        self.store.standalone_in_progress(profile, limit).await
    }

    async fn history(
        &self,
        profile: &ProfileKey,
        after: Option<&HistoryCursor>,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        self.store.history(profile, after, limit).await
    }

    async fn series_activity(
        &self,
        profile: &ProfileKey,
        after: Option<&(Timestamp, SeriesId)>,
        limit: usize,
    ) -> Result<Vec<SeriesActivity>, StoreError> {
        self.store.series_activity(profile, after, limit).await
    }

    async fn delete(&self, key: &ProgressKey, now: Timestamp) -> Result<Written, StoreError> {
        // The tombstone is cached too, so a cached older record cannot
        // resurface the title.
        self.write_through(key, self.store.delete(key, now)).await
    }

    async fn hide(&self, key: &ProgressKey) -> Result<Option<Progress>, StoreError> {
        // The hidden copy outranks the unhidden copy of the same checkpoint
        // in the cache's compare-and-set, so it replaces it, and a refill
        // racing with it cannot bring the unhidden one back.
        let suspect = self.suspect(key);
        let hidden = self.store.hide(key).await?;
        suspect.disarm();
        if let Some(p) = &hidden {
            self.update_cache(key.clone(), Entry::Live(p.clone())).await;
        }
        Ok(hidden)
    }

    async fn expire(&self, untouched_since: Timestamp, limit: usize) -> Result<Vec<ProgressKey>, StoreError> {
        let purged = self.store.expire(untouched_since, limit).await?;
        self.forget(&purged).await;
        Ok(purged)
    }

    async fn trim(&self, max_titles: usize, limit: usize) -> Result<Vec<ProgressKey>, StoreError> {
        let trimmed = self.store.trim(max_titles, limit).await?;
        self.forget(&trimmed).await;
        Ok(trimmed)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.repairs.stop.notify_waiters();
        self.store.close().await
    }
}
