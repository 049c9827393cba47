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

/// Entries purged per store call: small, so the store's writer is never
/// held up for long.
const SWEEP_BATCH: usize = 1_000;

/// One sweep, batch by batch until nothing idle is left, logged.
pub async fn sweep_once(service: &PlaybackService, ttl: Duration) {
    let mut purged = 0;
    loop {
        match service.expire(ttl, SWEEP_BATCH).await {
            Ok(n) => {
                purged += n;
                if n < SWEEP_BATCH {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, purged, "ttl sweep failed; will try again next interval");
                return;
            }
        }
    }
    match purged {
        0 => tracing::debug!("ttl sweep: nothing idle"),
        n => tracing::info!(purged = n, "ttl sweep purged idle entries"),
    }
}
