//! The serve loop: the listening socket, the accept loop and each
//! connection's HTTP/1.1 or HTTP/2 (h2c) session.
//!
//! What it promises (docs/design.md#connections):
//! - the listen backlog is `--listen-backlog` (the kernel's `somaxconn` by
//!   default), so a storm of players opening at once waits in the kernel's
//!   queue instead of overflowing it;
//! - at most `--max-connections` are open; beyond that the loop stops
//!   accepting and new connections wait in the backlog;
//! - an accept error such as EMFILE is logged and backed off for a few
//!   milliseconds (never a spin, a crash or a one-second stall);
//! - each connection runs under its header and idle clocks ([`conn`]);
//! - playback requests beyond `--max-in-flight` (HTTP/2 streams included)
//!   are shed as they arrive ([`Admission`]);
//! - on shutdown, accepting stops and each connection finishes its
//!   requests in flight, then closes.

pub mod conn;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;

use crate::http::limits::Admission;
use crate::metrics::{ConnectionLabels, Metrics};
use conn::{ConnService, ConnState, Expiry, TimedIo, Timeouts};

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Connections open at once; beyond it, new ones wait in the backlog.
    pub max_connections: usize,
    /// The header and idle clocks.
    pub timeouts: Timeouts,
    /// Concurrent streams of one HTTP/2 connection.
    pub h2_max_streams: u32,
}

/// The kernel's cap on a listen backlog (`net.core.somaxconn`), which is
/// also the default backlog; 4,096 where it cannot be read.
pub fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// Binds `addr` with a listen backlog of `backlog` (the kernel caps it at
/// `somaxconn`).
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // A restarted node can bind while the old one's connections linger in
    // TIME_WAIT (this does not let two servers share the port).
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Raises this process's soft limit on open files to its hard limit (each
/// connection is one), and returns both limits as they now stand.
#[cfg(unix)]
pub fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    Ok((soft, hard))
}

/// The open-file limit this process runs under (`RLIMIT_NOFILE`, soft).
#[cfg(unix)]
pub fn open_file_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft)
}

/// Files kept for everything but client connections: the store's files,
/// connections to PostgreSQL, Redis and NATS, the JWKS fetcher.
const RESERVED_FILES: u64 = 1024;

/// `--max-connections` by default: what the open-file limit leaves after
/// [`RESERVED_FILES`].
pub fn default_max_connections() -> usize {
    usize::try_from(open_file_limit().saturating_sub(RESERVED_FILES).max(64)).unwrap_or(usize::MAX)
}

/// The connection builder: HTTP/1.1 and h2c on the same port. hyper's own
/// HTTP/1 header timer is off: [`conn::TimedIo`] keeps the clocks.
fn builder(options: &ServeOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().header_read_timeout(None).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(options.h2_max_streams);
    builder
}

/// Serves `router` on `listener` until `shutdown` completes, then waits for
/// every connection to finish its requests in flight (the caller bounds
/// that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    admission: Arc<Admission>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(builder(&options));
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let graceful = GracefulShutdown::new();
    let mut backoff = Backoff::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free slot first: at the limit, connections wait in the backlog.
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, _peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.reset();
                    accepted
                }
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    metrics.accept_errors.inc();
                    let pause = backoff.next();
                    if backoff.should_log() {
                        tracing::warn!(error = %e, ?pause, "cannot accept connections (raise the open-file \
                            limit, or lower --max-connections); pausing");
                    }
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
        };
        // Checkpoints are small and answered at once: no Nagle delay.
        let _ = stream.set_nodelay(true);
        metrics.connections_open.inc();
        let (builder, watcher, metrics, timeouts) =
            (Arc::clone(&builder), graceful.watcher(), Arc::clone(&metrics), options.timeouts);
        let (router, admission) = (router.clone(), Arc::clone(&admission));
        tokio::spawn(async move {
            let state = ConnState::new();
            let io = TokioIo::new(TimedIo::new(stream, Arc::clone(&state), timeouts));
            let connection =
                builder.serve_connection(io, ConnService::new(router, admission, Arc::clone(&state)));
            let result = watcher.watch(connection).await;
            // hyper may end an idle connection whose read failed without an
            // error: the clock's own record says whether it expired.
            match (state.expired(), result) {
                (Some(expiry), _) => {
                    let reason = match expiry {
                        Expiry::Header => "header_timeout",
                        Expiry::Idle => "idle_timeout",
                    };
                    metrics.connections_closed.get_or_create(&ConnectionLabels { reason }).inc();
                }
                (None, Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
                (None, Ok(())) => {}
            }
            metrics.connections_open.dec();
            drop(slot);
        });
    }
    drop(listener);
    tracing::debug!(connections = graceful.count(), "waiting for open connections to finish");
    graceful.shutdown().await;
}

/// Errors of one connection that never reached us (the peer gave up while
/// it waited in the backlog): accept the next one at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// The pause after an accept error (EMFILE, ENFILE, ENOBUFS): 1 ms,
/// doubling up to 64 ms while errors continue. Short, because the cause
/// (a connection closing and freeing a file) usually passes within
/// milliseconds; never zero, so the loop does not spin.
#[derive(Debug, Default)]
struct Backoff {
    errors: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MOST: Duration = Duration::from_millis(64);

    fn next(&mut self) -> Duration {
        self.errors = self.errors.saturating_add(1);
        Self::FIRST.saturating_mul(1 << (self.errors - 1).min(6)).min(Self::MOST)
    }

    /// The first error of a run, and then every 100th: a storm of EMFILE
    /// is visible without flooding the log.
    fn should_log(&self) -> bool {
        self.errors % 100 == 1
    }

    fn reset(&mut self) {
        self.errors = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_one_millisecond_to_64() {
        let mut backoff = Backoff::default();
        let pauses: Vec<u64> = (0..9).map(|_| backoff.next().as_millis() as u64).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 64, 64, 64]);
        backoff.reset();
        assert_eq!(backoff.next(), Duration::from_millis(1));
    }

    #[test]
    fn a_run_of_errors_is_logged_once_per_hundred() {
        let mut backoff = Backoff::default();
        let logged = (0..250)
            .filter(|_| {
                backoff.next();
                backoff.should_log()
            })
            .count();
        assert_eq!(logged, 3);
    }
}
