//! Coalescing concurrent point reads into one statement.
//!
//! A resume that misses the cache reads one row. Read one statement per
//! row, PostgreSQL spends most of each round trip on the statement itself
//! (bind, plan, execute, a network write) rather than on the row. So reads
//! queue here, and whatever is waiting when a call can go is read by one
//! `unnest` join ([`schema::GET_MANY`]). A lone read goes at once; under
//! load, reads gather while the calls in flight run, so a statement carries
//! many rows. Like the writers' rounds, a call has a deadline after which
//! its connection is discarded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use playmark_core::{Entry, ProgressKey};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{BACKEND, entry_at, pg_error, pool_error, schema};
use crate::StoreError;

/// One queued read.
pub(crate) struct Read {
    pub key: ProgressKey,
    pub reply: oneshot::Sender<Result<Option<Entry>, StoreError>>,
}

/// Takes groups of reads off the queue, at most `calls` statements at once,
/// until the queue is closed and drained.
pub(crate) async fn reader(
    pool: Pool,
    mut queue: mpsc::Receiver<Read>,
    max_batch: usize,
    calls: usize,
    deadline: Duration,
) {
    let calls = Arc::new(Semaphore::new(calls.max(1)));
    let mut group = Vec::with_capacity(max_batch);
    loop {
        // A permit first: while every call is busy, reads gather.
        let Ok(permit) = Arc::clone(&calls).acquire_owned().await else { return };
        if queue.recv_many(&mut group, max_batch).await == 0 {
            return;
        }
        let (pool, reads) = (pool.clone(), std::mem::take(&mut group));
        tokio::spawn(async move {
            read(&pool, reads, deadline).await;
            drop(permit);
        });
    }
}

/// Reads one group with one statement and answers every caller.
async fn read(pool: &Pool, reads: Vec<Read>, deadline: Duration) {
    match read_with_deadline(pool, &reads, deadline).await {
        Ok(found) => {
            for r in reads {
                let _ = r.reply.send(Ok(found.get(&r.key).cloned()));
            }
        }
        Err(e) => {
            for r in reads {
                let _ = r.reply.send(Err(e.same_kind()));
            }
        }
    }
}

/// The standing entries of the group's keys (absent keys have none). A call
/// that overruns `deadline` is abandoned and its connection discarded.
async fn read_with_deadline(
    pool: &Pool,
    reads: &[Read],
    deadline: Duration,
) -> Result<HashMap<ProgressKey, Entry>, StoreError> {
    let client = tokio::time::timeout(deadline, pool.get())
        .await
        .map_err(|_| StoreError::Timeout { backend: BACKEND })?
        .map_err(pool_error)?;
    match tokio::time::timeout(deadline, query(&client, reads)).await {
        Ok(result) => result,
        Err(_) => {
            drop(Object::take(client));
            Err(StoreError::Timeout { backend: BACKEND })
        }
    }
}

async fn query(client: &Object, reads: &[Read]) -> Result<HashMap<ProgressKey, Entry>, StoreError> {
    let accounts: Vec<&str> = reads.iter().map(|r| r.key.account_id.as_str()).collect();
    let profiles: Vec<&str> = reads.iter().map(|r| r.key.profile_id.as_str()).collect();
    let videos: Vec<&str> = reads.iter().map(|r| r.key.video_id.as_str()).collect();
    // Rows come back as strings; find their keys without re-validating ids.
    let by_text: HashMap<(&str, &str, &str), &ProgressKey> = reads
        .iter()
        .map(|r| ((r.key.account_id.as_str(), r.key.profile_id.as_str(), r.key.video_id.as_str()), &r.key))
        .collect();
    let stmt = client.prepare_cached(schema::GET_MANY).await.map_err(pg_error)?;
    let rows = client.query(&stmt, &[&accounts, &profiles, &videos]).await.map_err(pg_error)?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let text = (row.get::<_, &str>(0), row.get::<_, &str>(1), row.get::<_, &str>(2));
        if let Some(key) = by_text.get(&text) {
            found.insert((*key).clone(), entry_at(row, 3)?);
        }
    }
    Ok(found)
}
