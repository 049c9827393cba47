use std::sync::Arc;
use std::time::{Duration, Instant};

use playmark_core::{AccountId, DeviceId, Position, ProfileId, Progress, ProgressKey, Timestamp, VideoId};
use playmark_server::metrics::Metrics;
use playmark_server::service::{PlaybackService, ServiceOptions};
use playmark_server::sweeper;
use playmark_store::ProgressStore;
use playmark_store::embedded::{EmbeddedOptions, EmbeddedStore};

use crate::helpers::{TestApp, checkpoint, now_ms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_keeps_every_record() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 1_000;
    for i in 0..20u64 {
        app.update_ok(&checkpoint(&format!("V{i}"), "tv", i as f64 * 10.0, t)).await;
    }
    let addr = app.addr;
    let backend = app.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "stopped app still accepts connections");

    let app = TestApp::spawn_in(backend, |_| {}).await;
    for i in 0..20u64 {
        assert_eq!(app.resume(&format!("V{i}")).await["position"], i * 10);
    }
}

fn key(video: &str) -> ProgressKey {
    ProgressKey {
        account_id: AccountId::parse("acct").expect("valid"),
        profile_id: ProfileId::parse("A").expect("valid"),
        video_id: VideoId::parse(video).expect("valid"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_purges_idle_entries_and_profiles_over_the_cap_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("opens"));
    let day_ms = 86_400_000;
    let now = Timestamp::from_millis(now_ms());
    let progress = Progress {
        updated_at: Timestamp::from_millis(1_000),
        device_id: DeviceId::parse("tv").expect("valid"),
        position: Position::from_millis(60_000).expect("valid"),
        duration: None,
        hidden: false,
        finished: false,
        series: None,
        finished_at: None,
    };
    store
        .upsert(&key("idle"), progress.clone(), now.saturating_sub_millis(181 * day_ms), None)
        .await
        .expect("upsert");
    store.delete(&key("idle-tombstone"), now.saturating_sub_millis(200 * day_ms)).await.expect("delete");
    store
        .upsert(&key("fresh"), progress.clone(), now.saturating_sub_millis(179 * day_ms), None)
        .await
        .expect("upsert");

    let metrics = Arc::new(Metrics::default());
    let service = Arc::new(PlaybackService::new(
        Arc::clone(&store) as Arc<dyn ProgressStore>,
        Arc::clone(&metrics),
        ServiceOptions {
            policy: Default::default(),
            max_skew_ms: 5_000,
            write_timeout: Duration::from_millis(450),
            read_timeout: Duration::from_millis(500),
            stale_guard_ms: 300_000,
            handoff: Default::default(),
        },
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let limits = sweeper::Limits { ttl: Some(Duration::from_secs(180 * 86_400)), max_titles: Some(2) };
    let task = tokio::spawn(sweeper::run(Arc::clone(&service), limits, Duration::from_millis(20), stopped));

    // Wait (bounded) until the sweeper reports its purge; it counts after
    // the store has committed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics.render().contains("playmark_expired_entries_total 2") {
        assert!(Instant::now() < deadline, "no purge of 2 entries within 10 s:\n{}", metrics.render());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.get(&key("idle")).await.expect("get"), None);
    assert_eq!(store.get(&key("idle-tombstone")).await.expect("get"), None);
    assert!(store.get(&key("fresh")).await.expect("get").is_some(), "a fresh entry was purged");

    // Over the cap of 2 titles: the least recently written go.
    for video in ["newer-1", "newer-2"] {
        store
            .upsert(
                &key(video),
                Progress { updated_at: Timestamp::from_millis(2_000), ..progress.clone() },
                now,
                None,
            )
            .await
            .expect("upsert");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics.render().contains("playmark_trimmed_entries_total 1") {
        assert!(Instant::now() < deadline, "no trim within 10 s:\n{}", metrics.render());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.get(&key("fresh")).await.expect("get"), None, "the least recently written title went");
    assert!(store.get(&key("newer-2")).await.expect("get").is_some());

    stop.send(true).expect("sweeper listening");
    task.await.expect("sweeper stops cleanly");
}
