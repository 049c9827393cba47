//! NATS JetStream as the event sink.
//!
//! Events go to a subject captured by a stream, created (or its limits
//! updated) before the first publish. Each message carries `Nats-Msg-Id` =
//! the event's deterministic id, so JetStream drops a retried publish inside
//! the stream's duplicate window. A publish returns once the server has
//! acknowledged storing it.
//!
//! NATS need not be up when playmark starts: the client connects in the
//! background and reconnects by itself, [`EventSink::ping`] reports whether
//! it is connected, and publishes fail until it is (the publisher holds
//! events meanwhile, in its bounded queue).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use serde_json::json;

use crate::events::{EventError, EventSink, ProgressEvent};

const BACKEND: &str = "nats";

/// How to reach NATS and where to publish.
#[derive(Clone)]
pub struct NatsOptions {
    /// Server URL(s), comma-separated, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The subject events are published on.
    pub subject: String,
    /// The JetStream stream that stores them (created if missing).
    pub stream: String,
    /// How long to wait for the connection and for each acknowledgement.
    pub timeout: Duration,
    /// The stream keeps events at most this long.
    pub max_age: Duration,
    /// The stream keeps at most this many bytes; the oldest go first.
    pub max_bytes: u64,
}

/// The NATS JetStream [`EventSink`].
pub struct NatsSink {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    subject: String,
    stream: stream::Config,
    /// Set once the stream exists with our limits.
    stream_ready: tokio::sync::OnceCell<()>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink").field("subject", &self.subject).finish_non_exhaustive()
    }
}

fn error(reason: impl std::fmt::Display) -> EventError {
    EventError { backend: BACKEND, reason: reason.to_string() }
}

impl NatsSink {
    /// Starts connecting in the background; never waits for NATS. Fails
    /// only on options that can never work (an invalid URL).
    pub async fn connect(options: NatsOptions) -> Result<Self, EventError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(options.timeout)
            .request_timeout(Some(options.timeout))
            .name("playmark")
            .retry_on_initial_connect()
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("nats event sink connected"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!("nats event sink disconnected; events wait in the queue")
                    }
                    other => tracing::debug!(event = %other, "nats client event"),
                }
            })
            .connect(options.url.as_str())
            .await
            // The URL may hold credentials: never in a message.
            .map_err(|e| error(format!("cannot connect: {e}")))?;
        let jetstream = jetstream::new(client.clone());
        let stream = stream::Config {
            name: options.stream.clone(),
            subjects: vec![options.subject.clone()],
            duplicate_window: Duration::from_secs(120),
            max_age: options.max_age,
            max_bytes: i64::try_from(options.max_bytes).unwrap_or(i64::MAX),
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        };
        Ok(Self {
            client,
            jetstream,
            subject: options.subject,
            stream,
            stream_ready: tokio::sync::OnceCell::new(),
        })
    }

    /// Creates the stream, or brings its limits up to date, once.
    async fn ensure_stream(&self) -> Result<(), EventError> {
        self.stream_ready
            .get_or_try_init(|| async {
                self.jetstream
                    .create_or_update_stream(self.stream.clone())
                    .await
                    .map(|info| {
                        tracing::info!(stream = %info.config.name, subject = %self.subject, "nats stream ready");
                    })
                    .map_err(|e| error(format!("cannot create stream {}: {e}", self.stream.name)))
            })
            .await
            .copied()
    }
}

/// The JSON body of an event.
pub fn payload(event: &ProgressEvent) -> Vec<u8> {
    let p = &event.progress;
    json!({
        "kind": event.kind.as_str(),
        "account_id": event.key.account_id.as_str(),
        "profile_id": event.key.profile_id.as_str(),
        "video_id": event.key.video_id.as_str(),
        "position_ms": p.position.as_millis(),
        "duration_ms": p.duration.map(|d| d.as_millis()),
        "device_id": p.device_id.as_str(),
        "updated_at": p.updated_at.as_millis(),
        "series_id": p.series.as_ref().map(|s| s.id.as_str()),
        "episode": p.series.as_ref().map(|s| s.episode),
        "finished_at": p.finish_time().map(playmark_core::Timestamp::as_millis),
    })
    .to_string()
    .into_bytes()
}

#[async_trait]
impl EventSink for NatsSink {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn publish(&self, event: &ProgressEvent) -> Result<(), EventError> {
        self.ensure_stream().await?;
        let message =
            jetstream::message::PublishMessage::build().payload(payload(event).into()).message_id(event.id());
        let ack = self.jetstream.send_publish(self.subject.clone(), message).await.map_err(error)?;
        ack.await.map_err(error).map(drop)
    }

    async fn ping(&self) -> Result<(), EventError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(error(format!("connection is {state}"))),
        }
    }
}

// The URL may hold credentials: never in Debug output.
impl std::fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsOptions")
            .field("url", &"***")
            .field("subject", &self.subject)
            .field("stream", &self.stream)
            .field("max_age", &self.max_age)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use playmark_core::{DeviceId, Position, Progress, ProgressKey, Series, SeriesId, Timestamp};

    use super::*;
    use crate::EventKind;

    #[test]
    fn the_payload_names_the_series_and_the_finish_time() {
        let key = ProgressKey {
            account_id: playmark_core::AccountId::parse("acct").expect("valid"),
            profile_id: playmark_core::ProfileId::parse("A").expect("valid"),
            video_id: playmark_core::VideoId::parse("S1E2").expect("valid"),
        };
        let progress = Progress {
            updated_at: Timestamp::from_millis(7),
            device_id: DeviceId::parse("tv").expect("valid"),
            position: Position::from_millis(1_000).expect("valid"),
            duration: None,
            hidden: false,
            finished: true,
            series: Some(Series { id: SeriesId::parse("show").expect("valid"), episode: 2 }),
            finished_at: Some(Timestamp::from_millis(5)),
        };
        let event = ProgressEvent { kind: EventKind::Watched, key, progress };
        let body: serde_json::Value = serde_json::from_slice(&payload(&event)).expect("JSON");
        assert_eq!(
            (&body["kind"], &body["series_id"], &body["episode"], &body["finished_at"]),
            (&json!("watched"), &json!("show"), &json!(2), &json!(5))
        );
    }
}
