//! Faults in the hybrid deployment, on private servers the tests can break:
//! Redis frozen and killed, PostgreSQL frozen and restarted, several nodes on
//! one store, and events on NATS JetStream.
//!
//! Latency bounds here are the budgets of docs/design.md#budgets (resume 150 ms, write
//! 500 ms), checked as the median of several requests so a noisy machine
//! does not flake them; they verify that deadlines are enforced, not how
//! fast playmark is (that is the benchmark suite's job).

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::time::{Duration, Instant};

use helpers::{Backend, TestApp, checkpoint, now_ms};
use playmark_server::config::EventsKind;
use playmark_testkit::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

const RESUME_BUDGET: Duration = Duration::from_millis(150);
const WRITE_BUDGET: Duration = Duration::from_millis(500);

/// Runs `call` five times; returns the median latency and the last answer.
async fn median<F, Fut, T>(mut call: F) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let started = Instant::now();
        last = Some(call().await);
        times.push(started.elapsed());
    }
    times.sort();
    (times[2], last.expect("ran five times"))
}

async fn position(app: &TestApp, video: &str) -> Value {
    app.resume(video).await["position"].clone()
}

/// Polls `video`'s resume position until it is `expected`; returns how long it took.
async fn time_until_position(app: &TestApp, video: &str, expected: u64, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if position(app, video).await == expected {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "resume of {video} did not show {expected} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cache_hits(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(r#"playmark_cache_lookups_total{result="hit"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.text().await.expect("metrics body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_is_resumed_from_another_at_once() {
    let a = TestApp::spawn_in(Backend::shared_postgres_redis(), |_| {}).await;
    let b = a.sibling().await;
    let t = now_ms() - 1_000;
    a.update_ok(&checkpoint("V1", "tv", 1200.0, t)).await;
    assert_eq!(position(&b, "V1").await, 1200);
    b.update_ok(&checkpoint("V1", "phone", 1300.0, t + 500)).await;
    assert_eq!(position(&a, "V1").await, 1300);
    // Stale on either node, whichever wrote last.
    assert_eq!(a.update_ok(&checkpoint("V1", "tv", 1250.0, t + 100)).await["outcome"], "stale");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_frozen_answers_stay_right_and_inside_the_budgets_and_the_cache_recovers() {
    let redis = Server::redis().expect("private redis");
    let app = TestApp::spawn_in(Backend::shared_postgres(redis.url()), |_| {}).await;
    let t = now_ms() - 10_000;
    app.update_ok(&checkpoint("V1", "tv", 100.0, t)).await;
    assert_eq!(position(&app, "V1").await, 100);

    redis.freeze().expect("redis frozen");
    let (took, answer) = median(|| app.resume("V1")).await;
    assert_eq!(answer["position"], 100);
    assert!(took < RESUME_BUDGET, "resume with a frozen cache took {took:?}");
    let mut i: u32 = 0;
    let app_ref = &app;
    let (took, status) = median(|| {
        i += 1;
        let app = app_ref;
        let body = checkpoint("V1", "tv", 100.0 + f64::from(i), t + u64::from(i));
        async move { app.update(&body).await.status() }
    })
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(took < WRITE_BUDGET, "write with a frozen cache took {took:?}");
    assert_eq!(position(&app, "V1").await, 105, "the store answers while the cache is frozen");
    let ready: Value = app.get("/readyz").await.json().await.expect("JSON");
    assert_eq!(ready["status"], "degraded", "{ready}");

    redis.thaw().expect("redis thawed");
    // The writes made while it was frozen reach the cache, and it serves again.
    time_until_position(&app, "V1", 105, Duration::from_secs(2)).await;
    let before = cache_hits(&metrics(&app).await);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache_hits(&metrics(&app).await) <= before {
        assert!(Instant::now() < deadline, "the cache never served again after the thaw");
        assert_eq!(position(&app, "V1").await, 105);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_made_while_the_cache_was_unreachable_is_never_hidden_on_its_node_nor_for_over_2_s_elsewhere()
{
    let redis = Server::redis().expect("private redis");
    let app = TestApp::spawn_in(Backend::shared_postgres(redis.url()), |_| {}).await;
    let other = app.sibling().await;
    let t = now_ms() - 10_000;
    app.update_ok(&checkpoint("V1", "tv", 100.0, t)).await;
    // Warm: the cache holds 100, and serves it to both nodes.
    for node in [&app, &other] {
        assert_eq!(position(node, "V1").await, 100);
        let warm = cache_hits(&metrics(node).await);
        assert_eq!(position(node, "V1").await, 100);
        assert!(cache_hits(&metrics(node).await) > warm, "the cache should be serving V1");
    }

    redis.freeze().expect("frozen");
    app.update_ok(&checkpoint("V1", "phone", 900.0, t + 1_000)).await;
    redis.thaw().expect("thawed");
    // The cache still holds 100 until the repair lands; the node that
    // acknowledged 900 reads the key from the store meanwhile.
    assert_eq!(position(&app, "V1").await, 900, "the writing node answered with the older cached value");
    let took = time_until_position(&other, "V1", 900, Duration::from_secs(2)).await;
    eprintln!("the newer write reached the other node {took:?} after the cache came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_the_store_serves_and_a_restarted_redis_is_used_again() {
    let mut redis = Server::redis().expect("private redis");
    let app = TestApp::spawn_in(Backend::shared_postgres(redis.url()), |_| {}).await;
    let t = now_ms() - 10_000;
    app.update_ok(&checkpoint("V1", "tv", 100.0, t)).await;

    redis.kill().expect("killed");
    let (took, answer) = median(|| app.resume("V1")).await;
    assert_eq!(answer["position"], 100);
    assert!(took < RESUME_BUDGET, "resume with a dead cache took {took:?}");
    app.update_ok(&checkpoint("V1", "tv", 200.0, t + 1)).await;

    redis.restart().expect("restarted");
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = cache_hits(&metrics(&app).await);
    loop {
        assert_eq!(position(&app, "V1").await, 200);
        if cache_hits(&metrics(&app).await) > before {
            break;
        }
        assert!(Instant::now() < deadline, "the cache was not used again within 10 s of Redis returning");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With `app`'s store (`server`) frozen: writes are answered 503 with
/// `Retry-After` within the write budget, cached resumes within the resume
/// budget; after the thaw, writes recover and the last one stands. `app`
/// holds V1 at 100 (cached) when called.
async fn store_frozen_writes_get_503_fast_and_cached_resumes_are_served(app: &TestApp, server: &Server) {
    let t = now_ms() - 10_000;
    server.freeze().expect("store frozen");
    let mut i: u32 = 0;
    let app_ref = app;
    let (took, response) = median(|| {
        i += 1;
        let app = app_ref;
        let body = checkpoint("V2", "tv", f64::from(i), t + u64::from(i));
        async move { app.update(&body).await }
    })
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert!(took < WRITE_BUDGET + Duration::from_millis(100), "a 503 took {took:?}");
    let (took, answer) = median(|| app.resume("V1")).await;
    assert_eq!(answer["position"], 100, "cached entries are served while the store is frozen");
    assert!(took < RESUME_BUDGET, "a cached resume took {took:?}");

    server.thaw().expect("thawed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.update(&checkpoint("V1", "tv", 300.0, t + 100)).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "writes did not recover within 10 s of the thaw");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(position(app, "V1").await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_frozen_writes_get_503_fast_cached_resumes_are_served_and_nothing_acknowledged_is_lost()
{
    let pg = Server::postgres().expect("private postgres");
    let app =
        TestApp::spawn_in(Backend::private(pg.url(), playmark_testkit::shared::redis_url()), |_| {}).await;
    let t = now_ms() - 10_000;
    app.update_ok(&checkpoint("V1", "tv", 100.0, t)).await;
    assert_eq!(position(&app, "V1").await, 100);

    store_frozen_writes_get_503_fast_and_cached_resumes_are_served(&app, &pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_dynamodb_frozen_writes_get_503_fast_cached_resumes_are_served_and_nothing_acknowledged_is_lost()
{
    let ddb = Server::moto().expect("private moto");
    // The real budgets (the suite relaxes them for emulators).
    let defaults = playmark_server::Config::default();
    let app = TestApp::spawn_in(Backend::dynamodb(ddb.url(), playmark_testkit::shared::redis_url()), |c| {
        (c.write_timeout, c.read_timeout) = (defaults.write_timeout, defaults.read_timeout);
    })
    .await;
    let t = now_ms() - 10_000;
    app.update_ok(&checkpoint("V1", "tv", 100.0, t)).await;
    assert_eq!(position(&app, "V1").await, 100);

    store_frozen_writes_get_503_fast_and_cached_resumes_are_served(&app, &ddb).await;
    // What was acknowledged is in the table: a node with no cache reads it.
    let direct = TestApp::spawn_with(|c| {
        c.store = playmark_server::config::StoreKind::Dynamodb;
        c.dynamodb_endpoint = Some(ddb.url());
        c.dynamodb_table = app.backend.dynamodb_table().expect("a dynamodb backend").to_owned();
    })
    .await;
    assert_eq!(position(&direct, "V1").await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_dynamodb_node_is_resumed_from_another_at_once() {
    let a = TestApp::spawn_in(
        Backend::dynamodb(playmark_testkit::shared::moto_url(), playmark_testkit::shared::redis_url()),
        |_| {},
    )
    .await;
    let b = a.sibling().await;
    let t = now_ms() - 1_000;
    a.update_ok(&checkpoint("V1", "tv", 1200.0, t)).await;
    assert_eq!(position(&b, "V1").await, 1200);
    b.update_ok(&checkpoint("V1", "phone", 1300.0, t + 500)).await;
    assert_eq!(position(&a, "V1").await, 1300);
    assert_eq!(a.update_ok(&checkpoint("V1", "tv", 1250.0, t + 100)).await["outcome"], "stale");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_postgres_crash_and_restart_the_pool_reconnects_and_acknowledged_writes_remain() {
    let mut pg = Server::postgres().expect("private postgres");
    let app =
        TestApp::spawn_in(Backend::private(pg.url(), playmark_testkit::shared::redis_url()), |_| {}).await;
    let t = now_ms() - 10_000;
    for i in 0..50u64 {
        app.update_ok(&checkpoint(&format!("V{i}"), "tv", i as f64 + 1.0, t)).await;
    }
    pg.restart().expect("postgres killed and restarted");
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.update(&checkpoint("after", "tv", 1.0, t)).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the pool did not reconnect within 15 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Read straight from the store: a sibling node with an empty cache prefix.
    let fresh =
        TestApp::spawn_in(Backend::private(pg.url(), playmark_testkit::shared::redis_url()), |_| {}).await;
    for i in 0..50u64 {
        assert_eq!(position(&fresh, &format!("V{i}")).await, i + 1, "acknowledged write V{i} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_applied_write_publishes_exactly_one_event_and_a_retried_publish_is_stored_once() {
    let nats_url = playmark_testkit::shared::nats_url();
    let stream = playmark_testkit::shared::unique_name("PM");
    let subject = format!("playmark.test.{stream}");
    let (s2, sub2, url2) = (stream.clone(), subject.clone(), nats_url.clone());
    let app = TestApp::spawn_with(move |c| {
        c.events = EventsKind::Nats;
        c.nats_url = url2.as_str().into();
        c.nats_stream = s2;
        c.nats_subject = sub2;
    })
    .await;
    let t = now_ms() - 10_000;
    assert_eq!(app.update_ok(&checkpoint("V1", "tv", 10.0, t)).await["outcome"], "applied");
    assert_eq!(app.update_ok(&checkpoint("V1", "tv", 10.0, t)).await["outcome"], "duplicate");
    assert_eq!(app.update_ok(&checkpoint("V1", "tv", 5.0, t - 1)).await["outcome"], "stale");
    assert_eq!(app.update_ok(&checkpoint("V1", "tv", 20.0, t + 1)).await["outcome"], "applied");
    assert_eq!(app.update_ok(&checkpoint("V2", "phone", 30.0, t)).await["outcome"], "applied");
    let mark = json!({"account_id": "acct", "profile_id": "A", "video_id": "V2", "device_id": "phone",
                      "watched": true, "updated_at": t + 2});
    assert_eq!(app.post_json("/playback/watched", &mark).await.status(), StatusCode::OK);

    let client = async_nats::connect(nats_url.as_str()).await.expect("NATS reachable");
    let js = async_nats::jetstream::new(client);
    let mut info = js.get_stream(&stream).await.expect("stream created by playmark");
    let deadline = Instant::now() + Duration::from_secs(5);
    while info.info().await.expect("info").state.messages < 4 {
        assert!(Instant::now() < deadline, "events did not arrive within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A publisher retry of an event already stored (same message id).
    let retry = async_nats::jetstream::message::PublishMessage::build()
        .payload("{}".into())
        .message_id(format!("checkpoint#acct#A#V1#{t}#tv#10000"));
    let ack = js.send_publish(subject.clone(), retry).await.expect("sent").await.expect("acked");
    assert!(ack.duplicate, "the retry should be recognised as a duplicate");
    assert_eq!(info.info().await.expect("info").state.messages, 4, "exactly one event per applied write");

    // The stored events are the three applied checkpoints and the mark.
    let consumer = info
        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
        .await
        .expect("consumer");
    let mut batch =
        consumer.fetch().max_messages(10).expires(Duration::from_secs(1)).messages().await.expect("fetch");
    let mut seen = Vec::new();
    use futures::StreamExt;
    while let Some(Ok(message)) = batch.next().await {
        let event: Value = serde_json::from_slice(&message.payload).expect("JSON event");
        seen.push((
            event["kind"].as_str().unwrap_or_default().to_owned(),
            event["video_id"].as_str().unwrap_or_default().to_owned(),
            event["position_ms"].as_u64().unwrap_or(1),
        ));
    }
    seen.sort();
    let event = |kind: &str, video: &str, position| (kind.to_owned(), video.to_owned(), position);
    assert_eq!(
        seen,
        [
            event("checkpoint", "V1", 10_000),
            event("checkpoint", "V1", 20_000),
            event("checkpoint", "V2", 30_000),
            event("watched", "V2", 0),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_commits_after_its_deadline_is_not_hidden_by_the_cache_for_over_2_s() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inner = playmark_store::embedded::EmbeddedStore::open(dir.path(), Default::default()).expect("opens");
    let store = std::sync::Arc::new(playmark_store::faulty::FaultyStore::new(std::sync::Arc::new(inner)));
    let prefix = playmark_testkit::shared::unique_name("pm") + ":";
    let app = TestApp::spawn_over(store.clone(), dir, |c| {
        c.cache = playmark_server::config::CacheKind::Redis;
        c.redis_url = playmark_testkit::shared::redis_url().as_str().into();
        c.redis_key_prefix = prefix;
        c.write_timeout = Duration::from_millis(100);
        c.cache_write_timeout = Duration::from_millis(50);
    })
    .await;
    let t = now_ms() - 10_000;
    app.update_ok(&checkpoint("V1", "tv", 100.0, t)).await;
    assert_eq!(position(&app, "V1").await, 100);
    assert_eq!(position(&app, "V1").await, 100, "served from the cache now");

    store.set_late(Duration::from_millis(300));
    let response = app.update(&checkpoint("V1", "phone", 900.0, t + 1_000)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "the answer came after the deadline");
    store.set_late(Duration::ZERO);
    // The write committed anyway; the cache must not hide it for long.
    let took = time_until_position(&app, "V1", 900, Duration::from_millis(2_500)).await;
    eprintln!("the late-committed write was visible {took:?} after its 503");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_without_nats_and_publishes_the_waiting_events_once_nats_is_up() {
    let mut nats = Server::nats().expect("private nats-server");
    nats.kill().expect("NATS down before the node starts");
    let url = nats.url();
    let app = TestApp::spawn_with(move |c| {
        c.events = EventsKind::Nats;
        c.nats_url = url.as_str().into();
        c.nats_stream = "LATE".into();
        c.nats_subject = "playmark.late".into();
    })
    .await;
    let t = now_ms() - 10_000;
    for i in 0..5u64 {
        app.update_ok(&checkpoint(&format!("V{i}"), "tv", 10.0, t)).await;
    }
    let ready: Value = app.get("/readyz").await.json().await.expect("JSON");
    assert_eq!(
        (ready["status"].as_str(), ready["checks"]["events"].as_str()),
        (Some("degraded"), Some("unreachable"))
    );

    nats.restart().expect("NATS comes up");
    let client = async_nats::connect(nats.url().as_str()).await.expect("NATS reachable");
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stored = match js.get_stream("LATE").await {
            Ok(mut stream) => stream.info().await.map_or(0, |i| i.state.messages),
            Err(_) => 0,
        };
        if stored == 5 {
            break;
        }
        assert!(Instant::now() < deadline, "{stored} of 5 waiting events published within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
