//! The sweeper: bounds storage in the background.
//!
//! - **TTL:** purges progress nobody has touched for `--ttl-days`.
//! - **Per-profile cap:** purges the least recently written titles of each
//!   profile over `--max-titles-per-profile` (the store finds those
//!   profiles without scanning every row).
//!
//! It runs beside the server, never on a request's path; the store purges in
//! small batches so concurrent writes are not held up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::service::PlaybackService;

/// What the sweeper bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Purge entries untouched this long.
    pub ttl: Option<Duration>,
    /// Keep at most this many titles per profile.
    pub max_titles: Option<usize>,
}

/// Sweeps every `interval` until `stop` turns true. The first sweep runs one
/// interval after start, so a restart loop cannot turn into a sweep loop.
pub async fn run(
    service: Arc<PlaybackService>,
    limits: Limits,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => sweep_once(&service, limits).await,
            _ = stop.changed() => break,
        }
    }
}

/// Entries purged per store call: small, so the store's writer is never
/// held up for long.
const SWEEP_BATCH: usize = 1_000;

/// One sweep, batch by batch until nothing is left to purge, logged.
pub async fn sweep_once(service: &PlaybackService, limits: Limits) {
    if let Some(ttl) = limits.ttl {
        report("ttl sweep", drain(|| service.expire(ttl, SWEEP_BATCH)).await);
    }
    if let Some(max_titles) = limits.max_titles {
        report("per-profile cap sweep", drain(|| service.trim(max_titles, SWEEP_BATCH)).await);
    }
}

/// Calls `batch` until it purges fewer than a full batch; returns how many
/// it purged, and the error that stopped it, if any.
async fn drain<F, Fut>(batch: F) -> (usize, Option<playmark_store::StoreError>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize, playmark_store::StoreError>>,
{
    let mut purged = 0;
    loop {
        match batch().await {
            Ok(n) => {
                purged += n;
                if n < SWEEP_BATCH {
                    return (purged, None);
                }
            }
            Err(e) => return (purged, Some(e)),
        }
    }
}

fn report(sweep: &str, (purged, error): (usize, Option<playmark_store::StoreError>)) {
    match (purged, error) {
        (purged, Some(e)) => {
            tracing::warn!(error = %e, purged, "{sweep} failed; will try again next interval")
        }
        (0, None) => tracing::debug!("{sweep}: nothing to purge"),
        (n, None) => tracing::info!(purged = n, "{sweep} purged entries"),
    }
}
