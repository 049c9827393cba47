//! PostgreSQL failures the store must survive, on a private server the tests
//! freeze and reconfigure: a writer stuck on a frozen server answers its
//! callers (with a timeout) instead of holding them forever, and a server
//! that answers but cannot write is not ready.

use std::time::{Duration, Instant};

use playmark_core::{AccountId, DeviceId, Position, ProfileId, Progress, ProgressKey, Timestamp, VideoId};
use playmark_store::postgres::{PostgresOptions, PostgresStore};
use playmark_store::{ProgressStore, StoreError};
use playmark_testkit::Server;

fn key(video: &str) -> ProgressKey {
    ProgressKey {
        account_id: AccountId::parse("acct").expect("valid"),
        profile_id: ProfileId::parse("A").expect("valid"),
        video_id: VideoId::parse(video).expect("valid"),
    }
}

fn progress(at: u64) -> Progress {
    Progress {
        updated_at: Timestamp::from_millis(at),
        device_id: DeviceId::parse("tv").expect("valid"),
        position: Position::from_millis(1_000).expect("valid"),
        duration: None,
        hidden: false,
        finished: false,
        series: None,
        finished_at: None,
    }
}

async fn store(url: String) -> PostgresStore {
    PostgresStore::connect(PostgresOptions {
        url,
        pool_size: 3,
        writers: 1,
        statement_timeout: Duration::from_millis(500),
        ..Default::default()
    })
    .await
    .expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_stuck_on_a_frozen_server_answers_with_a_timeout_and_writes_again_after_the_thaw() {
    let pg = Server::postgres().expect("private PostgreSQL");
    let store = store(pg.url()).await;
    store.upsert(&key("V1"), progress(1_000), Timestamp::from_millis(1), None).await.expect("writes");

    pg.freeze().expect("frozen");
    let started = Instant::now();
    let stuck = store.upsert(&key("V1"), progress(2_000), Timestamp::from_millis(1), None).await;
    // The round's deadline is the statement timeout plus a second: the
    // caller is answered then, not when the server comes back.
    assert!(matches!(stuck, Err(StoreError::Timeout { .. })), "{stuck:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());

    pg.thaw().expect("thawed");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.upsert(&key("V2"), progress(3_000), Timestamp::from_millis(1), None).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "no write within 10 s of the thaw: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await.expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_answers_but_cannot_write_is_not_ready() {
    let pg = Server::postgres().expect("private PostgreSQL");
    let store = store(pg.url()).await;
    store.ping().await.expect("ready");
    // As after a failover to a replica: every transaction is read-only.
    let psql = |sql: &str| {
        let status = std::process::Command::new("psql")
            .args([pg.url().as_str(), "-qAtc", sql])
            .status()
            .expect("psql runs");
        assert!(status.success(), "{sql}");
    };
    psql("ALTER SYSTEM SET default_transaction_read_only = on");
    psql("SELECT pg_reload_conf()");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.ping().await {
            Err(StoreError::Unavailable { reason, .. }) => {
                assert!(reason.contains("read-only"), "{reason}");
                break;
            }
            other => assert!(Instant::now() < deadline, "still ready 10 s after going read-only: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.close().await.expect("closes");
}
