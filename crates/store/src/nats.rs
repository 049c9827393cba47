//! NATS JetStream as the event sink.
//!
//! Events go to a subject captured by a stream that is created on connect
//! if missing. Each message carries `Nats-Msg-Id` = the event's
//! deterministic id, so JetStream drops a retried publish inside the
//! stream's duplicate window. A publish returns once the server has
//! acknowledged storing it.

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
}

/// The NATS JetStream [`EventSink`].
pub struct NatsSink {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    subject: String,
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
    /// Connects and makes sure the stream exists.
    pub async fn connect(options: NatsOptions) -> Result<Self, EventError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(options.timeout)
            .request_timeout(Some(options.timeout))
            .name("playmark")
            .connect(options.url.as_str())
            .await
            // The URL may hold credentials: never in a message.
            .map_err(|e| error(format!("cannot connect: {e}")))?;
        let jetstream = jetstream::new(client.clone());
        jetstream
            .get_or_create_stream(stream::Config {
                name: options.stream.clone(),
                subjects: vec![options.subject.clone()],
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| error(format!("cannot create stream {}: {e}", options.stream)))?;
        tracing::info!(subject = %options.subject, stream = %options.stream, "nats event sink connected");
        Ok(Self { client, jetstream, subject: options.subject })
    }
}

/// The JSON body of an event.
pub fn payload(event: &ProgressEvent) -> Vec<u8> {
    let p = &event.progress;
    json!({
        "account_id": event.key.account_id.as_str(),
        "profile_id": event.key.profile_id.as_str(),
        "video_id": event.key.video_id.as_str(),
        "position_ms": p.position.as_millis(),
        "duration_ms": p.duration.map(|d| d.as_millis()),
        "device_id": p.device_id.as_str(),
        "updated_at": p.updated_at.as_millis(),
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
            .finish_non_exhaustive()
    }
}
