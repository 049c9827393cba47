//! The application's lifecycle: build (open the store, bind the port), run
//! until a shutdown signal, then drain in-flight requests and flush the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use playmark_store::embedded::{EmbeddedOptions, EmbeddedStore};
use playmark_store::{EventSink, ProgressCache, ProgressStore};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Config;
use crate::cached::CachedStore;
use crate::config::{CacheKind, EventsKind, StoreKind};
use crate::events::Publisher;
use crate::http::limits::{self, RateLimits};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::service::{PlaybackService, ServiceOptions};
use crate::sweeper;

/// A built, bound, not yet running playmark.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    /// `--metrics-listen`: /metrics alone, unauthenticated.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    config: Config,
}

impl Application {
    /// Connects the configured store, cache and event sink, and binds the
    /// listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Flags are checked before anything is opened or connected.
        config.validate().map_err(anyhow::Error::msg)?;
        let store = open_store(&config).await?;
        Self::assemble(config, store).await
    }

    /// Like [`build`](Self::build), on a store the caller provides (the
    /// configured cache and event sink still apply).
    pub async fn with_store(config: Config, store: Arc<dyn ProgressStore>) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        Self::assemble(config, store).await
    }

    /// Binds and wires everything around `store`; `config` is validated.
    async fn assemble(config: Config, store: Arc<dyn ProgressStore>) -> anyhow::Result<Self> {
        let backlog = config.listen_backlog.unwrap_or_else(crate::serve::somaxconn);
        let listener = crate::serve::bind(config.listen, backlog).with_context(|| {
            format!("cannot listen on {} (is another server using it? try --listen)", config.listen)
        })?;
        let addr = listener.local_addr().context("cannot read the bound address")?;
        let metrics_listener = match config.metrics_listen {
            None => None,
            Some(at) => Some(
                TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot listen on --metrics-listen {at}"))?,
            ),
        };
        let metrics = Arc::new(Metrics::default());
        let auth = authenticator(&config).await?;

        let cache = open_cache(&config).await?;
        let store = match &cache {
            Some(cache) => Arc::new(CachedStore::new(
                store,
                Arc::clone(cache),
                config.cache_timeout,
                config.cache_write_timeout,
                Arc::clone(&metrics),
            )) as Arc<dyn ProgressStore>,
            None => store,
        };
        let mut service = PlaybackService::new(
            store,
            Arc::clone(&metrics),
            ServiceOptions {
                policy: config.resume_policy(),
                max_skew_ms: u64::try_from(config.max_clock_skew.as_millis()).unwrap_or(u64::MAX),
                write_timeout: config.write_timeout,
                read_timeout: config.read_timeout,
                stale_guard_ms: crate::config::millis(config.stale_device_guard),
                handoff: config.handoff(),
            },
        );
        if let Some(cache) = cache {
            service = service.with_cache(cache);
        }
        if let Some(sink) = open_events(&config).await? {
            service = service.with_events(Publisher::start(sink, config.events_queue, Arc::clone(&metrics)));
        }
        let service = Arc::new(service);
        let state = AppState {
            service,
            metrics,
            reject_unknown_fields: config.reject_unknown_fields,
            openapi: Arc::new(http::openapi::json_for(auth.is_on())),
            auth,
            cors_origins: Arc::new(config.cors_origins.clone()),
            rate_limits: Arc::new(RateLimits::new(config.account_rate, config.account_burst)),
            body_timeout: config.header_timeout,
        };
        Ok(Self { listener, addr, metrics_listener, state, config })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the server is bound to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where `--metrics-listen` is bound, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes; then stops accepting, lets in-flight
    /// requests finish (up to the configured grace), stops the sweeper and
    /// flushes the store.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application { listener, addr, metrics_listener, state, config } = self;
        let service = Arc::clone(&state.service);

        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(listener) = metrics_listener {
            let (metrics, mut stop) = (Arc::clone(&state.metrics), stop_rx.clone());
            let router = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let metrics = Arc::clone(&metrics);
                    async move { http::ops::render_metrics(&metrics) }
                }),
            );
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                };
                if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stopped).await {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            });
        }
        // DynamoDB deletes expired items itself (its TTL): no sweep for that.
        let ttl = if config.store == StoreKind::Dynamodb { None } else { config.ttl() };
        let limits = sweeper::Limits { ttl, max_titles: config.max_titles() };
        let sweeper = (limits.ttl.is_some() || limits.max_titles.is_some()).then(|| {
            tokio::spawn(sweeper::run(Arc::clone(&service), limits, config.sweep_interval, stop_rx.clone()))
        });

        // Fires when the shutdown signal arrives, to start the grace timer.
        let mut stopping = stop_rx;
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; finishing in-flight requests");
            let _ = stop_tx.send(true);
        };
        // Buckets that have refilled are dropped every few seconds, so the
        // limiter's memory follows the accounts active now.
        let forgetter =
            tokio::spawn(limits::forget_idle_every(Arc::clone(&state.rate_limits), Duration::from_secs(10)));
        let options = config.serve_options();
        tracing::info!(
            %addr,
            data_dir = %config.data_dir.display(),
            max_connections = options.max_connections,
            max_in_flight = config.max_in_flight,
            "playmark listening"
        );
        let metrics = Arc::clone(&state.metrics);
        let admission = limits::Admission::new(config.max_in_flight, Arc::clone(&metrics));
        let server = crate::serve::serve(listener, http::router(state), options, admission, metrics, signal);
        let grace = config.shutdown_grace;
        tokio::select! {
            () = server => {}
            _ = async {
                let _ = stopping.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!(?grace, "in-flight requests did not finish within the grace period"),
        }

        forgetter.abort();
        if let Some(task) = sweeper {
            // The sweeper watches the same stop signal; wait for it to finish
            // its current batch.
            let _ = task.await;
        }
        service.close().await.context("cannot flush the store")?;
        tracing::info!("playmark stopped cleanly");
        Ok(())
    }
}

/// How callers prove who they are, as the flags say.
async fn authenticator(config: &Config) -> anyhow::Result<crate::auth::Authenticator> {
    use crate::auth::{Authenticator, jwt};
    match config.auth {
        crate::config::AuthMode::None => Ok(Authenticator::Off),
        crate::config::AuthMode::Jwt => {
            let verifier = jwt::JwtVerifier::new(jwt::JwtOptions {
                secret_file: config.jwt_secret_file.clone(),
                jwks_file: config.jwt_jwks_file.clone(),
                jwks_url: config.jwt_jwks_url.clone(),
                issuer: config.jwt_issuer.clone(),
                audience: config.jwt_audience.clone(),
                account_claim: config.jwt_account_claim.clone(),
            })
            .await
            .map_err(anyhow::Error::msg)
            .context("cannot set up --auth jwt")?;
            verifier.spawn_refresh();
            Ok(Authenticator::Jwt(verifier))
        }
    }
}

/// Opens the configured durable store.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn ProgressStore>> {
    match config.store {
        StoreKind::Embedded => {
            let options = EmbeddedOptions {
                cache_size_bytes: config.embedded_cache_mb.saturating_mul(1024 * 1024),
                legacy_finished_percent: config.max_resume_percent,
                ..EmbeddedOptions::default()
            };
            let store =
                EmbeddedStore::open(&config.data_dir, options).context("cannot open the embedded store")?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        StoreKind::Postgres => {
            use playmark_store::postgres::{PostgresOptions, PostgresStore};
            let store = PostgresStore::connect(PostgresOptions {
                url: config.postgres_url.expose().to_owned(),
                pool_size: config.postgres_pool_size,
                writers: config.postgres_writers,
                max_batch: config.postgres_max_batch,
                legacy_finished_percent: config.max_resume_percent,
                ..PostgresOptions::default()
            })
            .await
            .context("cannot use PostgreSQL (check --postgres-url)")?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "postgres"))]
        StoreKind::Postgres => anyhow::bail!("this playmark was built without the postgres feature"),
        #[cfg(feature = "dynamodb")]
        StoreKind::Dynamodb => {
            let store =
                playmark_store::dynamodb::DynamoStore::connect(config.dynamo_options()).await.context(
                    "cannot use DynamoDB (check --dynamodb-endpoint, AWS_REGION and the AWS credentials)",
                )?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "dynamodb"))]
        StoreKind::Dynamodb => anyhow::bail!("this playmark was built without the dynamodb feature"),
    }
}

/// How long startup waits for the first cache connection before serving
/// without it.
const CACHE_STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the configured cache, if any. A Redis that does not answer within
/// [`CACHE_STARTUP_WAIT`] does not stop the service: it starts degraded
/// (reads from the store) and the cache joins when Redis does.
async fn open_cache(config: &Config) -> anyhow::Result<Option<Arc<dyn ProgressCache>>> {
    #[cfg(feature = "redis")]
    let redis = |topology| async move {
        use playmark_store::redis::{RedisCache, RedisOptions};
        let cache = RedisCache::connect(RedisOptions {
            topology,
            key_prefix: config.redis_key_prefix.clone(),
            ttl: config.cache_ttl,
            connect_timeout: std::time::Duration::from_secs(1),
            ca_file: config.redis_ca_file.clone(),
        })
        .context("cannot use Redis (check --redis-url)")?;
        if let Err(e) = cache.wait_connected(CACHE_STARTUP_WAIT).await {
            tracing::warn!(error = %e, "starting without the cache; it joins when Redis answers");
        }
        Ok::<_, anyhow::Error>(Some(Arc::new(cache) as Arc<dyn ProgressCache>))
    };
    match config.cache {
        CacheKind::None => Ok(None),
        #[cfg(feature = "memory")]
        CacheKind::Memory => {
            // Per-node caches never see other nodes' writes: keep entries
            // no longer than the 1–2 s of staleness the design accepts
            // (docs/design.md#availability).
            let ttl = config.cache_ttl.min(std::time::Duration::from_secs(2));
            Ok(Some(Arc::new(playmark_store::memory::MemoryCache::new(config.memory_cache_capacity, ttl))))
        }
        #[cfg(feature = "redis")]
        CacheKind::Redis => {
            redis(playmark_store::redis::RedisTopology::Single(config.redis_url.expose().to_owned())).await
        }
        #[cfg(feature = "redis")]
        CacheKind::RedisCluster => {
            redis(playmark_store::redis::RedisTopology::Cluster(
                config
                    .redis_url
                    .expose()
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ))
            .await
        }
        #[allow(unreachable_patterns)]
        other => anyhow::bail!("this playmark was built without support for --cache {other:?}"),
    }
}

/// Connects the configured event sink, if any.
async fn open_events(config: &Config) -> anyhow::Result<Option<Arc<dyn EventSink>>> {
    match config.events {
        EventsKind::None => Ok(None),
        #[cfg(feature = "nats")]
        EventsKind::Nats => {
            use playmark_store::nats::{NatsOptions, NatsSink};
            let sink = NatsSink::connect(NatsOptions {
                url: config.nats_url.expose().to_owned(),
                subject: config.nats_subject.clone(),
                stream: config.nats_stream.clone(),
                timeout: std::time::Duration::from_secs(2),
                max_age: config.nats_max_age,
                max_bytes: config.nats_max_mb.saturating_mul(1024 * 1024),
            })
            .await
            .context("cannot use NATS (check --nats-url)")?;
            Ok(Some(Arc::new(sink)))
        }
        #[cfg(not(feature = "nats"))]
        EventsKind::Nats => anyhow::bail!("this playmark was built without the nats feature"),
    }
}
