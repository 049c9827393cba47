//! PostgreSQL as the durable store: the source of truth many stateless
//! playmark nodes share.
//!
//! - Every write is one conditional statement (`INSERT ... ON CONFLICT ...
//!   DO UPDATE ... WHERE` the merge rule): no read-before-write, atomic in
//!   the database, so racing nodes can never put an older record over a
//!   newer one.
//! - Concurrent upserts are coalesced: a few writer tasks each take a batch of
//!   queued checkpoints and write it with one multi-row statement over
//!   `unnest` arrays ([`batch`]). Throughput grows with concurrency instead
//!   of paying a round trip per checkpoint. Fewer writers make bigger
//!   batches: on one 2-core box, 2 writers wrote 22.6K checkpoints/s where
//!   16 wrote 18.4K (64 clients, medians of three runs); more help only
//!   when the database is far away.
//! - Concurrent point reads are coalesced the same way, into one `unnest`
//!   join per group ([`reads`]).
//! - The schema is created on start ([`schema::migrate`]).

mod batch;
mod reads;
mod schema;
mod tls;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use playmark_core::library::{HistoryCursor, SeriesActivity, SeriesPointer};
use playmark_core::{
    DeviceId, Duration as TitleDuration, Entry, Position, ProfileKey, Progress, ProgressKey, Series,
    SeriesId, StaleGuard, Timestamp, VideoId,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{ProgressStore, StoreError, Written};
use batch::Upsert;

const BACKEND: &str = "postgres";

/// Most point-read statements in flight at once.
const MAX_READ_CALLS: usize = 4;

/// How to reach PostgreSQL and how hard to use it.
#[derive(Clone)]
pub struct PostgresOptions {
    /// A libpq-style URL or key=value string, e.g.
    /// `postgres://playmark@db:5432/playmark`.
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Writer tasks coalescing upserts (each holds one pooled connection
    /// while it writes); at most `pool_size`.
    pub writers: usize,
    /// Most checkpoints written by one statement.
    pub max_batch: usize,
    /// How long to wait for a connection (from the pool or a new one).
    pub connect_timeout: Duration,
    /// The server-side `statement_timeout` of every connection. A writer's
    /// round that takes longer than this (plus a second) is abandoned and
    /// its connection discarded.
    pub statement_timeout: Duration,
    /// When the schema gains the `finished` column: rows watched past this
    /// percent count as finished.
    pub legacy_finished_percent: f64,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            pool_size: 16,
            writers: 2,
            max_batch: 512,
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(2),
            legacy_finished_percent: 90.0,
        }
    }
}

// The URL may hold a password: never in Debug output.
impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &"***")
            .field("pool_size", &self.pool_size)
            .field("writers", &self.writers)
            .field("max_batch", &self.max_batch)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

/// The PostgreSQL-backed [`ProgressStore`].
pub struct PostgresStore {
    pool: Pool,
    reads: reads::Reads,
    upserts: Mutex<Option<mpsc::Sender<Upsert>>>,
    writers: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("pool", &self.pool.status()).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, migrates the schema and starts the writer tasks.
    ///
    /// TLS follows the URL's `sslmode` as libpq does, `verify-ca` and
    /// `verify-full` included, with `sslrootcert` naming the trusted roots
    /// (the system's when absent).
    pub async fn connect(options: PostgresOptions) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::Unavailable { backend: BACKEND, reason };
        let tls = tls::split(&options.url).map_err(|e| invalid(format!("invalid PostgreSQL URL: {e}")))?;
        let roots = match tls.verify {
            crate::tls::Verify::Nothing => rustls::RootCertStore::empty(),
            _ => crate::tls::roots(tls.root_cert.as_deref()).map_err(invalid)?,
        };
        let connector =
            MakeRustlsConnect::new(crate::tls::client_config(tls.verify, roots).map_err(invalid)?);
        let mut pg = tokio_postgres::Config::from_str(&tls.url)
            .map_err(|e| invalid(format!("invalid PostgreSQL URL: {e}")))?;
        pg.connect_timeout(options.connect_timeout);
        pg.application_name("playmark");
        // A statement that runs away is cancelled by the server; a peer that
        // vanished is noticed by TCP keepalives instead of a hung socket.
        let statement_ms = options.statement_timeout.as_millis().max(1);
        let runtime_options = match pg.get_options() {
            Some(given) => format!("{given} -c statement_timeout={statement_ms}"),
            None => format!("-c statement_timeout={statement_ms}"),
        };
        pg.options(runtime_options);
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(30));
        pg.keepalives_interval(Duration::from_secs(5));
        pg.keepalives_retries(3);
        let manager =
            Manager::from_config(pg, connector, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool_size = options.pool_size.max(1);
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable {
                backend: BACKEND,
                reason: format!("cannot build the pool: {e}"),
            })?;

        let mut client = pool.get().await.map_err(pool_error)?;
        schema::migrate(&mut client, options.legacy_finished_percent).await.map_err(|e| {
            StoreError::Unavailable { backend: BACKEND, reason: format!("cannot create the schema: {e}") }
        })?;
        drop(client);

        let writers = options.writers.clamp(1, pool_size);
        let (tx, rx) = mpsc::channel(writers * options.max_batch.max(1));
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let round_deadline = options.statement_timeout + Duration::from_secs(1);
        let tasks = (0..writers)
            .map(|_| {
                let (pool, rx, max_batch) = (pool.clone(), Arc::clone(&rx), options.max_batch.max(1));
                tokio::spawn(batch::supervise(pool, rx, max_batch, round_deadline))
            })
            .collect();
        // Reads take the connections the writers leave, a few at a time:
        // fewer calls make bigger groups.
        let read_calls = (pool_size - writers).clamp(1, MAX_READ_CALLS);
        let reads = reads::Reads::start(pool.clone(), options.max_batch, read_calls, round_deadline);
        tracing::info!(pool_size, writers, read_calls, "postgres store connected");
        Ok(Self { pool, reads, upserts: Mutex::new(Some(tx)), writers: Mutex::new(tasks) })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs one of the per-profile order reads (`$1`, `$2`: the profile;
    /// `rest`: the statement's other parameters), whose rows are the video
    /// id and then the entry's columns.
    async fn titles(
        &self,
        sql: &str,
        profile: &ProfileKey,
        rest: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_error)?;
        let (account, profile) = (profile.account_id.as_str(), profile.profile_id.as_str());
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&account, &profile];
        params.extend_from_slice(rest);
        let rows = client.query(&stmt, &params).await.map_err(pg_error)?;
        rows.iter()
            .map(|r| {
                let video =
                    VideoId::parse(r.get::<_, String>(0)).map_err(|e| corrupt(format!("video id {e}")))?;
                match entry_at(r, 1)? {
                    Entry::Live(p) => Ok((video, p)),
                    Entry::Deleted { .. } => Err(corrupt("a tombstone in a live-only index")),
                }
            })
            .collect()
    }
}

#[async_trait]
impl ProgressStore for PostgresStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn upsert(
        &self,
        key: &ProgressKey,
        progress: Progress,
        now: Timestamp,
        guard: Option<StaleGuard>,
    ) -> Result<Written, StoreError> {
        let sender = self.upserts.lock().map_err(|_| closed())?.clone().ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        sender.send(Upsert { key: key.clone(), progress, now, guard, reply }).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn hide(&self, key: &ProgressKey) -> Result<Option<Progress>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(schema::HIDE).await.map_err(pg_error)?;
        let row = client
            .query_opt(&stmt, &[&key.account_id.as_str(), &key.profile_id.as_str(), &key.video_id.as_str()])
            .await
            .map_err(pg_error)?;
        match row.map(|r| entry_at(&r, 0)).transpose()? {
            Some(Entry::Live(p)) => Ok(Some(p)),
            _ => Ok(None),
        }
    }

    async fn get(&self, key: &ProgressKey) -> Result<Option<Entry>, StoreError> {
        self.reads.get(key).await
    }

    async fn continue_watching(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        self.titles(schema::CONTINUE_WATCHING, profile, &[&i64::try_from(limit).unwrap_or(i64::MAX)]).await
    }

    async fn standalone_in_progress(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        self.titles(schema::STANDALONE_IN_PROGRESS, profile, &[&i64::try_from(limit).unwrap_or(i64::MAX)])
            .await
    }

    async fn history(
        &self,
        profile: &ProfileKey,
        after: Option<&HistoryCursor>,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match after {
            None => self.titles(schema::HISTORY_FIRST, profile, &[&limit]).await,
            Some(c) => {
                let at = millis(c.finished_at)?;
                self.titles(schema::HISTORY_AFTER, profile, &[&at, &c.video_id.as_str(), &limit]).await
            }
        }
    }

    async fn series_activity(
        &self,
        profile: &ProfileKey,
        after: Option<&(Timestamp, SeriesId)>,
        limit: usize,
    ) -> Result<Vec<SeriesActivity>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (account, profile) = (profile.account_id.as_str(), profile.profile_id.as_str());
        let rows = match after {
            None => {
                let stmt = client.prepare_cached(schema::SERIES_FIRST).await.map_err(pg_error)?;
                client.query(&stmt, &[&account, &profile, &limit]).await
            }
            Some((at, series)) => {
                let stmt = client.prepare_cached(schema::SERIES_AFTER).await.map_err(pg_error)?;
                client.query(&stmt, &[&account, &profile, &millis(*at)?, &series.as_str(), &limit]).await
            }
        }
        .map_err(pg_error)?;
        rows.iter()
            .map(|r| {
                let series =
                    SeriesId::parse(r.get::<_, String>(0)).map_err(|e| corrupt(format!("series id {e}")))?;
                let at = timestamp(r.get(1))?;
                let video_id =
                    VideoId::parse(r.get::<_, String>(2)).map_err(|e| corrupt(format!("video id {e}")))?;
                // The episode's row is gone when the join found nothing.
                let gone = r.try_get::<_, Option<bool>>(3).map_err(|e| corrupt(e.to_string()))?.is_none();
                let latest = if gone { None } else { Some(entry_at(r, 3)?) };
                Ok(SeriesActivity { series, pointer: SeriesPointer { at, video_id }, latest })
            })
            .collect()
    }

    async fn trim(&self, max_titles: usize, limit: usize) -> Result<Vec<ProgressKey>, StoreError> {
        let cap = i64::try_from(max_titles).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let over = client.prepare_cached(schema::OVER_CAP).await.map_err(pg_error)?;
        let trim = client.prepare_cached(schema::TRIM_PROFILE).await.map_err(pg_error)?;
        let profiles = client
            .query(&over, &[&cap, &i64::try_from(limit).unwrap_or(i64::MAX)])
            .await
            .map_err(pg_error)?;
        let mut trimmed = Vec::new();
        for row in profiles {
            let excess = (row.get::<_, i64>(2) - cap).min(i64::try_from(limit - trimmed.len()).unwrap_or(0));
            if excess <= 0 {
                break;
            }
            let (account, profile): (String, String) = (row.get(0), row.get(1));
            let invalid = |e: playmark_core::IdError| corrupt(format!("stored id {e}"));
            let account_id = playmark_core::AccountId::parse(account).map_err(invalid)?;
            let profile_id = playmark_core::ProfileId::parse(profile).map_err(invalid)?;
            let gone = client
                .query(&trim, &[&account_id.as_str(), &profile_id.as_str(), &excess])
                .await
                .map_err(pg_error)?;
            for video in gone {
                let video_id = VideoId::parse(video.get::<_, String>(0)).map_err(invalid)?;
                trimmed.push(ProgressKey {
                    account_id: account_id.clone(),
                    profile_id: profile_id.clone(),
                    video_id,
                });
            }
        }
        Ok(trimmed)
    }

    async fn delete(&self, key: &ProgressKey, now: Timestamp) -> Result<Written, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(schema::DELETE).await.map_err(pg_error)?;
        let now_ms = millis(now)?;
        let applied = client
            .query_opt(
                &stmt,
                &[&key.account_id.as_str(), &key.profile_id.as_str(), &key.video_id.as_str(), &now_ms],
            )
            .await
            .map_err(pg_error)?;
        match applied {
            Some(row) => Ok(Written {
                outcome: playmark_core::Outcome::Applied,
                standing: Entry::Deleted { at: timestamp(row.get(0))? },
            }),
            // A tombstone at or after `now` already stands.
            None => {
                let standing = self.get(key).await?.ok_or_else(|| corrupt("a deletion matched no row"))?;
                Ok(Written { outcome: playmark_core::Outcome::Duplicate, standing })
            }
        }
    }

    async fn expire(&self, untouched_since: Timestamp, limit: usize) -> Result<Vec<ProgressKey>, StoreError> {
        let cutoff = millis(untouched_since)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let stmt = client.prepare_cached(schema::EXPIRE_BATCH).await.map_err(pg_error)?;
        let rows = client.query(&stmt, &[&cutoff, &limit]).await.map_err(pg_error)?;
        // Series pointers follow the TTL of the writes that set them.
        let series = client.prepare_cached(schema::EXPIRE_SERIES).await.map_err(pg_error)?;
        client.execute(&series, &[&cutoff, &limit]).await.map_err(pg_error)?;
        rows.iter()
            .map(|r| {
                let id = |i: usize| r.get::<_, String>(i);
                let invalid = |e: playmark_core::IdError| corrupt(format!("stored id {e}"));
                Ok(ProgressKey {
                    account_id: playmark_core::AccountId::parse(id(0)).map_err(invalid)?,
                    profile_id: playmark_core::ProfileId::parse(id(1)).map_err(invalid)?,
                    video_id: VideoId::parse(id(2)).map_err(invalid)?,
                })
            })
            .collect()
    }

    /// A write, not a `SELECT 1`: a server that answers but cannot write (a
    /// replica after failover, a full disk) is not ready.
    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(schema::HEARTBEAT).await.map_err(pg_error)?;
        client.execute(&stmt, &[]).await.map_err(pg_error).map(drop)
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Dropping the sender lets the writers drain what is queued and stop.
        self.upserts.lock().map_err(|_| closed())?.take();
        let writers = std::mem::take(&mut *self.writers.lock().map_err(|_| closed())?);
        for writer in writers {
            let _ = writer.await;
        }
        self.pool.close();
        tracing::info!("postgres store closed");
        Ok(())
    }
}

/// Decodes an entry from the row's columns `deleted, updated_at,
/// device_id, position_ms, duration_ms, hidden, finished, series_id,
/// episode, finished_at` (`schema::entry_columns!`), starting at `at`.
fn entry_at(row: &tokio_postgres::Row, at: usize) -> Result<Entry, StoreError> {
    let deleted: bool = row.try_get(at).map_err(|e| corrupt(e.to_string()))?;
    let updated_at: i64 = row.try_get(at + 1).map_err(|e| corrupt(e.to_string()))?;
    let device_id: String = row.try_get(at + 2).map_err(|e| corrupt(e.to_string()))?;
    let position_ms: i64 = row.try_get(at + 3).map_err(|e| corrupt(e.to_string()))?;
    let duration_ms: Option<i64> = row.try_get(at + 4).map_err(|e| corrupt(e.to_string()))?;
    let hidden: bool = row.try_get(at + 5).map_err(|e| corrupt(e.to_string()))?;
    let finished: bool = row.try_get(at + 6).map_err(|e| corrupt(e.to_string()))?;
    let series = series_at(row, at + 7)?;
    let finished_at: Option<i64> = row.try_get(at + 9).map_err(|e| corrupt(e.to_string()))?;
    let updated_at = timestamp(updated_at)?;
    if deleted {
        return Ok(Entry::Deleted { at: updated_at });
    }
    let unsigned = |v: i64| u64::try_from(v).map_err(|_| corrupt(format!("negative value {v}")));
    Ok(Entry::Live(Progress {
        updated_at,
        device_id: DeviceId::parse(device_id).map_err(|e| corrupt(format!("device id {e}")))?,
        position: Position::from_millis(unsigned(position_ms)?)
            .map_err(|e| corrupt(format!("position {e}")))?,
        duration: duration_ms
            .map(|d| TitleDuration::from_millis(unsigned(d)?).map_err(|e| corrupt(format!("duration {e}"))))
            .transpose()?,
        hidden,
        finished,
        series,
        finished_at: finished_at.map(timestamp).transpose()?,
    }))
}

/// Decodes the columns `series_id, episode` starting at `at`.
pub(crate) fn series_at(row: &tokio_postgres::Row, at: usize) -> Result<Option<Series>, StoreError> {
    let id: Option<String> = row.try_get(at).map_err(|e| corrupt(e.to_string()))?;
    let episode: Option<i32> = row.try_get(at + 1).map_err(|e| corrupt(e.to_string()))?;
    match (id, episode) {
        (None, _) => Ok(None),
        (Some(id), Some(episode)) => Ok(Some(Series {
            id: SeriesId::parse(id).map_err(|e| corrupt(format!("series id {e}")))?,
            episode: u32::try_from(episode).map_err(|_| corrupt(format!("negative episode {episode}")))?,
        })),
        (Some(_), None) => Err(corrupt("a series without an episode")),
    }
}

fn timestamp(ms: i64) -> Result<Timestamp, StoreError> {
    u64::try_from(ms).map(Timestamp::from_millis).map_err(|_| corrupt(format!("negative time {ms}")))
}

/// PostgreSQL's bigint is signed; times beyond it cannot be stored.
fn millis(t: Timestamp) -> Result<i64, StoreError> {
    i64::try_from(t.as_millis()).map_err(|_| corrupt(format!("time {t} is beyond bigint")))
}

fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt { backend: BACKEND, detail: detail.into() }
}

fn closed() -> StoreError {
    StoreError::Unavailable { backend: BACKEND, reason: "the store is closed".into() }
}

/// Maps a driver error to its kind, by SQLSTATE:
///
/// - a broken or refused connection, a serialization failure or deadlock
///   (routine on distributed SQL: the statement did nothing), a server
///   shutting down or read-only (failover), insufficient resources (class
///   53: a full disk, out of memory, too many connections): `Unavailable`,
///   nothing was written and a retry may succeed;
/// - a statement cancelled by `statement_timeout`: `Timeout`;
/// - data or index corruption (class XX001, XX002): `Corrupt`;
/// - anything else (a bug, a schema someone changed): `Backend`.
fn pg_error(e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    let Some(code) = e.code() else {
        return StoreError::Unavailable { backend: BACKEND, reason: with_causes(&e) };
    };
    let class = code.code().get(..2).unwrap_or_default();
    if *code == SqlState::QUERY_CANCELED {
        StoreError::Timeout { backend: BACKEND }
    } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
        StoreError::Corrupt { backend: BACKEND, detail: e.to_string() }
    } else if e.is_closed()
        || matches!(class, "08" | "53" | "57")
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
    {
        StoreError::Unavailable { backend: BACKEND, reason: with_causes(&e) }
    } else {
        StoreError::Backend { backend: BACKEND, source: Box::new(e) }
    }
}

/// An error and its causes on one line: tokio-postgres's own message ("error
/// performing TLS handshake") leaves out the part a person can act on.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Timeout(_) => StoreError::Timeout { backend: BACKEND },
        PoolError::Backend(e) => pg_error(e),
        other => StoreError::Unavailable { backend: BACKEND, reason: with_causes(&other) },
    }
}
