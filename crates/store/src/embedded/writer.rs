//! Group commit: one writer thread turns many concurrent writes into one
//! durable transaction.
//!
//! An fsync costs the same for one row as for a thousand, so the writer takes
//! the first queued command, drains whatever else is already waiting (up to a
//! batch limit), applies them in arrival order inside one write transaction,
//! commits with `Durability::Immediate`, and only then answers every caller.
//! Under load, batches grow by themselves and throughput scales with
//! concurrency; alone, a write pays exactly one fsync.

use std::sync::Arc;

use playmark_core::{Entry, Outcome, Progress, StaleGuard, Timestamp};
use redb::{Database, Durability, ReadableTable, Table};
use tokio::sync::{mpsc, oneshot};

use super::codec::{Stored, decode_value, encode_value};
use super::{BACKEND, Latest, PROGRESS};
use crate::{StoreError, Written};

/// What the writer is asked to do.
pub(crate) enum Command {
    /// A write, batched with its neighbours.
    Op(Op),
    /// Stop after everything queued before this command is committed.
    Close(oneshot::Sender<()>),
}

/// One write inside a batch.
pub(crate) enum Op {
    /// Conditionally write progress under a key.
    Upsert {
        key: Vec<u8>,
        progress: Progress,
        now: Timestamp,
        guard: Option<StaleGuard>,
        reply: oneshot::Sender<Result<Written, StoreError>>,
    },
    /// Set the hidden flag of the live record under a key.
    Hide { key: Vec<u8>, reply: oneshot::Sender<Result<Option<Progress>, StoreError>> },
    /// Replace what stands under a key with a tombstone.
    Delete { key: Vec<u8>, now: Timestamp, reply: oneshot::Sender<Result<Written, StoreError>> },
    /// Remove rows still untouched since `cutoff` (re-checked in the
    /// transaction); answers with the keys removed.
    Expire { keys: Vec<Vec<u8>>, cutoff: Timestamp, reply: oneshot::Sender<Result<Vec<Vec<u8>>, StoreError>> },
}

/// An answer held back until the transaction commits.
enum Pending {
    Written(oneshot::Sender<Result<Written, StoreError>>, Result<Written, StoreError>),
    Expired(oneshot::Sender<Result<Vec<Vec<u8>>, StoreError>>, Result<Vec<Vec<u8>>, StoreError>),
    Hidden(oneshot::Sender<Result<Option<Progress>, StoreError>>, Result<Option<Progress>, StoreError>),
}

impl Pending {
    /// Sends the answer, or `failure` in place of a success that did not commit.
    fn send(self, failure: Option<&dyn Fn() -> StoreError>) {
        // A caller that gave up (timed out) has dropped its receiver; the
        // write still happened, and there is nobody left to tell.
        match (self, failure) {
            (Pending::Written(tx, Ok(_)), Some(fail)) => drop(tx.send(Err(fail()))),
            (Pending::Written(tx, result), _) => drop(tx.send(result)),
            (Pending::Expired(tx, Ok(_)), Some(fail)) => drop(tx.send(Err(fail()))),
            (Pending::Expired(tx, result), _) => drop(tx.send(result)),
            (Pending::Hidden(tx, Ok(_)), Some(fail)) => drop(tx.send(Err(fail()))),
            (Pending::Hidden(tx, result), _) => drop(tx.send(result)),
        }
    }
}

/// Runs the writer loop until every sender is gone or a `Close` arrives.
pub(crate) fn run(db: Arc<Database>, latest: Arc<Latest>, mut rx: mpsc::Receiver<Command>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut close = None;
    while close.is_none() {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Op(op) => batch.push(op),
                Command::Close(reply) => {
                    close = Some(reply);
                    break;
                }
            }
            if batch.len() < max_batch {
                next = rx.try_recv().ok();
            }
        }
        commit(&db, &latest, &mut batch);
    }
    // Writes queued after a Close are dropped unanswered: their callers see
    // the store as closed.
    rx.close();
    if let Some(reply) = close {
        let _ = reply.send(());
    }
    tracing::debug!("embedded store writer stopped");
}

fn commit(db: &Database, latest: &Latest, batch: &mut Vec<Op>) {
    if batch.is_empty() {
        return;
    }
    let size = batch.len();
    let mut pending = Vec::with_capacity(size);
    let outcome = apply(db, batch.drain(..), &mut pending);
    match outcome {
        Ok(()) => {
            // Readers must see the commit before anyone hears it happened.
            latest.refresh(db);
            pending.into_iter().for_each(|p| p.send(None));
        }
        Err(e) => {
            tracing::error!(error = %e, batch = size, "embedded store commit failed; nothing in the batch was acknowledged");
            let reason = e.to_string();
            let fail = move || StoreError::Unavailable { backend: BACKEND, reason: reason.clone() };
            pending.into_iter().for_each(|p| p.send(Some(&fail)));
        }
    }
}

/// Applies a batch in one transaction. Per-command problems (a corrupt row)
/// are answered individually; a storage failure fails the whole batch.
fn apply(
    db: &Database,
    batch: impl Iterator<Item = Op>,
    pending: &mut Vec<Pending>,
) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let mut table = txn.open_table(PROGRESS)?;
        for cmd in batch {
            match cmd {
                Op::Upsert { key, progress, now, guard, reply } => {
                    let result = write(&mut table, &key, now, |_| Entry::Live(progress), guard)?;
                    pending.push(Pending::Written(reply, result));
                }
                Op::Hide { key, reply } => {
                    let stored = table.get(key.as_slice())?.map(|v| decode_value(v.value()));
                    let result = match stored {
                        Some(Ok(Stored { entry: Entry::Live(mut p), touched_at })) => {
                            p.hidden = true;
                            let hidden = Entry::Live(p);
                            match encode_value(&hidden, touched_at) {
                                Ok(bytes) => {
                                    table.insert(key.as_slice(), bytes.as_slice())?;
                                    Ok(hidden.live().cloned())
                                }
                                Err(e) => Err(e),
                            }
                        }
                        Some(Ok(_)) | None => Ok(None),
                        Some(Err(e)) => Err(e),
                    };
                    pending.push(Pending::Hidden(reply, result));
                }
                Op::Delete { key, now, reply } => {
                    let result =
                        write(&mut table, &key, now, |standing| Entry::tombstone(standing, now), None)?;
                    pending.push(Pending::Written(reply, result));
                }
                Op::Expire { keys, cutoff, reply } => {
                    let mut removed = Vec::with_capacity(keys.len());
                    for key in keys {
                        let idle = match table.get(key.as_slice())? {
                            Some(v) => decode_value(v.value()).is_ok_and(|s| s.touched_at < cutoff),
                            None => false,
                        };
                        if idle {
                            table.remove(key.as_slice())?;
                            removed.push(key);
                        }
                    }
                    pending.push(Pending::Expired(reply, Ok(removed)));
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// The conditional write: read what stands, merge, check the guard, write
/// only if applied.
fn write(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    key: &[u8],
    now: Timestamp,
    incoming: impl FnOnce(Option<&Entry>) -> Entry,
    guard: Option<StaleGuard>,
) -> Result<Result<Written, StoreError>, redb::Error> {
    let standing = match table.get(key)? {
        None => None,
        Some(v) => match decode_value(v.value()) {
            Ok(stored) => Some(stored.entry),
            Err(e) => return Ok(Err(e)),
        },
    };
    let incoming = incoming(standing.as_ref());
    let mut outcome = Entry::merge(standing.as_ref(), &incoming);
    if let (Outcome::Applied, Some(guard), Some(s), Entry::Live(p)) = (outcome, guard, &standing, &incoming)
        && guard.refuses(s, p)
    {
        outcome = Outcome::Conflict;
    }
    if outcome != Outcome::Applied {
        let standing = standing.unwrap_or(incoming);
        return Ok(Ok(Written { outcome, standing }));
    }
    match encode_value(&incoming, now) {
        Ok(bytes) => {
            table.insert(key, bytes.as_slice())?;
            Ok(Ok(Written { outcome, standing: incoming }))
        }
        Err(e) => Ok(Err(e)),
    }
}
