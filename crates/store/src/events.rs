//! The event port: where applied checkpoints and marks are announced for
//! analytics.

use async_trait::async_trait;
use playmark_core::{Progress, ProgressKey};

playmark_core::wire_names! {
    /// What a viewer did, as analytics tells it apart.
    pub enum EventKind {
        /// A checkpoint from a player.
        Checkpoint = "checkpoint",
        /// The title was marked watched.
        Watched = "watched",
        /// The title was marked not watched.
        Unwatched = "unwatched",
    }
}

/// An applied write, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent {
    /// What happened.
    pub kind: EventKind,
    /// Whose progress, in which title.
    pub key: ProgressKey,
    /// The progress that now stands.
    pub progress: Progress,
}

impl ProgressEvent {
    /// A deterministic id, unique across kinds: the same write always has
    /// the same id, so a retried publish is recognised as a duplicate by the
    /// sink.
    pub fn id(&self) -> String {
        format!(
            "{}#{}#{}#{}#{}#{}#{}",
            self.kind.as_str(),
            self.key.account_id,
            self.key.profile_id,
            self.key.video_id,
            self.progress.updated_at.as_millis(),
            self.progress.device_id,
            self.progress.position.as_millis()
        )
    }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
#[error("{backend} event sink failed: {reason}")]
pub struct EventError {
    /// Which sink.
    pub backend: &'static str,
    /// What went wrong.
    pub reason: String,
}

/// A durable destination for progress events.
#[async_trait]
pub trait EventSink: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and metrics, e.g. `nats`.
    fn backend(&self) -> &'static str;

    /// Publishes one event and waits until the sink has stored it.
    /// Publishing the same event again (same [`ProgressEvent::id`]) must not
    /// deliver it twice.
    async fn publish(&self, event: &ProgressEvent) -> Result<(), EventError>;

    /// Succeeds when the sink answers.
    async fn ping(&self) -> Result<(), EventError>;
}
