//! The viewer's library: what a profile finished (history) and what to
//! play next in each series (next up).
//!
//! Stores keep two orders, with the limit pushed down (docs/design.md,
//! "The library"):
//!
//! - **history**: finished titles by `(finish time DESC, video id ASC)`,
//!   paged by a keyset [`HistoryCursor`];
//! - **series activity**: per series, a pointer to the episode written last
//!   ([`SeriesPointer`]), ordered by that write's time.
//!
//! What the orders mean is decided here: which item a series shows
//! ([`series_item`]) and how series and standalone titles share the
//! continue-watching row ([`shelf`]).

use std::cmp::Reverse;

use crate::{Entry, FieldError, Progress, SeriesId, Timestamp, VideoId};

/// Where a page of history ended: the last title's finish time and id. On
/// the wire it is an opaque string ([`HistoryCursor::encode`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryCursor {
    /// The finish time of the last title returned.
    pub finished_at: Timestamp,
    /// The last title returned.
    pub video_id: VideoId,
}

/// The cursor format's tag: a later format gets a new one.
const CURSOR_TAG: &str = "h1";

/// What every cursor matches (`/openapi.json` declares it): the tag, a
/// finish time of at most 15 digits (ms; every one of them is a valid
/// time), a video id.
pub const CURSOR_PATTERN: &str = r"^h1\.[0-9]{1,15}\.[A-Za-z0-9._:-]{1,128}$";

impl HistoryCursor {
    /// The cursor after `video`, a finished title; `None` if it is not
    /// finished.
    pub fn after(video: &VideoId, p: &Progress) -> Option<Self> {
        p.finish_time().map(|finished_at| HistoryCursor { finished_at, video_id: video.clone() })
    }

    /// The opaque wire form. Only URL-safe characters (ids are), so it
    /// travels in a query string as is.
    pub fn encode(&self) -> String {
        format!("{CURSOR_TAG}.{}.{}", self.finished_at.as_millis(), self.video_id)
    }

    /// Reads back a cursor from [`HistoryCursor::encode`]; anything else is
    /// an invalid `cursor`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid =
            || FieldError::invalid("cursor", "is not a cursor this server gave out (pass next_cursor as is)");
        let mut parts = raw.splitn(3, '.');
        let (Some(CURSOR_TAG), Some(ms), Some(video)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        if ms.is_empty() || ms.len() > 15 || !ms.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let ms = ms.parse::<u64>().map_err(|_| invalid())?;
        let video_id = VideoId::parse(video).map_err(|_| invalid())?;
        Ok(HistoryCursor { finished_at: Timestamp::from_millis(ms), video_id })
    }

    /// True when a title finished at `finished_at` comes after the cursor in
    /// history order (newest finish first, ties by video id ascending).
    pub fn precedes(&self, finished_at: Timestamp, video: &VideoId) -> bool {
        (Reverse(self.finished_at), &self.video_id) < (Reverse(finished_at), video)
    }
}

/// The pointer a store keeps per series: the episode written last, and
/// when.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesPointer {
    /// The time of that write (the record's `updated_at`).
    pub at: Timestamp,
    /// The episode.
    pub video_id: VideoId,
}

impl SeriesPointer {
    /// Whether an applied write of `video` at `at` moves the pointer: when
    /// there is none, or the write is at least as late, ties by the larger
    /// video id (so every store and every arrival order agree). The rule is
    /// monotonic: a store that moves pointers apart from the write they
    /// follow (DynamoDB) cannot move one back to an older write, even of the
    /// same episode.
    pub fn moves(current: Option<&SeriesPointer>, at: Timestamp, video: &VideoId) -> bool {
        current.is_none_or(|p| (at, video) >= (p.at, &p.video_id))
    }
}

/// One series in the activity order, as a store reads it: the pointer, and
/// what stands under the episode it names now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesActivity {
    /// The series.
    pub series: SeriesId,
    /// Its pointer.
    pub pointer: SeriesPointer,
    /// The entry of the episode the pointer names, if any is left.
    pub latest: Option<Entry>,
}

/// One item of the continue-watching row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShelfItem {
    /// A title to resume: a standalone title, or a series' episode in
    /// progress.
    Title {
        /// The title.
        video_id: VideoId,
        /// Its record.
        progress: Progress,
    },
    /// A series whose latest episode was finished: play the next one.
    NextUp {
        /// The series.
        series: SeriesId,
        /// The ordinal after the finished episode's.
        next_episode: u32,
        /// The finished episode.
        video_id: VideoId,
        /// Its record.
        after: Progress,
    },
}

impl ShelfItem {
    /// Where the item sits in the row: its activity time, newest first,
    /// ties by the group's id (the series for a series, the title
    /// otherwise), ascending.
    fn rank(&self) -> (Reverse<Timestamp>, &str) {
        match self {
            ShelfItem::Title { video_id, progress } => match &progress.series {
                Some(s) => (Reverse(progress.updated_at), s.id.as_str()),
                None => (Reverse(progress.updated_at), video_id.as_str()),
            },
            ShelfItem::NextUp { series, after, .. } => (Reverse(after.updated_at), series.as_str()),
        }
    }
}

/// The first `limit` of `rows` in continue-watching order: newest
/// `updated_at` first, ties by video id ascending. A store that keeps the
/// row in two ranges (standalone titles, episodes), each read as far as
/// `limit`, merges them with this.
pub fn newest_first(mut rows: Vec<(VideoId, Progress)>, limit: usize) -> Vec<(VideoId, Progress)> {
    rows.sort_by(|(a, p), (b, q)| (Reverse(p.updated_at), a).cmp(&(Reverse(q.updated_at), b)));
    rows.truncate(limit);
    rows
}

/// What a series shows in continue-watching, decided by its most recent
/// activity: the episode itself while in progress; the next episode once it
/// is finished (a rewatch of episode 4 leads to 5, whatever else is
/// unwatched); nothing when the viewer dismissed it — the latest episode
/// hidden, unmarked, deleted or moved to another series — or when no
/// episode can follow.
pub fn series_item(activity: &SeriesActivity) -> Option<ShelfItem> {
    let p = activity.latest.as_ref()?.live()?;
    let series = p.series.as_ref().filter(|s| s.id == activity.series)?;
    let video_id = activity.pointer.video_id.clone();
    if p.in_progress() {
        Some(ShelfItem::Title { video_id, progress: p.clone() })
    } else if p.finished && !p.hidden {
        let next_episode = series.episode.checked_add(1).filter(|n| *n <= crate::Series::MAX_EPISODE)?;
        Some(ShelfItem::NextUp { series: series.id.clone(), next_episode, video_id, after: p.clone() })
    } else {
        None
    }
}

/// The continue-watching row grouped by series: at most `limit` items,
/// newest activity first, from the standalone titles in progress (in the
/// store's continue-watching order) and the series (in the store's
/// activity order). Series the viewer dismissed show nothing, so the caller
/// reads series until `limit` of them show or none are left.
pub fn shelf(
    standalone: Vec<(VideoId, Progress)>,
    series: &[SeriesActivity],
    limit: usize,
) -> Vec<ShelfItem> {
    let mut items: Vec<ShelfItem> = standalone
        .into_iter()
        .filter(|(_, p)| p.series.is_none())
        .map(|(video_id, progress)| ShelfItem::Title { video_id, progress })
        .chain(series.iter().filter_map(series_item))
        .collect();
    items.sort_by(|a, b| a.rank().cmp(&b.rank()));
    items.truncate(limit);
    items
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::{DeviceId, Position, Series};

    fn v(s: &str) -> VideoId {
        VideoId::parse(s).expect("valid")
    }

    fn sid(s: &str) -> SeriesId {
        SeriesId::parse(s).expect("valid")
    }

    fn record(at: u64, series: Option<(&str, u32)>, finished: bool) -> Progress {
        Progress {
            updated_at: Timestamp::from_millis(at),
            device_id: DeviceId::parse("tv").expect("valid"),
            position: Position::from_millis(1_000).expect("valid"),
            duration: None,
            hidden: false,
            finished,
            series: series.map(|(id, episode)| Series { id: sid(id), episode }),
            finished_at: finished.then(|| Timestamp::from_millis(at)),
        }
    }

    fn activity(series: &str, video: &str, p: Progress) -> SeriesActivity {
        SeriesActivity {
            series: sid(series),
            pointer: SeriesPointer { at: p.updated_at, video_id: v(video) },
            latest: Some(Entry::Live(p)),
        }
    }

    fn next_of(item: Option<ShelfItem>) -> Option<u32> {
        match item {
            Some(ShelfItem::NextUp { next_episode, .. }) => Some(next_episode),
            _ => None,
        }
    }

    #[test]
    fn a_finished_episode_leads_to_the_next() {
        let item = series_item(&activity("show", "s-e1", record(10, Some(("show", 1)), true)));
        assert_eq!(next_of(item), Some(2));
    }

    #[test]
    fn a_rewatch_of_episode_4_leads_to_5_whatever_else_is_unwatched() {
        // Episodes 5 to 9 were never played; 4 was finished again last.
        let item = series_item(&activity("show", "s-e4", record(50, Some(("show", 4)), true)));
        assert_eq!(next_of(item), Some(5));
    }

    #[test]
    fn an_episode_in_progress_is_itself() {
        let p = record(10, Some(("show", 3)), false);
        let item = series_item(&activity("show", "s-e3", p.clone()));
        assert_eq!(item, Some(ShelfItem::Title { video_id: v("s-e3"), progress: p }));
    }

    #[test]
    fn a_dismissed_latest_episode_leaves_the_series_out() {
        let hidden = Progress { hidden: true, ..record(10, Some(("show", 3)), false) };
        assert_eq!(series_item(&activity("show", "s-e3", hidden)), None);
        let hidden_finished = Progress { hidden: true, ..record(10, Some(("show", 3)), true) };
        assert_eq!(series_item(&activity("show", "s-e3", hidden_finished)), None);
        let moved = record(10, Some(("other", 3)), false);
        assert_eq!(series_item(&activity("show", "s-e3", moved)), None);
        let mut gone = activity("show", "s-e3", record(10, Some(("show", 3)), false));
        gone.latest = Some(Entry::Deleted { at: Timestamp::from_millis(11) });
        assert_eq!(series_item(&gone), None);
        let last = record(10, Some(("show", Series::MAX_EPISODE)), true);
        assert_eq!(series_item(&activity("show", "s-last", last)), None);
    }

    #[test]
    fn two_series_interleaved_follow_their_most_recent_activity() {
        let row = shelf(
            vec![(v("film"), record(25, None, false))],
            &[
                activity("b", "b-e2", record(30, Some(("b", 2)), true)),
                activity("a", "a-e1", record(20, Some(("a", 1)), false)),
            ],
            10,
        );
        let order: Vec<_> = row.iter().map(|i| i.rank().1.to_owned()).collect();
        assert_eq!(order, ["b", "film", "a"]);
    }

    #[test]
    fn history_cursors_round_trip_and_garbage_is_a_cursor_error() {
        let c =
            HistoryCursor { finished_at: Timestamp::from_millis(1_764_270_000_000), video_id: v("V.1:x") };
        assert_eq!(HistoryCursor::parse(&c.encode()), Ok(c));
        // Everything CURSOR_PATTERN admits parses: up to 15 digits.
        for good in ["h1.0.V", "h1.999999999999999.V:1.x", "h1.000000000000001.-"] {
            assert!(HistoryCursor::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "h1", "h1.12", "h2.1.V", "h1.x.V", "h1.+1.V", "h1.1.a b", "h1.1234567890123456.V"] {
            assert_eq!(HistoryCursor::parse(bad).map_err(|e| e.field), Err("cursor"), "{bad}");
        }
    }

    #[test]
    fn the_pointer_moves_only_forward() {
        let p = SeriesPointer { at: Timestamp::from_millis(10), video_id: v("e2") };
        assert!(SeriesPointer::moves(None, Timestamp::from_millis(1), &v("e1")));
        assert!(SeriesPointer::moves(Some(&p), Timestamp::from_millis(11), &v("e1")));
        assert!(!SeriesPointer::moves(Some(&p), Timestamp::from_millis(9), &v("e3")));
        assert!(SeriesPointer::moves(Some(&p), Timestamp::from_millis(10), &v("e3")));
        assert!(!SeriesPointer::moves(Some(&p), Timestamp::from_millis(10), &v("e1")));
        assert!(SeriesPointer::moves(Some(&p), Timestamp::from_millis(12), &v("e2")));
        assert!(SeriesPointer::moves(Some(&p), Timestamp::from_millis(10), &v("e2")), "a hide rewrites it");
        assert!(!SeriesPointer::moves(Some(&p), Timestamp::from_millis(9), &v("e2")), "never back in time");
    }

    /// One write of the model: a title (its series is fixed by its name),
    /// a time, and what the write does.
    #[derive(Debug, Clone)]
    enum Write {
        Play { video: usize, at: u64, finished: bool },
        Hide { video: usize },
        Delete { video: usize, at: u64 },
    }

    /// Titles 0..4 are standalone; 4.. are episodes of series `s{n % 3}`.
    fn video_name(n: usize) -> String {
        if n < 4 { format!("film-{n}") } else { format!("s{}-e{n}", n % 3) }
    }

    fn series_of(n: usize) -> Option<Series> {
        (n >= 4).then(|| Series { id: sid(&format!("s{}", n % 3)), episode: n as u32 })
    }

    fn writes() -> impl Strategy<Value = Vec<Write>> {
        let write = prop_oneof![
            6 => (0..10usize, 1..60u64, any::<bool>()).prop_map(|(video, at, finished)| Write::Play { video, at, finished }),
            2 => (0..10usize).prop_map(|video| Write::Hide { video }),
            1 => (0..10usize, 1..60u64).prop_map(|(video, at)| Write::Delete { video, at }),
        ];
        proptest::collection::vec(write, 0..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A store that keeps the orders the way the stores do (pointers
        /// moved by `SeriesPointer::moves`), read through `shelf`, gives
        /// the row the definition gives: per series the latest applied
        /// checkpoint decides (itself in progress, the next once finished,
        /// nothing when dismissed), standalone titles in progress as they
        /// are, newest activity first, at most `limit`.
        #[test]
        fn the_grouped_row_is_the_definition(writes in writes(), limit in 1..12usize) {
            let mut rows: BTreeMap<VideoId, Entry> = BTreeMap::new();
            let mut pointers: BTreeMap<SeriesId, SeriesPointer> = BTreeMap::new();
            // The definition's input: every applied checkpoint, in order.
            let mut applied: Vec<(VideoId, Timestamp)> = Vec::new();
            for w in &writes {
                match *w {
                    Write::Play { video, at, finished } => {
                        let id = v(&video_name(video));
                        let incoming = Progress { series: series_of(video), ..record(at, None, finished) }.carry(rows.get(&id));
                        if Entry::merge(rows.get(&id), &Entry::Live(incoming.clone())) == crate::Outcome::Applied {
                            if let Some(s) = &incoming.series
                                && SeriesPointer::moves(pointers.get(&s.id), incoming.updated_at, &id)
                            {
                                pointers.insert(s.id.clone(), SeriesPointer { at: incoming.updated_at, video_id: id.clone() });
                            }
                            applied.push((id.clone(), incoming.updated_at));
                            rows.insert(id, Entry::Live(incoming));
                        }
                    }
                    Write::Hide { video } => {
                        if let Some(Entry::Live(p)) = rows.get_mut(&v(&video_name(video))) {
                            p.hidden = true;
                        }
                    }
                    Write::Delete { video, at } => {
                        let id = v(&video_name(video));
                        let tombstone = Entry::tombstone(rows.get(&id), Timestamp::from_millis(at));
                        if Entry::merge(rows.get(&id), &tombstone) == crate::Outcome::Applied {
                            rows.insert(id, tombstone);
                        }
                    }
                }
            }
            // The store's reads: both orders, whole.
            let standalone: Vec<(VideoId, Progress)> = rows
                .iter()
                .filter_map(|(id, e)| e.live().filter(|p| p.in_progress() && p.series.is_none()).map(|p| (id.clone(), p.clone())))
                .collect();
            let standalone = newest_first(standalone, usize::MAX);
            let mut activity: Vec<SeriesActivity> = pointers
                .iter()
                .map(|(s, p)| SeriesActivity { series: s.clone(), pointer: p.clone(), latest: rows.get(&p.video_id).cloned() })
                .collect();
            activity.sort_by(|a, b| (Reverse(a.pointer.at), &a.series).cmp(&(Reverse(b.pointer.at), &b.series)));
            let row = shelf(standalone, &activity, limit);

            // The definition, from the log of applied checkpoints.
            let mut expected: Vec<(Reverse<Timestamp>, String, String)> = Vec::new();
            for (id, e) in &rows {
                if let Some(p) = e.live().filter(|p| p.in_progress() && p.series.is_none()) {
                    expected.push((Reverse(p.updated_at), id.to_string(), id.to_string()));
                }
            }
            let mut latest: BTreeMap<String, (Timestamp, VideoId)> = BTreeMap::new();
            for (id, at) in &applied {
                let Some(s) = series_of(id_number(id)) else { continue };
                let newer = latest.get(s.id.as_str()).is_none_or(|(t, vid)| (*at, id) >= (*t, vid));
                if newer {
                    latest.insert(s.id.to_string(), (*at, id.clone()));
                }
            }
            for (series, (at, id)) in &latest {
                let Some(p) = rows.get(id).and_then(Entry::live) else { continue };
                let what = if p.in_progress() {
                    id.to_string()
                } else if p.finished && !p.hidden {
                    format!("next {}", p.series.as_ref().map_or(0, |s| s.episode + 1))
                } else {
                    continue;
                };
                expected.push((Reverse(*at), series.clone(), what));
            }
            expected.sort();
            expected.truncate(limit);
            let got: Vec<(Reverse<Timestamp>, String, String)> = row
                .iter()
                .map(|item| {
                    let (at, group) = item.rank();
                    let what = match item {
                        ShelfItem::Title { video_id, .. } => video_id.to_string(),
                        ShelfItem::NextUp { next_episode, .. } => format!("next {next_episode}"),
                    };
                    (at, group.to_owned(), what)
                })
                .collect();
            prop_assert_eq!(got, expected);
        }

        /// Any history, cut into pages at any size with cursors, comes back
        /// whole, in order, each title once.
        #[test]
        fn cursor_pages_cover_the_history_once(
            finishes in proptest::collection::btree_map(0..40usize, 0..10u64, 0..30),
            page in 1..6usize,
        ) {
            let mut all: Vec<(Timestamp, VideoId)> =
                finishes.iter().map(|(n, at)| (Timestamp::from_millis(*at), v(&format!("t{n}")))).collect();
            all.sort_by(|a, b| (Reverse(a.0), &a.1).cmp(&(Reverse(b.0), &b.1)));
            let mut seen = Vec::new();
            let mut cursor: Option<HistoryCursor> = None;
            loop {
                let items: Vec<_> = all
                    .iter()
                    .filter(|(at, id)| cursor.as_ref().is_none_or(|c| c.precedes(*at, id)))
                    .take(page)
                    .cloned()
                    .collect();
                let Some((at, id)) = items.last().cloned() else { break };
                seen.extend(items);
                let wire = HistoryCursor { finished_at: at, video_id: id }.encode();
                cursor = Some(HistoryCursor::parse(&wire).expect("round trips"));
            }
            prop_assert_eq!(seen, all);
        }
    }

    fn id_number(id: &VideoId) -> usize {
        id.as_str().rsplit(['-', 'e']).next().and_then(|n| n.parse().ok()).unwrap_or(0)
    }
}
