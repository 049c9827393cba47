//! The store conformance suite on the cache wrapper: [`CachedStore`] is a
//! store, so it keeps every promise a store makes, over each cache (the
//! in-process memory cache, the shared Redis, the shared Redis Cluster) in
//! front of the embedded store, and over PostgreSQL with Redis.

use std::sync::Arc;
use std::time::Duration;

use playmark_server::cached::CachedStore;
use playmark_server::metrics::Metrics;
use playmark_store::conformance::Fixture;
use playmark_store::embedded::{EmbeddedOptions, EmbeddedStore};
use playmark_store::redis::{RedisCache, RedisOptions, RedisTopology};
use playmark_store::{ProgressCache, ProgressStore};

/// A generous cache timeout: the suite checks behaviour, not speed, and a
/// busy test machine must not turn cache calls into misses.
const CACHE_TIMEOUT: Duration = Duration::from_secs(2);

fn cached(
    store: Arc<dyn ProgressStore>,
    cache: Arc<dyn ProgressCache>,
    guard: Box<dyn std::any::Any + Send>,
) -> Fixture {
    let store = CachedStore::new(store, cache, CACHE_TIMEOUT, CACHE_TIMEOUT, Arc::new(Metrics::default()));
    Fixture { store: Arc::new(store), guard }
}

fn embedded() -> (Arc<dyn ProgressStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("store opens");
    (Arc::new(store), dir)
}

async fn redis(topology: RedisTopology) -> Arc<dyn ProgressCache> {
    let cache = RedisCache::connect(RedisOptions {
        topology,
        key_prefix: playmark_testkit::shared::unique_name("pm") + ":",
        ttl: Duration::from_secs(600),
        connect_timeout: Duration::from_secs(2),
        ca_file: None,
    })
    .expect("valid options");
    cache.wait_connected(Duration::from_secs(10)).await.expect("Redis reachable");
    Arc::new(cache)
}

mod over_memory {
    use super::*;

    async fn fresh() -> Fixture {
        let (store, dir) = embedded();
        let cache = playmark_store::memory::MemoryCache::new(10_000, Duration::from_secs(600));
        cached(store, Arc::new(cache), Box::new(dir))
    }

    playmark_store::conformance_tests!(fresh);
}

mod over_redis {
    use super::*;

    async fn fresh() -> Fixture {
        let (store, dir) = embedded();
        let cache = redis(RedisTopology::Single(playmark_testkit::shared::redis_url())).await;
        cached(store, cache, Box::new(dir))
    }

    playmark_store::conformance_tests!(fresh);
}

mod over_redis_cluster {
    use super::*;

    async fn fresh() -> Fixture {
        let (store, dir) = embedded();
        let seeds = playmark_testkit::shared::redis_cluster_urls().split(',').map(str::to_owned).collect();
        let cache = redis(RedisTopology::Cluster(seeds)).await;
        cached(store, cache, Box::new(dir))
    }

    playmark_store::conformance_tests!(fresh);
}

mod postgres_over_redis {
    use super::*;
    use playmark_store::postgres::{PostgresOptions, PostgresStore};

    async fn fresh() -> Fixture {
        let url = playmark_testkit::shared::postgres_url().expect("shared PostgreSQL reachable");
        let options = PostgresOptions { url, pool_size: 4, ..Default::default() };
        let store = PostgresStore::connect(options).await.expect("store connects");
        let cache = redis(RedisTopology::Single(playmark_testkit::shared::redis_url())).await;
        cached(Arc::new(store), cache, Box::new(()))
    }

    playmark_store::conformance_tests!(fresh);
}

/// A cache whose writes fail while `refuse` is set (reads still answer):
/// a cache that is up for reads but drops or times out updates.
#[derive(Debug)]
struct WriteRefusing {
    inner: Arc<dyn ProgressCache>,
    refuse: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ProgressCache for WriteRefusing {
    fn backend(&self) -> &'static str {
        "write-refusing"
    }
    async fn get(
        &self,
        key: &playmark_core::ProgressKey,
    ) -> Result<Option<playmark_core::Entry>, playmark_store::CacheError> {
        self.inner.get(key).await
    }
    async fn put(
        &self,
        key: &playmark_core::ProgressKey,
        entry: &playmark_core::Entry,
    ) -> Result<bool, playmark_store::CacheError> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(playmark_store::CacheError { backend: "write-refusing", reason: "refused".into() });
        }
        self.inner.put(key, entry).await
    }
    async fn remove(&self, key: &playmark_core::ProgressKey) -> Result<(), playmark_store::CacheError> {
        self.inner.remove(key).await
    }
    async fn ping(&self) -> Result<(), playmark_store::CacheError> {
        self.inner.ping().await
    }
}

/// A write whose cache update failed is acknowledged; until the update is
/// repaired the node reads that key from the store, so it never answers
/// with the older value the cache still holds; once the cache takes writes
/// again, the repair lands and the cache serves the new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_cache_update_failed_is_read_from_the_store_until_repaired() {
    use playmark_core::{
        AccountId, DeviceId, Entry, Position, ProfileId, Progress, ProgressKey, Timestamp, VideoId,
    };
    let (store, _dir) = embedded();
    let memory = Arc::new(playmark_store::memory::MemoryCache::new(100, Duration::from_secs(600)));
    let cache = Arc::new(WriteRefusing { inner: memory.clone(), refuse: false.into() });
    let metrics = Arc::new(Metrics::default());
    let cached = CachedStore::new(store, cache.clone(), CACHE_TIMEOUT, CACHE_TIMEOUT, Arc::clone(&metrics));
    let key = ProgressKey {
        account_id: AccountId::parse("acct".to_owned()).expect("id"),
        profile_id: ProfileId::parse("A".to_owned()).expect("id"),
        video_id: VideoId::parse("V1".to_owned()).expect("id"),
    };
    let at = |ms: u64, pos: u64| Progress {
        updated_at: Timestamp::from_millis(ms),
        device_id: DeviceId::parse("tv".to_owned()).expect("id"),
        position: Position::from_millis(pos).expect("position"),
        duration: None,
        hidden: false,
        finished: false,
        series: None,
        finished_at: None,
    };
    let now = Timestamp::from_millis(10_000);
    cached.upsert(&key, at(1_000, 100_000), now, None).await.expect("written");
    assert_eq!(memory.get(&key).await.expect("cache"), Some(Entry::Live(at(1_000, 100_000))));

    cache.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    cached.upsert(&key, at(2_000, 900_000), now, None).await.expect("acknowledged");
    assert_eq!(
        memory.get(&key).await.expect("cache"),
        Some(Entry::Live(at(1_000, 100_000))),
        "the cache is stale"
    );
    for _ in 0..3 {
        assert_eq!(cached.get(&key).await.expect("read"), Some(Entry::Live(at(2_000, 900_000))));
    }
    assert!(metrics.render().contains(r#"playmark_cache_lookups_total{result="bypass"} 3"#));

    cache.refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !metrics.render().contains("playmark_cache_repairs_pending 0\n") {
        assert!(std::time::Instant::now() < deadline, "the repair never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(memory.get(&key).await.expect("cache"), Some(Entry::Live(at(2_000, 900_000))));
    // Repaired: reads are served by the cache again.
    assert_eq!(cached.get(&key).await.expect("read"), Some(Entry::Live(at(2_000, 900_000))));
    assert!(
        metrics.render().contains(r#"playmark_cache_lookups_total{result="hit"} 1"#),
        "{}",
        metrics.render()
    );
}
