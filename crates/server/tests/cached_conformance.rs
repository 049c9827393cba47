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
    let store = CachedStore::new(store, cache, CACHE_TIMEOUT, Arc::new(Metrics::default()));
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
