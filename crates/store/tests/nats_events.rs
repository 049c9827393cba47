//! The NATS JetStream sink against the shared nats-server: events are stored,
//! and a retried publish of the same event is stored once.

use std::time::Duration;

use playmark_core::{AccountId, DeviceId, Position, ProfileId, Progress, ProgressKey, Timestamp, VideoId};
use playmark_store::nats::{NatsOptions, NatsSink};
use playmark_store::{EventSink, ProgressEvent};

fn event(video: &str, at: u64) -> ProgressEvent {
    ProgressEvent {
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
    })
    .await
    .expect("sink connects");

    let first = event("V1", 1_000);
    sink.publish(&first).await.expect("published");
    sink.publish(&first).await.expect("a retry is acknowledged too");
    sink.publish(&event("V1", 2_000)).await.expect("published");
    sink.publish(&event("V2", 1_000)).await.expect("published");
    sink.ping().await.expect("connected");

    assert_eq!(stored_messages(&url, &name).await, 3);
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_hang() {
    let port = playmark_testkit::free_port();
    let started = std::time::Instant::now();
    let result = NatsSink::connect(NatsOptions {
        url: format!("nats://127.0.0.1:{port}"),
        subject: "playmark.nowhere".into(),
        stream: "NOWHERE".into(),
        timeout: Duration::from_millis(500),
    })
    .await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}
