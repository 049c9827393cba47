//! Redis (or Redis Cluster) as the cache.
//!
//! Each entry is a hash under `{prefix}{{account#profile}}#video`: the hash
//! tag keeps one profile's entries on one cluster slot, and `#` cannot occur
//! in ids, so keys never collide. Writes are a Lua compare-and-set under the
//! merge rule, so the cache converges like the store does. Every entry
//! expires after the configured TTL, which bounds how long anything the
//! service failed to correct can linger. Commands are pipelined over one
//! multiplexed connection (per cluster node).
//!
//! `rediss://` URLs connect over TLS (rustls), checking the server's
//! certificate against the system's roots or, with a CA file, its roots.

use std::time::Duration;

use async_trait::async_trait;
use playmark_core::{
    DeviceId, Duration as TitleDuration, Entry, Position, Progress, ProgressKey, Series, SeriesId, Timestamp,
};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Script, Value};
use tokio::sync::watch;

use crate::cache::{CacheError, ProgressCache};

/// Compare-and-set under the stored-state order of `playmark_core::Entry`:
/// the conflict rule `(updated_at, kind, device_id, position, duration)`,
/// then `hidden`, then `finished`, then the carried fields (series id,
/// episode, finish time; none first). KEYS[1]: the entry. ARGV: updated_at,
/// kind (1 = deleted), device_id, position_ms, duration_ms (-1 = none),
/// hidden (1 = hidden), finished (1 = finished), ttl_ms, series_id ('' =
/// none), episode (-1 = none), finished_at (-1 = none). Ids compare byte by
/// byte (`string.byte`), not with Lua's locale-dependent `<`, so Redis
/// orders them exactly as Rust and PostgreSQL's `COLLATE "C"` do. An entry
/// cached before a field existed reads as its default (not hidden, not
/// finished, no series, no finish time).
const CAS: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'u', 'k', 'd', 'p', 'r', 'h', 'f', 's', 'e', 'a')
local function bytes_gt(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end
local newer
if not cur[1] then
  newer = true
else
  local cu, ck, cp, cr = tonumber(cur[1]), tonumber(cur[2]), tonumber(cur[4]), tonumber(cur[5])
  local ch, cf = tonumber(cur[6] or '0'), tonumber(cur[7] or '0')
  local nu, nk, np, nr = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])
  local nh, nf = tonumber(ARGV[6]), tonumber(ARGV[7])
  if nu ~= cu then newer = nu > cu
  elseif nk ~= ck then newer = nk > ck
  elseif ARGV[3] ~= cur[3] then newer = bytes_gt(ARGV[3], cur[3])
  elseif np ~= cp then newer = np > cp
  elseif nr ~= cr then newer = nr > cr
  elseif nh ~= ch then newer = nh > ch
  elseif nf ~= cf then newer = nf > cf
  else
    local cs, ce, ca = cur[8] or '', tonumber(cur[9] or '-1'), tonumber(cur[10] or '-1')
    local ns, ne, na = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
    if ns ~= cs then newer = cs == '' or (ns ~= '' and bytes_gt(ns, cs))
    elseif ne ~= ce then newer = ne > ce
    else newer = na > ca end
  end
end
if newer then
  redis.call('HSET', KEYS[1], 'u', ARGV[1], 'k', ARGV[2], 'd', ARGV[3], 'p', ARGV[4], 'r', ARGV[5], 'h', ARGV[6], 'f', ARGV[7], 's', ARGV[9], 'e', ARGV[10], 'a', ARGV[11])
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
  return 1
end
return 0
"#;

/// Where the cache lives.
#[derive(Clone)]
pub enum RedisTopology {
    /// One Redis server, e.g. `redis://127.0.0.1:6379`.
    Single(String),
    /// A Redis Cluster, given by one or more seed node URLs.
    Cluster(Vec<String>),
}

/// How to use Redis.
#[derive(Clone)]
pub struct RedisOptions {
    /// The server or cluster.
    pub topology: RedisTopology,
    /// Prefix of every key, so several deployments can share a Redis.
    pub key_prefix: String,
    /// How long an entry lives in the cache.
    pub ttl: Duration,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// For `rediss://`: a PEM file of the roots to trust instead of the
    /// system's.
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The Redis-backed [`ProgressCache`].
pub struct RedisCache {
    conn: watch::Receiver<Option<Conn>>,
    script: Script,
    options: RedisOptions,
    backend: &'static str,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("options", &self.options).finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Starts connecting. The service does not wait for Redis: until the
    /// first connection succeeds (retried in the background), every cache
    /// call fails fast and reads go to the store.
    pub fn connect(options: RedisOptions) -> Result<Self, CacheError> {
        let backend = match options.topology {
            RedisTopology::Single(_) => "redis",
            RedisTopology::Cluster(_) => "redis-cluster",
        };
        let invalid =
            |e: redis::RedisError| CacheError { backend, reason: format!("invalid Redis URL: {e}") };
        crate::tls::install_provider();
        let certs = match &options.ca_file {
            None => None,
            Some(path) => Some(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(path).map_err(|e| CacheError {
                    backend,
                    reason: format!("cannot read the Redis CA file {}: {e}", path.display()),
                })?),
            }),
        };
        let (tx, conn) = watch::channel(None);
        match &options.topology {
            RedisTopology::Single(url) => {
                let client = match certs {
                    Some(certs) => redis::Client::build_with_tls(url.as_str(), certs),
                    None => redis::Client::open(url.as_str()),
                }
                .map_err(invalid)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_max_delay(Duration::from_secs(1));
                tokio::spawn(connect_loop(backend, tx, move || {
                    let (client, config) = (client.clone(), config.clone());
                    async move { ConnectionManager::new_with_config(client, config).await.map(Conn::Single) }
                }));
            }
            RedisTopology::Cluster(urls) => {
                let mut builder =
                    ClusterClient::builder(urls.clone()).connection_timeout(options.connect_timeout);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                let client = builder.build().map_err(invalid)?;
                tokio::spawn(connect_loop(backend, tx, move || {
                    let client = client.clone();
                    async move { client.get_async_connection().await.map(Conn::Cluster) }
                }));
            }
        }
        Ok(Self { conn, script: Script::new(CAS), options, backend })
    }

    /// Waits (up to `timeout`) for the first connection.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(timeout, conn.wait_for(Option::is_some))
            .await
            .map_err(|_| self.error("not connected yet"))?
            .map(drop)
            .map_err(|_| self.error("the connection task stopped"))
    }

    fn key(&self, key: &ProgressKey) -> String {
        format!(
            "{}{{{}#{}}}#{}",
            self.options.key_prefix,
            key.account_id.as_str(),
            key.profile_id.as_str(),
            key.video_id.as_str()
        )
    }

    /// The compare-and-set of `entry` under `key`, ready to send.
    fn invocation(&self, key: &ProgressKey, entry: &Entry) -> redis::ScriptInvocation<'_> {
        let (u, k, d, p, r, h, f) = match entry {
            Entry::Live(p) => (
                p.updated_at.as_millis(),
                0,
                p.device_id.as_str(),
                p.position.as_millis() as i64,
                p.duration.map_or(-1, |d| d.as_millis() as i64),
                u8::from(p.hidden),
                u8::from(p.finished),
            ),
            Entry::Deleted { at } => (at.as_millis(), 1, "", 0, -1, 0, 0),
        };
        let live = entry.live();
        let series = live.and_then(|p| p.series.as_ref());
        let (s, e) = series.map_or(("", -1), |s| (s.id.as_str(), i64::from(s.episode)));
        let a = live.and_then(|p| p.finished_at).map_or(-1, |t| t.as_millis() as i64);
        let ttl_ms = u64::try_from(self.options.ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.script.key(self.key(key));
        invocation.arg(u).arg(k).arg(d).arg(p).arg(r).arg(h).arg(f).arg(ttl_ms).arg(s).arg(e).arg(a);
        invocation
    }

    fn connection(&self) -> Result<Conn, CacheError> {
        self.conn.borrow().clone().ok_or_else(|| self.error("not connected"))
    }

    fn error(&self, reason: impl Into<String>) -> CacheError {
        CacheError { backend: self.backend, reason: reason.into() }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, CacheError> {
        match self.connection()? {
            Conn::Single(mut c) => run(cmd, &mut c).await,
            Conn::Cluster(mut c) => run(cmd, &mut c).await,
        }
        .map_err(|e| self.error(e.to_string()))
    }
}

async fn run<T: redis::FromRedisValue, C: ConnectionLike>(
    cmd: &redis::Cmd,
    conn: &mut C,
) -> redis::RedisResult<T> {
    cmd.query_async(conn).await
}

/// Connects with capped exponential backoff until it succeeds; after that
/// the connection reconnects by itself.
async fn connect_loop<F, Fut>(backend: &'static str, tx: watch::Sender<Option<Conn>>, connect: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<Conn>>,
{
    let mut pause = Duration::from_millis(50);
    let mut failures = 0u32;
    loop {
        match connect().await {
            Ok(conn) => {
                let _ = tx.send(Some(conn));
                tracing::info!(backend, "cache connected");
                return;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(backend, error = %e, "cache unreachable; serving from the store and retrying");
                } else {
                    tracing::debug!(backend, error = %e, failures, "cache still unreachable");
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[async_trait]
impl ProgressCache for RedisCache {
    fn backend(&self) -> &'static str {
        self.backend
    }

    async fn get(&self, key: &ProgressKey) -> Result<Option<Entry>, CacheError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.key(key)).arg(&["u", "k", "d", "p", "r", "h", "f", "s", "e", "a"]);
        let fields: Vec<Option<String>> = self.query(&cmd).await?;
        decode(&fields).map_err(|reason| self.error(reason))
    }

    async fn put(&self, key: &ProgressKey, entry: &Entry) -> Result<bool, CacheError> {
        let invocation = self.invocation(key, entry);
        let stored: i64 = match self.connection()? {
            Conn::Single(mut c) => invocation.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => invocation.invoke_async(&mut c).await,
        }
        .map_err(|e| self.error(e.to_string()))?;
        Ok(stored == 1)
    }

    async fn put_many(&self, entries: &[(ProgressKey, Entry)]) -> Result<Vec<bool>, CacheError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = match self.connection()? {
            Conn::Single(c) => c,
            // A cluster spreads the keys over nodes: one round trip each,
            // all at once.
            Conn::Cluster(_) => {
                let puts = entries.iter().map(|(key, entry)| self.put(key, entry));
                return futures::future::join_all(puts).await.into_iter().collect();
            }
        };
        let invocations: Vec<_> = entries.iter().map(|(key, entry)| self.invocation(key, entry)).collect();
        let mut pipe = redis::pipe();
        for invocation in &invocations {
            pipe.invoke_script(invocation);
        }
        let mut answer: redis::RedisResult<Vec<i64>> = pipe.query_async(&mut c).await;
        // A pipeline does not load the script by itself (after a restart,
        // a SCRIPT FLUSH, a failover): load it and send the pipeline again.
        if matches!(&answer, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        {
            self.script.prepare_invoke().load_async(&mut c).await.map_err(|e| self.error(e.to_string()))?;
            answer = pipe.query_async(&mut c).await;
        }
        let stored = answer.map_err(|e| self.error(e.to_string()))?;
        Ok(stored.into_iter().map(|s| s == 1).collect())
    }

    async fn remove(&self, key: &ProgressKey) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(key));
        self.query::<Value>(&cmd).await.map(drop)
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.query::<String>(&redis::cmd("PING")).await.map(drop)
    }
}

/// Decodes an `HMGET u k d p r h f s e a` answer (the fields after `r` are
/// absent from entries cached by versions that did not keep them: not
/// hidden, not finished, no series, no finish time).
fn decode(fields: &[Option<String>]) -> Result<Option<Entry>, String> {
    let [Some(u), Some(k), Some(d), Some(p), Some(r), h, f, s, e, a] = fields else {
        return Ok(None);
    };
    let num = |s: &str| s.parse::<i64>().map_err(|_| format!("non-numeric field {s:?}"));
    let at = Timestamp::from_millis(u64::try_from(num(u)?).map_err(|_| "negative time")?);
    if num(k)? == 1 {
        return Ok(Some(Entry::Deleted { at }));
    }
    let unsigned = |v: i64| u64::try_from(v).map_err(|_| format!("negative value {v}"));
    Ok(Some(Entry::Live(Progress {
        updated_at: at,
        device_id: DeviceId::parse(d.as_str()).map_err(|e| format!("device id {e}"))?,
        position: Position::from_millis(unsigned(num(p)?)?).map_err(|e| format!("position {e}"))?,
        duration: match num(r)? {
            -1 => None,
            ms => Some(TitleDuration::from_millis(unsigned(ms)?).map_err(|e| format!("duration {e}"))?),
        },
        hidden: h.as_deref().map(num).transpose()? == Some(1),
        finished: f.as_deref().map(num).transpose()? == Some(1),
        series: match (s.as_deref().filter(|s| !s.is_empty()), e.as_deref().map(num).transpose()?) {
            (Some(id), Some(episode)) => Some(Series {
                id: SeriesId::parse(id).map_err(|e| format!("series id {e}"))?,
                episode: u32::try_from(episode).map_err(|_| format!("episode {episode}"))?,
            }),
            _ => None,
        },
        finished_at: match a.as_deref().map(num).transpose()? {
            None | Some(-1) => None,
            Some(ms) => Some(Timestamp::from_millis(unsigned(ms)?)),
        },
    })))
}

// URLs may hold passwords: Debug shows how many servers, never their URLs.
impl std::fmt::Debug for RedisTopology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTopology::Single(_) => f.write_str("Single(***)"),
            RedisTopology::Cluster(urls) => write!(f, "Cluster({} seeds, ***)", urls.len()),
        }
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("topology", &self.topology)
            .field("key_prefix", &self.key_prefix)
            .field("ttl", &self.ttl)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}
