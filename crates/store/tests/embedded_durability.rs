//! The embedded store's durability, on its files: what a crash, a torn or
//! corrupt log, a full disk and an older data file do to it.
//!
//! A "crash" here drops the store without closing it: its threads stop
//! without a last checkpoint, so everything acknowledged since the last one
//! is only in the log (`kill -9` of the real binary is in
//! `crates/cli/tests/process.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use playmark_core::{
    AccountId, DeviceId, Entry, Position, ProfileId, ProfileKey, Progress, ProgressKey, Timestamp, VideoId,
};
use playmark_store::embedded::{EmbeddedOptions, EmbeddedStore, WAL_DIR};
use playmark_store::{ProgressStore, StoreError};

fn key(video: &str) -> ProgressKey {
    ProgressKey {
        account_id: AccountId::parse("acct").expect("valid"),
        profile_id: ProfileId::parse("A").expect("valid"),
        video_id: VideoId::parse(video).expect("valid"),
    }
}

fn progress(at: u64, pos_ms: u64) -> Progress {
    Progress {
        updated_at: Timestamp::from_millis(at),
        device_id: DeviceId::parse("tv").expect("valid"),
        position: Position::from_millis(pos_ms).expect("valid"),
        duration: None,
        hidden: false,
        finished: false,
        series: None,
        finished_at: None,
    }
}

/// No checkpoint while the test runs: everything stays in the log.
fn log_only() -> EmbeddedOptions {
    EmbeddedOptions {
        checkpoint_interval: Duration::from_secs(3_600),
        checkpoint_bytes: usize::MAX / 8,
        cache_size_bytes: 16 * 1024 * 1024,
        ..EmbeddedOptions::default()
    }
}

/// Opens the store, waiting out a crashed predecessor's threads letting go
/// of the file.
fn reopen(dir: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore, StoreError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match EmbeddedStore::open(dir, options.clone()) {
            Err(StoreError::Unavailable { reason, .. })
                if reason.contains("in use") && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Writes `n` titles, each acknowledged, and crashes.
async fn write_and_crash(dir: &Path, n: u64) {
    let store = EmbeddedStore::open(dir, log_only()).expect("opens");
    for i in 0..n {
        store
            .upsert(&key(&format!("V{i}")), progress(1_000 + i, i * 1_000), Timestamp::from_millis(1), None)
            .await
            .expect("acknowledged");
    }
    drop(store);
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(WAL_DIR))
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_are_replayed_from_the_log_after_a_crash() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_and_crash(dir.path(), 50).await;
    let store = reopen(dir.path(), log_only()).expect("reopens");
    for i in 0..50u64 {
        assert_eq!(
            store.get(&key(&format!("V{i}"))).await.expect("get"),
            Some(Entry::Live(progress(1_000 + i, i * 1_000)))
        );
    }
    let profile = ProfileKey {
        account_id: AccountId::parse("acct").expect("valid"),
        profile_id: ProfileId::parse("A").expect("valid"),
    };
    assert_eq!(
        store.continue_watching(&profile, 1).await.expect("row")[0].0.as_str(),
        "V49",
        "the order was replayed too"
    );
    // And once checkpointed and reopened, the B-tree holds it all.
    store.close().await.expect("closes with a checkpoint");
    drop(store);
    let store = reopen(dir.path(), log_only()).expect("reopens");
    assert!(store.get(&key("V49")).await.expect("get").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_group_is_discarded_and_the_rest_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_and_crash(dir.path(), 10).await;
    let last = segments(dir.path()).pop().expect("a log segment");
    let len = std::fs::metadata(&last).expect("meta").len();
    // The last group half written, as a crash during its append leaves it.
    std::fs::OpenOptions::new().write(true).open(&last).expect("open").set_len(len - 9).expect("truncate");

    let store = reopen(dir.path(), log_only()).expect("a torn tail does not stop the store");
    assert_eq!(store.get(&key("V9")).await.expect("get"), None, "the torn write was never acknowledged");
    assert!(store.get(&key("V8")).await.expect("get").is_some(), "everything before it is there");
    store
        .upsert(&key("V10"), progress(5_000, 1), Timestamp::from_millis(1), None)
        .await
        .expect("writes go on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_group_in_the_middle_refuses_to_open_naming_the_file_and_offset() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_and_crash(dir.path(), 10).await;
    let last = segments(dir.path()).pop().expect("a log segment");
    let mut bytes = std::fs::read(&last).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&last, &bytes).expect("write");

    let err = reopen(dir.path(), log_only()).expect_err("a corrupt log must not be read past");
    let message = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{message}");
    assert!(message.contains(&last.display().to_string()) && message.contains("offset"), "{message}");
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs for the disk-full test (it needs root, as scripts/test runs)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills all but `spare` bytes (with a new filler file each time).
    fn fill_leaving(&self, spare: u64) {
        let free = nix::sys::statvfs::statvfs(self.path()).expect("statvfs");
        let free = free.blocks_available() * free.fragment_size();
        let filler = vec![0u8; usize::try_from(free.saturating_sub(spare)).expect("fits")];
        let n = std::fs::read_dir(self.path()).expect("dir").count();
        let _ = std::fs::write(self.path().join(format!("filler-{n}")), filler);
    }

    /// Frees what the fillers took.
    fn empty_fillers(&self) {
        for entry in std::fs::read_dir(self.path()).expect("dir").flatten() {
            if entry.file_name().to_string_lossy().starts_with("filler-") {
                std::fs::remove_file(entry.path()).expect("remove filler");
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_and_loses_nothing_acknowledged() {
    let disk = SmallDisk::mount("32m");
    let data = disk.path().join("data");
    let store = Arc::new(EmbeddedStore::open(&data, log_only()).expect("opens"));
    store.ping().await.expect("ready while there is room");
    disk.fill_leaving(64 * 1024);

    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..100_000u64 {
        let k = key(&format!("title-with-a-long-name-{i:06}"));
        match store.upsert(&k, progress(1_000 + i, i), Timestamp::from_millis(1), None).await {
            Ok(_) => acknowledged.push((k, i)),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the disk filled up");
    assert!(
        matches!(&refused, StoreError::Unavailable { reason, .. } if reason.contains("full")),
        "a full disk is unavailable (a 503), naming the cause: {refused:?}"
    );
    disk.fill_leaving(0);
    assert!(store.ping().await.is_err(), "a store that cannot write is not ready");
    assert!(!acknowledged.is_empty());
    for (k, i) in &acknowledged {
        assert_eq!(store.get(k).await.expect("get"), Some(Entry::Live(progress(1_000 + i, *i))), "{k:?}");
    }

    // Room again: the store writes again, and after a restart everything
    // acknowledged is still there.
    disk.empty_fillers();
    store
        .upsert(&key("after"), progress(9_000_000, 1), Timestamp::from_millis(1), None)
        .await
        .expect("writes resume");
    let Ok(store) = Arc::try_unwrap(store) else { panic!("the store is shared") };
    drop(store);
    let store = reopen(&data, log_only()).expect("reopens");
    for (k, i) in &acknowledged {
        assert_eq!(store.get(k).await.expect("get"), Some(Entry::Live(progress(1_000 + i, *i))), "{k:?}");
    }
    assert!(store.get(&key("after")).await.expect("get").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_file_of_the_previous_layout_is_migrated_with_its_order_and_counts() {
    #[derive(serde::Serialize)]
    struct StoredV2<'a> {
        touched_at: u64,
        entry: EntryV2<'a>,
    }
    #[derive(serde::Serialize)]
    enum EntryV2<'a> {
        Live { updated_at: u64, device_id: &'a str, position_ms: u64, duration_ms: Option<u64>, hidden: bool },
    }
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let db = redb::Database::create(dir.path().join("playmark.redb")).expect("creates");
        let txn = db.begin_write().expect("txn");
        {
            let table: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("progress_v1");
            let mut table = txn.open_table(table).expect("table");
            for (video, at, pos, hidden) in [
                ("V1", 1_000, 60_000, false),
                ("V2", 2_000, 3_500_000, false),
                ("V3", 3_000, 60_000, true),
                ("V4", 4_000, 60_000, false),
            ] {
                let mut value = vec![2u8];
                let stored = StoredV2 {
                    touched_at: 5,
                    entry: EntryV2::Live {
                        updated_at: at,
                        device_id: "tv",
                        position_ms: pos,
                        duration_ms: Some(3_600_000),
                        hidden,
                    },
                };
                postcard::to_io(&stored, &mut value).expect("encodes");
                table.insert(format!("acct\0A\0{video}").as_bytes(), value.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("migrates and opens");
    let got = store.get(&key("V2")).await.expect("get");
    assert!(
        got.as_ref().and_then(Entry::live).is_some_and(|p| p.finished),
        "97% of the title is finished: {got:?}"
    );
    let profile = ProfileKey {
        account_id: AccountId::parse("acct").expect("valid"),
        profile_id: ProfileId::parse("A").expect("valid"),
    };
    let row: Vec<_> = store
        .continue_watching(&profile, 10)
        .await
        .expect("row")
        .into_iter()
        .map(|(v, _)| v.to_string())
        .collect();
    assert_eq!(row, ["V4", "V1"], "finished and hidden titles are out of the order");
    assert_eq!(store.trim(3, 10).await.expect("trim"), [key("V1")], "the profile's 4 rows were counted");
}
