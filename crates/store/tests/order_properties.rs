//! The conflict order is written three times — in Rust (`playmark_core::
//! Entry`), in SQL (the PostgreSQL upsert's `WHERE`), in Lua (the Redis
//! cache's compare-and-set) — so this checks, on random pairs drawn from a
//! small domain that makes every tie likely, that the three agree:
//!
//! - PostgreSQL: with `a` standing (live, hidden or a tombstone), the
//!   outcome of upserting `b` is `Entry::merge(a, b)`, and what stands after
//!   is what core says.
//! - Redis (and the memory cache): after putting `a`, putting `b` is stored
//!   exactly when `b > a` in the stored-state order, and what is cached after
//!   is the larger.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use playmark_core::{
    AccountId, DeviceId, Duration as TitleDuration, Entry, Outcome, Position, ProfileId, Progress,
    ProgressKey, Timestamp, VideoId,
};
use playmark_store::memory::MemoryCache;
use playmark_store::postgres::{PostgresOptions, PostgresStore};
use playmark_store::redis::{RedisCache, RedisOptions, RedisTopology};
use playmark_store::{ProgressCache, ProgressStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn progress() -> impl Strategy<Value = Progress> {
    (
        1_000u64..=1_001,
        prop::sample::select(vec!["a", "b", "Z", "a0", "tv"]),
        0u64..=2,
        prop::option::of(1u64..=2),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(at, device, position, duration, hidden, finished)| {
            Progress {
                updated_at: Timestamp::from_millis(at),
                device_id: DeviceId::parse(device).expect("valid device id"),
                position: Position::from_millis(position).expect("valid position"),
                duration: duration.map(|d| TitleDuration::from_millis(d).expect("valid duration")),
                hidden,
                finished,
                series: None,
                finished_at: None,
            }
            // As a store keeps it: a finished title's finish time is its write's.
            .carry(None)
        })
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        4 => progress().prop_map(Entry::Live),
        1 => (1_000u64..=1_001).prop_map(|at| Entry::Deleted { at: Timestamp::from_millis(at) }),
    ]
}

fn key(case: usize) -> ProgressKey {
    ProgressKey {
        account_id: AccountId::parse("acct").expect("valid"),
        profile_id: ProfileId::parse("A").expect("valid"),
        video_id: VideoId::parse(format!("V{case}")).expect("valid"),
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: 200, failure_persistence: None, ..Config::default() })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Makes `entry` stand under `key` in an empty store.
async fn stand(store: &dyn ProgressStore, key: &ProgressKey, entry: &Entry) {
    let now = Timestamp::from_millis(1);
    match entry {
        Entry::Live(p) => {
            let shown = Progress { hidden: false, ..p.clone() };
            store.upsert(key, shown, now, None).await.expect("upsert");
            if p.hidden {
                store.hide(key).await.expect("hide");
            }
        }
        // With nothing standing, a deletion's tombstone is exactly `at`.
        Entry::Deleted { at } => drop(store.delete(key, *at).await.expect("delete")),
    }
    assert_eq!(store.get(key).await.expect("get").as_ref(), Some(entry), "set-up");
}

#[test]
fn postgres_applies_a_checkpoint_exactly_when_core_says_it_is_newer() {
    let rt = runtime();
    let store = rt.block_on(async {
        let url = playmark_testkit::shared::postgres_url().expect("shared PostgreSQL reachable");
        PostgresStore::connect(PostgresOptions { url, pool_size: 4, ..Default::default() })
            .await
            .expect("store connects")
    });
    let case = AtomicUsize::new(0);
    runner()
        .run(&(entry(), progress()), |(standing, incoming)| {
            let k = key(case.fetch_add(1, Ordering::Relaxed));
            let incoming = Progress { hidden: false, ..incoming };
            let expected = Entry::merge(Some(&standing), &Entry::Live(incoming.clone()));
            let after = if expected == Outcome::Applied {
                Entry::Live(incoming.clone().carry(Some(&standing)))
            } else {
                standing.clone()
            };
            rt.block_on(async {
                stand(&store, &k, &standing).await;
                let written =
                    store.upsert(&k, incoming, Timestamp::from_millis(1), None).await.expect("upsert");
                prop_assert_eq!(written.outcome, expected);
                prop_assert_eq!(&written.standing, &after);
                prop_assert_eq!(store.get(&k).await.expect("get"), Some(after));
                Ok(())
            })
        })
        .expect("PostgreSQL agrees with core");
}

fn caches_agree(cache: &dyn ProgressCache, rt: &tokio::runtime::Runtime) {
    let case = AtomicUsize::new(0);
    runner()
        .run(&(entry(), entry()), |(first, second)| {
            let k = key(case.fetch_add(1, Ordering::Relaxed));
            rt.block_on(async {
                prop_assert!(cache.put(&k, &first).await.expect("put"));
                let stored = cache.put(&k, &second).await.expect("put");
                prop_assert_eq!(stored, second > first, "{:?} then {:?}", first, second);
                prop_assert_eq!(cache.get(&k).await.expect("get"), Some(first.max(second)));
                Ok(())
            })
        })
        .expect("the cache agrees with core");
}

#[test]
fn the_redis_compare_and_set_keeps_exactly_what_core_orders_higher() {
    let rt = runtime();
    let cache = rt.block_on(async {
        let cache = RedisCache::connect(RedisOptions {
            topology: RedisTopology::Single(playmark_testkit::shared::redis_url()),
            key_prefix: playmark_testkit::shared::unique_name("pm") + ":",
            ttl: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(2),
            ca_file: None,
        })
        .expect("valid options");
        cache.wait_connected(Duration::from_secs(10)).await.expect("Redis reachable");
        Arc::new(cache)
    });
    caches_agree(cache.as_ref(), &rt);
}

#[test]
fn the_memory_cache_keeps_exactly_what_core_orders_higher() {
    let rt = runtime();
    caches_agree(&MemoryCache::new(10_000, Duration::from_secs(600)), &rt);
}
