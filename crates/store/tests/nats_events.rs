//! The NATS JetStream sink against the shared nats-server: events are stored,
//! and a retried publish of the same event is stored once.

use std::time::Duration;

use playmark_core::{AccountId, DeviceId, Position, ProfileId, Progress, ProgressKey, Timestamp, VideoId};
use playmark_store::nats::{NatsOptions, NatsSink};
use playmark_store::{EventKind, EventSink, ProgressEvent};

fn event(video: &str, at: u64) -> ProgressEvent {
    ProgressEvent {
        kind: EventKind::Checkpoint,
        key: ProgressKey {
            account_id: AccountId::parse("acct").expect("valid"),
            profile_id: ProfileId::parse("A").expect("valid"),
            video_id: VideoId::parse(video).expect("valid"),
        },
        progress: Progress {
            updated_at: Timestamp::from_millis(at),
            device_id: DeviceId::parse("tv").expect("valid"),
            position: Position::from_millis(60_000).expect("valid"),
            duration: None,
            hidden: false,
            finished: false,
            series: None,
            finished_at: None,
        },
    }
}

async fn stored_messages(url: &str, stream: &str) -> u64 {
    let client = async_nats::connect(url).await.expect("NATS reachable");
    let mut stream = async_nats::jetstream::new(client).get_stream(stream).await.expect("stream exists");
    stream.info().await.expect("stream info").state.messages
}

#[tokio::test]
async fn a_retried_publish_is_stored_once_and_distinct_events_are_all_stored() {
    let url = playmark_testkit::shared::nats_url();
    let name = playmark_testkit::shared::unique_name("PM");
    let sink = NatsSink::connect(NatsOptions {
        url: url.clone(),
        subject: format!("playmark.test.{name}"),
        stream: name.clone(),
        timeout: Duration::from_secs(5),
        max_age: Duration::from_secs(3_600),
        max_bytes: 1 << 20,
    })
    .await
    .expect("sink connects");

    let first = event("V1", 1_000);
    sink.publish(&first).await.expect("published");
    sink.publish(&first).await.expect("a retry is acknowledged too");
    sink.publish(&event("V1", 2_000)).await.expect("published");
    sink.publish(&event("V2", 1_000)).await.expect("published");
    // A mark with the very fields of a checkpoint is another event.
    let watched = ProgressEvent { kind: EventKind::Watched, ..first.clone() };
    assert_ne!(watched.id(), first.id(), "ids are unique across kinds");
    sink.publish(&watched).await.expect("published");
    sink.ping().await.expect("connected");

    assert_eq!(stored_messages(&url, &name).await, 4);
    let client = async_nats::connect(url.as_str()).await.expect("NATS reachable");
    let mut stream = async_nats::jetstream::new(client).get_stream(&name).await.expect("stream exists");
    let config = &stream.info().await.expect("stream info").config;
    assert_eq!(
        (config.max_age, config.max_bytes),
        (Duration::from_secs(3_600), 1 << 20),
        "the limits were set"
    );
}

#[tokio::test]
async fn a_sink_started_before_nats_publishes_once_nats_comes_up() {
    let mut nats = playmark_testkit::Server::nats().expect("private nats-server");
    nats.kill().expect("killed");
    let started = std::time::Instant::now();
    let sink = NatsSink::connect(NatsOptions {
        url: nats.url(),
        subject: "playmark.late".into(),
        stream: "LATE".into(),
        timeout: Duration::from_millis(500),
        max_age: Duration::from_secs(3_600),
        max_bytes: 1 << 20,
    })
    .await
    .expect("connecting does not wait for NATS");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert!(sink.ping().await.is_err(), "not connected yet");
    assert!(sink.publish(&event("V1", 1_000)).await.is_err(), "nothing to publish to");

    nats.restart().expect("NATS starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while sink.ping().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the sink did not connect within 15 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.publish(&event("V1", 1_000)).await.expect("published once connected");
    assert_eq!(stored_messages(&nats.url(), "LATE").await, 1);
}
