//! The service layer: the brief's write flow and read flow, over any store.
//!
//! Handlers call this and nothing else. It owns the policy the adapters don't:
//! the skew clamp on client clocks, deadlines on every store call, bounded
//! retries with exponential backoff and jitter for writes (safe because every
//! write is a conditional merge: a replay is a `duplicate`), and metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use playmark_core::{
    Checkpoint, EventTime, HandoffConfig, Outcome, Position, ProfileKey, Progress, ProgressKey,
    ResumeDecision, ResumePolicy, Timestamp, VideoId,
};
use playmark_store::{ProgressCache, ProgressEvent, ProgressStore, StoreError};

use crate::events::Publisher;
use crate::metrics::{Metrics, OutcomeLabels};

/// The first pause before a write is retried; doubled on every further try.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// The store could not serve a request within its deadline. Nothing was
/// acknowledged; the client may retry (its next checkpoint reconciles).
#[derive(Debug, thiserror::Error)]
#[error("the {backend} store could not {op} in time: {reason}")]
pub struct Unavailable {
    /// Which backend.
    pub backend: &'static str,
    /// The operation that failed.
    pub op: &'static str,
    /// Why, for the log.
    pub reason: String,
}

impl Unavailable {
    /// How long clients should wait before retrying.
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs(1)
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
    pub async fn update(&self, checkpoint: Checkpoint) -> Result<Update, Unavailable> {
        let now = now();
        let time = EventTime::resolve(checkpoint.client_time, now, self.options.max_skew_ms);
        if time.clamped {
            self.metrics.clocks_clamped.inc();
            tracing::debug!(device = %checkpoint.device_id, "client clock too far ahead; using the server's");
        }
        let progress = checkpoint.progress_at(time.at);
        let key = &checkpoint.key;
        let guard = checkpoint.guard(self.options.stale_guard_ms);
        let written = self.write("upsert", || self.store.upsert(key, progress.clone(), now, guard)).await?;
        let progress = match &written.standing {
            playmark_core::Entry::Live(p) => p.clone(),
            playmark_core::Entry::Deleted { .. } => progress,
        };
        self.metrics.checkpoints.get_or_create(&OutcomeLabels { outcome: written.outcome.as_str() }).inc();
        if let (Outcome::Applied, Some(events)) = (written.outcome, &self.events) {
            events.offer(ProgressEvent { key: key.clone(), progress });
        }
        Ok(Update { outcome: written.outcome, standing: written.standing.live().cloned() })
    }

    /// Where `key`'s profile should resume the title, on a device that
    /// knows `local` (its own position), if anything.
    pub async fn resume(&self, key: &ProgressKey, local: Option<Position>) -> Result<Resume, Unavailable> {
        let entry = self.read("get", self.store.get(key)).await?;
        let record = entry.and_then(|e| e.live().cloned());
        let handoff = self.options.handoff.decide(&self.options.policy, record.as_ref(), local);
        Ok(Resume { record, decision: handoff.decision, alternative: handoff.alternative })
    }

    /// Hides a title from the profile's continue-watching row, keeping its
    /// progress. Returns whether there was progress to hide.
    pub async fn hide(&self, key: &ProgressKey) -> Result<bool, Unavailable> {
        self.write("hide", || self.store.hide(key)).await
    }

    /// The profile's titles in progress, newest first: not finished, not
    /// hidden, not deleted, at most `limit`.
    pub async fn continue_watching(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, Unavailable> {
        let mut rows = self.read("list_profile", self.store.list_profile(profile)).await?;
        rows.retain(|(_, p)| !p.hidden && !self.options.policy.is_finished(p));
        // Newest first; the video id makes equal times come out the same way
        // on every call.
        rows.sort_unstable_by(|(va, a), (vb, b)| b.updated_at.cmp(&a.updated_at).then_with(|| va.cmp(vb)));
        rows.truncate(limit);
        Ok(rows)
    }

    /// Forgets a title for the profile; older checkpoints cannot bring it back.
    pub async fn delete(&self, key: &ProgressKey) -> Result<(), Unavailable> {
        let now = now();
        self.write("delete", || self.store.delete(key, now)).await.map(drop)
    }

    /// Purges entries untouched for `ttl`. Returns how many.
    pub async fn expire(&self, ttl: Duration) -> Result<u64, StoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let started = Instant::now();
        let result = self.store.expire(now().saturating_sub_millis(ttl_ms)).await;
        let label = if result.is_ok() { "ok" } else { "error" };
        self.metrics.store_op(self.store.backend(), "expire", label, started.elapsed());
        if let Ok(n) = result {
            self.metrics.expired.inc_by(n);
        }
        result
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
        op: &'static str,
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
        self.metrics.store_op(backend, op, label, started.elapsed());
        result
    }

    async fn read<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, Unavailable> {
        self.timed(op, self.options.read_timeout, call).await.map_err(|e| self.unavailable(op, e))
    }

    /// A write with bounded retries inside the write budget.
    async fn write<T, F, Fut>(&self, op: &'static str, mut attempt: F) -> Result<T, Unavailable>
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
                        return Err(self.unavailable(op, e));
                    }
                    self.metrics.store_retries.inc();
                    tracing::debug!(op, error = %e, ?pause, "retrying store write");
                    tokio::time::sleep(pause).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(e) => return Err(self.unavailable(op, e)),
            }
        }
    }

    fn unavailable(&self, op: &'static str, e: StoreError) -> Unavailable {
        self.metrics.unavailable.inc();
        let reason = match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        };
        tracing::warn!(op, error = %reason, "store call failed; answering 503");
        Unavailable { backend: self.store.backend(), op, reason }
    }
}
