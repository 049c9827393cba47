//! The cache conformance suite on every cache: the shared Redis and the
//! shared three-node Redis Cluster (a unique key prefix per case), and the
//! in-process memory cache.

use std::sync::Arc;
use std::time::Duration;

use playmark_store::ProgressCache;
use playmark_store::conformance::CacheFixture;
use playmark_store::memory::MemoryCache;
use playmark_store::redis::{RedisCache, RedisOptions, RedisTopology};

async fn redis_cache(topology: RedisTopology, ttl: Duration) -> RedisCache {
    let cache = RedisCache::connect(RedisOptions {
        topology,
        key_prefix: playmark_testkit::shared::unique_name("pm") + ":",
        ttl,
        connect_timeout: Duration::from_secs(2),
        ca_file: None,
    })
    .expect("valid options");
    cache.wait_connected(Duration::from_secs(10)).await.expect("Redis reachable");
    cache
}

mod redis_single {
    use super::*;

    async fn fresh(ttl: Duration) -> CacheFixture {
        let cache = redis_cache(RedisTopology::Single(playmark_testkit::shared::redis_url()), ttl).await;
        CacheFixture { cache: Arc::new(cache), guard: Box::new(()) }
    }

    playmark_store::cache_conformance_tests!(fresh);

    /// A pipeline of EVALSHA does not load the script the way a single
    /// invocation does; after the server forgets its scripts (a restart, a
    /// failover, `SCRIPT FLUSH`), `put_many` must load it and still store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_many_survives_a_server_that_forgot_the_script() {
        let cache = redis_cache(
            RedisTopology::Single(playmark_testkit::shared::redis_url()),
            Duration::from_secs(600),
        )
        .await;
        let client = redis::Client::open(playmark_testkit::shared::redis_url()).expect("url");
        let mut admin = client.get_multiplexed_async_connection().await.expect("Redis reachable");
        let key = |video| playmark_store::conformance::key("acct", "A", video);
        let entry =
            |at| playmark_core::Entry::Live(playmark_store::conformance::progress(at, "tv", at, None));
        for round in 1..=2u64 {
            let _: () =
                redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut admin).await.expect("SCRIPT FLUSH");
            let batch = [(key("V1"), entry(round * 1_000)), (key("V2"), entry(round * 1_000))];
            assert_eq!(cache.put_many(&batch).await.expect("put_many after SCRIPT FLUSH"), [true, true]);
            assert_eq!(cache.get(&key("V2")).await.expect("get"), Some(entry(round * 1_000)));
        }
    }
}

mod redis_cluster {
    use super::*;

    async fn fresh(ttl: Duration) -> CacheFixture {
        let seeds = playmark_testkit::shared::redis_cluster_urls().split(',').map(str::to_owned).collect();
        let cache = redis_cache(RedisTopology::Cluster(seeds), ttl).await;
        CacheFixture { cache: Arc::new(cache), guard: Box::new(()) }
    }

    playmark_store::cache_conformance_tests!(fresh);
}

mod memory {
    use super::*;

    async fn fresh(ttl: Duration) -> CacheFixture {
        CacheFixture { cache: Arc::new(MemoryCache::new(10_000, ttl)), guard: Box::new(()) }
    }

    playmark_store::cache_conformance_tests!(fresh);
}

#[test]
fn connection_options_never_show_a_password_in_debug_output() {
    let redis = RedisOptions {
        topology: RedisTopology::Cluster(vec![
            "redis://u:hunter2@a:6379".into(),
            "redis://u:hunter2@b:6379".into(),
        ]),
        key_prefix: "pm:".into(),
        ttl: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        ca_file: None,
    };
    let postgres = playmark_store::postgres::PostgresOptions {
        url: "postgres://u:hunter2@db/x".into(),
        ..Default::default()
    };
    let nats = playmark_store::nats::NatsOptions {
        url: "nats://u:hunter2@n:4222".into(),
        subject: "s".into(),
        stream: "S".into(),
        timeout: Duration::from_secs(1),
        max_age: Duration::from_secs(1),
        max_bytes: 1,
    };
    for shown in [format!("{redis:?}"), format!("{postgres:?}"), format!("{nats:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
