//! Publishing applied checkpoints off the request path.
//!
//! A write never waits for the event sink: [`Publisher::offer`] puts the
//! event on a bounded queue and returns; when the queue is full the event is
//! dropped and counted. A background task publishes up to [`IN_FLIGHT`]
//! events at a time. While the sink is unreachable, events wait (and the
//! queue fills, then drops); a sink that answers but refuses an event gets
//! [`ATTEMPTS`] tries with backoff. A retry carries the same message id, so
//! the sink stores it once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use playmark_store::{EventSink, ProgressEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::{DropLabels, Metrics};

/// Events being published at once.
const IN_FLIGHT: usize = 64;
/// Attempts per event while the sink answers.
const ATTEMPTS: u32 = 4;
/// The longest pause between attempts.
const MAX_PAUSE: Duration = Duration::from_secs(2);
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
    let mut refused = 0;
    loop {
        let Err(e) = sink.publish(event).await else {
            metrics.events_published.inc();
            return;
        };
        // Only a sink that answers counts against the event: while it is
        // unreachable the event waits for it.
        if sink.ping().await.is_ok() {
            refused += 1;
            if refused == ATTEMPTS {
                tracing::warn!(error = %e, event = %event.id(), "event dropped after {ATTEMPTS} attempts");
                metrics.events_dropped.get_or_create(&DropLabels { reason: "publish_failed" }).inc();
                return;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
