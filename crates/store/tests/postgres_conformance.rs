//! The conformance suite on PostgreSQL (the shared server, a fresh schema per
//! case), plus what only a shared database shows: several stores (nodes) on
//! one database agree, and the schema migration is idempotent.

use std::sync::Arc;
use std::time::Duration;

use playmark_core::{
    AccountId, DeviceId, Entry, Outcome, Position, ProfileId, Progress, ProgressKey, Timestamp, VideoId,
};
use playmark_store::ProgressStore;
use playmark_store::conformance::Fixture;
use playmark_store::postgres::{PostgresOptions, PostgresStore};

fn options(url: String) -> PostgresOptions {
    PostgresOptions {
        url,
        pool_size: 4,
        writers: 2,
        max_batch: 256,
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

async fn fresh() -> Fixture {
    let url = playmark_testkit::shared::postgres_url().expect("shared PostgreSQL reachable");
    let store = PostgresStore::connect(options(url)).await.expect("store connects");
    Fixture { store: Arc::new(store), guard: Box::new(()) }
}

playmark_store::conformance_tests!(fresh);

/// On one thread the writer task cannot run until both checkpoints are
/// queued, so they are written as one group: the case where the group's
/// newest checkpoint is refused by its guard, and an older one that is
/// still newer than the record must apply (not be answered `stale`).
#[tokio::test(flavor = "current_thread")]
async fn a_group_whose_newest_checkpoint_is_refused_still_applies_the_next_one() {
    let fixture = fresh().await;
    playmark_store::conformance::a_refused_newest_checkpoint_does_not_hide_an_older_one_that_is_newer_than_the_record(
        fixture.store.as_ref(),
    )
    .await;
}

fn key(video: &str) -> ProgressKey {
    ProgressKey {
        account_id: AccountId::parse("acct").expect("valid"),
        profile_id: ProfileId::parse("A").expect("valid"),
        video_id: VideoId::parse(video).expect("valid"),
    }
}

fn progress(at: u64, device: &str, pos: u64) -> Progress {
    Progress {
        updated_at: Timestamp::from_millis(at),
        device_id: DeviceId::parse(device).expect("valid"),
        position: Position::from_millis(pos).expect("valid"),
        duration: None,
        hidden: false,
        finished: false,
        series: None,
        finished_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_one_database_race_to_the_same_newest_record() {
    let url = playmark_testkit::shared::postgres_url().expect("shared PostgreSQL reachable");
    // Three "nodes" start at once: the migration must not trip over itself.
    let (a, b, c) = tokio::join!(
        PostgresStore::connect(options(url.clone())),
        PostgresStore::connect(options(url.clone())),
        PostgresStore::connect(options(url.clone())),
    );
    let nodes = [a.expect("node a"), b.expect("node b"), c.expect("node c")];
    let writes = (0..300u64).map(|i| {
        let node = &nodes[(i % 3) as usize];
        async move {
            node.upsert(&key("V1"), progress(1_000 + i, &format!("d{i}"), i), Timestamp::from_millis(1), None)
                .await
        }
    });
    let results = futures::future::join_all(writes).await;
    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    let applied = results.iter().filter(|r| r.as_ref().is_ok_and(|w| w.outcome == Outcome::Applied)).count();
    assert!(applied >= 1);
    for node in &nodes {
        assert_eq!(node.get(&key("V1")).await.expect("get"), Some(Entry::Live(progress(1_299, "d299", 299))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_holding_the_same_checkpoint_twice_applies_it_once() {
    let url = playmark_testkit::shared::postgres_url().expect("shared PostgreSQL reachable");
    let store =
        PostgresStore::connect(PostgresOptions { pool_size: 1, ..options(url) }).await.expect("connects");
    let p = progress(5_000, "tv", 10);
    let older = progress(4_000, "tv", 99);
    let k = key("V1");
    // Queued together, so the writer most likely sees them in one batch; the
    // outcomes must be the same either way.
    let (x, y, z) = tokio::join!(
        store.upsert(&k, p.clone(), Timestamp::from_millis(1), None),
        store.upsert(&k, p.clone(), Timestamp::from_millis(1), None),
        store.upsert(&k, older, Timestamp::from_millis(1), None),
    );
    let mut outcomes = [x.expect("x").outcome, y.expect("y").outcome];
    outcomes.sort_by_key(|o| *o != Outcome::Applied);
    assert_eq!(outcomes, [Outcome::Applied, Outcome::Duplicate]);
    assert_eq!(z.expect("z").outcome, Outcome::Stale);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_batch_the_guarded_winner_gets_the_conflict_and_the_older_write_is_stale() {
    let url = playmark_testkit::shared::postgres_url().expect("shared PostgreSQL reachable");
    let store =
        PostgresStore::connect(PostgresOptions { pool_size: 1, ..options(url) }).await.expect("connects");
    let k = key("V1");
    store
        .upsert(&k, progress(5_000, "phone", 1_800_000), Timestamp::from_millis(1), None)
        .await
        .expect("upsert");
    let guard = Some(playmark_core::StaleGuard {
        resumed_from: Timestamp::from_millis(1_000),
        max_regression_ms: 300_000,
    });
    let (older, guarded) = tokio::join!(
        store.upsert(&k, progress(1_000, "tv", 30_000), Timestamp::from_millis(1), None),
        store.upsert(&k, progress(9_000, "tv", 60_000), Timestamp::from_millis(1), guard),
    );
    assert_eq!(older.expect("older").outcome, Outcome::Stale);
    assert_eq!(guarded.expect("guarded").outcome, Outcome::Conflict);
}
