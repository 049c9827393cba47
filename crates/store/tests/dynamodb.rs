//! The DynamoDB store on two independent emulators (`scripts/services`
//! starts both): dynalite, which does not return the standing item when a
//! condition fails (the store reads it), and moto, which does. Each case
//! gets a table of its own.

use std::sync::Arc;
use std::time::Duration;

use playmark_core::{
    AccountId, DeviceId, Duration as TitleDuration, Entry, Outcome, Position, ProfileId, ProfileKey,
    Progress, ProgressKey, StaleGuard, Timestamp, VideoId,
};
use playmark_store::ProgressStore;
use playmark_store::conformance::Fixture;
use playmark_store::dynamodb::{DynamoOptions, DynamoStore};
use proptest::prelude::*;

async fn store_on(endpoint: String, tweak: impl FnOnce(&mut DynamoOptions)) -> DynamoStore {
    let mut options = DynamoOptions {
        table: playmark_testkit::shared::unique_name("pm"),
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        // Explicit: the AWS credential chain never probes anything here.
        credentials: Some(("test".into(), "test".into())),
        // Generous: a test machine is busy, and moto's listen backlog is
        // short, so 200 writers connecting at once wait for retransmits.
        connect_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(10),
        attempt_timeout: Duration::from_secs(5),
        ..DynamoOptions::default()
    };
    tweak(&mut options);
    DynamoStore::connect(options)
        .await
        .unwrap_or_else(|e| panic!("the DynamoDB emulator at {endpoint} (scripts/services starts it): {e:?}"))
}

mod on_dynalite {
    use super::*;

    async fn fresh() -> Fixture {
        let store = store_on(playmark_testkit::shared::dynalite_url(), |_| {}).await;
        Fixture { store: Arc::new(store), guard: Box::new(()) }
    }

    playmark_store::conformance_tests!(fresh);
}

mod on_moto {
    use super::*;

    async fn fresh() -> Fixture {
        let store = store_on(playmark_testkit::shared::moto_url(), |_| {}).await;
        Fixture { store: Arc::new(store), guard: Box::new(()) }
    }

    playmark_store::conformance_tests!(fresh);
}

fn key(video: &str) -> ProgressKey {
    ProgressKey {
        account_id: AccountId::parse("acct".to_owned()).expect("id"),
        profile_id: ProfileId::parse("A".to_owned()).expect("id"),
        video_id: VideoId::parse(video.to_owned()).expect("id"),
    }
}

fn progress(at: u64, device: &str, position_ms: u64, duration_ms: Option<u64>) -> Progress {
    Progress {
        updated_at: Timestamp::from_millis(at),
        device_id: DeviceId::parse(device.to_owned()).expect("id"),
        position: Position::from_millis(position_ms).expect("position"),
        duration: duration_ms.map(|d| TitleDuration::from_millis(d).expect("duration")),
        hidden: false,
        finished: false,
        series: None,
        finished_at: None,
    }
}

/// What stands before a write, in a few values each so ties are common.
#[derive(Debug, Clone)]
enum Standing {
    Nothing,
    Live { at: u64, device: &'static str, position: u64, duration: Option<u64>, hidden: bool },
    Deleted { at: u64 },
}

fn standing() -> impl Strategy<Value = Standing> {
    prop_oneof![
        Just(Standing::Nothing),
        (
            1_000..1_003u64,
            prop::sample::select(vec!["a", "b"]),
            0..3u64,
            prop::option::of(1..3u64),
            any::<bool>()
        )
            .prop_map(|(at, device, position, duration, hidden)| Standing::Live {
                at,
                device,
                position: position * 100_000,
                duration,
                hidden
            }),
        (1_000..1_003u64).prop_map(|at| Standing::Deleted { at }),
    ]
}

fn incoming() -> impl Strategy<Value = (Progress, Option<StaleGuard>)> {
    (
        1_000..1_003u64,
        prop::sample::select(vec!["a", "b"]),
        0..3u64,
        prop::option::of(1..3u64),
        prop::option::of((999..1_003u64, prop::sample::select(vec![0u64, 100_000]))),
    )
        .prop_map(|(at, device, position, duration, guard)| {
            (
                progress(at, device, position * 100_000, duration),
                guard.map(|(resumed_from, max_regression_ms)| StaleGuard {
                    resumed_from: Timestamp::from_millis(resumed_from),
                    max_regression_ms,
                }),
            )
        })
}

/// Puts `standing` under `k`, through the store.
async fn place(store: &DynamoStore, k: &ProgressKey, standing: &Standing) -> Option<Entry> {
    match standing {
        Standing::Nothing => None,
        Standing::Live { at, device, position, duration, hidden } => {
            let p = progress(*at, device, *position, *duration);
            store.upsert(k, p.clone(), Timestamp::from_millis(5_000), None).await.expect("placed");
            if *hidden {
                store.hide(k).await.expect("hidden");
            }
            Some(Entry::Live(Progress { hidden: *hidden, ..p }))
        }
        Standing::Deleted { at } => {
            // On an empty key, the tombstone is at `now`.
            store.delete(k, Timestamp::from_millis(*at)).await.expect("placed");
            Some(Entry::Deleted { at: Timestamp::from_millis(*at) })
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The conditional put and core's conflict order (tie-breaks, the
    /// stale-device guard, hidden copies) agree: same outcome, same
    /// standing entry, on random pairs.
    #[test]
    fn the_condition_expression_agrees_with_core_on_random_pairs(
        before in standing(),
        (write, guard) in incoming(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let store = shared_moto_store().await;
            let k = key(&playmark_testkit::shared::unique_name("V"));
            let standing = place(&store, &k, &before).await;
            let incoming = Entry::Live(write.clone());
            let expected = match Entry::merge(standing.as_ref(), &incoming) {
                Outcome::Applied if standing.as_ref().zip(guard).is_some_and(|(s, g)| g.refuses(s, &write)) => {
                    Outcome::Conflict
                }
                other => other,
            };
            let written = store.upsert(&k, write.clone(), Timestamp::from_millis(6_000), guard).await.expect("written");
            prop_assert_eq!(written.outcome, expected, "standing {:?}, incoming {:?}, guard {:?}", before, write, guard);
            let expected_standing = match expected {
                Outcome::Applied => incoming,
                _ => standing.expect("a refusal has a standing entry"),
            };
            prop_assert_eq!(&written.standing, &expected_standing);
            prop_assert_eq!(store.get(&k).await.expect("read"), Some(expected_standing));
            Ok(())
        })?;
    }
}

/// One table for every property case (each case uses a title of its own).
async fn shared_moto_store() -> DynamoStore {
    static TABLE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| playmark_testkit::shared::unique_name("pm")).clone();
    store_on(playmark_testkit::shared::moto_url(), |o| o.table = table).await
}

const DAY_MS: u64 = 86_400_000;

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

async fn ttl_reads_an_expired_item_as_absent_and_a_write_refreshes_it(endpoint: String) {
    let store = store_on(endpoint, |o| o.ttl = Some(Duration::from_millis(DAY_MS))).await;
    let (old, fresh) = (key("old"), key("fresh"));
    let now = wall_ms();
    // Written (touched) two days ago: its TTL has passed.
    let long_ago = Timestamp::from_millis(now - 2 * DAY_MS);
    store
        .upsert(&old, progress(now - 2 * DAY_MS, "tv", 60_000, None), long_ago, None)
        .await
        .expect("written");
    store
        .upsert(&fresh, progress(now, "tv", 60_000, None), Timestamp::from_millis(now), None)
        .await
        .expect("written");
    assert_eq!(store.get(&old).await.expect("read"), None, "expired reads as absent");
    let profile = ProfileKey { account_id: old.account_id.clone(), profile_id: old.profile_id.clone() };
    let row: Vec<String> = store
        .continue_watching(&profile, 10)
        .await
        .expect("read")
        .into_iter()
        .map(|(v, _)| v.to_string())
        .collect();
    assert_eq!(row, ["fresh"]);
    // An older checkpoint than the expired one still lands: nothing stands.
    let older = progress(now - 3 * DAY_MS, "phone", 1_000, None);
    assert_eq!(
        store.upsert(&old, older.clone(), Timestamp::from_millis(now), None).await.expect("written").outcome,
        Outcome::Applied
    );
    assert_eq!(store.get(&old).await.expect("read"), Some(Entry::Live(older)));
    // Every applied write refreshes exp (epoch seconds) to now + the TTL.
    let item = store
        .client()
        .get_item()
        .table_name(store.table())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("acct#A".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("old".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("raw read")
        .item
        .expect("the item");
    let exp: u64 = item["exp"].as_n().expect("a number").parse().expect("an integer");
    assert_eq!(exp, now / 1000 + DAY_MS / 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_ttl_expired_items_read_as_absent_on_dynalite() {
    ttl_reads_an_expired_item_as_absent_and_a_write_refreshes_it(playmark_testkit::shared::dynalite_url())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_ttl_expired_items_read_as_absent_on_moto() {
    ttl_reads_an_expired_item_as_absent_and_a_write_refreshes_it(playmark_testkit::shared::moto_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_has_the_table_s_ttl_turned_on() {
    let store =
        store_on(playmark_testkit::shared::moto_url(), |o| o.ttl = Some(Duration::from_secs(3600))).await;
    let ttl =
        store.client().describe_time_to_live().table_name(store.table()).send().await.expect("describe");
    let ttl = ttl.time_to_live_description.expect("a TTL description");
    assert_eq!(ttl.attribute_name.as_deref(), Some("exp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_takes_a_profile_over_the_cap_trims_it_at_once() {
    let store = store_on(playmark_testkit::shared::moto_url(), |o| o.max_titles = Some(5)).await;
    for i in 0..8u64 {
        let k = key(&format!("V{i}"));
        store
            .upsert(&k, progress(1_000 + i, "tv", 60_000, None), Timestamp::from_millis(5_000), None)
            .await
            .expect("w");
    }
    // The trim runs right after the write that crossed the cap, off its path.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut present = Vec::new();
        for i in 0..8u64 {
            present.push(store.get(&key(&format!("V{i}"))).await.expect("read").is_some());
        }
        if present == [false, false, false, true, true, true, true, true] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not trimmed to the 5 newest: {present:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing is over the cap any more.
    assert!(store.trim(5, 100).await.expect("trim").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_watching_is_a_query_of_the_index_with_the_limit_pushed_down() {
    let store = store_on(playmark_testkit::shared::moto_url(), |_| {}).await;
    for i in 0..30u64 {
        let k = key(&format!("V{i:02}"));
        store
            .upsert(&k, progress(1_000 + i, "tv", 60_000, None), Timestamp::from_millis(5_000), None)
            .await
            .expect("w");
    }
    let profile = ProfileKey {
        account_id: AccountId::parse("acct".to_owned()).expect("id"),
        profile_id: ProfileId::parse("A".to_owned()).expect("id"),
    };
    let row: Vec<String> = store
        .continue_watching(&profile, 3)
        .await
        .expect("read")
        .into_iter()
        .map(|(v, _)| v.to_string())
        .collect();
    assert_eq!(row, ["V29", "V28", "V27"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_unavailable_not_a_hang() {
    let options = DynamoOptions {
        table: "t".into(),
        endpoint: Some(format!("http://127.0.0.1:{}", playmark_testkit::free_port())),
        region: Some("us-east-1".into()),
        credentials: Some(("test".into(), "test".into())),
        operation_timeout: Duration::from_secs(2),
        ..DynamoOptions::default()
    };
    let started = std::time::Instant::now();
    let e = DynamoStore::connect(options).await.expect_err("nothing listens");
    assert!(e.is_transient(), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}
