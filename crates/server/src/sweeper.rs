//! The TTL sweeper: purges progress nobody has touched for the TTL.
//!
//! It runs beside the server, never on a request's path; the store purges in
//! small batches so concurrent writes are not held up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::service::PlaybackService;

/// Sweeps every `interval` until `stop` turns true. The first sweep runs one
/// interval after start, so a restart loop cannot turn into a sweep loop.
pub async fn run(
    service: Arc<PlaybackService>,
    ttl: Duration,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => sweep_once(&service, ttl).await,
            _ = stop.changed() => break,
        }
    }
}

/// One sweep, logged.
pub async fn sweep_once(service: &PlaybackService, ttl: Duration) {
    match service.expire(ttl).await {
        Ok(0) => tracing::debug!("ttl sweep: nothing idle"),
        Ok(n) => tracing::info!(purged = n, "ttl sweep purged idle entries"),
        Err(e) => tracing::warn!(error = %e, "ttl sweep failed; will try again next interval"),
    }
}
