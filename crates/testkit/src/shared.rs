//! The machine's running PostgreSQL, Redis and NATS (the README's test
//! command makes sure they run), shared by tests that only need a working
//! server. Each test gets its own namespace: a fresh PostgreSQL schema, a
//! unique Redis key prefix, a unique NATS subject. A server that is not
//! running makes the test fail, never skip.
//!
//! Override the addresses with `PLAYMARK_TEST_POSTGRES` (a server URL without
//! a database, default `postgres://postgres@127.0.0.1:5432`),
//! `PLAYMARK_TEST_REDIS`, `PLAYMARK_TEST_REDIS_CLUSTER` (comma-separated seed
//! URLs), `PLAYMARK_TEST_NATS`, `PLAYMARK_TEST_DYNALITE` and
//! `PLAYMARK_TEST_MOTO`. On the DynamoDB emulators each test makes a table of
//! its own.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, find_binary, postgres_bin_dirs};

/// The database the tests' schemas live in.
pub const TEST_DATABASE: &str = "playmark_test";

/// A name no other test (in this or another process) is using.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{}_{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn postgres_server() -> String {
    std::env::var("PLAYMARK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn psql(database: &str, sql: &str) -> Result<String, Error> {
    let out = Command::new(find_binary("psql", &postgres_bin_dirs())?)
        .arg(format!("{}/{database}", postgres_server()))
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A URL of the shared PostgreSQL whose `search_path` is a fresh, empty
/// schema: the test sees a database of its own.
pub fn postgres_url() -> Result<String, Error> {
    let exists = psql("postgres", &format!("SELECT 1 FROM pg_database WHERE datname = '{TEST_DATABASE}'"))
        .map_err(|e| format!("the shared PostgreSQL at {} is not reachable: {e}", postgres_server()))?;
    if exists.trim() != "1"
        && let Err(e) = psql("postgres", &format!("CREATE DATABASE {TEST_DATABASE}"))
        && !e.contains("already exists")
    {
        return Err(format!("cannot create {TEST_DATABASE}: {e}"));
    }
    let schema = unique_name("t");
    psql(TEST_DATABASE, &format!("CREATE SCHEMA {schema}"))?;
    Ok(format!("{}/{TEST_DATABASE}?options=-csearch_path%3D{schema}", postgres_server()))
}

/// The shared Redis.
pub fn redis_url() -> String {
    std::env::var("PLAYMARK_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The shared three-node Redis Cluster's seed URLs, comma-separated, as
/// `--redis-url` takes them (`scripts/services` starts it).
pub fn redis_cluster_urls() -> String {
    std::env::var("PLAYMARK_TEST_REDIS_CLUSTER").unwrap_or_else(|_| {
        ["7101", "7102", "7103"].map(|port| format!("redis://127.0.0.1:{port}")).join(",")
    })
}

/// The shared dynalite (`scripts/services` starts it on 8600).
pub fn dynalite_url() -> String {
    std::env::var("PLAYMARK_TEST_DYNALITE").unwrap_or_else(|_| "http://127.0.0.1:8600".into())
}

/// The shared moto server (`scripts/services` starts it on 8601).
pub fn moto_url() -> String {
    std::env::var("PLAYMARK_TEST_MOTO").unwrap_or_else(|_| "http://127.0.0.1:8601".into())
}

/// The shared NATS (with JetStream).
pub fn nats_url() -> String {
    std::env::var("PLAYMARK_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}
