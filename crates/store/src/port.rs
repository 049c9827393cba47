//! The storage port.

use async_trait::async_trait;
use playmark_core::library::{HistoryCursor, SeriesActivity};
use playmark_core::{
    Entry, Outcome, ProfileKey, Progress, ProgressKey, SeriesId, StaleGuard, Timestamp, VideoId,
};

use crate::StoreError;

/// The result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// What happened to the write.
    pub outcome: Outcome,
    /// The entry that stands now: the write itself when applied, otherwise
    /// whatever beat it.
    pub standing: Entry,
}

/// A durable home for progress entries, keyed by [`ProgressKey`] and
/// partitioned by [`ProfileKey`].
///
/// Every write is conditional under the core merge rule
/// ([`Entry::merge`]) and applied atomically by the backend, so concurrent
/// writers and retries can never put an older entry over a newer one. A write
/// returns only once it is durable. An applied write stores
/// [`Progress::carry`] of what stood (the series and the finish time carried
/// over), decided inside the same atomic step.
///
/// Besides the rows, a store keeps the orders its reads walk, each read
/// only as far as its limit: continue-watching (all titles, and standalone
/// titles alone), history (finish time), and series activity (a
/// [`playmark_core::library::SeriesPointer`] per series, moved by
/// [`playmark_core::library::SeriesPointer::moves`] on every applied write
/// of an episode).
///
/// `now` arguments are the server's clock: stores remember when each entry was
/// last touched so [`ProgressStore::expire`] can purge idle ones.
#[async_trait]
pub trait ProgressStore: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and metrics, e.g. `embedded`.
    fn backend(&self) -> &'static str;

    /// Writes `progress` under `key` if it is newer than what stands and,
    /// when a `guard` is given, the guard does not refuse it
    /// ([`StaleGuard::refuses`], checked atomically with the write; a refusal
    /// is [`Outcome::Conflict`]).
    async fn upsert(
        &self,
        key: &ProgressKey,
        progress: Progress,
        now: Timestamp,
        guard: Option<StaleGuard>,
    ) -> Result<Written, StoreError>;

    /// The entry under `key`, tombstones included.
    async fn get(&self, key: &ProgressKey) -> Result<Option<Entry>, StoreError>;

    /// The profile's titles in progress — live, not hidden, not finished —
    /// newest `updated_at` first, ties by video id ascending; at most
    /// `limit`. Served from an order the store keeps, so its cost grows with
    /// `limit`, not with the profile's size.
    async fn continue_watching(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError>;

    /// As [`ProgressStore::continue_watching`], but only titles without a
    /// series: the standalone part of the row grouped by series. Its cost
    /// grows with `limit`, not with the profile's episodes.
    async fn standalone_in_progress(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError>;

    /// The profile's finished titles (live, finished, hidden or not),
    /// newest finish ([`Progress::finish_time`]) first, ties by video id
    /// ascending; only those after `after` when given
    /// ([`HistoryCursor::precedes`]); at most `limit`.
    async fn history(
        &self,
        profile: &ProfileKey,
        after: Option<&HistoryCursor>,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError>;

    /// The profile's series by latest activity: pointer time newest first,
    /// ties by series id ascending; only those after `after` (the last
    /// series of the previous page: its pointer time and id) when given; at
    /// most `limit`. Each comes with the entry standing now under the
    /// episode its pointer names (none if purged); what that means is
    /// decided by [`playmark_core::library::series_item`].
    async fn series_activity(
        &self,
        profile: &ProfileKey,
        after: Option<&(Timestamp, SeriesId)>,
        limit: usize,
    ) -> Result<Vec<SeriesActivity>, StoreError>;

    /// Replaces whatever stands under `key` with a tombstone
    /// ([`Entry::tombstone`]), so older checkpoints cannot bring it back.
    async fn delete(&self, key: &ProgressKey, now: Timestamp) -> Result<Written, StoreError>;

    /// Hides the live record under `key` from continue-watching, keeping its
    /// progress. Returns the record as it stands now (hidden), or `None`
    /// when there is no live record.
    async fn hide(&self, key: &ProgressKey) -> Result<Option<Progress>, StoreError>;

    /// Purges up to `limit` entries and tombstones last touched before
    /// `untouched_since`, and returns their keys. One call is one small batch,
    /// so live traffic is never held up; the caller repeats until fewer than
    /// `limit` come back.
    async fn expire(&self, untouched_since: Timestamp, limit: usize) -> Result<Vec<ProgressKey>, StoreError>;

    /// Bounds every profile's storage: of each profile with more than
    /// `max_titles` rows (tombstones included), purges the least recently
    /// written rows down to `max_titles`, at most `limit` in one call, and
    /// returns their keys. Profiles over the cap are found without scanning
    /// every row. The caller repeats until fewer than `limit` come back.
    async fn trim(&self, max_titles: usize, limit: usize) -> Result<Vec<ProgressKey>, StoreError>;

    /// Succeeds when the store can serve reads and writes (stores that can,
    /// prove it with a write).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Finishes every accepted write and stops taking new ones. Called once,
    /// at shutdown.
    async fn close(&self) -> Result<(), StoreError>;
}
