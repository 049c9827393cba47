//! The configuration of `playmark serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use playmark_core::ResumePolicy;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, for a terminal.
    Human,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// Where progress is stored durably.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// redb in `--data-dir`: one node, nothing to install.
    Embedded,
    /// PostgreSQL (or Postgres-wire distributed SQL) at `--postgres-url`,
    /// shared by any number of nodes.
    Postgres,
    /// DynamoDB (or ScyllaDB Alternator, or an emulator at
    /// `--dynamodb-endpoint`), shared by any number of nodes; region and
    /// credentials from the AWS chain (AWS_REGION, AWS_ACCESS_KEY_ID, ...).
    Dynamodb,
}

/// What caches entries in front of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheKind {
    /// No cache: every read goes to the store.
    None,
    /// In-process, per node (entries kept at most 2 s: other nodes' writes
    /// do not reach it).
    Memory,
    /// One Redis server at `--redis-url`, shared by all nodes.
    Redis,
    /// A Redis Cluster; `--redis-url` is a comma-separated list of seed nodes.
    RedisCluster,
}

/// How requests prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// They don't: anyone who reaches the port may read and write any
    /// account. Only on loopback, unless --allow-unauthenticated.
    None,
    /// A bearer JWT from the operator's identity provider, scoped to one
    /// account (see --jwt-*).
    Jwt,
}

/// Where applied checkpoints are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsKind {
    /// Nowhere.
    None,
    /// NATS JetStream at `--nats-url`, on `--nats-subject`.
    Nats,
}

/// A connection string that may hold a password: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

/// Everything `playmark serve` can be told. Each flag has an env var.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, env = "PLAYMARK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The listen backlog: connections the kernel queues while they wait
    /// to be accepted, as in a storm of players opening at once. Default:
    /// the kernel's cap, net.core.somaxconn (which also caps this flag).
    #[arg(long, env = "PLAYMARK_LISTEN_BACKLOG")]
    pub listen_backlog: Option<u32>,

    /// Client connections open at once; beyond it, new ones wait in the
    /// listen backlog. Default: the open-file limit (raised to its hard
    /// limit at start) less 1,024 kept for the store and its servers.
    #[arg(long, env = "PLAYMARK_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// A client that has started a request must send its whole head (the
    /// request line and headers) within this, or is disconnected; its body
    /// then has as long again (or the answer is 408 `request_timeout`).
    #[arg(long, env = "PLAYMARK_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// A keep-alive connection with no request in flight is closed after
    /// this long (players checkpointing every 30-60 s keep theirs).
    #[arg(long, env = "PLAYMARK_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Playback requests (/playback/*) in flight at once, HTTP/2 streams
    /// included; beyond it, they are answered 503 `overloaded` at once,
    /// before their bodies are read. Health checks, metrics, the OpenAPI
    /// document and the demo page are never shed.
    #[arg(long, env = "PLAYMARK_MAX_IN_FLIGHT", default_value_t = 20_000)]
    pub max_in_flight: usize,

    /// Concurrent streams on one HTTP/2 (h2c) connection, as from a
    /// gateway multiplexing many viewers.
    #[arg(long, env = "PLAYMARK_H2_MAX_STREAMS", default_value_t = 256)]
    pub h2_max_streams: u32,

    /// Requests per second one account may make, on average (each device
    /// of it gets half); beyond it, 429 `rate_limited` with Retry-After.
    /// 0 turns the limit off. A batch counts once per account it names.
    #[arg(long, env = "PLAYMARK_ACCOUNT_RATE", default_value_t = 20)]
    pub account_rate: u32,

    /// Requests one account may make in a burst above --account-rate (each
    /// device of it gets half). 0 turns the limit off.
    #[arg(long, env = "PLAYMARK_ACCOUNT_BURST", default_value_t = 100)]
    pub account_burst: u32,

    /// How requests prove who they are. `none` refuses to listen on a
    /// non-loopback address unless --allow-unauthenticated is given.
    #[arg(long, env = "PLAYMARK_AUTH", value_enum, default_value_t = AuthMode::None)]
    pub auth: AuthMode,

    /// Serve without authentication on a non-loopback --listen address
    /// (behind a gateway that authenticates, say).
    #[arg(long, env = "PLAYMARK_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,

    /// --auth jwt: a JWKS file of public keys (RS256, ES256, EdDSA).
    #[arg(long, env = "PLAYMARK_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,

    /// --auth jwt: a JWKS URL, fetched at start, refreshed every 5 minutes,
    /// and fetched again when a token names an unknown key id.
    #[arg(long, env = "PLAYMARK_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,

    /// --auth jwt: a file holding an HS256 shared secret (its bytes, a
    /// trailing newline dropped); for development and tests.
    #[arg(long, env = "PLAYMARK_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// --auth jwt: the `iss` every token must carry, when set.
    #[arg(long, env = "PLAYMARK_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// --auth jwt: the `aud` every token must include, when set.
    #[arg(long, env = "PLAYMARK_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// --auth jwt: the claim that names the one account a token may touch.
    #[arg(long, env = "PLAYMARK_JWT_ACCOUNT_CLAIM", default_value = "sub")]
    pub jwt_account_claim: String,

    /// Serve /metrics, without authentication, on this address instead
    /// (with --auth jwt, /metrics on --listen then needs a playback:admin
    /// token anyway).
    #[arg(long, env = "PLAYMARK_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// A browser origin allowed to call the API (CORS), exactly as the
    /// browser sends it, e.g. https://app.example.com. Repeat the flag (or
    /// separate with commas in the env var) for several; none by default.
    #[arg(long = "cors-origin", env = "PLAYMARK_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Directory of the embedded store; created if missing.
    #[arg(long, env = "PLAYMARK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// How far ahead of the server's clock a client's `updated_at` may be
    /// before the server's clock is used instead (e.g. 5s, 500ms).
    #[arg(long, env = "PLAYMARK_MAX_CLOCK_SKEW", default_value = "5s", value_parser = humantime::parse_duration)]
    pub max_clock_skew: Duration,

    /// Purge progress (and deletion markers) untouched for this many days;
    /// 0 keeps everything forever.
    #[arg(long, env = "PLAYMARK_TTL_DAYS", default_value_t = 180)]
    pub ttl_days: u32,

    /// Keep at most this many titles (tombstones included) per profile: the
    /// sweeper purges the least recently written beyond it, so one
    /// profile's storage is bounded. 0 keeps everything.
    #[arg(long, env = "PLAYMARK_MAX_TITLES_PER_PROFILE", default_value_t = 10_000)]
    pub max_titles_per_profile: usize,

    /// How often the sweeper looks for idle entries and profiles over the
    /// cap.
    #[arg(long, env = "PLAYMARK_SWEEP_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub sweep_interval: Duration,

    /// Below this share of a title watched (percent), resume starts over.
    #[arg(long, env = "PLAYMARK_MIN_RESUME_PERCENT", default_value_t = 5.0, value_parser = percent)]
    pub min_resume_percent: f64,

    /// Above this share watched (percent), the title counts as finished:
    /// resume starts over and it leaves continue-watching. Membership in
    /// continue-watching is decided when a checkpoint is written, so after a
    /// change a title moves only with its next checkpoint.
    #[arg(long, env = "PLAYMARK_MAX_RESUME_PERCENT", default_value_t = 90.0, value_parser = percent)]
    pub max_resume_percent: f64,

    /// Titles shorter than this always start over (e.g. 5m, 90s).
    #[arg(long, env = "PLAYMARK_MIN_RESUME_DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub min_resume_duration: Duration,

    /// The stale-device guard: an update carrying `resumed_from` is refused
    /// (409) when a newer record from another device stands more than this
    /// far ahead of it. Updates with `event: seek` are never refused.
    #[arg(long, env = "PLAYMARK_STALE_DEVICE_GUARD", default_value = "5m", value_parser = humantime::parse_duration)]
    pub stale_device_guard: Duration,

    /// Resume with a `local_position`: a server position less than this far
    /// behind the device's own is ignored (the device keeps its position).
    #[arg(long, env = "PLAYMARK_SMALL_REGRESSION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub small_regression: Duration,

    /// Resume with a `local_position`: a server position at least this far
    /// behind the device's own becomes a prompt instead of a silent jump back.
    #[arg(long, env = "PLAYMARK_PROMPT_BACKWARD", default_value = "5m", value_parser = humantime::parse_duration)]
    pub prompt_backward: Duration,

    /// How long a write may take, retries included, before the client gets
    /// 503 and nothing is acknowledged. The write budget is 500 ms
    /// (docs/design.md#budgets).
    #[arg(long, env = "PLAYMARK_WRITE_TIMEOUT", default_value = "450ms", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// How long a read may take before the client gets 503.
    #[arg(long, env = "PLAYMARK_READ_TIMEOUT", default_value = "120ms", value_parser = humantime::parse_duration)]
    pub read_timeout: Duration,

    /// Refuse request bodies with fields the endpoint does not know (400
    /// naming the field). Off by default: unknown fields are ignored and
    /// named in a `Warning: 299` header, so old and new clients keep working
    /// during a rollout.
    #[arg(long, env = "PLAYMARK_REJECT_UNKNOWN_FIELDS")]
    pub reject_unknown_fields: bool,

    /// The durable store.
    #[arg(long, env = "PLAYMARK_STORE", value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,

    /// PostgreSQL connection URL for `--store postgres` (never logged).
    /// TLS follows `sslmode` as in libpq (`require`, `verify-ca`,
    /// `verify-full`), with `sslrootcert=PATH` for a private CA.
    #[arg(
        long,
        env = "PLAYMARK_POSTGRES_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: Secret,

    /// PostgreSQL connections per node.
    #[arg(long, env = "PLAYMARK_POSTGRES_POOL_SIZE", default_value_t = 16)]
    pub postgres_pool_size: usize,

    /// Tasks per node that coalesce checkpoints into multi-row PostgreSQL
    /// statements (at most the pool size). Fewer make bigger batches; raise
    /// it when the database is many milliseconds away.
    #[arg(long, env = "PLAYMARK_POSTGRES_WRITERS", default_value_t = 2)]
    pub postgres_writers: usize,

    /// Most checkpoints written by one PostgreSQL statement.
    #[arg(long, env = "PLAYMARK_POSTGRES_MAX_BATCH", default_value_t = 512)]
    pub postgres_max_batch: usize,

    /// The DynamoDB table for `--store dynamodb`.
    #[arg(long, env = "PLAYMARK_DYNAMODB_TABLE", default_value = "playmark_progress")]
    pub dynamodb_table: String,

    /// The DynamoDB endpoint URL, for ScyllaDB Alternator or a local
    /// emulator (e.g. http://127.0.0.1:8000); unset means AWS in AWS_REGION.
    #[arg(long, env = "PLAYMARK_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,

    /// Create the DynamoDB table (and turn on its TTL) if it is missing.
    /// `--dynamodb-create-table=false` for accounts where the service may
    /// not create tables (the README shows the equivalent aws command).
    #[arg(
        long,
        env = "PLAYMARK_DYNAMODB_CREATE_TABLE",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub dynamodb_create_table: bool,

    /// The cache in front of the store.
    #[arg(long, env = "PLAYMARK_CACHE", value_enum, default_value_t = CacheKind::None)]
    pub cache: CacheKind,

    /// Redis URL, or comma-separated seed URLs for `--cache redis-cluster`
    /// (never logged).
    #[arg(
        long,
        env = "PLAYMARK_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: Secret,

    /// For `rediss://` URLs: a PEM file of the root certificates to trust
    /// instead of the system's (a private CA).
    #[arg(long, env = "PLAYMARK_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// Prefix of every Redis key, so deployments can share a Redis.
    #[arg(long, env = "PLAYMARK_REDIS_KEY_PREFIX", default_value = "playmark:")]
    pub redis_key_prefix: String,

    /// How long an entry lives in the cache (bounds how long anything the
    /// service could not correct may linger there).
    #[arg(long, env = "PLAYMARK_CACHE_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,

    /// How long a cache call may take before the store answers instead.
    #[arg(long, env = "PLAYMARK_CACHE_TIMEOUT", default_value = "25ms", value_parser = humantime::parse_duration)]
    pub cache_timeout: Duration,

    /// How long a write waits for its cache update, once the store has it,
    /// before answering anyway (the update is then retried in the
    /// background, and this node reads the key from the store until it
    /// lands).
    #[arg(long, env = "PLAYMARK_CACHE_WRITE_TIMEOUT", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub cache_write_timeout: Duration,

    /// Entries held by `--cache memory`.
    #[arg(long, env = "PLAYMARK_MEMORY_CACHE_CAPACITY", default_value_t = 1_000_000)]
    pub memory_cache_capacity: usize,

    /// Where applied checkpoints are published for analytics.
    #[arg(long, env = "PLAYMARK_EVENTS", value_enum, default_value_t = EventsKind::None)]
    pub events: EventsKind,

    /// NATS server URL(s) for `--events nats` (never logged).
    #[arg(long, env = "PLAYMARK_NATS_URL", hide_env_values = true, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: Secret,

    /// The subject progress events are published on.
    #[arg(long, env = "PLAYMARK_NATS_SUBJECT", default_value = "playmark.progress")]
    pub nats_subject: String,

    /// The JetStream stream that stores the events (created if missing).
    #[arg(long, env = "PLAYMARK_NATS_STREAM", default_value = "PLAYMARK_PROGRESS")]
    pub nats_stream: String,

    /// The JetStream stream keeps events at most this long (e.g. 7d, 12h).
    #[arg(long, env = "PLAYMARK_NATS_MAX_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub nats_max_age: Duration,

    /// The JetStream stream keeps at most this many MiB of events; the
    /// oldest are discarded first.
    #[arg(long, env = "PLAYMARK_NATS_MAX_MB", default_value_t = 1024)]
    pub nats_max_mb: u64,

    /// Events waiting to be published (also while NATS is unreachable);
    /// beyond this, new events are dropped (and counted) rather than slowing
    /// writes down.
    #[arg(long, env = "PLAYMARK_EVENTS_QUEUE", default_value_t = 10_000)]
    pub events_queue: usize,

    /// Page cache of the embedded store, in MiB. It fills only with pages
    /// that are read, so a small store stays small; size it to the database
    /// file to serve every resume from memory.
    #[arg(long, env = "PLAYMARK_EMBEDDED_CACHE_MB", default_value_t = 1024)]
    pub embedded_cache_mb: usize,

    /// On shutdown, how long in-flight requests may take to finish.
    #[arg(long, env = "PLAYMARK_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Log format.
    #[arg(long, env = "PLAYMARK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Log level or filter, in `RUST_LOG` syntax (e.g. info, debug,
    /// playmark_server=debug).
    #[arg(long, env = "PLAYMARK_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// A duration in whole milliseconds, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn percent(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=100.0).contains(&v) { Ok(v) } else { Err(format!("{v} is not a percentage from 0 to 100")) }
}

#[derive(Parser)]
struct Standalone {
    #[command(flatten)]
    config: Config,
}

impl Default for Config {
    /// The defaults of every flag (env vars still apply).
    fn default() -> Self {
        Standalone::parse_from(["playmark"]).config
    }
}

impl Config {
    /// The resume thresholds these flags describe.
    pub fn resume_policy(&self) -> ResumePolicy {
        ResumePolicy {
            min_resume_percent: self.min_resume_percent,
            max_resume_percent: self.max_resume_percent,
            min_resume_duration_ms: u64::try_from(self.min_resume_duration.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The resume guardrails these flags describe.
    pub fn handoff(&self) -> playmark_core::HandoffConfig {
        playmark_core::HandoffConfig {
            small_regression_ms: millis(self.small_regression),
            prompt_backward_ms: millis(self.prompt_backward),
        }
    }

    /// The per-profile cap, or `None` when there is none.
    pub fn max_titles(&self) -> Option<usize> {
        (self.max_titles_per_profile > 0).then_some(self.max_titles_per_profile)
    }

    /// How connections are served, as these flags say.
    pub fn serve_options(&self) -> crate::serve::ServeOptions {
        crate::serve::ServeOptions {
            max_connections: self.max_connections.unwrap_or_else(crate::serve::default_max_connections),
            timeouts: crate::serve::conn::Timeouts { header: self.header_timeout, idle: self.idle_timeout },
            h2_max_streams: self.h2_max_streams,
        }
    }

    /// The DynamoDB store these flags describe.
    #[cfg(feature = "dynamodb")]
    pub fn dynamo_options(&self) -> playmark_store::dynamodb::DynamoOptions {
        playmark_store::dynamodb::DynamoOptions {
            table: self.dynamodb_table.clone(),
            endpoint: self.dynamodb_endpoint.clone(),
            create_table: self.dynamodb_create_table,
            ttl: self.ttl(),
            max_titles: self.max_titles(),
            // The service cuts every call at its own deadline; the SDK's
            // are there for calls off the request path, and must not cut
            // a write the service would still wait for.
            connect_timeout: self.write_timeout,
            operation_timeout: self.write_timeout.max(std::time::Duration::from_secs(2)),
            attempt_timeout: self.write_timeout.max(std::time::Duration::from_millis(800)),
            ..Default::default()
        }
    }

    /// The TTL as a duration, or `None` when entries never expire.
    pub fn ttl(&self) -> Option<Duration> {
        (self.ttl_days > 0).then(|| Duration::from_secs(u64::from(self.ttl_days) * 86_400))
    }

    /// Checks what clap cannot: that the flags agree with each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.auth == AuthMode::None && !self.listen.ip().is_loopback() && !self.allow_unauthenticated {
            return Err(format!(
                "refusing to serve {} without authentication: anyone who reaches it could read and change \
                 every account's history. Use --auth jwt (see --jwt-jwks-url), or --allow-unauthenticated \
                 if a gateway in front of playmark authenticates",
                self.listen
            ));
        }
        if self.auth == AuthMode::Jwt
            && self.jwt_jwks_file.is_none()
            && self.jwt_jwks_url.is_none()
            && self.jwt_secret_file.is_none()
        {
            return Err(
                "--auth jwt needs keys to verify tokens with: --jwt-jwks-url, --jwt-jwks-file or --jwt-secret-file"
                    .into(),
            );
        }
        for origin in &self.cors_origins {
            if axum::http::HeaderValue::from_str(origin).is_err() || !origin.contains("://") {
                return Err(format!(
                    "--cors-origin {origin:?} is not an origin such as https://app.example.com"
                ));
            }
        }
        for (flag, value) in
            [("--header-timeout", self.header_timeout), ("--idle-timeout", self.idle_timeout)]
        {
            if value.is_zero() {
                return Err(format!("{flag} must be above 0"));
            }
        }
        if self.max_in_flight == 0 || self.max_connections == Some(0) || self.h2_max_streams == 0 {
            return Err("--max-in-flight, --max-connections and --h2-max-streams must be at least 1".into());
        }
        if self.listen_backlog == Some(0) {
            return Err("--listen-backlog must be at least 1".into());
        }
        if self.min_resume_percent >= self.max_resume_percent {
            return Err(format!(
                "--min-resume-percent ({}) must be below --max-resume-percent ({})",
                self.min_resume_percent, self.max_resume_percent
            ));
        }
        if self.sweep_interval.is_zero() {
            return Err("--sweep-interval must be above zero".into());
        }
        if self.store == StoreKind::Postgres
            && !(1..=self.postgres_pool_size).contains(&self.postgres_writers)
        {
            return Err(format!(
                "--postgres-writers ({}) must be from 1 to --postgres-pool-size ({})",
                self.postgres_writers, self.postgres_pool_size
            ));
        }
        if self.write_timeout.is_zero()
            || self.read_timeout.is_zero()
            || self.cache_timeout.is_zero()
            || self.cache_write_timeout.is_zero()
        {
            return Err(
                "--write-timeout, --read-timeout, --cache-timeout and --cache-write-timeout must be above zero".into(),
            );
        }
        if self.cache != CacheKind::None && self.cache_write_timeout >= self.write_timeout {
            return Err(format!(
                "--cache-write-timeout ({:?}) must be below --write-timeout ({:?}), or a slow cache turns durable \
                 writes into 503s",
                self.cache_write_timeout, self.write_timeout
            ));
        }
        if self.cache_timeout >= self.read_timeout {
            return Err(format!(
                "--cache-timeout ({:?}) must be below --read-timeout ({:?}), or a cache miss leaves no time for the store",
                self.cache_timeout, self.read_timeout
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = Standalone::parse_from(["playmark"]).config;
        assert_eq!(c.max_clock_skew, Duration::from_secs(5));
        assert_eq!(c.ttl(), Some(Duration::from_secs(180 * 86_400)));
        assert_eq!(c.resume_policy(), ResumePolicy::default());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn inverted_thresholds_are_rejected() {
        let c = Standalone::parse_from(["playmark", "--min-resume-percent", "95"]).config;
        assert!(c.validate().is_err());
        assert!(Standalone::try_parse_from(["playmark", "--max-resume-percent", "101"]).is_err());
    }

    #[test]
    fn postgres_writers_must_fit_in_the_pool() {
        let parse = |args: &[&str]| {
            Standalone::parse_from([&["playmark", "--store", "postgres"], args].concat()).config.validate()
        };
        assert_eq!(parse(&["--postgres-writers", "4", "--postgres-pool-size", "4"]), Ok(()));
        let refused = parse(&["--postgres-writers", "5", "--postgres-pool-size", "4"]);
        assert!(refused.is_err_and(|e| e.contains("--postgres-writers (5)")));
        assert!(parse(&["--postgres-writers", "0"]).is_err());
        // The PostgreSQL flags do not matter to the embedded store.
        let embedded = Standalone::parse_from(["playmark", "--postgres-pool-size", "1"]).config;
        assert_eq!(embedded.validate(), Ok(()));
    }

    #[test]
    fn connection_urls_are_never_printed() {
        let c = Standalone::parse_from(["playmark", "--postgres-url", "postgres://u:hunter2@db/x"]).config;
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.postgres_url.expose(), "postgres://u:hunter2@db/x");
    }

    #[test]
    fn without_auth_only_loopback_is_served_unless_allowed() {
        let parse = |args: &[&str]| Standalone::parse_from([&["playmark"], args].concat()).config.validate();
        assert_eq!(parse(&["--listen", "127.0.0.1:8080"]), Ok(()));
        assert_eq!(parse(&["--listen", "[::1]:8080"]), Ok(()));
        let refused = parse(&["--listen", "0.0.0.0:8080"]).expect_err("refused");
        assert!(refused.contains("--auth jwt") && refused.contains("--allow-unauthenticated"), "{refused}");
        assert_eq!(parse(&["--listen", "0.0.0.0:8080", "--allow-unauthenticated"]), Ok(()));
        assert!(parse(&["--listen", "0.0.0.0:8080", "--auth", "jwt"]).is_err(), "jwt without keys");
        assert_eq!(parse(&["--listen", "0.0.0.0:8080", "--auth", "jwt", "--jwt-secret-file", "s"]), Ok(()));
    }

    #[test]
    fn zero_ttl_means_keep_forever() {
        assert_eq!(Standalone::parse_from(["playmark", "--ttl-days", "0"]).config.ttl(), None);
    }
}
