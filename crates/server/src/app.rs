//! The application's lifecycle: build (open the store, bind the port), run
//! until a shutdown signal, then drain in-flight requests and flush the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use playmark_store::ProgressStore;
use playmark_store::embedded::{EmbeddedOptions, EmbeddedStore};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Config;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::service::{PlaybackService, ServiceOptions};
use crate::sweeper;

/// A built, bound, not yet running playmark.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    config: Config,
}

impl Application {
    /// Opens the store and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let store: Arc<dyn ProgressStore> = Arc::new(
            EmbeddedStore::open(
                &config.data_dir,
                EmbeddedOptions {
                    cache_size_bytes: config.embedded_cache_mb.saturating_mul(1024 * 1024),
                    ..EmbeddedOptions::default()
                },
            )
            .context("cannot open the embedded store")?,
        );
        Self::with_store(config, store).await
    }

    /// Like [`build`](Self::build), on a store the caller provides.
    pub async fn with_store(config: Config, store: Arc<dyn ProgressStore>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!("cannot listen on {} (is another server using it? try --listen)", config.listen)
        })?;
        let addr = listener.local_addr().context("cannot read the bound address")?;
        let metrics = Arc::new(Metrics::default());
        let service = Arc::new(PlaybackService::new(
            store,
            Arc::clone(&metrics),
            ServiceOptions {
                policy: config.resume_policy(),
                max_skew_ms: u64::try_from(config.max_clock_skew.as_millis()).unwrap_or(u64::MAX),
                write_timeout: config.write_timeout,
                read_timeout: config.read_timeout,
            },
        ));
        Ok(Self { listener, addr, state: AppState { service, metrics }, config })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the server is bound to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves until `shutdown` completes; then stops accepting, lets in-flight
    /// requests finish (up to the configured grace), stops the sweeper and
    /// flushes the store.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application { listener, addr, state, config } = self;
        let service = Arc::clone(&state.service);

        let (stop_tx, stop_rx) = watch::channel(false);
        let sweeper = config.ttl().map(|ttl| {
            tokio::spawn(sweeper::run(Arc::clone(&service), ttl, config.sweep_interval, stop_rx.clone()))
        });

        // Fires when the shutdown signal arrives, to start the grace timer.
        let mut stopping = stop_rx;
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; finishing in-flight requests");
            let _ = stop_tx.send(true);
        };
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "playmark listening");
        let server = axum::serve(listener, http::router(state)).with_graceful_shutdown(signal);
        let grace = config.shutdown_grace;
        tokio::select! {
            result = server => result.context("the HTTP server failed")?,
            _ = async {
                let _ = stopping.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!(?grace, "in-flight requests did not finish within the grace period"),
        }

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
