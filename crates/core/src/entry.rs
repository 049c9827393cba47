//! What a store holds for one key, and the rule that decides which write wins.
//!
//! The rule is last-write-wins on `updated_at`, made a *total* order so every
//! backend and every replica breaks ties the same way: writes compare as
//! `(updated_at, kind, device_id, position, duration)`, where at the same
//! millisecond a deletion outranks a checkpoint ([`Entry::conflict_cmp`]).
//! That order alone decides a write's [`Outcome`].
//!
//! `hidden` is not part of it: hiding changes no checkpoint, so replaying the
//! checkpoint a hide applied to is a `duplicate`, and does not unhide it. The
//! stored state is ordered by the conflict order *then* `hidden` (the derived
//! [`Ord`]): hiding moves an entry up without making any checkpoint newer.
//! Merging is taking the maximum under that order, which makes it
//! commutative, associative and idempotent: any arrival order of the same
//! writes and hides ends in the same entry. Caches keep entries under the
//! same order, so a hidden copy replaces an unhidden copy of the same
//! checkpoint, never the other way round.

use std::cmp::Ordering;

use crate::{DeviceId, Duration, Position, SeriesId, Timestamp};

/// One checkpoint's worth of progress: where a profile is in a title.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Progress {
    /// When the viewer was at `position` (after the skew clamp).
    pub updated_at: Timestamp,
    /// The device that reported it.
    pub device_id: DeviceId,
    /// How far into the title.
    pub position: Position,
    /// The title's length, when the player knew it.
    pub duration: Option<Duration>,
    /// Hidden from continue-watching by the viewer; the next applied
    /// checkpoint (which is never hidden) shows the title again.
    pub hidden: bool,
    /// Watched to the end: decided when the checkpoint is written (by the
    /// service's resume policy) and kept, so continue-watching is an order
    /// the store keeps rather than a filter of the whole profile.
    pub finished: bool,
    /// The series the title belongs to, as the player said. Carried from
    /// the standing record when a write does not say ([`Progress::carry`]).
    pub series: Option<Series>,
    /// When the title first became finished: kept while it stays finished,
    /// cleared when it does not ([`Progress::carry`]). The history order.
    pub finished_at: Option<Timestamp>,
}

/// Where a title stands in a series: the player's own naming, since
/// playmark keeps no catalog.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Series {
    /// The series.
    pub id: SeriesId,
    /// The title's ordinal in it (0 to [`Series::MAX_EPISODE`]).
    pub episode: u32,
}

impl Series {
    /// The largest episode ordinal accepted: 2^31 - 1, which every client
    /// language holds as a plain integer.
    pub const MAX_EPISODE: u32 = i32::MAX as u32;
}

/// What a store keeps under a key: live progress, or a tombstone that remembers
/// when the title was forgotten so an older checkpoint cannot bring it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entry {
    /// The standing progress.
    Live(Progress),
    /// The title was deleted at `at`.
    Deleted {
        /// When the deletion took effect.
        at: Timestamp,
    },
}

/// What happened to an incoming write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It was newer than what stood, and now stands.
    Applied,
    /// Something newer already stands; the write changed nothing.
    Stale,
    /// The very same entry already stands (a retry); nothing changed.
    Duplicate,
    /// Newer, but refused by the stale-device guard ([`StaleGuard`]):
    /// nothing changed, and the player should ask the viewer.
    Conflict,
}

impl Progress {
    /// True when the title belongs in continue-watching: not hidden, not
    /// finished.
    pub fn in_progress(&self) -> bool {
        !self.hidden && !self.finished
    }

    /// What an applied write stores over the `standing` entry: the write,
    /// with the standing record's series when the write names none, and
    /// with the time the title first became finished — the standing one
    /// when both are finished, this write's when it finishes the title,
    /// none when it is not finished (a rewatch or an unwatched mark). A
    /// tombstone carries nothing: a forgotten title starts afresh.
    ///
    /// Every store applies this inside its atomic write, so the carried
    /// fields never race with another write.
    pub fn carry(mut self, standing: Option<&Entry>) -> Progress {
        let before = standing.and_then(Entry::live);
        if self.series.is_none() {
            self.series = before.and_then(|p| p.series.clone());
        }
        self.finished_at = if self.finished {
            Some(before.and_then(Progress::finish_time).unwrap_or(self.updated_at))
        } else {
            None
        };
        self
    }

    /// When the title first became finished, if it is finished. A record
    /// stored before finish times were kept counts from its last write.
    pub fn finish_time(&self) -> Option<Timestamp> {
        self.finished.then(|| self.finished_at.unwrap_or(self.updated_at))
    }
}

impl Entry {
    /// When this entry was written (the checkpoint's time, or the deletion's).
    pub fn updated_at(&self) -> Timestamp {
        match self {
            Entry::Live(p) => p.updated_at,
            Entry::Deleted { at } => *at,
        }
    }

    /// The live progress, or `None` for a tombstone.
    pub fn live(&self) -> Option<&Progress> {
        match self {
            Entry::Live(p) => Some(p),
            Entry::Deleted { .. } => None,
        }
    }

    /// The conflict rule: `(updated_at, kind, device_id, position,
    /// duration)`, a deletion above a checkpoint at the same millisecond.
    /// `hidden` plays no part (see the [module docs](self)).
    pub fn conflict_cmp(&self, other: &Entry) -> Ordering {
        self.updated_at().cmp(&other.updated_at()).then_with(|| match (self, other) {
            (Entry::Live(a), Entry::Live(b)) => a.checkpoint_cmp(b),
            (Entry::Live(_), Entry::Deleted { .. }) => Ordering::Less,
            (Entry::Deleted { .. }, Entry::Live(_)) => Ordering::Greater,
            (Entry::Deleted { .. }, Entry::Deleted { .. }) => Ordering::Equal,
        })
    }

    /// Decides what `incoming` does to the `standing` entry (if any), under
    /// the conflict rule.
    pub fn merge(standing: Option<&Entry>, incoming: &Entry) -> Outcome {
        match standing.map(|s| incoming.conflict_cmp(s)) {
            None | Some(Ordering::Greater) => Outcome::Applied,
            Some(Ordering::Equal) => Outcome::Duplicate,
            Some(Ordering::Less) => Outcome::Stale,
        }
    }

    /// The entry that stands after both `self` and `other` were written, in
    /// either order.
    pub fn join(self, other: Entry) -> Entry {
        self.max(other)
    }

    /// The tombstone that forgets whatever stands, as of `now`.
    ///
    /// A deletion must remove the title even when the standing checkpoint's
    /// time is ahead of the server's clock (client skew is tolerated), so the
    /// tombstone is placed just after the standing entry when needed.
    pub fn tombstone(standing: Option<&Entry>, now: Timestamp) -> Entry {
        let at = match standing {
            None => now,
            Some(Entry::Live(p)) => now.max(p.updated_at.saturating_add_millis(1)),
            Some(Entry::Deleted { at }) => now.max(*at),
        };
        Entry::Deleted { at }
    }
}

/// The stale-device guard: a precondition an update may carry on top of
/// last-write-wins.
///
/// A device that resumed from (or last wrote) the record of `resumed_from`
/// and then fell far behind a newer record written by *another* device is
/// most likely a forgotten TV still playing an old session: its write is
/// refused, so it cannot drag the viewer's progress backwards silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleGuard {
    /// The `updated_at` of the record the device last saw.
    pub resumed_from: Timestamp,
    /// How far behind the standing position the incoming one may be (ms).
    pub max_regression_ms: u64,
}

impl StaleGuard {
    /// True when `incoming` must not replace `standing`.
    pub fn refuses(&self, standing: &Entry, incoming: &Progress) -> bool {
        match standing {
            Entry::Live(s) => {
                s.updated_at > self.resumed_from
                    && s.device_id != incoming.device_id
                    && s.position.as_millis()
                        > incoming.position.as_millis().saturating_add(self.max_regression_ms)
            }
            Entry::Deleted { .. } => false,
        }
    }
}

impl Progress {
    /// The conflict rule between two checkpoints: `(updated_at, device_id,
    /// position, duration)`; `hidden` plays no part.
    pub fn checkpoint_cmp(&self, other: &Progress) -> Ordering {
        (self.updated_at, &self.device_id, self.position, self.duration).cmp(&(
            other.updated_at,
            &other.device_id,
            other.position,
            other.duration,
        ))
    }
}

/// The stored-state order: the conflict rule, then `hidden` (a hidden copy
/// of a checkpoint is above the unhidden one), then `finished` (derived
/// from the checkpoint, so it only differs if the policy changed between
/// two writes of the same checkpoint), then the carried fields (which a
/// store derives from the checkpoint and what stood, so two copies of one
/// stored checkpoint agree on them; they only keep the order total).
impl Ord for Progress {
    fn cmp(&self, other: &Self) -> Ordering {
        self.checkpoint_cmp(other)
            .then(self.hidden.cmp(&other.hidden))
            .then(self.finished.cmp(&other.finished))
            .then_with(|| self.series.cmp(&other.series))
            .then(self.finished_at.cmp(&other.finished_at))
    }
}

impl PartialOrd for Progress {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The stored-state order: the conflict rule, then `hidden`, then
/// `finished` (see [`Progress`]'s order).
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.conflict_cmp(other).then_with(|| match (self, other) {
            (Entry::Live(a), Entry::Live(b)) => a.cmp(b),
            _ => Ordering::Equal,
        })
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(at: u64, device: &str, pos_ms: u64) -> Entry {
        Entry::Live(Progress {
            updated_at: Timestamp::from_millis(at),
            device_id: DeviceId::parse(device).expect("valid device id"),
            position: Position::from_millis(pos_ms).expect("valid position"),
            duration: None,
            hidden: false,
            finished: false,
            series: None,
            finished_at: None,
        })
    }

    fn progress(at: u64, device: &str, pos_ms: u64) -> Progress {
        match live(at, device, pos_ms) {
            Entry::Live(p) => p,
            Entry::Deleted { .. } => unreachable!("live() builds live entries"),
        }
    }

    #[test]
    fn the_guard_refuses_only_a_far_behind_write_from_another_device_after_a_newer_record() {
        let standing = live(2_000, "phone", 1_800_000);
        let guard = StaleGuard { resumed_from: Timestamp::from_millis(1_000), max_regression_ms: 300_000 };
        assert!(guard.refuses(&standing, &progress(3_000, "tv", 600_000)));
        // Resumed from the standing record itself: a deliberate choice.
        let seen = StaleGuard { resumed_from: Timestamp::from_millis(2_000), ..guard };
        assert!(!seen.refuses(&standing, &progress(3_000, "tv", 600_000)));
        // The same device, or a small regression, or a deleted title: allowed.
        assert!(!guard.refuses(&standing, &progress(3_000, "phone", 600_000)));
        assert!(!guard.refuses(&standing, &progress(3_000, "tv", 1_500_000)));
        assert!(
            !guard.refuses(&Entry::Deleted { at: Timestamp::from_millis(2_000) }, &progress(3_000, "tv", 0))
        );
    }

    #[test]
    fn newer_write_is_applied_and_older_is_stale() {
        let old = live(1_000, "tv", 5_000);
        let new = live(2_000, "phone", 1_000);
        assert_eq!(Entry::merge(Some(&old), &new), Outcome::Applied);
        assert_eq!(Entry::merge(Some(&new), &old), Outcome::Stale);
        assert_eq!(Entry::merge(None, &old), Outcome::Applied);
    }

    #[test]
    fn exact_replay_is_a_duplicate() {
        let a = live(1_000, "tv", 5_000);
        assert_eq!(Entry::merge(Some(&a), &a.clone()), Outcome::Duplicate);
    }

    #[test]
    fn same_millisecond_ties_break_on_device_then_position() {
        let tv = live(1_000, "tv", 5_000);
        let phone = live(1_000, "phone", 9_000);
        // "tv" > "phone" byte-wise, so the TV wins whatever its position.
        assert_eq!(Entry::merge(Some(&phone), &tv), Outcome::Applied);
        assert_eq!(Entry::merge(Some(&tv), &phone), Outcome::Stale);
        let further = live(1_000, "tv", 6_000);
        assert_eq!(Entry::merge(Some(&tv), &further), Outcome::Applied);
    }

    #[test]
    fn a_checkpoint_older_than_a_deletion_cannot_resurrect_the_title() {
        let watched = live(1_000, "tv", 5_000);
        let gone = Entry::tombstone(Some(&watched), Timestamp::from_millis(2_000));
        assert_eq!(Entry::merge(Some(&gone), &live(1_500, "phone", 7_000)), Outcome::Stale);
        assert_eq!(Entry::merge(Some(&gone), &live(2_000, "phone", 7_000)), Outcome::Stale);
        assert_eq!(Entry::merge(Some(&gone), &live(2_001, "phone", 7_000)), Outcome::Applied);
    }

    #[test]
    fn deletion_wins_over_a_checkpoint_stamped_ahead_of_the_server_clock() {
        let ahead = live(10_000, "tv", 5_000);
        let gone = Entry::tombstone(Some(&ahead), Timestamp::from_millis(8_000));
        assert_eq!(gone, Entry::Deleted { at: Timestamp::from_millis(10_001) });
        assert_eq!(Entry::merge(Some(&ahead), &gone), Outcome::Applied);
    }

    #[test]
    fn a_replay_after_a_hide_is_a_duplicate_and_stays_hidden() {
        let shown = live(1_000, "tv", 5_000);
        let Entry::Live(p) = shown.clone() else { unreachable!("live() builds live entries") };
        let hidden = Entry::Live(Progress { hidden: true, ..p });
        assert_eq!(Entry::merge(Some(&hidden), &shown), Outcome::Duplicate);
        assert_eq!(hidden.clone().join(shown.clone()), hidden);
        assert!(hidden > shown, "a hidden copy replaces the unhidden one in caches");
        assert_eq!(Entry::merge(Some(&hidden), &live(1_001, "tv", 5_000)), Outcome::Applied);
    }

    fn episode(at: u64, n: u32, finished: bool) -> Progress {
        let series = Some(Series { id: SeriesId::parse("show").expect("valid"), episode: n });
        Progress { series, finished, ..progress(at, "tv", 1_000) }
    }

    #[test]
    fn a_write_without_a_series_keeps_the_standing_one_and_a_new_one_replaces_it() {
        let standing = Entry::Live(episode(1_000, 4, false));
        let plain = progress(2_000, "tv", 2_000).carry(Some(&standing));
        assert_eq!(plain.series.map(|s| s.episode), Some(4));
        let moved = episode(3_000, 7, false).carry(Some(&standing));
        assert_eq!(moved.series.map(|s| s.episode), Some(7));
        let after_deletion =
            progress(4_000, "tv", 0).carry(Some(&Entry::Deleted { at: Timestamp::from_millis(3_500) }));
        assert_eq!(after_deletion.series, None);
    }

    #[test]
    fn the_finish_time_is_the_first_finish_until_the_title_is_not_finished() {
        let first = episode(1_000, 1, true).carry(None);
        assert_eq!(first.finished_at, Some(Timestamp::from_millis(1_000)));
        let again = episode(2_000, 1, true).carry(Some(&Entry::Live(first.clone())));
        assert_eq!(again.finished_at, Some(Timestamp::from_millis(1_000)), "a later finished write keeps it");
        let rewatch = episode(3_000, 1, false).carry(Some(&Entry::Live(again)));
        assert_eq!(rewatch.finished_at, None);
        let refinished = episode(4_000, 1, true).carry(Some(&Entry::Live(rewatch)));
        assert_eq!(refinished.finished_at, Some(Timestamp::from_millis(4_000)));
        // A record stored before finish times were kept counts from its write.
        let legacy = Progress { finished_at: None, ..episode(500, 1, true) };
        assert_eq!(legacy.finish_time(), Some(Timestamp::from_millis(500)));
        let kept = episode(5_000, 1, true).carry(Some(&Entry::Live(legacy)));
        assert_eq!(kept.finished_at, Some(Timestamp::from_millis(500)));
    }

    #[test]
    fn deleting_twice_is_a_duplicate() {
        let gone = Entry::tombstone(None, Timestamp::from_millis(5_000));
        let again = Entry::tombstone(Some(&gone), Timestamp::from_millis(4_000));
        assert_eq!(Entry::merge(Some(&gone), &again), Outcome::Duplicate);
    }
}
