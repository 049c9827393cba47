//! The service layer: the write flow and read flow of docs/design.md, over
//! any store.
//!
//! Handlers call this and nothing else. It owns the policy the adapters don't:
//! the skew clamp on client clocks, deadlines on every store call, bounded
//! retries with exponential backoff and jitter for writes (safe because every
//! write is a conditional merge: a replay is a `duplicate`), and metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use playmark_core::library::{self, HistoryCursor};
use playmark_core::{
    Checkpoint, DeviceId, EventTime, HandoffConfig, Mark, Outcome, Position, ProfileKey, Progress,
    ProgressKey, ResumeDecision, ResumePolicy, StaleGuard, Timestamp, VideoId,
};
use playmark_store::{EventKind, ProgressCache, ProgressEvent, ProgressStore, StoreError};
use playmark_wire::{ErrorCode, UpdateOutcome};

use crate::events::Publisher;
use crate::metrics::{Metrics, OutcomeLabels};

/// The first pause before a write is retried; doubled on every further try.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// A store operation, as the service names it in metrics, logs and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// A conditional checkpoint write.
    Upsert,
    /// A point read.
    Get,
    /// The continue-watching read.
    ContinueWatching,
    /// A page of history.
    History,
    /// A page of series by latest activity.
    SeriesActivity,
    /// A deletion (tombstone).
    Delete,
    /// Hiding a title.
    Hide,
    /// A TTL purge batch.
    Expire,
    /// A per-profile cap purge batch.
    Trim,
}

impl StoreOp {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Upsert => "upsert",
            StoreOp::Get => "get",
            StoreOp::ContinueWatching => "continue_watching",
            StoreOp::History => "history",
            StoreOp::SeriesActivity => "series_activity",
            StoreOp::Delete => "delete",
            StoreOp::Hide => "hide",
            StoreOp::Expire => "expire",
            StoreOp::Trim => "trim",
        }
    }

    /// True when the operation changes what is stored.
    pub fn is_write(self) -> bool {
        !matches!(self, StoreOp::Get | StoreOp::ContinueWatching | StoreOp::History | StoreOp::SeriesActivity)
    }
}

/// Why the service could not answer, by kind: the HTTP layer maps each kind
/// to its status without looking at messages.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store could not serve the request in time: down, overloaded,
    /// timed out, or out of disk. Nothing was acknowledged, and retrying later
    /// is safe (a replayed write is a `duplicate`). HTTP 503.
    #[error("the {backend} store could not {} in time: {reason}", op.as_str())]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// The operation that failed.
        op: StoreOp,
        /// Why, for the log.
        reason: String,
    },
    /// The store holds a record it cannot read: corruption, or a bug that
    /// wrote it. HTTP 500; logged with the key.
    #[error("the {backend} store holds a record it cannot read: {detail}")]
    Corrupt {
        /// Which backend.
        backend: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The store failed in a way no retry fixes (a bug, a schema someone
    /// changed). HTTP 500; logged.
    #[error("the {backend} store failed: {reason}")]
    Internal {
        /// Which backend.
        backend: &'static str,
        /// Why, for the log.
        reason: String,
    },
}

impl ServiceError {
    /// How long clients should wait before retrying, for the kinds a retry
    /// can fix.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ServiceError::Unavailable { .. } => Some(Duration::from_secs(1)),
            ServiceError::Corrupt { .. } | ServiceError::Internal { .. } => None,
        }
    }
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Applied, stale or duplicate.
    pub outcome: Outcome,
    /// The progress that stands now, or `None` when a deletion newer than the
    /// checkpoint stands.
    pub standing: Option<Progress>,
}

/// Where to resume a title.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// The standing progress, if any.
    pub record: Option<Progress>,
    /// What the player should do.
    pub decision: ResumeDecision,
    /// For a prompt: the device's own position, the other choice.
    pub alternative: Option<Position>,
}

/// The service's tuning, taken from [`Config`](crate::Config).
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// The resume thresholds.
    pub policy: ResumePolicy,
    /// How far a client clock may run ahead of the server's, in ms.
    pub max_skew_ms: u64,
    /// The whole budget of a write, retries included.
    pub write_timeout: Duration,
    /// The budget of a read.
    pub read_timeout: Duration,
    /// The stale-device guard's regression bound, in ms.
    pub stale_guard_ms: u64,
    /// The resume guardrails for devices that send their own position.
    pub handoff: HandoffConfig,
}

/// Playback progress, as the HTTP layer sees it.
#[derive(Debug)]
pub struct PlaybackService {
    store: Arc<dyn ProgressStore>,
    metrics: Arc<Metrics>,
    options: ServiceOptions,
    /// The cache behind the store, when there is one: for readiness only
    /// (the store wrapper does the caching).
    cache: Option<Arc<dyn ProgressCache>>,
    events: Option<Publisher>,
}

/// The state of each dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// `(dependency, Ok or what is wrong)`, the store first.
    pub checks: Vec<(&'static str, Result<(), String>)>,
}

impl Readiness {
    /// The service can answer: its store does. A failing cache or event sink
    /// degrades it but does not make it unready.
    pub fn is_ready(&self) -> bool {
        self.checks.first().is_some_and(|(_, r)| r.is_ok())
    }

    /// Everything answers.
    pub fn is_healthy(&self) -> bool {
        self.checks.iter().all(|(_, r)| r.is_ok())
    }
}

/// One readiness probe under a deadline.
async fn probe(
    name: &'static str,
    deadline: Duration,
    call: futures::future::BoxFuture<'_, Result<(), String>>,
) -> (&'static str, Result<(), String>) {
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => (name, result),
        Err(_) => (name, Err(format!("no answer within {deadline:?}"))),
    }
}

/// The server's clock.
pub fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Timestamp::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

impl PlaybackService {
    /// A service over `store`, reporting into `metrics`.
    pub fn new(store: Arc<dyn ProgressStore>, metrics: Arc<Metrics>, options: ServiceOptions) -> Self {
        Self { store, metrics, options, cache: None, events: None }
    }

    /// Reports `cache` in readiness checks.
    pub fn with_cache(mut self, cache: Arc<dyn ProgressCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Publishes every applied checkpoint through `events`.
    pub fn with_events(mut self, events: Publisher) -> Self {
        self.events = Some(events);
        self
    }

    /// The resume thresholds in force.
    pub fn policy(&self) -> &ResumePolicy {
        &self.options.policy
    }

    /// Records a checkpoint: clamp its time, conditionally write it, and
    /// report what stands. Returns only once the store has it durably.
    pub async fn update(&self, checkpoint: Checkpoint) -> Result<Update, ServiceError> {
        let now = now();
        let at = self.event_time(checkpoint.client_time, now, &checkpoint.device_id);
        let mut progress = checkpoint.progress_at(at);
        // Finished is decided now, with the policy in force, and stored: it
        // keeps the title out of continue-watching without a read-time filter.
        progress.finished = self.options.policy.is_finished(&progress);
        let guard = checkpoint.guard(self.options.stale_guard_ms);
        self.record(&checkpoint.key, progress, now, guard, EventKind::Checkpoint).await
    }

    /// Marks a title watched or not watched: a write under the same merge
    /// as a checkpoint (never guarded: the viewer chose it), so a late
    /// checkpoint from an old device cannot undo a newer mark.
    pub async fn mark(&self, mark: Mark) -> Result<Update, ServiceError> {
        let now = now();
        let at = self.event_time(mark.client_time, now, &mark.device_id);
        let kind = if mark.watched { EventKind::Watched } else { EventKind::Unwatched };
        self.record(&mark.key, mark.progress_at(at), now, None, kind).await
    }

    /// The time a write takes effect: the client's, unless it runs too far
    /// ahead of the server's clock.
    fn event_time(&self, client_time: Option<Timestamp>, now: Timestamp, device: &DeviceId) -> Timestamp {
        let time = EventTime::resolve(client_time, now, self.options.max_skew_ms);
        if time.clamped {
            self.metrics.clocks_clamped.inc();
            tracing::debug!(%device, "client clock too far ahead; using the server's");
        }
        time.at
    }

    /// Writes `progress` under `key` (conditionally, retried within the
    /// write budget), counts the outcome, and announces an applied write.
    async fn record(
        &self,
        key: &ProgressKey,
        progress: Progress,
        now: Timestamp,
        guard: Option<StaleGuard>,
        kind: EventKind,
    ) -> Result<Update, ServiceError> {
        let written =
            self.write(StoreOp::Upsert, key, || self.store.upsert(key, progress.clone(), now, guard)).await?;
        let progress = match &written.standing {
            playmark_core::Entry::Live(p) => p.clone(),
            playmark_core::Entry::Deleted { .. } => progress,
        };
        let outcome =
            UpdateOutcome::try_from(written.outcome).map_or_else(ErrorCode::as_str, UpdateOutcome::as_str);
        self.metrics.checkpoints.get_or_create(&OutcomeLabels { outcome }).inc();
        if let (Outcome::Applied, Some(events)) = (written.outcome, &self.events) {
            events.offer(ProgressEvent { kind, key: key.clone(), progress });
        }
        Ok(Update { outcome: written.outcome, standing: written.standing.live().cloned() })
    }

    /// Where `key`'s profile should resume the title, on a device that
    /// knows `local` (its own position), if anything.
    pub async fn resume(&self, key: &ProgressKey, local: Option<Position>) -> Result<Resume, ServiceError> {
        let entry = self.read(StoreOp::Get, key, self.store.get(key)).await?;
        let record = entry.and_then(|e| e.live().cloned());
        let handoff = self.options.handoff.decide(&self.options.policy, record.as_ref(), local);
        Ok(Resume { record, decision: handoff.decision, alternative: handoff.alternative })
    }

    /// Hides a title from the profile's continue-watching row, keeping its
    /// progress. Returns whether there was progress to hide.
    pub async fn hide(&self, key: &ProgressKey) -> Result<bool, ServiceError> {
        self.write(StoreOp::Hide, key, || self.store.hide(key)).await.map(|hidden| hidden.is_some())
    }

    /// The profile's titles in progress, newest first: not finished, not
    /// hidden, not deleted, at most `limit`.
    pub async fn continue_watching(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, ServiceError> {
        // The store keeps the order (newest first, ties by video id) and
        // the membership (finished was decided when each was written).
        self.read(StoreOp::ContinueWatching, profile, self.store.continue_watching(profile, limit)).await
    }

    /// The profile's continue-watching row grouped by series
    /// ([`library::shelf`]): at most one item per series, and the
    /// standalone titles in progress, newest activity first, at most
    /// `limit`.
    pub async fn continue_watching_by_series(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<library::ShelfItem>, ServiceError> {
        let standalone = self
            .read(StoreOp::ContinueWatching, profile, self.store.standalone_in_progress(profile, limit))
            .await?;
        // A series whose latest episode the viewer dismissed shows nothing:
        // read on until `limit` series show or none are left, so the cost
        // grows with the limit and the dismissed series, never with
        // episodes.
        let mut series = Vec::new();
        let (mut shown, mut after) = (0, None);
        loop {
            let page = self
                .read(
                    StoreOp::SeriesActivity,
                    profile,
                    self.store.series_activity(profile, after.as_ref(), limit),
                )
                .await?;
            let full = page.len() == limit;
            shown += page.iter().filter(|a| library::series_item(a).is_some()).count();
            after = page.last().map(|a| (a.pointer.at, a.series.clone()));
            series.extend(page);
            if !full || shown >= limit {
                break;
            }
        }
        Ok(library::shelf(standalone, &series, limit))
    }

    /// A page of the profile's history: at most `limit` finished titles
    /// after `after`, newest finish first, and the cursor of the next page
    /// (`None` when nothing follows).
    pub async fn history(
        &self,
        profile: &ProfileKey,
        after: Option<HistoryCursor>,
        limit: usize,
    ) -> Result<(Vec<(VideoId, Progress)>, Option<HistoryCursor>), ServiceError> {
        // One more than asked tells whether another page follows.
        let read = self.store.history(profile, after.as_ref(), limit.saturating_add(1));
        let mut rows = self.read(StoreOp::History, profile, read).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next =
            if more { rows.last().and_then(|(video, p)| HistoryCursor::after(video, p)) } else { None };
        Ok((rows, next))
    }

    /// Forgets a title for the profile; older checkpoints cannot bring it back.
    pub async fn delete(&self, key: &ProgressKey) -> Result<(), ServiceError> {
        let now = now();
        self.write(StoreOp::Delete, key, || self.store.delete(key, now)).await.map(drop)
    }

    /// Purges up to `limit` entries untouched for `ttl`. Returns how many;
    /// fewer than `limit` means nothing idle is left.
    pub async fn expire(&self, ttl: Duration, limit: usize) -> Result<usize, StoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let purged = self
            .housekeeping(StoreOp::Expire, self.store.expire(now().saturating_sub_millis(ttl_ms), limit))
            .await?;
        self.metrics.expired.inc_by(purged as u64);
        Ok(purged)
    }

    /// Purges up to `limit` of the least recently written titles of
    /// profiles over `max_titles`. Returns how many; fewer than `limit`
    /// means no profile is over the cap.
    pub async fn trim(&self, max_titles: usize, limit: usize) -> Result<usize, StoreError> {
        let trimmed = self.housekeeping(StoreOp::Trim, self.store.trim(max_titles, limit)).await?;
        self.metrics.trimmed.inc_by(trimmed as u64);
        Ok(trimmed)
    }

    /// A sweeper's store call, measured (no deadline: it runs beside the
    /// traffic, in small batches).
    async fn housekeeping(
        &self,
        op: StoreOp,
        call: impl Future<Output = Result<Vec<ProgressKey>, StoreError>>,
    ) -> Result<usize, StoreError> {
        let started = Instant::now();
        let result = call.await;
        let label = if result.is_ok() { "ok" } else { "error" };
        self.metrics.store_op(self.store.backend(), op.as_str(), label, started.elapsed());
        result.map(|keys| keys.len())
    }

    /// Asks every dependency whether it answers (each within the read
    /// timeout, all at once).
    pub async fn readiness(&self) -> Readiness {
        let deadline = self.options.read_timeout;
        let timed = |name, call| probe(name, deadline, call);
        let mut checks =
            vec![timed("store", Box::pin(async { self.store.ping().await.map_err(|e| e.to_string()) }))];
        if let Some(cache) = &self.cache {
            checks
                .push(timed("cache", Box::pin(async move { cache.ping().await.map_err(|e| e.to_string()) })));
        }
        if let Some(events) = &self.events {
            let sink = events.sink();
            checks
                .push(timed("events", Box::pin(async move { sink.ping().await.map_err(|e| e.to_string()) })));
        }
        Readiness { checks: futures::future::join_all(checks).await }
    }

    /// Publishes queued events and closes the store (finishing its writes).
    pub async fn close(&self) -> Result<(), StoreError> {
        if let Some(events) = &self.events {
            events.close().await;
        }
        self.store.close().await
    }

    /// One store call under a deadline, measured.
    async fn timed<T>(
        &self,
        op: StoreOp,
        deadline: Duration,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let backend = self.store.backend();
        let started = Instant::now();
        let (label, result) = match tokio::time::timeout(deadline, call).await {
            Ok(Ok(v)) => ("ok", Ok(v)),
            Ok(Err(e)) => ("error", Err(e)),
            Err(_) => ("timeout", Err(StoreError::Timeout { backend })),
        };
        self.metrics.store_op(backend, op.as_str(), label, started.elapsed());
        result
    }

    async fn read<T>(
        &self,
        op: StoreOp,
        subject: &(dyn std::fmt::Display + Sync),
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ServiceError> {
        self.timed(op, self.options.read_timeout, call).await.map_err(|e| self.fail(op, subject, e))
    }

    /// A write with bounded retries inside the write budget.
    async fn write<T, F, Fut>(
        &self,
        op: StoreOp,
        subject: &(dyn std::fmt::Display + Sync),
        mut attempt: F,
    ) -> Result<T, ServiceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let deadline = Instant::now() + self.options.write_timeout;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.timed(op, remaining, attempt()).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() => {
                    // Full jitter: spread retries of many clients apart.
                    let pause = backoff.mul_f64(fastrand::f64());
                    if Instant::now() + pause >= deadline {
                        return Err(self.fail(op, subject, e));
                    }
                    self.metrics.store_retries.inc();
                    tracing::debug!(op = op.as_str(), error = %e, ?pause, "retrying store write");
                    tokio::time::sleep(pause).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(e) => return Err(self.fail(op, subject, e)),
            }
        }
    }

    /// Turns a store failure into the service error of its kind, logged
    /// once here with what it was about (`subject`: a key or a profile).
    fn fail(&self, op: StoreOp, subject: &(dyn std::fmt::Display + Sync), e: StoreError) -> ServiceError {
        let backend = self.store.backend();
        let reason = match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        };
        let op_name = op.as_str();
        match e {
            StoreError::Unavailable { .. } | StoreError::Timeout { .. } => {
                self.metrics.unavailable.inc();
                tracing::warn!(op = op_name, key = %subject, error = %reason, "store call failed; answering 503");
                ServiceError::Unavailable { backend, op, reason }
            }
            StoreError::Corrupt { detail, .. } => {
                tracing::error!(op = op_name, key = %subject, error = %reason, "the store holds a record it cannot read; answering 500");
                ServiceError::Corrupt { backend, detail }
            }
            // Adapters map every failure a retry can fix (I/O, a full disk,
            // a lost connection) to Unavailable or Timeout; what is left is
            // a bug.
            _ => {
                tracing::error!(op = op_name, key = %subject, error = %reason, "store call failed; answering 500");
                ServiceError::Internal { backend, reason }
            }
        }
    }
}
