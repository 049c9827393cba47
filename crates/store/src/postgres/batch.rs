//! Coalescing concurrent upserts into multi-row statements.
//!
//! A writer task takes the first queued checkpoint, drains whatever else is
//! waiting (up to the batch limit), keeps the newest checkpoint per key (a
//! statement may touch a row only once), writes them all with one `unnest`
//! statement, reads back the standing rows of those that did not apply (one
//! more statement, only when needed), and answers every caller.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::Pool;
use playmark_core::{Entry, Outcome, Progress, ProgressKey, StaleGuard, Timestamp};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{entry_of, millis, pg_error, pool_error, schema};
use crate::{StoreError, Written};

/// One queued checkpoint.
pub(crate) struct Upsert {
    pub key: ProgressKey,
    pub progress: Progress,
    pub now: Timestamp,
    pub guard: Option<StaleGuard>,
    pub reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// Runs until the queue is closed and drained.
pub(crate) async fn writer(pool: Pool, queue: Arc<Mutex<mpsc::Receiver<Upsert>>>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        {
            let mut rx = queue.lock().await;
            if rx.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
        }
        write(&pool, std::mem::take(&mut batch)).await;
    }
}

async fn write(pool: &Pool, batch: Vec<Upsert>) {
    // The newest checkpoint per key goes to the database; the others are
    // answered against whatever stands after it.
    let mut winners: HashMap<ProgressKey, (Progress, Option<StaleGuard>)> =
        HashMap::with_capacity(batch.len());
    for u in &batch {
        match winners.get_mut(&u.key) {
            Some(w) if u.progress > w.0 => *w = (u.progress.clone(), u.guard),
            Some(_) => {}
            None => {
                winners.insert(u.key.clone(), (u.progress.clone(), u.guard));
            }
        }
    }
    let touched = batch.iter().map(|u| u.now).max().unwrap_or_default();
    let standing = match apply(pool, &winners, touched).await {
        Ok(standing) => standing,
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(error = %reason, rows = batch.len(), "postgres batch failed; nothing in it was acknowledged");
            for u in batch {
                let _ = u.reply.send(Err(match &e {
                    StoreError::Timeout { backend } => StoreError::Timeout { backend },
                    _ => StoreError::Unavailable { backend: super::BACKEND, reason: reason.clone() },
                }));
            }
            return;
        }
    };
    let mut acknowledged = HashSet::with_capacity(standing.len());
    for u in batch {
        let result = match (standing.get(&u.key), winners.get(&u.key)) {
            (Some((winner_outcome, entry)), Some((winner, _))) => {
                let outcome = if u.progress == *winner && acknowledged.insert(u.key) {
                    // The first copy of the winning checkpoint takes its
                    // outcome; identical copies are duplicates.
                    *winner_outcome
                } else {
                    match Entry::merge(Some(entry), &Entry::Live(u.progress)) {
                        Outcome::Duplicate => Outcome::Duplicate,
                        _ => Outcome::Stale,
                    }
                };
                Ok(Written { outcome, standing: entry.clone() })
            }
            _ => {
                Err(StoreError::Corrupt { backend: super::BACKEND, detail: "a written row vanished".into() })
            }
        };
        let _ = u.reply.send(result);
    }
}

/// Writes the winners; returns, per key, the outcome of its winner and the
/// entry that stands now.
async fn apply(
    pool: &Pool,
    winners: &HashMap<ProgressKey, (Progress, Option<StaleGuard>)>,
    touched: Timestamp,
) -> Result<HashMap<ProgressKey, (Outcome, Entry)>, StoreError> {
    let n = winners.len();
    let (mut a, mut p, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut u, mut d, mut pos, mut dur) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut ga, mut gp, mut gv, mut grf, mut gms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Rows in key order: concurrent batches then take row locks in the same
    // order and cannot deadlock each other.
    let mut ordered: Vec<_> = winners.iter().collect();
    ordered.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (key, (progress, guard)) in ordered {
        if let Some(g) = guard {
            ga.push(key.account_id.as_str());
            gp.push(key.profile_id.as_str());
            gv.push(key.video_id.as_str());
            // Saturate: one client's absurd value must not fail the batch.
            grf.push(i64::try_from(g.resumed_from.as_millis()).unwrap_or(i64::MAX));
            gms.push(i64::try_from(g.max_regression_ms).unwrap_or(i64::MAX));
        }
        a.push(key.account_id.as_str());
        p.push(key.profile_id.as_str());
        v.push(key.video_id.as_str());
        u.push(millis(progress.updated_at)?);
        d.push(progress.device_id.as_str());
        // Positions and durations are at most 30 days in ms: far inside i64.
        pos.push(progress.position.as_millis() as i64);
        dur.push(progress.duration.map(|x| x.as_millis() as i64));
    }
    let tt = vec![millis(touched)?; n];
    // Rows come back as strings; find their keys without re-validating ids.
    let by_text: HashMap<(&str, &str, &str), &ProgressKey> = winners
        .keys()
        .map(|k| ((k.account_id.as_str(), k.profile_id.as_str(), k.video_id.as_str()), k))
        .collect();
    let key_of = |row: &tokio_postgres::Row| -> Option<&ProgressKey> {
        by_text.get(&(row.get::<_, &str>(0), row.get::<_, &str>(1), row.get::<_, &str>(2))).copied()
    };

    let client = pool.get().await.map_err(pool_error)?;
    let stmt = client.prepare_cached(schema::UPSERT_BATCH).await.map_err(pg_error)?;
    let applied = client
        .query(&stmt, &[&a, &p, &v, &u, &d, &pos, &dur, &tt, &ga, &gp, &gv, &grf, &gms])
        .await
        .map_err(pg_error)?;

    let mut standing = HashMap::with_capacity(n);
    for row in &applied {
        if let Some(k) = key_of(row) {
            standing.insert(k.clone(), (Outcome::Applied, Entry::Live(winners[k].0.clone())));
        }
    }
    if standing.len() == n {
        return Ok(standing);
    }

    // Some winners were not newer than what stands: read what does.
    let rest: Vec<&ProgressKey> = winners.keys().filter(|k| !standing.contains_key(*k)).collect();
    let ra: Vec<&str> = rest.iter().map(|k| k.account_id.as_str()).collect();
    let rp: Vec<&str> = rest.iter().map(|k| k.profile_id.as_str()).collect();
    let rv: Vec<&str> = rest.iter().map(|k| k.video_id.as_str()).collect();
    let stmt = client.prepare_cached(schema::GET_MANY).await.map_err(pg_error)?;
    for row in client.query(&stmt, &[&ra, &rp, &rv]).await.map_err(pg_error)? {
        if let Some(k) = key_of(&row) {
            let entry = entry_of(row.get(3), row.get(4), row.get(5), row.get(6), row.get(7), row.get(8))?;
            let outcome = match Entry::merge(Some(&entry), &Entry::Live(winners[k].0.clone())) {
                Outcome::Duplicate => Outcome::Duplicate,
                // Newer, yet not applied: the guard refused it.
                Outcome::Applied => Outcome::Conflict,
                _ => Outcome::Stale,
            };
            standing.insert(k.clone(), (outcome, entry));
        }
    }
    Ok(standing)
}
