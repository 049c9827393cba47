//! [`FaultyStore`]: a wrapper that makes any store slow or failing, for
//! fault tests.
//!
//! Every call (but `expire` and `close`) first waits the *before* delay: a
//! slow disk or a throttled database. Writes can also answer *late*: they
//! commit, then wait before answering, like a write whose acknowledgement
//! is lost past its deadline. And every call can be made to fail with an
//! error of a chosen kind, without reaching the store. All of these can be
//! changed while the store is in use. It also counts the most writes it had
//! in flight at once. With none set, it is a store like any other, and
//! passes the conformance suite.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use playmark_core::library::{HistoryCursor, SeriesActivity};
use playmark_core::{Entry, ProfileKey, Progress, ProgressKey, SeriesId, StaleGuard, Timestamp, VideoId};

use crate::{ProgressStore, StoreError, Written};

/// A store whose calls take longer than they need to, or fail.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ProgressStore>,
    before_ms: AtomicU64,
    late_ms: AtomicU64,
    failure: Mutex<Option<fn() -> StoreError>>,
    /// Writes (`upsert`) in flight now, and the most ever at once.
    writing: AtomicUsize,
    most_writing: AtomicUsize,
}

impl FaultyStore {
    /// Wraps `inner`, with no delays or failures yet.
    pub fn new(inner: Arc<dyn ProgressStore>) -> Self {
        Self {
            inner,
            before_ms: AtomicU64::new(0),
            late_ms: AtomicU64::new(0),
            failure: Mutex::new(None),
            writing: AtomicUsize::new(0),
            most_writing: AtomicUsize::new(0),
        }
    }

    /// Every call fails with the error `make` returns (after the *before*
    /// delay), or, with `None`, reaches the store again.
    pub fn set_failure(&self, make: Option<fn() -> StoreError>) {
        *self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = make;
    }

    /// Every call waits this long before it reaches the store.
    pub fn set_before(&self, delay: Duration) {
        self.before_ms.store(millis(delay), Ordering::SeqCst);
    }

    /// Writes answer this long after they committed.
    pub fn set_late(&self, delay: Duration) {
        self.late_ms.store(millis(delay), Ordering::SeqCst);
    }

    /// The most checkpoint writes (`upsert` calls) that were in flight at
    /// once, *before* delay included: how much of the store one client's
    /// requests could hold.
    pub fn most_writes_at_once(&self) -> usize {
        self.most_writing.load(Ordering::SeqCst)
    }

    /// The *before* delay, then the injected failure if there is one.
    async fn before(&self) -> Result<(), StoreError> {
        wait(&self.before_ms).await;
        let failure = *self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        failure.map_or(Ok(()), |make| Err(make()))
    }

    async fn late<T>(&self, result: T) -> T {
        wait(&self.late_ms).await;
        result
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn wait(ms: &AtomicU64) {
    match ms.load(Ordering::SeqCst) {
        0 => {}
        ms => tokio::time::sleep(Duration::from_millis(ms)).await,
    }
}

#[async_trait]
impl ProgressStore for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn upsert(
        &self,
        key: &ProgressKey,
        progress: Progress,
        now: Timestamp,
        guard: Option<StaleGuard>,
    ) -> Result<Written, StoreError> {
        let at_once = self.writing.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_writing.fetch_max(at_once, Ordering::SeqCst);
        let written = async {
            self.before().await?;
            let written = self.inner.upsert(key, progress, now, guard).await;
            self.late(written).await
        }
        .await;
        self.writing.fetch_sub(1, Ordering::SeqCst);
        written
    }

    async fn get(&self, key: &ProgressKey) -> Result<Option<Entry>, StoreError> {
        self.before().await?;
        self.inner.get(key).await
    }

    async fn continue_watching(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        self.before().await?;
        self.inner.continue_watching(profile, limit).await
    }

    async fn standalone_in_progress(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        self.before().await?;
        self.inner.standalone_in_progress(profile, limit).await
    }

    async fn history(
        &self,
        profile: &ProfileKey,
        after: Option<&HistoryCursor>,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        self.before().await?;
        self.inner.history(profile, after, limit).await
    }

    async fn series_activity(
        &self,
        profile: &ProfileKey,
        after: Option<&(Timestamp, SeriesId)>,
        limit: usize,
    ) -> Result<Vec<SeriesActivity>, StoreError> {
        self.before().await?;
        self.inner.series_activity(profile, after, limit).await
    }

    async fn delete(&self, key: &ProgressKey, now: Timestamp) -> Result<Written, StoreError> {
        self.before().await?;
        let written = self.inner.delete(key, now).await;
        self.late(written).await
    }

    async fn hide(&self, key: &ProgressKey) -> Result<Option<Progress>, StoreError> {
        self.before().await?;
        let hidden = self.inner.hide(key).await;
        self.late(hidden).await
    }

    async fn expire(&self, untouched_since: Timestamp, limit: usize) -> Result<Vec<ProgressKey>, StoreError> {
        self.inner.expire(untouched_since, limit).await
    }

    async fn trim(&self, max_titles: usize, limit: usize) -> Result<Vec<ProgressKey>, StoreError> {
        self.inner.trim(max_titles, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.before().await?;
        self.inner.ping().await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}
