//! Coalescing concurrent upserts into multi-row statements.
//!
//! A writer task takes the first queued checkpoint, drains whatever else is
//! waiting (up to the batch limit), and writes the group in *rounds*. A
//! statement may touch a row only once, so each round writes, per key, the
//! newest checkpoint not yet decided, all keys in one `unnest` statement.
//! Whatever the round's statement says about a key decides every other
//! checkpoint of that key in the group that is not newer than what now
//! stands: they are `stale` (or `duplicate`). Only a checkpoint refused by
//! its stale-device guard can leave older checkpoints of its key that are
//! still newer than what stands; those go to the next round. So a group
//! ends exactly as if its checkpoints had arrived one by one, newest first,
//! and almost always in one round.
//!
//! Each round reads back the standing rows of the keys that did not apply
//! (one more statement, only when needed). Writers are supervised: one that
//! panics is replaced (its callers have been answered `unavailable`), and a
//! round that takes longer than its deadline is abandoned with `timeout`
//! and its connection discarded, so a hung connection cannot hold a writer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use playmark_core::{Entry, Outcome, Progress, ProgressKey, StaleGuard, Timestamp};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{BACKEND, corrupt, entry_at, millis, pg_error, pool_error, schema, series_at, timestamp};
use crate::{StoreError, Written};

/// One queued checkpoint.
pub(crate) struct Upsert {
    pub key: ProgressKey,
    pub progress: Progress,
    pub now: Timestamp,
    pub guard: Option<StaleGuard>,
    pub reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// The writer's queue, shared by every writer task.
pub(crate) type Queue = Arc<Mutex<mpsc::Receiver<Upsert>>>;

/// Runs a writer, and a fresh one in its place whenever it panics, until
/// the queue is closed and drained.
pub(crate) async fn supervise(pool: Pool, queue: Queue, max_batch: usize, deadline: Duration) {
    loop {
        let task = tokio::spawn(writer(pool.clone(), Arc::clone(&queue), max_batch, deadline));
        match task.await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                tracing::error!(
                    "a postgres writer panicked; its callers were answered unavailable; starting another"
                )
            }
            Err(_) => return,
        }
    }
}

/// Takes groups off the queue and writes them, until the queue is closed
/// and drained.
async fn writer(pool: Pool, queue: Queue, max_batch: usize, deadline: Duration) {
    let mut group = Vec::with_capacity(max_batch);
    loop {
        {
            let mut rx = queue.lock().await;
            if rx.recv_many(&mut group, max_batch).await == 0 {
                return;
            }
        }
        write(&pool, std::mem::take(&mut group), deadline).await;
    }
}

/// Writes one group in rounds and answers every caller.
async fn write(pool: &Pool, group: Vec<Upsert>, deadline: Duration) {
    let touched = group.iter().map(|u| u.now).max().unwrap_or_default();
    // Each key's checkpoints, newest first (equal copies keep arrival order).
    let mut by_key: HashMap<ProgressKey, Vec<Upsert>> = HashMap::with_capacity(group.len());
    for u in group {
        by_key.entry(u.key.clone()).or_default().push(u);
    }
    for pending in by_key.values_mut() {
        pending.sort_by(|a, b| b.progress.checkpoint_cmp(&a.progress));
    }

    while !by_key.is_empty() {
        let round_keys: Vec<ProgressKey> = by_key.keys().cloned().collect();
        let round: HashMap<&ProgressKey, (&Progress, Option<StaleGuard>)> =
            by_key.iter().map(|(k, pending)| (k, (&pending[0].progress, pending[0].guard))).collect();
        let result = round_with_deadline(pool, &round, touched, deadline).await;
        drop(round);
        let mut decided = match result {
            Ok(decided) => decided,
            Err(e) => {
                let rows = by_key.values().map(Vec::len).sum::<usize>();
                tracing::warn!(error = %e, rows, "postgres batch failed; nothing in it was acknowledged");
                for u in by_key.into_values().flatten() {
                    let _ = u.reply.send(Err(e.same_kind()));
                }
                return;
            }
        };
        let mut next = HashMap::new();
        for key in round_keys {
            let Some(mut pending) = by_key.remove(&key) else { continue };
            let Some((outcome, standing)) = decided.remove(&key) else {
                // Not applied, and gone when read back: expired between the
                // two statements. Nothing was written; a retry settles it.
                for u in pending {
                    let _ = u.reply.send(Err(StoreError::Unavailable {
                        backend: BACKEND,
                        reason: "the row was purged while the write ran; retry".into(),
                    }));
                }
                continue;
            };
            let first = pending.remove(0);
            let _ = first.reply.send(Ok(Written { outcome, standing: standing.clone() }));
            // What is not newer than the standing entry is decided by it;
            // what is (only after a guard refusal) waits for the next round.
            let mut later = Vec::new();
            for u in pending {
                match Entry::merge(Some(&standing), &Entry::Live(u.progress.clone())) {
                    Outcome::Applied => later.push(u),
                    outcome => {
                        let _ = u.reply.send(Ok(Written { outcome, standing: standing.clone() }));
                    }
                }
            }
            if !later.is_empty() {
                next.insert(key, later);
            }
        }
        by_key = next;
    }
}

/// One round under its deadline. A round that overruns is abandoned and its
/// connection discarded (not returned to the pool), so a hung connection
/// cannot hold up later rounds.
async fn round_with_deadline(
    pool: &Pool,
    round: &HashMap<&ProgressKey, (&Progress, Option<StaleGuard>)>,
    touched: Timestamp,
    deadline: Duration,
) -> Result<HashMap<ProgressKey, (Outcome, Entry)>, StoreError> {
    let client = tokio::time::timeout(deadline, pool.get())
        .await
        .map_err(|_| StoreError::Timeout { backend: BACKEND })?
        .map_err(pool_error)?;
    match tokio::time::timeout(deadline, apply(&client, round, touched)).await {
        Ok(result) => result,
        Err(_) => {
            drop(Object::take(client));
            Err(StoreError::Timeout { backend: BACKEND })
        }
    }
}

/// Writes one checkpoint per key; returns, per key, the outcome of that
/// checkpoint and the entry that stands now.
async fn apply(
    client: &Object,
    round: &HashMap<&ProgressKey, (&Progress, Option<StaleGuard>)>,
    touched: Timestamp,
) -> Result<HashMap<ProgressKey, (Outcome, Entry)>, StoreError> {
    let n = round.len();
    let mut rows = Rows::with_capacity(n);
    let mut guarded = GuardRows::default();
    // Rows in key order: concurrent batches then take row locks in the same
    // order and cannot deadlock each other.
    let mut ordered: Vec<_> = round.iter().collect();
    ordered.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (key, (progress, guard)) in ordered {
        if let Some(g) = guard {
            guarded.push(key, g);
        }
        rows.push(key, progress)?;
    }
    let touched_at = vec![millis(touched)?; n];
    // Rows come back as strings; find their keys without re-validating ids.
    let by_text: HashMap<(&str, &str, &str), &ProgressKey> = round
        .keys()
        .map(|k| ((k.account_id.as_str(), k.profile_id.as_str(), k.video_id.as_str()), *k))
        .collect();
    let key_of = |row: &tokio_postgres::Row| -> Option<&ProgressKey> {
        by_text.get(&(row.get::<_, &str>(0), row.get::<_, &str>(1), row.get::<_, &str>(2))).copied()
    };

    let stmt = client.prepare_cached(schema::UPSERT_BATCH).await.map_err(pg_error)?;
    let applied = client
        .query(
            &stmt,
            &[
                &rows.accounts,
                &rows.profiles,
                &rows.videos,
                &rows.updated_at,
                &rows.devices,
                &rows.positions,
                &rows.durations,
                &touched_at,
                &rows.finished,
                &rows.hidden,
                &guarded.accounts,
                &guarded.profiles,
                &guarded.videos,
                &guarded.resumed_from,
                &guarded.max_regression,
                &rows.series,
                &rows.episodes,
            ],
        )
        .await
        .map_err(pg_error)?;

    let mut decided = HashMap::with_capacity(n);
    for row in &applied {
        if let Some(k) = key_of(row) {
            // What the store carried over is in the row it returned.
            let finished_at: Option<i64> = row.try_get(5).map_err(|e| corrupt(e.to_string()))?;
            let stored = Progress {
                series: series_at(row, 3)?,
                finished_at: finished_at.map(timestamp).transpose()?,
                ..round[k].0.clone()
            };
            decided.insert(k.clone(), (Outcome::Applied, Entry::Live(stored)));
        }
    }
    if decided.len() == n {
        return Ok(decided);
    }

    // Some were not applied: read what stands instead.
    let rest: Vec<&ProgressKey> = round.keys().copied().filter(|k| !decided.contains_key(*k)).collect();
    let accounts: Vec<&str> = rest.iter().map(|k| k.account_id.as_str()).collect();
    let profiles: Vec<&str> = rest.iter().map(|k| k.profile_id.as_str()).collect();
    let videos: Vec<&str> = rest.iter().map(|k| k.video_id.as_str()).collect();
    let stmt = client.prepare_cached(schema::GET_MANY).await.map_err(pg_error)?;
    for row in client.query(&stmt, &[&accounts, &profiles, &videos]).await.map_err(pg_error)? {
        if let Some(k) = key_of(&row) {
            let entry = entry_at(&row, 3)?;
            let outcome = match Entry::merge(Some(&entry), &Entry::Live(round[k].0.clone())) {
                // Newer, yet not applied: the guard refused it.
                Outcome::Applied => Outcome::Conflict,
                other => other,
            };
            decided.insert(k.clone(), (outcome, entry));
        }
    }
    Ok(decided)
}

/// The columns of the rows a round writes, as arrays for `unnest`.
struct Rows<'a> {
    accounts: Vec<&'a str>,
    profiles: Vec<&'a str>,
    videos: Vec<&'a str>,
    updated_at: Vec<i64>,
    devices: Vec<&'a str>,
    positions: Vec<i64>,
    durations: Vec<Option<i64>>,
    finished: Vec<bool>,
    hidden: Vec<bool>,
    series: Vec<Option<&'a str>>,
    episodes: Vec<Option<i32>>,
}

impl<'a> Rows<'a> {
    fn with_capacity(n: usize) -> Self {
        Rows {
            accounts: Vec::with_capacity(n),
            profiles: Vec::with_capacity(n),
            videos: Vec::with_capacity(n),
            updated_at: Vec::with_capacity(n),
            devices: Vec::with_capacity(n),
            positions: Vec::with_capacity(n),
            durations: Vec::with_capacity(n),
            finished: Vec::with_capacity(n),
            hidden: Vec::with_capacity(n),
            series: Vec::with_capacity(n),
            episodes: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, key: &'a ProgressKey, progress: &'a Progress) -> Result<(), StoreError> {
        self.accounts.push(key.account_id.as_str());
        self.profiles.push(key.profile_id.as_str());
        self.videos.push(key.video_id.as_str());
        self.updated_at.push(millis(progress.updated_at)?);
        self.devices.push(progress.device_id.as_str());
        // Positions and durations are at most 30 days in ms: far inside i64.
        self.positions.push(progress.position.as_millis() as i64);
        self.durations.push(progress.duration.map(|d| d.as_millis() as i64));
        self.finished.push(progress.finished);
        self.hidden.push(progress.hidden);
        self.series.push(progress.series.as_ref().map(|s| s.id.as_str()));
        // Episodes are at most 2^31 - 1 (`Series::MAX_EPISODE`).
        self.episodes.push(progress.series.as_ref().map(|s| i32::try_from(s.episode).unwrap_or(i32::MAX)));
        Ok(())
    }
}

/// The stale-device guards of a round's guarded rows, as arrays.
#[derive(Default)]
struct GuardRows<'a> {
    accounts: Vec<&'a str>,
    profiles: Vec<&'a str>,
    videos: Vec<&'a str>,
    resumed_from: Vec<i64>,
    max_regression: Vec<i64>,
}

impl<'a> GuardRows<'a> {
    fn push(&mut self, key: &'a ProgressKey, guard: &StaleGuard) {
        self.accounts.push(key.account_id.as_str());
        self.profiles.push(key.profile_id.as_str());
        self.videos.push(key.video_id.as_str());
        // Saturate: one client's absurd value must not fail the batch.
        self.resumed_from.push(i64::try_from(guard.resumed_from.as_millis()).unwrap_or(i64::MAX));
        self.max_regression.push(i64::try_from(guard.max_regression_ms).unwrap_or(i64::MAX));
    }
}
