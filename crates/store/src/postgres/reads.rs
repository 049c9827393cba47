//! Coalescing concurrent point reads into one statement.
//!
//! A resume that misses the cache reads one row. Read one statement per
//! row, PostgreSQL spends most of each round trip on the statement itself
//! (bind, plan, execute, a network write) rather than on the row. So reads
//! queue here, and whatever is waiting when a call can go is read by one
//! `unnest` join ([`schema::GET_MANY`]). A read that finds nothing waiting
//! and a call free goes at once, by itself; under load, reads gather while
//! the calls in flight run, so a statement carries many rows. Like the writers' rounds, a call has a deadline after which
//! its connection is discarded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use playmark_core::{Entry, ProgressKey};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{BACKEND, entry_at, pg_error, pool_error, schema};
use crate::StoreError;

/// One read, and who waits for it.
struct Read {
    key: ProgressKey,
    reply: oneshot::Sender<Result<Option<Entry>, StoreError>>,
}

/// The point reads of one store: a queue, its reader, and the calls they
/// share.
pub(crate) struct Reads {
    queue: mpsc::Sender<Read>,
    calls: Arc<Semaphore>,
    pool: Pool,
    deadline: Duration,
}

impl Reads {
    /// Starts the reader: at most `calls` statements at once, at most
    /// `max_batch` keys in one.
    pub(crate) fn start(pool: Pool, max_batch: usize, calls: usize, deadline: Duration) -> Self {
        let (queue, queued) = mpsc::channel(calls.max(1) * max_batch.max(1));
        let calls = Arc::new(Semaphore::new(calls.max(1)));
        tokio::spawn(reader(pool.clone(), queued, max_batch.max(1), Arc::clone(&calls), deadline));
        Self { queue, calls, pool, deadline }
    }

    /// The entry under `key`, if any.
    pub(crate) async fn get(&self, key: &ProgressKey) -> Result<Option<Entry>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let read = Read { key: key.clone(), reply };
        // Nothing waiting and a call free: read at once, without the hop
        // through the reader (what a node that is not busy does).
        let idle = self.queue.capacity() == self.queue.max_capacity();
        match Arc::clone(&self.calls).try_acquire_owned() {
            Ok(call) if idle => {
                read_group(&self.pool, vec![read], self.deadline).await;
                drop(call);
            }
            _ => self.queue.send(read).await.map_err(|_| stopped())?,
        }
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable { backend: BACKEND, reason: "the reader stopped".into() }
}

/// Takes groups of reads off the queue, at most `calls` statements at once
/// (shared with reads made at once), until the queue is closed and drained.
async fn reader(
    pool: Pool,
    mut queue: mpsc::Receiver<Read>,
    max_batch: usize,
    calls: Arc<Semaphore>,
    deadline: Duration,
) {
    let mut group = Vec::with_capacity(max_batch);
    loop {
        // A permit first: while every call is busy, reads gather.
        let Ok(permit) = Arc::clone(&calls).acquire_owned().await else { return };
        if queue.recv_many(&mut group, max_batch).await == 0 {
            return;
        }
        let (pool, reads) = (pool.clone(), std::mem::take(&mut group));
        tokio::spawn(async move {
            read_group(&pool, reads, deadline).await;
            drop(permit);
        });
    }
}

/// Reads one group with one statement and answers every caller.
async fn read_group(pool: &Pool, reads: Vec<Read>, deadline: Duration) {
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
    let rows = if let [one] = reads {
        let stmt = client.prepare_cached(schema::GET).await.map_err(pg_error)?;
        let key = &one.key;
        let (account, profile, video) =
            (key.account_id.as_str(), key.profile_id.as_str(), key.video_id.as_str());
        client.query(&stmt, &[&account, &profile, &video]).await.map_err(pg_error)?
    } else {
        let accounts: Vec<&str> = reads.iter().map(|r| r.key.account_id.as_str()).collect();
        let profiles: Vec<&str> = reads.iter().map(|r| r.key.profile_id.as_str()).collect();
        let videos: Vec<&str> = reads.iter().map(|r| r.key.video_id.as_str()).collect();
        let stmt = client.prepare_cached(schema::GET_MANY).await.map_err(pg_error)?;
        client.query(&stmt, &[&accounts, &profiles, &videos]).await.map_err(pg_error)?
    };
    // Rows come back as strings; find their keys without re-validating ids.
    let by_text: HashMap<(&str, &str, &str), &ProgressKey> = reads
        .iter()
        .map(|r| ((r.key.account_id.as_str(), r.key.profile_id.as_str(), r.key.video_id.as_str()), &r.key))
        .collect();
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let text = (row.get::<_, &str>(0), row.get::<_, &str>(1), row.get::<_, &str>(2));
        if let Some(key) = by_text.get(&text) {
            found.insert((*key).clone(), entry_at(row, 3)?);
        }
    }
    Ok(found)
}
