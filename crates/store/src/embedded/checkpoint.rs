//! Checkpoints: the B-tree catches up with the log, in the background.
//!
//! The writer freezes the memtable at a group boundary and hands it over
//! with the last LSN it holds. This thread writes it into redb in one
//! transaction, together with that LSN, commits durably, publishes a fresh
//! read snapshot, drops the frozen memtable, and deletes the log segments
//! the B-tree now holds. Each hot row is written to the B-tree once per
//! checkpoint instead of once per group commit.
//!
//! A checkpoint that fails (a full disk) is retried with backoff; nothing
//! is lost meanwhile, because the log still holds every group. The thread
//! also nudges the writer every interval, so an idle store checkpoints too.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redb::{Database, Durability};
use tokio::sync::mpsc;

use super::memtable::{Table, View};
use super::writer::Command;
use super::{KV, keys, wal};

/// A frozen memtable and the last LSN it holds.
pub(crate) struct Job {
    pub table: Arc<Table>,
    pub upto: u64,
}

/// The checkpoint thread's state.
pub(crate) struct Checkpointer {
    pub db: Arc<Database>,
    pub view: Arc<View>,
    pub wal_dir: PathBuf,
    pub jobs: std::sync::mpsc::Receiver<Job>,
    /// The writer's queue, to nudge it; weak, so the store can close it.
    pub writer: mpsc::WeakSender<Command>,
    pub interval: Duration,
    /// Set when the store closes: a failing checkpoint stops retrying (the
    /// log keeps everything for the next open).
    pub stopping: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Runs until the writer is gone.
    pub(crate) fn run(self) {
        loop {
            match self.jobs.recv_timeout(self.interval) {
                Ok(job) => self.checkpoint(job),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let Some(writer) = self.writer.upgrade() else { return };
                    // A full queue means the writer is busy: it checks
                    // after every group anyway.
                    let _ = writer.try_send(Command::Checkpoint);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Writes one frozen memtable into the B-tree, retrying until it can.
    fn checkpoint(&self, job: Job) {
        let mut pause = Duration::from_millis(100);
        loop {
            let started = std::time::Instant::now();
            match write(&self.db, &job) {
                Ok(()) => {
                    // Readers must find in the B-tree what they no longer
                    // find in the memtables.
                    self.view.refresh();
                    self.view.tables.write().unwrap_or_else(std::sync::PoisonError::into_inner).thaw();
                    if let Err(e) = wal::remove_before(&self.wal_dir, job.upto + 1) {
                        tracing::warn!(error = %e, "cannot delete checkpointed log segments; they are replayed harmlessly");
                    }
                    tracing::debug!(keys = job.table.len(), upto = job.upto, took = ?started.elapsed(), "checkpoint written");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?pause, "checkpoint failed; the log keeps every write meanwhile");
                    if self.stopping.load(Ordering::SeqCst) {
                        tracing::warn!(
                            "closing with a checkpoint not written; the next open replays the log"
                        );
                        return;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

fn write(db: &Database, job: &Job) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let mut table = txn.open_table(KV)?;
        for (key, value) in job.table.iter() {
            match value {
                Some(v) => {
                    table.insert(key.as_slice(), v.as_slice())?;
                }
                None => {
                    table.remove(key.as_slice())?;
                }
            }
        }
        table.insert(keys::CHECKPOINT_LSN, job.upto.to_le_bytes().as_slice())?;
    }
    txn.commit()?;
    Ok(())
}
