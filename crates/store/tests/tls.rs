//! TLS to PostgreSQL and Redis, against private servers started with a
//! certificate from a CA the test makes: the libpq verification modes do
//! what they say, and `rediss://` checks the server against the given roots.

use std::sync::Arc;
use std::time::Duration;

use playmark_core::{
    AccountId, DeviceId, Entry, Position, ProfileId, Progress, ProgressKey, Timestamp, VideoId,
};
use playmark_store::postgres::{PostgresOptions, PostgresStore};
use playmark_store::redis::{RedisCache, RedisOptions, RedisTopology};
use playmark_store::{ProgressCache, ProgressStore};
use playmark_testkit::Server;
use playmark_testkit::tls::Authority;

fn key() -> ProgressKey {
    ProgressKey {
        account_id: AccountId::parse("acct").expect("valid"),
        profile_id: ProfileId::parse("A").expect("valid"),
        video_id: VideoId::parse("V1").expect("valid"),
    }
}

fn live() -> Entry {
    Entry::Live(Progress {
        updated_at: Timestamp::from_millis(1_000),
        device_id: DeviceId::parse("tv").expect("valid"),
        position: Position::from_millis(60_000).expect("valid"),
        duration: None,
        hidden: false,
        finished: false,
        series: None,
        finished_at: None,
    })
}

/// A CA's certificate in a file, and the directory that holds it.
fn ca_file(ca: &Authority) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, ca.ca_pem()).expect("write CA");
    (dir, path)
}

async fn postgres(url: String) -> Result<PostgresStore, playmark_store::StoreError> {
    PostgresStore::connect(PostgresOptions {
        url,
        pool_size: 2,
        connect_timeout: Duration::from_secs(3),
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sslmodes_verify_what_they_say() {
    let ca = Authority::new().expect("CA");
    // The certificate names "localhost" only; we connect to 127.0.0.1.
    let issued = ca.issue(&["localhost"]).expect("certificate");
    let pg = Server::postgres_tls(&issued.cert_pem, &issued.key_pem).expect("private PostgreSQL with TLS");
    let (_dir, ca_path) = ca_file(&ca);
    let base = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());

    // verify-ca: the chain is checked, the name is not.
    let store = postgres(format!("{base}?sslmode=verify-ca&sslrootcert={}", ca_path.display()))
        .await
        .expect("verify-ca connects");
    let p = match live() {
        Entry::Live(p) => p,
        Entry::Deleted { .. } => unreachable!(),
    };
    store.upsert(&key(), p, Timestamp::from_millis(1), None).await.expect("write over TLS");
    assert_eq!(store.get(&key()).await.expect("read over TLS"), Some(live()));
    store.close().await.expect("close");

    // verify-full: the name must match, and 127.0.0.1 is not "localhost".
    let err = postgres(format!("{base}?sslmode=verify-full&sslrootcert={}", ca_path.display()))
        .await
        .expect_err("the name does not match");
    assert!(err.to_string().contains("certificate"), "{err}");
    let full = postgres(format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.port(),
        ca_path.display()
    ))
    .await
    .expect("verify-full connects by the certificate's name");
    full.close().await.expect("close");

    // Another CA's roots: refused, whatever the mode that verifies.
    let other = Authority::new().expect("CA");
    let (_other_dir, other_path) = ca_file(&other);
    for mode in ["verify-ca", "verify-full"] {
        assert!(
            postgres(format!("{base}?sslmode={mode}&sslrootcert={}", other_path.display())).await.is_err(),
            "{mode} accepted a certificate from an untrusted CA"
        );
    }
    // require: encrypted, nothing checked.
    postgres(format!("{base}?sslmode=require"))
        .await
        .expect("require connects")
        .close()
        .await
        .expect("close");
}

async fn rediss(url: String, ca: std::path::PathBuf) -> RedisCache {
    RedisCache::connect(RedisOptions {
        topology: RedisTopology::Single(url),
        key_prefix: "pm:".into(),
        ttl: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(1),
        ca_file: Some(ca),
    })
    .expect("valid options")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_checks_the_server_against_the_given_roots() {
    let ca = Authority::new().expect("CA");
    let issued = ca.issue(&["127.0.0.1"]).expect("certificate");
    let redis = Server::redis_tls(&issued.cert_pem, &issued.key_pem).expect("private Redis with TLS");
    let (_dir, ca_path) = ca_file(&ca);

    let cache = Arc::new(rediss(redis.url(), ca_path).await);
    cache.wait_connected(Duration::from_secs(10)).await.expect("connects over TLS");
    assert!(cache.put(&key(), &live()).await.expect("put"));
    assert_eq!(cache.get(&key()).await.expect("get"), Some(live()));

    let other = Authority::new().expect("CA");
    let (_other_dir, other_path) = ca_file(&other);
    let untrusting = rediss(redis.url(), other_path).await;
    assert!(
        untrusting.wait_connected(Duration::from_secs(2)).await.is_err(),
        "a server whose CA is not trusted must not be used"
    );
}
