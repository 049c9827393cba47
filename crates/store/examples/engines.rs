//! How three ways of making checkpoints durable compare, below HTTP:
//!
//! - `redb`: a group commit is one redb transaction fsynced
//!   (`Durability::Immediate`), the B-tree rewritten per group (playmark's
//!   embedded store before the log);
//! - `wal`: playmark's embedded store (`EmbeddedStore`): a group is one log
//!   append and one fdatasync, the B-tree brought up to date at checkpoints;
//! - `fjall`: an LSM tree (fjall 3), a group is one batch per write and one
//!   `persist(SyncData)`, with its own compaction in the background.
//!
//! Each engine does the same work per write: read the row, write the row,
//! move the title's continue-watching key. `scripts/bench` runs this and
//! writes the table in docs/benchmarks.md:
//!
//!     cargo run --release -p playmark-store --example engines -- --engine wal
//!
//! It prints one JSON object: writes per second, latency percentiles, the
//! longest stall, bytes on disk per record, and how long a reopen after a
//! crash (no clean close) takes with the log as full as the run left it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use playmark_core::{AccountId, DeviceId, Position, ProfileId, Progress, ProgressKey, Timestamp, VideoId};
use playmark_store::ProgressStore;
use playmark_store::embedded::{EmbeddedOptions, EmbeddedStore};
use redb::ReadableTable;
use tokio::sync::{mpsc, oneshot};

struct Args {
    engine: String,
    records: u64,
    writers: u64,
    seconds: f64,
    dir: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        engine: "wal".into(),
        records: 100_000,
        writers: 64,
        seconds: 9.5,
        dir: std::env::temp_dir().join(format!("playmark-engines-{}", std::process::id())),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--engine" => a.engine = value,
            "--records" => a.records = value.parse().unwrap_or(a.records),
            "--writers" => a.writers = value.parse().unwrap_or(a.writers),
            "--seconds" => a.seconds = value.parse().unwrap_or(a.seconds),
            "--dir" => a.dir = value.into(),
            other => {
                eprintln!(
                    "unknown flag {other}; flags: --engine redb|wal|fjall --records N --writers N --seconds S --dir PATH"
                );
                std::process::exit(2);
            }
        }
    }
    a
}

/// The same write for every engine.
#[derive(Clone)]
struct Write {
    record: u64,
    at: u64,
}

impl Write {
    fn key(&self) -> ProgressKey {
        ProgressKey {
            account_id: AccountId::parse(format!("acct-{}", self.record / 5))
                .unwrap_or_else(|_| unreachable!()),
            profile_id: ProfileId::parse("A").unwrap_or_else(|_| unreachable!()),
            video_id: VideoId::parse(format!("V{}", self.record % 5)).unwrap_or_else(|_| unreachable!()),
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            updated_at: Timestamp::from_millis(self.at),
            device_id: DeviceId::parse("bench").unwrap_or_else(|_| unreachable!()),
            position: Position::from_millis(self.at % 3_000_000).unwrap_or_else(|_| unreachable!()),
            duration: None,
            hidden: false,
            finished: false,
            series: None,
            finished_at: None,
        }
    }
}

/// An engine behind a group-commit writer thread (for `redb` and `fjall`;
/// `wal` is the real store).
enum Engine {
    Store(EmbeddedStore),
    Group(mpsc::Sender<(Write, oneshot::Sender<()>)>),
}

impl Engine {
    async fn write(&self, w: Write) {
        match self {
            Engine::Store(store) => {
                store
                    .upsert(&w.key(), w.progress(), Timestamp::from_millis(w.at), None)
                    .await
                    .expect("write");
            }
            Engine::Group(tx) => {
                let (reply, done) = oneshot::channel();
                tx.send((w, reply)).await.expect("writer alive");
                done.await.expect("written");
            }
        }
    }
}

/// Row and continue-watching keys, as the embedded store lays them out.
fn row_key(w: &Write) -> Vec<u8> {
    format!("R{}\0A\0V{}", w.record / 5, w.record % 5).into_bytes()
}

fn cw_key(w: &Write, at: u64) -> Vec<u8> {
    let mut k = format!("C{}\0A\0", w.record / 5).into_bytes();
    k.extend_from_slice(&(u64::MAX - at).to_be_bytes());
    k.extend_from_slice(format!("V{}", w.record % 5).as_bytes());
    k
}

/// Runs `commit` per group on a thread, answering after it returns.
fn group_writer<F>(mut commit: F) -> mpsc::Sender<(Write, oneshot::Sender<()>)>
where
    F: FnMut(&[Write]) + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<(Write, oneshot::Sender<()>)>(8192);
    std::thread::spawn(move || {
        let mut batch = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < 1024 {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let writes: Vec<Write> = batch.iter().map(|(w, _)| w.clone()).collect();
            commit(&writes);
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(());
            }
        }
    });
    tx
}

const KV: redb::TableDefinition<'static, &'static [u8], &'static [u8]> = redb::TableDefinition::new("kv");

fn open_redb(dir: &Path) -> redb::Database {
    let db = redb::Database::builder().set_cache_size(1 << 30).create(dir.join("bench.redb")).expect("redb");
    let txn = db.begin_write().expect("txn");
    txn.open_table(KV).expect("table");
    txn.commit().expect("commit");
    db
}

fn redb_engine(dir: &Path) -> Engine {
    let db = open_redb(dir);
    Engine::Group(group_writer(move |writes| {
        let mut txn = db.begin_write().expect("txn");
        txn.set_durability(redb::Durability::Immediate).expect("durability");
        {
            let mut table = txn.open_table(KV).expect("table");
            for w in writes {
                let row = row_key(w);
                let old = table
                    .get(row.as_slice())
                    .expect("get")
                    .map(|v| u64::from_le_bytes(v.value()[..8].try_into().unwrap_or_default()));
                if let Some(old) = old {
                    table.remove(cw_key(w, old).as_slice()).expect("remove");
                }
                let value = [w.at.to_le_bytes().as_slice(), &[0u8; 40]].concat();
                table.insert(row.as_slice(), value.as_slice()).expect("insert");
                table.insert(cw_key(w, w.at).as_slice(), value.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }))
}

fn try_open_fjall(dir: &Path) -> fjall::Result<(fjall::Database, fjall::Keyspace)> {
    let db = fjall::Database::builder(dir.join("fjall"))
        .manual_journal_persist(true)
        .cache_size(1 << 30)
        .open()?;
    let ks = db.keyspace("kv", fjall::KeyspaceCreateOptions::default)?;
    Ok((db, ks))
}

fn open_fjall(dir: &Path) -> (fjall::Database, fjall::Keyspace) {
    try_open_fjall(dir).expect("fjall")
}

fn fjall_engine(dir: &Path) -> Engine {
    let (db, ks) = open_fjall(dir);
    Engine::Group(group_writer(move |writes| {
        for w in writes {
            let row = row_key(w);
            let old =
                ks.get(&row).expect("get").map(|v| u64::from_le_bytes(v[..8].try_into().unwrap_or_default()));
            let mut batch = db.batch();
            if let Some(old) = old {
                batch.remove(&ks, cw_key(w, old));
            }
            let value = [w.at.to_le_bytes().as_slice(), &[0u8; 40]].concat();
            batch.insert(&ks, row, value.clone());
            batch.insert(&ks, cw_key(w, w.at), value);
            batch.commit().expect("commit");
        }
        db.persist(fjall::PersistMode::SyncData).expect("persist");
    }))
}

fn open_engine(name: &str, dir: &Path) -> Engine {
    match name {
        "redb" => redb_engine(dir),
        "fjall" => fjall_engine(dir),
        _ => Engine::Store(EmbeddedStore::open(dir, EmbeddedOptions::default()).expect("embedded store")),
    }
}

fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        total += if path.is_dir() { disk_bytes(&path) } else { entry.metadata().map_or(0, |m| m.len()) };
    }
    total
}

/// How long a reopen takes until the first read answers, after a crash.
async fn reopen(name: &str, dir: &Path) -> Duration {
    let started = Instant::now();
    match name {
        "redb" => {
            let db = loop {
                match redb::Database::builder().create(dir.join("bench.redb")) {
                    Ok(db) => break db,
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            };
            use redb::ReadableDatabase;
            let txn = db.begin_read().expect("read");
            let table = txn.open_table(KV).expect("table");
            let _ = table.get(row_key(&Write { record: 0, at: 0 }).as_slice()).expect("get");
        }
        "fjall" => {
            // The crashed writer thread lets go of the lock as it ends.
            let (_db, ks) = loop {
                match try_open_fjall(dir) {
                    Ok(opened) => break opened,
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            };
            let _ = ks.get(row_key(&Write { record: 0, at: 0 })).expect("get");
        }
        _ => {
            let store = loop {
                match EmbeddedStore::open(dir, EmbeddedOptions::default()) {
                    Ok(store) => break store,
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            };
            let _ = store.get(&Write { record: 0, at: 0 }.key()).await.expect("get");
        }
    }
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&a.dir).expect("bench dir");
    let engine = Arc::new(open_engine(&a.engine, &a.dir));

    // Preload every record once, untimed.
    let next = Arc::new(AtomicU64::new(0));
    let loaders: Vec<_> = (0..64)
        .map(|_| {
            let (engine, next, records) = (Arc::clone(&engine), Arc::clone(&next), a.records);
            tokio::spawn(async move {
                loop {
                    let record = next.fetch_add(1, Ordering::Relaxed);
                    if record >= records {
                        return;
                    }
                    engine.write(Write { record, at: 1_000 }).await;
                }
            })
        })
        .collect();
    for l in loaders {
        l.await.expect("loader");
    }

    // The timed run: writers pick records uniformly, each write newer.
    let clock = Arc::new(AtomicU64::new(2_000));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..a.writers)
        .map(|w| {
            let (engine, clock, stop, records) =
                (Arc::clone(&engine), Arc::clone(&clock), Arc::clone(&stop), a.records);
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(w);
                let mut hist = Histogram::<u64>::new(3).expect("histogram");
                while !stop.load(Ordering::Relaxed) {
                    let w = Write { record: rng.u64(0..records), at: clock.fetch_add(1, Ordering::Relaxed) };
                    let sent = Instant::now();
                    engine.write(w).await;
                    let _ = hist.record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
                hist
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(a.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        hist.add(t.await.expect("writer")).expect("merge");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = disk_bytes(&a.dir);

    // A crash: no clean close; the reopen replays what is not checkpointed.
    drop(engine);
    let recovery = reopen(&a.engine, &a.dir).await;
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "engine": a.engine,
            "records": a.records,
            "writers": a.writers,
            "seconds": elapsed,
            "writes_per_second": hist.len() as f64 / elapsed,
            "p50_ms": ms(hist.value_at_quantile(0.5)),
            "p99_ms": ms(hist.value_at_quantile(0.99)),
            "p999_ms": ms(hist.value_at_quantile(0.999)),
            "max_ms": ms(hist.max()),
            "disk_bytes_per_record": bytes as f64 / a.records as f64,
            "reopen_after_crash_ms": recovery.as_secs_f64() * 1000.0,
        })
    );
    let _ = std::fs::remove_dir_all(&a.dir);
}
