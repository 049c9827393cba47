//! Group commit: one writer thread turns many concurrent writes into one
//! durable log append.
//!
//! The writer takes the first queued command, drains whatever else is
//! already waiting (up to a batch limit), and applies them in arrival order
//! against a *group overlay* (so later writes in the group see earlier
//! ones): each applied write becomes row images — the row, its
//! continue-watching key, the profile's count. The group's images are
//! appended to the log and `fdatasync`ed once, applied to the memtable, and
//! only then is every caller answered. An fsync costs the same for one row
//! as for a thousand, so under load groups grow by themselves.
//!
//! Between groups the writer also starts checkpoints: when the memtable is
//! big or old enough, it begins a new log segment and freezes the memtable
//! for the checkpoint thread ([`super::checkpoint`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use playmark_core::library::SeriesPointer;
use playmark_core::{
    Entry, Outcome, ProfileKey, Progress, ProgressKey, SeriesId, StaleGuard, Timestamp, VideoId,
};
use tokio::sync::{mpsc, oneshot};

use super::keys;
use super::memtable::View;
use super::rows::{self, Stored};
use super::wal::{Log, Mutation};
use crate::{StoreError, Written};

/// What the writer is asked to do.
// Nearly every command is an `Op`: boxing it would cost an allocation per
// write to shrink the rare ones.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// A write, batched with its neighbours.
    Op(Op),
    /// Start a checkpoint if anything is waiting for one (the checkpoint
    /// thread's timer).
    Checkpoint,
    /// Checkpoint what is written, then stop.
    Close(oneshot::Sender<()>),
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write inside a group.
pub(crate) enum Op {
    /// Conditionally write progress under a key.
    Upsert {
        key: ProgressKey,
        progress: Progress,
        now: Timestamp,
        guard: Option<StaleGuard>,
        reply: Reply<Written>,
    },
    /// Hide the live record under a key.
    Hide { key: ProgressKey, reply: Reply<Option<Progress>> },
    /// Replace what stands under a key with a tombstone.
    Delete { key: ProgressKey, now: Timestamp, reply: Reply<Written> },
    /// Remove rows still untouched since `cutoff` (checked again here).
    Expire { rows: Vec<Vec<u8>>, cutoff: Timestamp, reply: Reply<Vec<ProgressKey>> },
    /// Remove rows of a profile over its cap (if they are still there).
    Trim { rows: Vec<Vec<u8>>, reply: Reply<Vec<ProgressKey>> },
    /// A readiness probe: a small durable write.
    Probe { now: Timestamp, reply: Reply<()> },
}

/// The size of a readiness probe's write.
const PROBE_BYTES: usize = 16 * 1024;

/// An answer held back until the group is durable.
enum Pending {
    Written(Reply<Written>, Result<Written, StoreError>),
    Hidden(Reply<Option<Progress>>, Result<Option<Progress>, StoreError>),
    Removed(Reply<Vec<ProgressKey>>, Result<Vec<ProgressKey>, StoreError>),
    Probed(Reply<()>, Result<(), StoreError>),
}

impl Pending {
    /// Sends the answer, or `failure` in place of a success that is not
    /// durable. A caller that gave up has dropped its receiver; there is
    /// nobody left to tell.
    fn send(self, failure: Option<&dyn Fn() -> StoreError>) {
        fn answer<T>(tx: Reply<T>, result: Result<T, StoreError>, failure: Option<&dyn Fn() -> StoreError>) {
            let result = match (result, failure) {
                (Ok(_), Some(fail)) => Err(fail()),
                (result, _) => result,
            };
            let _ = tx.send(result);
        }
        match self {
            Pending::Written(tx, r) => answer(tx, r, failure),
            Pending::Hidden(tx, r) => answer(tx, r, failure),
            Pending::Removed(tx, r) => answer(tx, r, failure),
            Pending::Probed(tx, r) => answer(tx, r, failure),
        }
    }
}

/// When to checkpoint, and when to hold writers back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointPolicy {
    /// Checkpoint once the memtable holds this many bytes...
    pub bytes: usize,
    /// ...or has been filling this long.
    pub interval: Duration,
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub view: Arc<View>,
    pub log: Log,
    pub rx: mpsc::Receiver<Command>,
    pub max_batch: usize,
    pub policy: CheckpointPolicy,
    /// Where frozen memtables go: `(table, the last LSN it holds)`.
    pub checkpoints: std::sync::mpsc::Sender<super::checkpoint::Job>,
}

impl Writer {
    /// Runs until every sender is gone or a `Close` arrives.
    pub(crate) fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut close = None;
        while close.is_none() {
            let Some(first) = self.rx.blocking_recv() else { break };
            let mut next = Some(first);
            let mut checkpoint = false;
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Op(op) => batch.push(op),
                    Command::Checkpoint => checkpoint = true,
                    Command::Close(reply) => {
                        close = Some(reply);
                        break;
                    }
                }
                if batch.len() < self.max_batch {
                    next = self.rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit(&mut batch);
            }
            self.maybe_checkpoint(checkpoint || close.is_some());
        }
        // Writes queued after a Close are dropped unanswered: their callers
        // see the store as closed.
        self.rx.close();
        if let Some(reply) = close {
            let _ = reply.send(());
        }
        tracing::debug!("embedded store writer stopped");
    }

    /// Applies a batch as one group, makes it durable, answers it.
    fn commit(&mut self, batch: &mut Vec<Op>) {
        let size = batch.len();
        let mut group = Group { view: &self.view, overlay: BTreeMap::new() };
        let pending: Vec<Pending> = batch.drain(..).map(|op| group.apply(op)).collect();
        let mutations: Vec<Mutation> =
            group.overlay.into_iter().map(|(key, value)| Mutation { key, value }).collect();
        if mutations.is_empty() {
            pending.into_iter().for_each(|p| p.send(None));
            return;
        }
        match self.log.append(&mutations) {
            Ok(_) => {
                // Readers must see the group before anyone hears of it.
                self.view.tables.write().unwrap_or_else(std::sync::PoisonError::into_inner).apply(mutations);
                pending.into_iter().for_each(|p| p.send(None));
            }
            Err(reason) => {
                tracing::error!(error = %reason, batch = size, "embedded store log append failed; nothing in the group was acknowledged");
                let fail =
                    move || StoreError::Unavailable { backend: super::BACKEND, reason: reason.clone() };
                pending.into_iter().for_each(|p| p.send(Some(&fail)));
            }
        }
    }

    /// Starts a checkpoint when one is due (or `now`), and holds the writer
    /// back while the memtable is far over its size and the last
    /// checkpoint has not finished.
    fn maybe_checkpoint(&mut self, now: bool) {
        let (bytes, since, frozen) = {
            let tables = self.view.tables.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (bytes, since) = tables.active_size();
            (bytes, since, tables.is_frozen())
        };
        if frozen {
            if bytes > self.policy.bytes.saturating_mul(4) {
                let started = Instant::now();
                tracing::warn!(
                    bytes,
                    "the memtable is 4x its checkpoint size and a checkpoint is still running: holding writes"
                );
                while self.view.tables.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_frozen() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                tracing::warn!(waited = ?started.elapsed(), "writes resumed");
            }
            return;
        }
        let due =
            now || bytes >= self.policy.bytes || since.is_some_and(|s| s.elapsed() >= self.policy.interval);
        if bytes == 0 || !due {
            return;
        }
        match self.log.rotate() {
            Ok(first) => {
                let upto = first - 1;
                let table =
                    self.view.tables.write().unwrap_or_else(std::sync::PoisonError::into_inner).freeze(upto);
                if self.checkpoints.send(super::checkpoint::Job { table, upto }).is_err() {
                    tracing::error!(
                        "the checkpoint thread is gone; the log keeps everything until a restart"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot start a new log segment; the checkpoint waits"),
        }
    }
}

/// One group being built: its changes, over what the view holds.
struct Group<'a> {
    view: &'a View,
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Group<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.view.get(key),
        }
    }

    fn set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.overlay.insert(key, value);
    }

    fn row(&self, key: &[u8]) -> Result<Option<Stored>, StoreError> {
        self.get(key)?.map(|v| rows::decode(&v)).transpose()
    }

    fn apply(&mut self, op: Op) -> Pending {
        match op {
            Op::Upsert { key, progress, now, guard, reply } => {
                Pending::Written(reply, self.upsert(&key, progress, now, guard))
            }
            Op::Delete { key, now, reply } => Pending::Written(reply, self.delete(&key, now)),
            Op::Hide { key, reply } => Pending::Hidden(reply, self.hide(&key)),
            Op::Expire { rows, cutoff, reply } => {
                Pending::Removed(reply, self.remove(&rows, |s| s.touched_at < cutoff))
            }
            Op::Trim { rows, reply } => Pending::Removed(reply, self.remove(&rows, |_| true)),
            Op::Probe { now, reply } => {
                // As big as a large group, so a disk with a few bytes left
                // does not pass for one that can take writes.
                let mut value = vec![0; PROBE_BYTES];
                value[..8].copy_from_slice(&now.as_millis().to_le_bytes());
                self.set(keys::PROBE.to_vec(), Some(value));
                Pending::Probed(reply, Ok(()))
            }
        }
    }

    /// The conditional write: read what stands, merge, check the guard,
    /// write only if applied.
    fn upsert(
        &mut self,
        key: &ProgressKey,
        progress: Progress,
        now: Timestamp,
        guard: Option<StaleGuard>,
    ) -> Result<Written, StoreError> {
        let row_key = keys::row(key);
        let standing = self.row(&row_key)?.map(|s| s.entry);
        let incoming = Entry::Live(progress);
        let mut outcome = Entry::merge(standing.as_ref(), &incoming);
        if let (Outcome::Applied, Some(guard), Some(s), Entry::Live(p)) =
            (outcome, guard, &standing, &incoming)
            && guard.refuses(s, p)
        {
            outcome = Outcome::Conflict;
        }
        if outcome != Outcome::Applied {
            return Ok(Written { outcome, standing: standing.unwrap_or(incoming) });
        }
        let Entry::Live(p) = incoming else { unreachable!("built live above") };
        let stored = Entry::Live(p.carry(standing.as_ref()));
        self.put_row(key, row_key, standing.as_ref(), Some((&stored, now)))?;
        Ok(Written { outcome, standing: stored })
    }

    fn delete(&mut self, key: &ProgressKey, now: Timestamp) -> Result<Written, StoreError> {
        let row_key = keys::row(key);
        let standing = self.row(&row_key)?.map(|s| s.entry);
        let tombstone = Entry::tombstone(standing.as_ref(), now);
        let outcome = Entry::merge(standing.as_ref(), &tombstone);
        if outcome != Outcome::Applied {
            return Ok(Written { outcome, standing: standing.unwrap_or(tombstone) });
        }
        self.put_row(key, row_key, standing.as_ref(), Some((&tombstone, now)))?;
        Ok(Written { outcome, standing: tombstone })
    }

    fn hide(&mut self, key: &ProgressKey) -> Result<Option<Progress>, StoreError> {
        let row_key = keys::row(key);
        let Some(Stored { entry: Entry::Live(p), touched_at }) = self.row(&row_key)? else { return Ok(None) };
        let hidden = Entry::Live(Progress { hidden: true, ..p.clone() });
        self.put_row(key, row_key, Some(&Entry::Live(p)), Some((&hidden, touched_at)))?;
        Ok(hidden.live().cloned())
    }

    /// Removes the rows that still exist and that `remove` picks.
    fn remove(
        &mut self,
        rows: &[Vec<u8>],
        remove: impl Fn(&Stored) -> bool,
    ) -> Result<Vec<ProgressKey>, StoreError> {
        let mut removed = Vec::with_capacity(rows.len());
        for row_key in rows {
            // A corrupt row is left alone for a person to inspect.
            let Ok(Some(stored)) = self.row(row_key) else { continue };
            if !remove(&stored) {
                continue;
            }
            let key = keys::decode_row(row_key)?;
            self.put_row(&key, row_key.clone(), Some(&stored.entry), None)?;
            removed.push(key);
        }
        Ok(removed)
    }

    /// Replaces the row `old` with `new` (or removes it), keeping the
    /// orders (continue-watching, episodes, history, series activity) and
    /// the profile's count in step.
    fn put_row(
        &mut self,
        key: &ProgressKey,
        row_key: Vec<u8>,
        old: Option<&Entry>,
        new: Option<(&Entry, Timestamp)>,
    ) -> Result<(), StoreError> {
        let profile = key.profile();
        let video = key.video_id.as_str();
        if let Some(p) = old.and_then(Entry::live) {
            for (kind, at) in orders_of(p) {
                self.set(keys::timed(kind, &profile, at, video), None);
            }
        }
        match new {
            Some((entry, touched_at)) => {
                let bytes = rows::encode(entry, touched_at);
                if let Some(p) = entry.live() {
                    for (kind, at) in orders_of(p) {
                        self.set(keys::timed(kind, &profile, at, video), Some(bytes.clone()));
                    }
                    // A hide rewrites the same checkpoint: no new activity.
                    let rewrite = old
                        .and_then(Entry::live)
                        .is_some_and(|o| o.checkpoint_cmp(p).is_eq() && o.series == p.series);
                    if let (Some(series), false) = (&p.series, rewrite) {
                        self.point(&profile, &series.id, p.updated_at, &key.video_id)?;
                    }
                }
                self.set(row_key, Some(bytes));
                if old.is_none() {
                    self.count(&profile, 1)?;
                }
            }
            None => {
                if let Some(series) = old.and_then(Entry::live).and_then(|p| p.series.as_ref()) {
                    self.unpoint(&profile, &series.id, &key.video_id)?;
                }
                self.set(row_key, None);
                if old.is_some() {
                    self.count(&profile, -1)?;
                }
            }
        }
        Ok(())
    }

    /// Moves the series' pointer to an applied write of `video` at `at`, if
    /// [`SeriesPointer::moves`] says so, and its activity key with it.
    fn point(
        &mut self,
        profile: &ProfileKey,
        series: &SeriesId,
        at: Timestamp,
        video: &VideoId,
    ) -> Result<(), StoreError> {
        let pointer_key = keys::series(profile, series);
        let current = self.get(&pointer_key)?.map(|v| keys::decode_pointer(&v)).transpose()?;
        if !SeriesPointer::moves(current.as_ref(), at, video) {
            return Ok(());
        }
        if let Some(current) = current {
            self.set(keys::timed(keys::ACTIVITY, profile, current.at, series.as_str()), None);
        }
        let pointer = SeriesPointer { at, video_id: video.clone() };
        self.set(
            keys::timed(keys::ACTIVITY, profile, at, series.as_str()),
            Some(video.as_str().as_bytes().to_vec()),
        );
        self.set(pointer_key, Some(keys::encode_pointer(&pointer)));
        Ok(())
    }

    /// Drops the series' pointer if it names `video`, a row being purged.
    fn unpoint(
        &mut self,
        profile: &ProfileKey,
        series: &SeriesId,
        video: &VideoId,
    ) -> Result<(), StoreError> {
        let pointer_key = keys::series(profile, series);
        let Some(current) = self.get(&pointer_key)?.map(|v| keys::decode_pointer(&v)).transpose()? else {
            return Ok(());
        };
        if current.video_id == *video {
            self.set(keys::timed(keys::ACTIVITY, profile, current.at, series.as_str()), None);
            self.set(pointer_key, None);
        }
        Ok(())
    }

    /// Adds `delta` to the profile's row count, and moves it in the
    /// by-count order.
    fn count(&mut self, profile: &ProfileKey, delta: i64) -> Result<(), StoreError> {
        let key = keys::count(profile);
        let old = self.get(&key)?.map(|v| keys::decode_count(&v)).transpose()?.unwrap_or(0);
        let new = old.saturating_add_signed(delta);
        if old > 0 {
            self.set(keys::by_count(old, profile), None);
        }
        if new > 0 {
            self.set(keys::by_count(new, profile), Some(Vec::new()));
            self.set(key, Some(keys::encode_count(new)));
        } else {
            self.set(key, None);
        }
        Ok(())
    }
}

/// The orders a live row has a key in, and the time of each: standalone
/// titles or episodes in progress by `updated_at`, finished titles by
/// their finish time.
pub(crate) fn orders_of(p: &Progress) -> impl Iterator<Item = (u8, Timestamp)> {
    let shelf =
        p.in_progress().then(|| (if p.series.is_some() { keys::EPISODES } else { keys::CW }, p.updated_at));
    let history = p.finish_time().map(|at| (keys::HISTORY, at));
    shelf.into_iter().chain(history)
}

/// The video id and progress of a continue-watching entry.
pub(crate) fn cw_entry(
    key: &[u8],
    value: &[u8],
    prefix_len: usize,
) -> Result<(VideoId, Progress), StoreError> {
    let video = keys::decode_cw_video(key, prefix_len)?;
    match rows::decode(value)?.entry {
        Entry::Live(p) => Ok((video, p)),
        Entry::Deleted { .. } => Err(StoreError::Corrupt {
            backend: super::BACKEND,
            detail: "a continue-watching entry holds a tombstone".into(),
        }),
    }
}
