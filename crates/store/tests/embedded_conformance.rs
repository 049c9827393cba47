//! The conformance suite on the embedded (redb) store, plus what only an
//! on-disk store can show: data survives closing and reopening.

use std::sync::Arc;

use playmark_core::{
    AccountId, DeviceId, Entry, Position, ProfileId, Progress, ProgressKey, Timestamp, VideoId,
};
use playmark_store::ProgressStore;
use playmark_store::conformance::Fixture;
use playmark_store::embedded::{EmbeddedOptions, EmbeddedStore};

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("store opens");
    Fixture { store: Arc::new(store), guard: Box::new(dir) }
}

playmark_store::conformance_tests!(fresh);

/// The fault-test wrapper is a store too, and keeps every promise with its
/// delays on.
mod delayed {
    use super::*;
    use playmark_store::faulty::FaultyStore;
    use std::time::Duration;

    async fn fresh() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let inner = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("store opens");
        let store = FaultyStore::new(Arc::new(inner));
        store.set_before(Duration::from_millis(1));
        store.set_late(Duration::from_millis(1));
        Fixture { store: Arc::new(store), guard: Box::new(dir) }
    }

    playmark_store::conformance_tests!(fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_close_and_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = ProgressKey {
        account_id: AccountId::parse("acct").expect("valid"),
        profile_id: ProfileId::parse("A").expect("valid"),
        video_id: VideoId::parse("V1").expect("valid"),
    };
    let progress = Progress {
        updated_at: Timestamp::from_millis(1_000),
        device_id: DeviceId::parse("tv").expect("valid"),
        position: Position::from_millis(42_000).expect("valid"),
        duration: None,
        hidden: false,
        finished: false,
        series: None,
        finished_at: None,
    };
    {
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("opens");
        store.upsert(&key, progress.clone(), Timestamp::from_millis(1_000), None).await.expect("upsert");
        store.close().await.expect("closes");
    }
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("reopens");
    assert_eq!(store.get(&key).await.expect("get"), Some(Entry::Live(progress)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_close_are_refused_not_lost_silently() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("opens");
    store.close().await.expect("closes");
    let key = ProgressKey {
        account_id: AccountId::parse("acct").expect("valid"),
        profile_id: ProfileId::parse("A").expect("valid"),
        video_id: VideoId::parse("V1").expect("valid"),
    };
    let progress = Progress {
        updated_at: Timestamp::from_millis(1_000),
        device_id: DeviceId::parse("tv").expect("valid"),
        position: Position::START,
        duration: None,
        hidden: false,
        finished: false,
        series: None,
        finished_at: None,
    };
    assert!(store.upsert(&key, progress, Timestamp::from_millis(1), None).await.is_err());
    assert!(store.ping().await.is_err());
}

#[test]
fn a_second_process_cannot_open_the_same_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _first = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("opens");
    let err = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect_err("locked");
    assert!(err.to_string().contains("in use"), "{err}");
}
