//! The store conformance suite: the same cases, run against every adapter.
//!
//! An adapter's test file provides an async constructor of a fresh, empty
//! store and invokes the macro, which expands to one `#[tokio::test]` per case:
//!
//! ```ignore
//! async fn fresh() -> playmark_store::conformance::Fixture { ... }
//! playmark_store::conformance_tests!(fresh);
//! ```
//!
//! The cases assert behaviour through the [`ProgressStore`] port only, so a
//! backend that passes them is interchangeable with every other one.

use std::sync::Arc;

use playmark_core::library::{HistoryCursor, SeriesActivity};
use playmark_core::{
    AccountId, DeviceId, Duration, Entry, Outcome, Position, ProfileId, ProfileKey, Progress, ProgressKey,
    Series, SeriesId, StaleGuard, Timestamp, VideoId,
};

use crate::ProgressStore;

/// A fresh store for one case, plus whatever keeps it alive (a temp dir, a
/// private server).
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn ProgressStore>,
    /// Dropped when the case ends.
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Expands to one `#[tokio::test]` per conformance case, each on a store from
/// `$fresh` (an async fn returning a [`Fixture`]).
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@cases $fresh;
            unknown_key_reads_as_none,
            first_write_is_applied_and_read_back_exactly,
            newer_write_replaces_older,
            older_write_is_stale_and_returns_the_standing_entry,
            replayed_write_is_a_duplicate,
            same_millisecond_writes_break_ties_deterministically,
            keys_that_share_prefixes_stay_independent,
            continue_watching_is_the_profiles_titles_in_progress_newest_first,
            continue_watching_reads_only_as_far_as_its_limit,
            continue_watching_follows_every_change_of_a_title,
            trim_purges_the_least_recently_written_rows_of_profiles_over_the_cap,
            delete_leaves_a_tombstone_older_writes_cannot_pass,
            newer_write_after_delete_restores_the_title,
            delete_of_an_unknown_key_still_blocks_older_writes,
            expire_purges_only_idle_entries_and_tombstones,
            concurrent_writers_on_one_key_end_with_the_newest,
            concurrent_writers_on_many_keys_all_land,
            ping_succeeds_on_a_healthy_store,
            the_guard_refuses_a_far_behind_write_from_another_device_after_a_newer_record,
            the_guard_lets_through_what_it_should,
            a_refused_newest_checkpoint_does_not_hide_an_older_one_that_is_newer_than_the_record,
            hide_keeps_the_progress_and_a_newer_checkpoint_shows_the_title_again,
            a_replay_after_a_hide_is_a_duplicate_and_stays_hidden,
            marks_are_kept_as_written_and_merge_like_checkpoints,
            the_series_and_the_finish_time_are_carried_from_write_to_write,
            history_is_the_finished_titles_newest_finish_first_in_cursor_pages,
            history_pages_never_repeat_or_skip_a_title_while_others_finish,
            standalone_titles_in_progress_leave_episodes_out,
            series_activity_points_at_each_series_latest_episode_write,
            expire_works_in_batches_and_names_each_purged_key
        );
    };
    (@cases $fresh:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fresh().await;
                $crate::conformance::$case(fixture.store.as_ref()).await;
                let _ = fixture.store.close().await;
                drop(fixture);
            }
        )*
    };
}

/// The key of `video` in `profile` of `account` (valid ids only).
pub fn key(account: &str, profile: &str, video: &str) -> ProgressKey {
    ProgressKey {
        account_id: AccountId::parse(account).expect("valid account id"),
        profile_id: ProfileId::parse(profile).expect("valid profile id"),
        video_id: VideoId::parse(video).expect("valid video id"),
    }
}

/// A checkpoint from `device` at `at` ms, `position_ms` into the title.
pub fn progress(at: u64, device: &str, position_ms: u64, duration_ms: Option<u64>) -> Progress {
    Progress {
        updated_at: Timestamp::from_millis(at),
        device_id: DeviceId::parse(device).expect("valid device id"),
        position: Position::from_millis(position_ms).expect("valid position"),
        duration: duration_ms.map(|d| Duration::from_millis(d).expect("valid duration")),
        hidden: false,
        finished: false,
        series: None,
        finished_at: None,
    }
}

/// `p` as an episode of `series`.
pub fn episode(p: Progress, series: &str, n: u32) -> Progress {
    Progress {
        series: Some(Series { id: SeriesId::parse(series).expect("valid series id"), episode: n }),
        ..p
    }
}

/// `p`, finished.
pub fn finished(p: Progress) -> Progress {
    Progress { finished: true, ..p }
}

const NOW: Timestamp = Timestamp::from_millis(1_764_270_000_000);

async fn upsert(store: &dyn ProgressStore, k: &ProgressKey, p: &Progress) -> (Outcome, Entry) {
    let w = store.upsert(k, p.clone(), NOW, None).await.expect("upsert succeeds");
    (w.outcome, w.standing)
}

async fn get(store: &dyn ProgressStore, k: &ProgressKey) -> Option<Entry> {
    store.get(k).await.expect("get succeeds")
}

/// A key never written reads as `None`.
pub async fn unknown_key_reads_as_none(store: &dyn ProgressStore) {
    assert_eq!(get(store, &key("acct", "A", "V1")).await, None);
}

/// The first write applies, and reads return it field for field.
pub async fn first_write_is_applied_and_read_back_exactly(store: &dyn ProgressStore) {
    let k = key("acct-123", "A", "V1");
    let with_duration = progress(1_000, "tv-livingroom", 1_200_500, Some(3_600_000));
    assert_eq!(
        upsert(store, &k, &with_duration).await,
        (Outcome::Applied, Entry::Live(with_duration.clone()))
    );
    assert_eq!(get(store, &k).await, Some(Entry::Live(with_duration)));

    let k2 = key("acct-123", "A", "V2");
    let without = progress(1_000, "phone", 1, None);
    upsert(store, &k2, &without).await;
    assert_eq!(get(store, &k2).await, Some(Entry::Live(without)));
}

/// A newer write replaces the standing one.
pub async fn newer_write_replaces_older(store: &dyn ProgressStore) {
    let k = key("acct", "A", "V1");
    upsert(store, &k, &progress(1_000, "tv", 60_000, None)).await;
    let newer = progress(2_000, "phone", 30_000, None);
    assert_eq!(upsert(store, &k, &newer).await.0, Outcome::Applied);
    assert_eq!(get(store, &k).await, Some(Entry::Live(newer)));
}

/// An older write changes nothing and reports what stands.
pub async fn older_write_is_stale_and_returns_the_standing_entry(store: &dyn ProgressStore) {
    let k = key("acct", "A", "V1");
    let newer = progress(2_000, "phone", 30_000, None);
    upsert(store, &k, &newer).await;
    let (outcome, standing) = upsert(store, &k, &progress(1_000, "tv", 90_000, None)).await;
    assert_eq!((outcome, standing), (Outcome::Stale, Entry::Live(newer.clone())));
    assert_eq!(get(store, &k).await, Some(Entry::Live(newer)));
}

/// Sending the very same checkpoint again is a duplicate.
pub async fn replayed_write_is_a_duplicate(store: &dyn ProgressStore) {
    let k = key("acct", "A", "V1");
    let p = progress(1_000, "tv", 60_000, Some(3_600_000));
    upsert(store, &k, &p).await;
    assert_eq!(upsert(store, &k, &p).await, (Outcome::Duplicate, Entry::Live(p)));
}

/// Writes at the same millisecond resolve the same way on every backend:
/// by device id, then position.
pub async fn same_millisecond_writes_break_ties_deterministically(store: &dyn ProgressStore) {
    let k = key("acct", "A", "V1");
    let phone = progress(1_000, "phone", 90_000, None);
    let tv = progress(1_000, "tv", 10_000, None);
    upsert(store, &k, &tv).await;
    assert_eq!(upsert(store, &k, &phone).await.0, Outcome::Stale);
    assert_eq!(get(store, &k).await, Some(Entry::Live(tv)));
    let further = progress(1_000, "tv", 20_000, None);
    assert_eq!(upsert(store, &k, &further).await.0, Outcome::Applied);
}

/// Ids that are prefixes of one another never share rows.
pub async fn keys_that_share_prefixes_stay_independent(store: &dyn ProgressStore) {
    let keys = [
        key("acct", "A", "V1"),
        key("acct", "A", "V10"),
        key("acct", "AB", "V1"),
        key("acct-2", "A", "V1"),
        key("acc", "tA", "V1"),
    ];
    for (i, k) in keys.iter().enumerate() {
        upsert(store, k, &progress(1_000, "tv", i as u64 * 1_000, None)).await;
    }
    for (i, k) in keys.iter().enumerate() {
        let pos = get(store, k).await.and_then(|e| e.live().map(|p| p.position.as_millis()));
        assert_eq!(pos, Some(i as u64 * 1_000), "row of {k:?}");
    }
}

fn profile(account: &str, profile: &str) -> ProfileKey {
    ProfileKey {
        account_id: AccountId::parse(account).expect("valid"),
        profile_id: ProfileId::parse(profile).expect("valid"),
    }
}

async fn continue_watching(store: &dyn ProgressStore, p: &ProfileKey, limit: usize) -> Vec<String> {
    let rows = store.continue_watching(p, limit).await.expect("continue-watching succeeds");
    rows.into_iter().map(|(v, _)| v.as_str().to_owned()).collect()
}

/// Continue-watching holds the profile's live, unhidden, unfinished titles,
/// newest first, ties by video id; nothing of another profile.
pub async fn continue_watching_is_the_profiles_titles_in_progress_newest_first(store: &dyn ProgressStore) {
    for (video, at) in [("V1", 1_000), ("V2", 3_000), ("V3", 2_000), ("V4", 2_000)] {
        upsert(store, &key("acct", "A", video), &progress(at, "tv", 5_000, None)).await;
    }
    let finished = Progress { finished: true, ..progress(9_000, "tv", 5_000, Some(5_000)) };
    upsert(store, &key("acct", "A", "done"), &finished).await;
    upsert(store, &key("acct", "A", "hidden"), &progress(9_000, "tv", 5_000, None)).await;
    store.hide(&key("acct", "A", "hidden")).await.expect("hide succeeds");
    upsert(store, &key("acct", "A", "gone"), &progress(9_000, "tv", 5_000, None)).await;
    store.delete(&key("acct", "A", "gone"), NOW).await.expect("delete succeeds");
    for other in
        [key("acct", "AB", "X"), key("acct", "B", "Y"), key("acct-2", "A", "Z"), key("acc", "tA", "W")]
    {
        upsert(store, &other, &progress(5_000, "tv", 5_000, None)).await;
    }

    let a = profile("acct", "A");
    assert_eq!(continue_watching(store, &a, 10).await, ["V2", "V3", "V4", "V1"]);
    let rows = store.continue_watching(&a, 1).await.expect("succeeds");
    assert_eq!(rows, vec![(VideoId::parse("V2").expect("valid"), progress(3_000, "tv", 5_000, None))]);
    assert!(continue_watching(store, &profile("nobody", "A"), 10).await.is_empty());
}

/// A profile with many titles answers a small limit with exactly the
/// newest ones.
pub async fn continue_watching_reads_only_as_far_as_its_limit(store: &dyn ProgressStore) {
    let writes = (0..300u64).map(|i| async move {
        let p = progress(1_000 + i, "tv", 5_000, None);
        store.upsert(&key("acct", "A", &format!("V{i:03}")), p, NOW, None).await.expect("upsert succeeds")
    });
    futures::future::join_all(writes).await;
    let newest: Vec<String> = (280..300).rev().map(|i| format!("V{i:03}")).collect();
    assert_eq!(continue_watching(store, &profile("acct", "A"), 20).await, newest);
}

/// Every change of a title moves it in (or out of) continue-watching: a
/// newer checkpoint moves it up, finishing or hiding takes it out, a
/// rewatch puts it back, a deletion takes it out.
pub async fn continue_watching_follows_every_change_of_a_title(store: &dyn ProgressStore) {
    let a = profile("acct", "A");
    let v1 = key("acct", "A", "V1");
    upsert(store, &v1, &progress(1_000, "tv", 5_000, None)).await;
    upsert(store, &key("acct", "A", "V2"), &progress(2_000, "tv", 5_000, None)).await;
    assert_eq!(continue_watching(store, &a, 10).await, ["V2", "V1"]);
    upsert(store, &v1, &progress(3_000, "tv", 6_000, None)).await;
    assert_eq!(continue_watching(store, &a, 10).await, ["V1", "V2"], "a newer checkpoint moves it up");
    upsert(store, &v1, &Progress { finished: true, ..progress(4_000, "tv", 9_000, Some(9_000)) }).await;
    assert_eq!(continue_watching(store, &a, 10).await, ["V2"], "finished titles leave");
    upsert(store, &v1, &progress(5_000, "tv", 1_000, Some(9_000))).await;
    assert_eq!(continue_watching(store, &a, 10).await, ["V1", "V2"], "a rewatch brings it back");
    store.hide(&v1).await.expect("hide succeeds");
    assert_eq!(continue_watching(store, &a, 10).await, ["V2"], "hidden titles leave");
    upsert(store, &v1, &progress(6_000, "tv", 2_000, None)).await;
    store.delete(&v1, Timestamp::from_millis(7_000)).await.expect("delete succeeds");
    assert_eq!(continue_watching(store, &a, 10).await, ["V2"], "deleted titles leave");
}

/// Trimming purges the least recently written rows (tombstones count too)
/// of each profile over the cap, down to the cap, and nothing else.
pub async fn trim_purges_the_least_recently_written_rows_of_profiles_over_the_cap(store: &dyn ProgressStore) {
    for i in 0..12u64 {
        upsert(store, &key("acct", "A", &format!("V{i:02}")), &progress(1_000 + i, "tv", 5_000, None)).await;
    }
    store.delete(&key("acct", "A", "V11"), NOW).await.expect("delete succeeds");
    store.delete(&key("acct", "A", "never"), NOW).await.expect("delete succeeds");
    for i in 0..5u64 {
        upsert(store, &key("acct", "B", &format!("V{i}")), &progress(1_000 + i, "tv", 5_000, None)).await;
    }
    // Profile A has 13 rows (one a tombstone for a title never seen), B has 5.
    let mut trimmed = Vec::new();
    loop {
        let batch = store.trim(10, 2).await.expect("trim succeeds");
        assert!(batch.len() <= 2, "a batch over the limit: {batch:?}");
        let done = batch.len() < 2;
        trimmed.extend(batch);
        if done {
            break;
        }
    }
    trimmed.sort();
    assert_eq!(trimmed, [key("acct", "A", "V00"), key("acct", "A", "V01"), key("acct", "A", "V02")]);
    assert_eq!(get(store, &key("acct", "A", "V00")).await, None);
    assert!(get(store, &key("acct", "A", "V03")).await.is_some());
    assert!(get(store, &key("acct", "A", "never")).await.is_some(), "the newest rows stay, tombstones too");
    assert_eq!(continue_watching(store, &profile("acct", "B"), 10).await.len(), 5);
    assert!(store.trim(10, 100).await.expect("trim succeeds").is_empty(), "nothing over the cap is left");
    // A profile that grows over the cap again is trimmed again.
    upsert(store, &key("acct", "A", "V99"), &progress(9_000, "tv", 5_000, None)).await;
    assert_eq!(store.trim(10, 100).await.expect("trim succeeds"), [key("acct", "A", "V03")]);
}

/// After a delete, a checkpoint from before it cannot resurrect the title.
pub async fn delete_leaves_a_tombstone_older_writes_cannot_pass(store: &dyn ProgressStore) {
    let k = key("acct", "A", "V1");
    upsert(store, &k, &progress(1_000, "tv", 60_000, None)).await;
    let deleted = store.delete(&k, Timestamp::from_millis(5_000)).await.expect("delete succeeds");
    assert_eq!(deleted.outcome, Outcome::Applied);
    assert_eq!(deleted.standing, Entry::Deleted { at: Timestamp::from_millis(5_000) });
    assert_eq!(get(store, &k).await, Some(Entry::Deleted { at: Timestamp::from_millis(5_000) }));

    let late = upsert(store, &k, &progress(4_999, "phone", 70_000, None)).await;
    assert_eq!(late, (Outcome::Stale, Entry::Deleted { at: Timestamp::from_millis(5_000) }));
}

/// A checkpoint newer than the deletion brings the title back.
pub async fn newer_write_after_delete_restores_the_title(store: &dyn ProgressStore) {
    let k = key("acct", "A", "V1");
    upsert(store, &k, &progress(1_000, "tv", 60_000, None)).await;
    store.delete(&k, Timestamp::from_millis(5_000)).await.expect("delete succeeds");
    let again = progress(6_000, "tv", 1_000, None);
    assert_eq!(upsert(store, &k, &again).await.0, Outcome::Applied);
    assert_eq!(get(store, &k).await, Some(Entry::Live(again)));
}

/// Deleting a title that was never recorded still guards against late
/// offline uploads from before the deletion.
pub async fn delete_of_an_unknown_key_still_blocks_older_writes(store: &dyn ProgressStore) {
    let k = key("acct", "A", "V1");
    store.delete(&k, Timestamp::from_millis(5_000)).await.expect("delete succeeds");
    assert_eq!(upsert(store, &k, &progress(4_000, "tv", 1_000, None)).await.0, Outcome::Stale);
}

/// Expiry removes rows (live or tombstone) not written since the cutoff, and
/// leaves the others alone.
pub async fn expire_purges_only_idle_entries_and_tombstones(store: &dyn ProgressStore) {
    let idle = key("acct", "A", "idle");
    let idle_tomb = key("acct", "A", "idle-tombstone");
    let busy = key("acct", "A", "busy");
    let day = 86_400_000;
    let long_ago = Timestamp::from_millis(NOW.as_millis() - 200 * day);
    store.upsert(&idle, progress(1_000, "tv", 1, None), long_ago, None).await.expect("upsert");
    store.delete(&idle_tomb, long_ago).await.expect("delete");
    store.upsert(&busy, progress(1_000, "tv", 1, None), long_ago, None).await.expect("upsert");
    // Touched again recently: a newer checkpoint.
    store.upsert(&busy, progress(2_000, "tv", 2, None), NOW, None).await.expect("upsert");

    let cutoff = NOW.saturating_sub_millis(180 * day);
    let mut removed = store.expire(cutoff, 100).await.expect("expire succeeds");
    removed.sort();
    assert_eq!(removed, [idle.clone(), idle_tomb.clone()]);
    assert_eq!(get(store, &idle).await, None);
    assert_eq!(get(store, &idle_tomb).await, None);
    assert!(get(store, &busy).await.is_some());
    assert_eq!(store.expire(cutoff, 100).await.expect("expire succeeds"), []);
}

/// A sweep purges in batches of at most `limit`, each naming the keys it
/// purged, until a batch comes back short; every idle key is named once.
pub async fn expire_works_in_batches_and_names_each_purged_key(store: &dyn ProgressStore) {
    let day = 86_400_000;
    let long_ago = Timestamp::from_millis(NOW.as_millis() - 200 * day);
    let idle: Vec<_> = (0..25).map(|i| key("acct", "A", &format!("idle-{i:02}"))).collect();
    for k in &idle {
        store.upsert(k, progress(1_000, "tv", 1, None), long_ago, None).await.expect("upsert");
    }
    let fresh = key("acct", "A", "fresh");
    upsert(store, &fresh, &progress(1_000, "tv", 1, None)).await;
    let cutoff = NOW.saturating_sub_millis(180 * day);
    let mut named = Vec::new();
    loop {
        let batch = store.expire(cutoff, 10).await.expect("expire succeeds");
        assert!(batch.len() <= 10, "a batch of {} is over the limit of 10", batch.len());
        let done = batch.len() < 10;
        named.extend(batch);
        if done {
            break;
        }
    }
    named.sort();
    assert_eq!(named, idle);
    assert!(get(store, &fresh).await.is_some());
}

/// 200 writers racing on one key: the newest checkpoint stands, whatever the
/// interleaving, and its writer is told it applied.
pub async fn concurrent_writers_on_one_key_end_with_the_newest(store: &dyn ProgressStore) {
    let outcomes = concurrent(store, 200, |_| key("acct", "A", "V1")).await;
    let standing = get(store, &key("acct", "A", "V1")).await;
    assert_eq!(standing, Some(Entry::Live(progress(1_199, "dev-199", 199_000, None))));
    assert_eq!(outcomes[199], Outcome::Applied, "nothing is newer than the newest write");
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Applied | Outcome::Stale)), "{outcomes:?}");
}

/// 200 writers on 200 keys: every write lands, and each is told so.
pub async fn concurrent_writers_on_many_keys_all_land(store: &dyn ProgressStore) {
    let outcomes = concurrent(store, 200, |i| key("acct", "A", &format!("V{i}"))).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Applied), "{outcomes:?}");
    for i in 0..200u64 {
        let k = key("acct", "A", &format!("V{i}"));
        assert_eq!(
            get(store, &k).await,
            Some(Entry::Live(progress(1_000 + i, &format!("dev-{i}"), i * 1_000, None)))
        );
    }
}

/// Writes `n` checkpoints at once (checkpoint `i` at time 1000 + i) and
/// returns each one's outcome, in order.
async fn concurrent(store: &dyn ProgressStore, n: u64, key_of: impl Fn(u64) -> ProgressKey) -> Vec<Outcome> {
    // Polled together on this task: the writes are in flight at the store at
    // once, and the futures may borrow the store without 'static bounds.
    let writes = (0..n).map(|i| {
        let k = key_of(i);
        async move {
            let p = progress(1_000 + i, &format!("dev-{i}"), i * 1_000, None);
            store.upsert(&k, p, NOW, None).await.expect("concurrent upsert succeeds").outcome
        }
    });
    futures::future::join_all(writes).await
}

fn guard(resumed_from: u64) -> Option<StaleGuard> {
    Some(StaleGuard { resumed_from: Timestamp::from_millis(resumed_from), max_regression_ms: 300_000 })
}

/// A TV that resumed from an old record and fell 20 minutes behind the
/// phone's newer record is refused, atomically, and nothing changes.
pub async fn the_guard_refuses_a_far_behind_write_from_another_device_after_a_newer_record(
    store: &dyn ProgressStore,
) {
    let k = key("acct", "A", "V1");
    let phone = progress(2_000, "phone", 1_800_000, None);
    upsert(store, &k, &phone).await;
    let tv = progress(3_000, "tv", 600_000, None);
    let w = store.upsert(&k, tv, NOW, guard(1_000)).await.expect("upsert succeeds");
    assert_eq!((w.outcome, w.standing), (Outcome::Conflict, Entry::Live(phone.clone())));
    assert_eq!(get(store, &k).await, Some(Entry::Live(phone)));
}

/// The guard lets through: a device that saw the standing record, the
/// same device, a small regression, an unguarded write, and stale stays stale.
pub async fn the_guard_lets_through_what_it_should(store: &dyn ProgressStore) {
    let cases = [
        ("saw-it", guard(2_000), "tv", 600_000, Outcome::Applied),
        ("same-device", guard(1_000), "phone", 600_000, Outcome::Applied),
        ("small-regression", guard(1_000), "tv", 1_600_000, Outcome::Applied),
        ("unguarded", None, "tv", 600_000, Outcome::Applied),
    ];
    for (video, g, device, pos, expected) in cases {
        let k = key("acct", "A", video);
        upsert(store, &k, &progress(2_000, "phone", 1_800_000, None)).await;
        let w = store.upsert(&k, progress(3_000, device, pos, None), NOW, g).await.expect("upsert succeeds");
        assert_eq!(w.outcome, expected, "{video}");
    }
    let k = key("acct", "A", "older");
    upsert(store, &k, &progress(2_000, "phone", 1_800_000, None)).await;
    let w = store.upsert(&k, progress(1_500, "tv", 600_000, None), NOW, guard(1_000)).await.expect("upsert");
    assert_eq!(w.outcome, Outcome::Stale, "an older write is stale, guard or not");
}

/// The stored record is the phone at 2000 s. The TV, which resumed before
/// it, sends 660 s (refused by its guard); a tablet sends 2100 s, older than
/// the TV's checkpoint but newer than the record. Sent together (one group
/// on a store that coalesces writes) or one by one, the TV is refused and
/// the tablet's checkpoint stands.
pub async fn a_refused_newest_checkpoint_does_not_hide_an_older_one_that_is_newer_than_the_record(
    store: &dyn ProgressStore,
) {
    let t0 = 1_000_000;
    let phone = progress(t0, "phone", 2_000_000, None);
    let tv = progress(t0 + 20_000, "tv", 660_000, None);
    let tablet = progress(t0 + 10_000, "tablet", 2_100_000, None);
    let together = key("acct", "A", "together");
    let one_by_one = key("acct", "A", "one-by-one");
    for k in [&together, &one_by_one] {
        upsert(store, k, &phone).await;
    }
    let (tv_w, tablet_w) = futures::join!(
        store.upsert(&together, tv.clone(), NOW, guard(t0 - 1)),
        store.upsert(&together, tablet.clone(), NOW, None),
    );
    let (tv_w, tablet_w) = (tv_w.expect("upsert succeeds"), tablet_w.expect("upsert succeeds"));
    assert_eq!(tv_w.outcome, Outcome::Conflict);
    assert_eq!((tablet_w.outcome, tablet_w.standing), (Outcome::Applied, Entry::Live(tablet.clone())));
    assert_eq!(get(store, &together).await, Some(Entry::Live(tablet.clone())));

    let tv_w = store.upsert(&one_by_one, tv, NOW, guard(t0 - 1)).await.expect("upsert succeeds");
    let tablet_w = store.upsert(&one_by_one, tablet.clone(), NOW, None).await.expect("upsert succeeds");
    assert_eq!((tv_w.outcome, tablet_w.outcome), (Outcome::Conflict, Outcome::Applied));
    assert_eq!(get(store, &one_by_one).await, Some(Entry::Live(tablet)));
}

/// Hiding keeps the position; the next applied checkpoint unhides.
pub async fn hide_keeps_the_progress_and_a_newer_checkpoint_shows_the_title_again(store: &dyn ProgressStore) {
    let k = key("acct", "A", "V1");
    let p = progress(2_000, "tv", 60_000, Some(3_600_000));
    upsert(store, &k, &p).await;
    let hidden = Progress { hidden: true, ..p.clone() };
    assert_eq!(store.hide(&k).await.expect("hide succeeds"), Some(hidden.clone()));
    assert_eq!(get(store, &k).await, Some(Entry::Live(hidden)));
    assert!(
        continue_watching(store, &k.profile(), 10).await.is_empty(),
        "hidden titles leave continue-watching"
    );
    let newer = progress(3_000, "phone", 90_000, Some(3_600_000));
    assert_eq!(upsert(store, &k, &newer).await.0, Outcome::Applied);
    assert_eq!(get(store, &k).await, Some(Entry::Live(newer)));
    assert_eq!(store.hide(&key("acct", "A", "never")).await.expect("hide succeeds"), None, "nothing to hide");
    store.delete(&k, NOW).await.expect("delete succeeds");
    assert_eq!(store.hide(&k).await.expect("hide succeeds"), None, "a deleted title has nothing to hide");
}

/// Replaying the checkpoint a hide applied to is a `duplicate` (hiding
/// changed no checkpoint), and the title stays hidden; an older one is
/// `stale`.
pub async fn a_replay_after_a_hide_is_a_duplicate_and_stays_hidden(store: &dyn ProgressStore) {
    let k = key("acct", "A", "V1");
    let p = progress(2_000, "tv", 60_000, Some(3_600_000));
    upsert(store, &k, &p).await;
    store.hide(&k).await.expect("hide succeeds");
    let hidden = Entry::Live(Progress { hidden: true, ..p.clone() });
    assert_eq!(upsert(store, &k, &p).await, (Outcome::Duplicate, hidden.clone()));
    assert_eq!(upsert(store, &k, &progress(1_999, "tv", 1, None)).await, (Outcome::Stale, hidden.clone()));
    assert_eq!(get(store, &k).await, Some(hidden));
}

/// A write keeps `finished` and `hidden` exactly as given (a mark as
/// watched is finished; a mark as unwatched is at 0 and hidden), and merges
/// like any checkpoint: an older checkpoint cannot undo a newer mark, a
/// newer one (playing again) does.
pub async fn marks_are_kept_as_written_and_merge_like_checkpoints(store: &dyn ProgressStore) {
    let k = key("acct", "A", "V1");
    let in_progress = |at, device, pos| progress(at, device, pos, Some(3_600_000));
    upsert(store, &k, &in_progress(1_000, "tv", 600_000)).await;
    let watched = Progress { finished: true, ..in_progress(2_000, "phone", 3_600_000) }.carry(None);
    assert_eq!(upsert(store, &k, &watched).await, (Outcome::Applied, Entry::Live(watched.clone())));
    assert!(
        continue_watching(store, &k.profile(), 10).await.is_empty(),
        "a watched title is not in progress"
    );
    let late = in_progress(1_500, "tv", 900_000);
    assert_eq!(upsert(store, &k, &late).await, (Outcome::Stale, Entry::Live(watched.clone())));

    let unwatched = Progress { hidden: true, ..in_progress(3_000, "phone", 0) };
    assert_eq!(upsert(store, &k, &unwatched).await, (Outcome::Applied, Entry::Live(unwatched.clone())));
    assert_eq!(get(store, &k).await, Some(Entry::Live(unwatched.clone())));
    assert!(continue_watching(store, &k.profile(), 10).await.is_empty(), "an unwatched title is hidden");
    assert_eq!(upsert(store, &k, &unwatched).await, (Outcome::Duplicate, Entry::Live(unwatched)));

    let again = in_progress(4_000, "tv", 30_000);
    assert_eq!(upsert(store, &k, &again).await, (Outcome::Applied, Entry::Live(again)));
    assert_eq!(continue_watching(store, &k.profile(), 10).await, ["V1"], "playing again shows it");
}

/// A write without a series keeps the standing one, a new one replaces it,
/// a deletion forgets it; the finish time is the first finish, kept by
/// later finished writes and cleared by a rewatch or an unwatched mark.
pub async fn the_series_and_the_finish_time_are_carried_from_write_to_write(store: &dyn ProgressStore) {
    let k = key("acct", "A", "S1-E4");
    let series_of = |e: Entry| e.live().and_then(|p| p.series.clone()).map(|s| (s.id.to_string(), s.episode));
    let finish_of = |e: Entry| e.live().and_then(|p| p.finished_at).map(Timestamp::as_millis);
    let (_, first) = upsert(store, &k, &episode(progress(1_000, "tv", 5_000, None), "show", 4)).await;
    assert_eq!(series_of(first), Some(("show".into(), 4)));
    let (outcome, plain) = upsert(store, &k, &progress(2_000, "tv", 6_000, Some(60_000))).await;
    assert_eq!((outcome, series_of(plain.clone())), (Outcome::Applied, Some(("show".into(), 4))));
    assert_eq!(get(store, &k).await, Some(plain), "the write's answer is what is stored");
    let (_, done) = upsert(store, &k, &finished(progress(3_000, "tv", 59_000, Some(60_000)))).await;
    assert_eq!(finish_of(done), Some(3_000));
    let (_, again) = upsert(store, &k, &finished(progress(4_000, "phone", 60_000, Some(60_000)))).await;
    assert_eq!((finish_of(again.clone()), series_of(again)), (Some(3_000), Some(("show".into(), 4))));
    let (_, moved) = upsert(store, &k, &episode(progress(5_000, "tv", 1_000, None), "other", 9)).await;
    assert_eq!((finish_of(moved.clone()), series_of(moved)), (None, Some(("other".into(), 9))), "a rewatch");
    let (_, refinished) = upsert(store, &k, &finished(progress(6_000, "tv", 60_000, Some(60_000)))).await;
    assert_eq!(finish_of(refinished), Some(6_000), "finished again: a new finish time");
    store.delete(&k, Timestamp::from_millis(7_000)).await.expect("delete succeeds");
    let (_, fresh) = upsert(store, &k, &progress(8_000, "tv", 1_000, None)).await;
    assert_eq!(series_of(fresh), None, "a deletion forgets the series");
    let hidden = store.hide(&k).await.expect("hide succeeds");
    assert_eq!(hidden.map(|p| (p.hidden, p.series)), Some((true, None)));
}

async fn history(
    store: &dyn ProgressStore,
    p: &ProfileKey,
    after: Option<&HistoryCursor>,
    limit: usize,
) -> Vec<(String, u64)> {
    let rows = store.history(p, after, limit).await.expect("history succeeds");
    rows.iter()
        .map(|(v, p)| {
            (v.as_str().to_owned(), p.finish_time().expect("history holds finished titles").as_millis())
        })
        .collect()
}

fn cursor_after(last: &(String, u64)) -> HistoryCursor {
    HistoryCursor {
        finished_at: Timestamp::from_millis(last.1),
        video_id: VideoId::parse(last.0.as_str()).expect("valid"),
    }
}

/// History holds the profile's finished titles (hidden ones too), newest
/// finish first, ties by video id; a later finished write does not move a
/// title, a rewatch or an unwatched mark takes it out; cursor pages cover
/// it exactly.
pub async fn history_is_the_finished_titles_newest_finish_first_in_cursor_pages(store: &dyn ProgressStore) {
    let a = profile("acct", "A");
    let done = |at| finished(progress(at, "tv", 60_000, Some(60_000)));
    for (video, at) in [("V1", 1_000), ("V2", 3_000), ("V3", 2_000), ("V4", 2_000), ("V5", 5_000)] {
        upsert(store, &key("acct", "A", video), &done(at)).await;
    }
    upsert(store, &key("acct", "A", "playing"), &progress(9_000, "tv", 5_000, None)).await;
    upsert(store, &key("acct", "B", "other"), &done(9_000)).await;
    // Finished again later (at 97%): the finish time stays.
    upsert(store, &key("acct", "A", "V1"), &finished(progress(8_000, "tv", 58_200, Some(60_000)))).await;
    store.hide(&key("acct", "A", "V3")).await.expect("hide succeeds");
    // V5 is rewatched: out of history.
    upsert(store, &key("acct", "A", "V5"), &progress(6_000, "tv", 1_000, Some(60_000))).await;
    let expected: Vec<(String, u64)> = [("V2", 3_000), ("V3", 2_000), ("V4", 2_000), ("V1", 1_000)]
        .iter()
        .map(|(v, t)| (v.to_string(), *t))
        .collect();
    assert_eq!(history(store, &a, None, 10).await, expected);
    let first = history(store, &a, None, 2).await;
    assert_eq!(first, expected[..2]);
    let second = history(store, &a, Some(&cursor_after(&first[1])), 2).await;
    assert_eq!(second, expected[2..]);
    assert!(history(store, &a, Some(&cursor_after(&second[1])), 2).await.is_empty());
    // Unmarked (a mark as unwatched: at 0, hidden, not finished): out.
    upsert(
        store,
        &key("acct", "A", "V2"),
        &Progress { hidden: true, ..progress(9_500, "tv", 0, Some(60_000)) },
    )
    .await;
    store.delete(&key("acct", "A", "V4"), Timestamp::from_millis(9_600)).await.expect("delete succeeds");
    assert_eq!(history(store, &a, None, 10).await, [expected[1].clone(), expected[3].clone()]);
    // Finished again: back, with the new time.
    upsert(store, &key("acct", "A", "V5"), &done(10_000)).await;
    assert_eq!(history(store, &a, None, 1).await, [("V5".to_owned(), 10_000)]);
}

/// Paging through history while other titles finish never returns a title
/// twice, and returns every title that was finished before paging began
/// and stayed so, in history order (checked against a model).
pub async fn history_pages_never_repeat_or_skip_a_title_while_others_finish(store: &dyn ProgressStore) {
    let a = profile("acct", "A");
    let done = |at| finished(progress(at, "tv", 60_000, Some(60_000)));
    let before: Vec<(String, u64)> =
        (0..60u64).map(|i| (format!("old-{i:02}"), 1_000 + (i % 20) * 100)).collect();
    let writes = before.iter().map(|(v, at)| {
        let k = key("acct", "A", v);
        async move { store.upsert(&k, done(*at), NOW, None).await }
    });
    for written in futures::future::join_all(writes).await {
        assert_eq!(written.expect("upsert succeeds").outcome, Outcome::Applied);
    }
    let finishing = async {
        // New finishes land on both sides of wherever the pager is.
        for i in 0..60u64 {
            let at = if i % 2 == 0 { 5_000 + i } else { 500 + i * 40 };
            store
                .upsert(&key("acct", "A", &format!("new-{i:02}")), done(at), NOW, None)
                .await
                .expect("upsert succeeds");
            tokio::task::yield_now().await;
        }
    };
    let paging = async {
        let mut seen: Vec<(String, u64)> = Vec::new();
        let mut cursor = None;
        loop {
            let page = history(store, &a, cursor.as_ref(), 7).await;
            let Some(last) = page.last() else { break };
            cursor = Some(cursor_after(last));
            seen.extend(page);
            tokio::task::yield_now().await;
        }
        seen
    };
    let ((), seen) = futures::join!(finishing, paging);
    let mut names: Vec<&str> = seen.iter().map(|(v, _)| v.as_str()).collect();
    let in_order =
        seen.windows(2).all(|w| (std::cmp::Reverse(w[0].1), &w[0].0) < (std::cmp::Reverse(w[1].1), &w[1].0));
    assert!(in_order, "pages follow history order: {seen:?}");
    names.sort_unstable();
    let total = names.len();
    names.dedup();
    assert_eq!(names.len(), total, "no title twice");
    for (v, at) in &before {
        assert!(seen.contains(&(v.clone(), *at)), "{v} finished before paging began and was skipped");
    }
}

/// The standalone part of continue-watching has the titles without a
/// series; the whole row has both, merged in one order.
pub async fn standalone_titles_in_progress_leave_episodes_out(store: &dyn ProgressStore) {
    let a = profile("acct", "A");
    upsert(store, &key("acct", "A", "film"), &progress(2_000, "tv", 5_000, None)).await;
    upsert(store, &key("acct", "A", "s-e1"), &episode(progress(3_000, "tv", 5_000, None), "s", 1)).await;
    upsert(store, &key("acct", "A", "film-2"), &progress(1_000, "tv", 5_000, None)).await;
    upsert(store, &key("acct", "A", "s-e2"), &episode(progress(1_500, "tv", 5_000, None), "s", 2)).await;
    // A checkpoint without the series keeps the episode an episode.
    upsert(store, &key("acct", "A", "s-e2"), &progress(4_000, "tv", 6_000, None)).await;
    assert_eq!(continue_watching(store, &a, 10).await, ["s-e2", "s-e1", "film", "film-2"]);
    assert_eq!(continue_watching(store, &a, 3).await, ["s-e2", "s-e1", "film"]);
    let standalone = store.standalone_in_progress(&a, 10).await.expect("succeeds");
    let names: Vec<&str> = standalone.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(names, ["film", "film-2"]);
    assert_eq!(store.standalone_in_progress(&a, 1).await.expect("succeeds").len(), 1);
}

fn activity_of(rows: &[SeriesActivity]) -> Vec<(String, String, u64)> {
    rows.iter()
        .map(|a| (a.series.to_string(), a.pointer.video_id.to_string(), a.pointer.at.as_millis()))
        .collect()
}

/// Each series points at its episode written last (ties by the larger
/// video id), series ordered by that write, newest first; an older write
/// does not move the pointer, a hide does not either; the pointed
/// episode's entry comes with it (a tombstone once deleted); pages
/// continue after a given series.
pub async fn series_activity_points_at_each_series_latest_episode_write(store: &dyn ProgressStore) {
    let a = profile("acct", "A");
    let ep = |at, series, n| episode(progress(at, "tv", 5_000, None), series, n);
    upsert(store, &key("acct", "A", "a-e1"), &finished(ep(1_000, "a", 1))).await;
    upsert(store, &key("acct", "A", "b-e1"), &ep(2_000, "b", 1)).await;
    upsert(store, &key("acct", "A", "a-e2"), &ep(3_000, "a", 2)).await;
    upsert(store, &key("acct", "A", "film"), &progress(9_000, "tv", 5_000, None)).await;
    upsert(store, &key("acct", "B", "c-e1"), &ep(9_000, "c", 1)).await;
    // An older write of another episode does not move the pointer...
    upsert(store, &key("acct", "A", "a-e3"), &ep(2_500, "a", 3)).await;
    // ...a later one of an episode already written does, and a tie goes
    // to the larger video id.
    upsert(store, &key("acct", "A", "b-e0"), &ep(4_000, "b", 0)).await;
    upsert(store, &key("acct", "A", "b-e9"), &ep(4_000, "b", 9)).await;
    let rows = store.series_activity(&a, None, 10).await.expect("succeeds");
    assert_eq!(
        activity_of(&rows),
        [("b".into(), "b-e9".into(), 4_000), ("a".into(), "a-e2".into(), 3_000)]
            as [(String, String, u64); 2]
    );
    assert_eq!(rows[1].latest.as_ref().and_then(Entry::live).map(|p| p.position.as_millis()), Some(5_000));
    store.hide(&key("acct", "A", "a-e1")).await.expect("hide succeeds");
    let (_, a2) = upsert(store, &key("acct", "A", "a-e2"), &finished(ep(5_000, "a", 2))).await;
    let rows = store.series_activity(&a, None, 10).await.expect("succeeds");
    assert_eq!(activity_of(&rows)[0], ("a".into(), "a-e2".into(), 5_000));
    assert_eq!(rows[0].latest, Some(a2));
    let page = store.series_activity(&a, None, 1).await.expect("succeeds");
    let rest = store
        .series_activity(&a, Some(&(page[0].pointer.at, page[0].series.clone())), 10)
        .await
        .expect("succeeds");
    assert_eq!(activity_of(&rest), [("b".into(), "b-e9".into(), 4_000)] as [(String, String, u64); 1]);
    store.delete(&key("acct", "A", "b-e9"), Timestamp::from_millis(6_000)).await.expect("delete succeeds");
    let rows = store.series_activity(&a, None, 10).await.expect("succeeds");
    assert!(matches!(rows[1].latest, Some(Entry::Deleted { .. })), "{:?}", rows[1]);
    // An episode moved to another series: both pointers name it, and a page
    // holding both still reads.
    upsert(store, &key("acct", "A", "a-e2"), &ep(7_000, "moved", 1)).await;
    let rows = store.series_activity(&a, None, 10).await.expect("succeeds");
    let naming: Vec<String> =
        activity_of(&rows).into_iter().filter(|(_, v, _)| v == "a-e2").map(|(series, _, _)| series).collect();
    assert_eq!(naming, ["moved", "a"]);
    assert!(rows.iter().all(|r| r.latest.is_some()), "{rows:?}");
}

/// A healthy store answers ping.
pub async fn ping_succeeds_on_a_healthy_store(store: &dyn ProgressStore) {
    store.ping().await.expect("ping succeeds");
}

/// A fresh cache for one case, plus whatever keeps it alive.
pub struct CacheFixture {
    /// The cache under test.
    pub cache: Arc<dyn crate::ProgressCache>,
    /// Dropped when the case ends.
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Expands to one `#[tokio::test]` per cache conformance case, each on a
/// cache from `$fresh` (an async fn taking the entry TTL and returning a
/// [`CacheFixture`]).
#[macro_export]
macro_rules! cache_conformance_tests {
    ($fresh:path) => {
        $crate::cache_conformance_tests!(@cases $fresh;
            cache_miss_is_none,
            cache_put_then_get_round_trips_every_field,
            cache_put_refuses_older_entries,
            cache_put_accepts_newer_entries_and_tombstones,
            cache_ties_break_on_device_bytes_like_the_store,
            cache_keys_that_share_prefixes_stay_independent,
            cache_remove_forgets,
            cache_put_many_is_each_put_in_order,
            cache_entries_expire_after_the_ttl
        );
    };
    (@cases $fresh:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::cache_case(stringify!($case), $fresh).await;
            }
        )*
    };
}

/// Runs one named cache case on a fixture from `fresh`.
pub async fn cache_case<F, Fut>(case: &str, fresh: F)
where
    F: Fn(std::time::Duration) -> Fut,
    Fut: std::future::Future<Output = CacheFixture>,
{
    use std::time::Duration as Ttl;
    let long = Ttl::from_secs(600);
    let fixture =
        fresh(if case == "cache_entries_expire_after_the_ttl" { Ttl::from_millis(300) } else { long }).await;
    let cache = fixture.cache.as_ref();
    let live = |at, device: &str, pos| Entry::Live(progress(at, device, pos, Some(3_600_000)));
    match case {
        "cache_miss_is_none" => assert_eq!(cache.get(&key("acct", "A", "V1")).await.expect("get"), None),
        "cache_put_then_get_round_trips_every_field" => {
            for (video, entry) in [
                ("V1", live(1_764_270_000_000, "tv-livingroom", 1_200_500)),
                ("V2", Entry::Live(progress(7, "phone", 0, None))),
                ("V3", Entry::Deleted { at: Timestamp::from_millis(9) }),
                ("V4", Entry::Live(finished(episode(progress(11, "tv", 5, None), "show", 7)).carry(None))),
            ] {
                let k = key("acct", "A", video);
                assert!(cache.put(&k, &entry).await.expect("put"));
                assert_eq!(cache.get(&k).await.expect("get"), Some(entry));
            }
        }
        "cache_put_refuses_older_entries" => {
            let k = key("acct", "A", "V1");
            cache.put(&k, &live(2_000, "tv", 5)).await.expect("put");
            assert!(!cache.put(&k, &live(1_000, "phone", 9)).await.expect("put"));
            assert!(!cache.put(&k, &live(2_000, "tv", 5)).await.expect("put"), "an equal entry is not newer");
            assert_eq!(cache.get(&k).await.expect("get"), Some(live(2_000, "tv", 5)));
        }
        "cache_put_accepts_newer_entries_and_tombstones" => {
            let k = key("acct", "A", "V1");
            cache.put(&k, &live(1_000, "tv", 5)).await.expect("put");
            assert!(cache.put(&k, &live(2_000, "phone", 1)).await.expect("put"));
            let gone = Entry::Deleted { at: Timestamp::from_millis(2_000) };
            assert!(
                cache.put(&k, &gone).await.expect("put"),
                "a deletion outranks a checkpoint at the same ms"
            );
            assert!(!cache.put(&k, &live(1_999, "tv", 7)).await.expect("put"));
            assert_eq!(cache.get(&k).await.expect("get"), Some(gone));
        }
        "cache_ties_break_on_device_bytes_like_the_store" => {
            // Byte order: 'Z' (0x5A) < 'a' (0x61); many locales say otherwise.
            let k = key("acct", "A", "V1");
            cache.put(&k, &live(1_000, "a-tv", 5)).await.expect("put");
            assert!(!cache.put(&k, &live(1_000, "Z-tv", 9)).await.expect("put"));
            assert!(
                cache.put(&k, &live(1_000, "a-tv0", 1)).await.expect("put"),
                "a longer id with the same prefix is greater"
            );
            assert_eq!(cache.get(&k).await.expect("get"), Some(live(1_000, "a-tv0", 1)));
        }
        "cache_keys_that_share_prefixes_stay_independent" => {
            let keys = [
                key("acct", "A", "V1"),
                key("acct", "AB", "V1"),
                key("acc", "tA", "V1"),
                key("acct", "A", "V10"),
            ];
            for (i, k) in keys.iter().enumerate() {
                cache.put(k, &live(1_000, "tv", i as u64)).await.expect("put");
            }
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(cache.get(k).await.expect("get"), Some(live(1_000, "tv", i as u64)));
            }
        }
        "cache_remove_forgets" => {
            let k = key("acct", "A", "V1");
            cache.put(&k, &live(1_000, "tv", 5)).await.expect("put");
            cache.remove(&k).await.expect("remove");
            assert_eq!(cache.get(&k).await.expect("get"), None);
            assert!(
                cache.put(&k, &live(500, "tv", 1)).await.expect("put"),
                "after removal any entry is newer"
            );
        }
        "cache_put_many_is_each_put_in_order" => {
            let (a, b, c) = (key("acct", "A", "V1"), key("acct", "A", "V2"), key("acct", "B", "V1"));
            cache.put(&c, &live(5_000, "tv", 50)).await.expect("put");
            let gone = Entry::Deleted { at: Timestamp::from_millis(3_000) };
            let batch = [
                (a.clone(), live(1_000, "tv", 10)),
                (a.clone(), live(2_000, "phone", 20)),
                (a.clone(), live(1_500, "tv", 15)),
                (b.clone(), live(1_000, "tv", 1)),
                (b.clone(), gone.clone()),
                (c.clone(), live(4_000, "phone", 40)),
            ];
            assert_eq!(
                cache.put_many(&batch).await.expect("put_many"),
                [true, true, false, true, true, false],
                "each entry is compared with what the earlier ones left"
            );
            assert_eq!(cache.get(&a).await.expect("get"), Some(live(2_000, "phone", 20)));
            assert_eq!(cache.get(&b).await.expect("get"), Some(gone));
            assert_eq!(cache.get(&c).await.expect("get"), Some(live(5_000, "tv", 50)));
            assert_eq!(cache.put_many(&[]).await.expect("empty put_many"), Vec::<bool>::new());
        }
        "cache_entries_expire_after_the_ttl" => {
            let k = key("acct", "A", "V1");
            cache.put(&k, &live(1_000, "tv", 5)).await.expect("put");
            let deadline = std::time::Instant::now() + Ttl::from_secs(5);
            while cache.get(&k).await.expect("get").is_some() {
                assert!(std::time::Instant::now() < deadline, "entry outlived its 300 ms TTL by seconds");
                tokio::time::sleep(Ttl::from_millis(50)).await;
            }
        }
        other => panic!("unknown cache case {other}"),
    }
    cache.ping().await.expect("ping");
    drop(fixture);
}
