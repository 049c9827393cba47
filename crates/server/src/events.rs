//! Publishing applied checkpoints off the request path.
//!
//! A write never waits for the event sink: [`Publisher::offer`] puts the
//! event on a bounded queue and returns; when the queue is full the event is
//! dropped and counted. A background task publishes up to
//! [`IN_FLIGHT`] events at a time, retrying each a few times with backoff; a
//! retry carries the same message id, so the sink stores it once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use playmark_store::{EventSink, ProgressEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::{DropLabels, Metrics};

/// Events being published at once.
const IN_FLIGHT: usize = 64;
/// Attempts per event.
const ATTEMPTS: u32 = 4;
/// How long shutdown waits for queued events.
const DRAIN: Duration = Duration::from_secs(5);

/// The event queue and its publishing task.
#[derive(Debug)]
pub struct Publisher {
    sink: Arc<dyn EventSink>,
    queue: Mutex<Option<mpsc::Sender<ProgressEvent>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    metrics: Arc<Metrics>,
}

impl Publisher {
    /// Starts publishing to `sink` from a queue of `capacity` events.
    pub fn start(sink: Arc<dyn EventSink>, capacity: usize, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel::<ProgressEvent>(capacity.max(1));
        let events = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        let (task_sink, task_metrics) = (Arc::clone(&sink), Arc::clone(&metrics));
        let task = tokio::spawn(events.for_each_concurrent(IN_FLIGHT, move |event| {
            let (sink, metrics) = (Arc::clone(&task_sink), Arc::clone(&task_metrics));
            async move { publish(sink.as_ref(), &event, &metrics).await }
        }));
        Self { sink, queue: Mutex::new(Some(tx)), task: Mutex::new(Some(task)), metrics }
    }

    /// The sink, for readiness checks.
    pub fn sink(&self) -> &Arc<dyn EventSink> {
        &self.sink
    }

    /// Queues an event without waiting; drops it (counted) when the queue is
    /// full or closed.
    pub fn offer(&self, event: ProgressEvent) {
        let queue = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(queue) = queue.as_ref() else {
            self.metrics.events_dropped.get_or_create(&DropLabels { reason: "shutdown" }).inc();
            return;
        };
        let reason = match queue.try_send(event) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => "queue_full",
            Err(mpsc::error::TrySendError::Closed(_)) => "shutdown",
        };
        self.metrics.events_dropped.get_or_create(&DropLabels { reason }).inc();
    }

    /// Stops taking events and publishes what is queued (for a few seconds
    /// at most).
    pub async fn close(&self) {
        drop(self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        let task = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(task) = task
            && tokio::time::timeout(DRAIN, task).await.is_err()
        {
            tracing::warn!("events still queued at shutdown were not published");
        }
    }
}

async fn publish(sink: &dyn EventSink, event: &ProgressEvent, metrics: &Metrics) {
    let mut pause = Duration::from_millis(50);
    for attempt in 1..=ATTEMPTS {
        match sink.publish(event).await {
            Ok(()) => {
                metrics.events_published.inc();
                return;
            }
            Err(e) if attempt == ATTEMPTS => {
                tracing::warn!(error = %e, event = %event.id(), "event dropped after {ATTEMPTS} attempts");
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    metrics.events_dropped.get_or_create(&DropLabels { reason: "publish_failed" }).inc();
}
