//! One connection's clocks: the header timeout (a request head that has
//! started must arrive whole within `--header-timeout`) and the idle timeout
//! (a keep-alive connection with no request in flight lives
//! `--idle-timeout`).
//!
//! hyper's own header-read timer also runs while a keep-alive connection
//! waits for its next request, so it cannot tell a player that checkpoints
//! every 30 s from a slowloris client. Here the two are told apart by who
//! knows each fact: the socket wrapper ([`TimedIo`]) sees the first byte of
//! a head, the service wrapper ([`ConnService`]) sees the head parsed into
//! a request and the answer leaving. The timer is the socket's: a read that
//! would wait past the deadline fails with `TimedOut`, and hyper closes the
//! connection. See docs/design.md#slow-clients.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::http::limits::Admission;

/// The two clocks of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the first byte of a request head to its end.
    pub header: Duration,
    /// A connection with no request in flight and none begun.
    pub idle: Duration,
}

/// Why a connection was closed by its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request head did not arrive whole in time.
    Header,
    /// No request for the idle timeout.
    Idle,
}

/// What the socket wrapper and the service wrapper of one connection share.
#[derive(Debug)]
pub struct ConnState {
    opened: Instant,
    /// Requests whose answer has not been produced yet.
    in_flight: AtomicU32,
    /// Requests begun on this connection (tells the socket wrapper that the
    /// head it saw start has been parsed).
    begun: AtomicU64,
    /// When the last answer was produced, in ms since `opened`.
    idle_since_ms: AtomicU64,
    /// 0, or the [`Expiry`] that closed the connection (1 header, 2 idle).
    expired: AtomicU8,
}

impl ConnState {
    /// The state of a connection accepted now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            begun: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            expired: AtomicU8::new(0),
        })
    }

    /// Whether (and why) the connection's clock closed it.
    pub fn expired(&self) -> Option<Expiry> {
        match self.expired.load(Ordering::Relaxed) {
            1 => Some(Expiry::Header),
            2 => Some(Expiry::Idle),
            _ => None,
        }
    }

    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed))
    }
}

/// Marks one request in flight until dropped (its answer produced).
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn begin(state: &Arc<ConnState>) -> Self {
        state.begun.fetch_add(1, Ordering::Relaxed);
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        let since = u64::try_from(state.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        state.idle_since_ms.store(since, Ordering::Relaxed);
        state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The application router, as one connection's hyper service: it admits
/// playback requests under the node's in-flight bound, and tells the
/// connection's state when a request begins and when its answer is ready.
#[derive(Clone)]
pub struct ConnService {
    router: Router,
    admission: Arc<Admission>,
    state: Arc<ConnState>,
}

impl ConnService {
    /// `router` serving the connection whose state is `state`.
    pub fn new(router: Router, admission: Arc<Admission>, state: Arc<ConnState>) -> Self {
        Self { router, admission, state }
    }
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::begin(&self.state);
        // Shed before anything else is done with the request (its body
        // is not read).
        let admitted = if Admission::applies_to(request.uri().path()) {
            match self.admission.admit() {
                Some(admitted) => Some(admitted),
                None => return Box::pin(std::future::ready(Ok(Admission::shed()))),
            }
        } else {
            None
        };
        let answer = self.router.clone().oneshot(Request::from(request.map(axum::body::Body::new)));
        Box::pin(async move {
            let response = answer.await;
            drop((admitted, in_flight));
            response
        })
    }
}

/// Which protocol the connection speaks, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Too few bytes read to tell (held to the header timeout meanwhile).
    Unknown,
    /// HTTP/1.x: a head has a header timeout.
    Http1,
    /// HTTP/2 with prior knowledge (h2c): frames arrive between requests
    /// (settings, pings), so only the idle timeout applies; streams count
    /// against `--max-in-flight` instead.
    Http2,
}

/// The HTTP/2 connection preface starts with these bytes.
const H2_PREFACE: &[u8] = b"PRI ";

/// A socket whose reads fail with `TimedOut` once the connection's clock
/// runs out (see the module docs).
pub struct TimedIo<T> {
    io: T,
    state: Arc<ConnState>,
    timeouts: Timeouts,
    timer: Pin<Box<Sleep>>,
    protocol: Protocol,
    /// The first bytes read, until they tell the protocol.
    sniff: [u8; H2_PREFACE.len()],
    sniffed: u8,
    /// When the head being read started, and `begun` at that time.
    head: Option<(Instant, u64)>,
}

impl<T> TimedIo<T> {
    /// Wraps `io`, the socket of the connection whose state is `state`.
    pub fn new(io: T, state: Arc<ConnState>, timeouts: Timeouts) -> Self {
        let timer = Box::pin(tokio::time::sleep_until(state.opened + timeouts.idle));
        Self {
            io,
            state,
            timeouts,
            timer,
            protocol: Protocol::Unknown,
            sniff: [0; H2_PREFACE.len()],
            sniffed: 0,
            head: None,
        }
    }

    /// Notes the bytes a read returned: the protocol, from the first four,
    /// and the start of a head, on an idle connection that is not HTTP/2.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.protocol == Protocol::Unknown {
            let (have, want) = (usize::from(self.sniffed), H2_PREFACE.len());
            let take = bytes.len().min(want - have);
            self.sniff[have..have + take].copy_from_slice(&bytes[..take]);
            let have = have + take;
            self.sniffed = have as u8;
            if self.sniff[..have] != H2_PREFACE[..have] {
                self.protocol = Protocol::Http1;
            } else if have == want {
                self.protocol = Protocol::Http2;
                self.head = None;
            }
        }
        if self.protocol != Protocol::Http2
            && self.head.is_none()
            && self.state.in_flight.load(Ordering::Acquire) == 0
        {
            self.head = Some((Instant::now(), self.state.begun.load(Ordering::Relaxed)));
        }
    }

    /// When the clock runs out, and what it means; `None` while a request
    /// is in flight.
    fn deadline(&mut self) -> Option<(Instant, Expiry)> {
        if let Some((_, begun)) = self.head
            && self.state.begun.load(Ordering::Relaxed) != begun
        {
            // The head was parsed into a request.
            self.head = None;
        }
        if self.state.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(match self.head {
            Some((started, _)) => (started + self.timeouts.header, Expiry::Header),
            None => (self.state.idle_since() + self.timeouts.idle, Expiry::Idle),
        })
    }

    /// After a read found nothing to return: arms the clock, and fails the
    /// read if it ran out.
    ///
    /// The timer is moved earlier at once (a head starting on an idle
    /// connection), but later only when it fires: after each answer the
    /// idle deadline moves on, and resetting the timer for every request
    /// would cost more than the one extra wake-up per idle period.
    fn poll_clock(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.deadline() {
            Some((deadline, expiry)) => {
                let armed = self.timer.deadline();
                if deadline < armed || (deadline > armed && self.timer.is_elapsed()) {
                    self.timer.as_mut().reset(deadline);
                }
                ready!(self.timer.as_mut().poll(cx));
                if Instant::now() < deadline {
                    // An old deadline fired: the real one is later.
                    self.timer.as_mut().reset(deadline);
                    ready!(self.timer.as_mut().poll(cx));
                }
                self.state.expired.store(
                    match expiry {
                        Expiry::Header => 1,
                        Expiry::Idle => 2,
                    },
                    Ordering::Relaxed,
                );
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    match expiry {
                        Expiry::Header => "the request head did not arrive within --header-timeout",
                        Expiry::Idle => "no request within --idle-timeout",
                    },
                ))
            }
            None => {
                // A request is in flight. Keep a clock armed anyway, so the
                // idle clock is looked at again even if no read is polled
                // after the answer leaves.
                if self.timer.is_elapsed() {
                    self.timer.as_mut().reset(Instant::now() + self.timeouts.idle);
                }
                let _ = self.timer.as_mut().poll(cx);
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_clock(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUTS: Timeouts = Timeouts { header: Duration::from_secs(10), idle: Duration::from_secs(60) };

    async fn read_until_timeout(io: &mut TimedIo<tokio::io::DuplexStream>) -> io::Error {
        let mut buf = [0u8; 64];
        loop {
            match io.read(&mut buf).await {
                Ok(0) => panic!("the peer closed"),
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_lives_the_idle_timeout() {
        let (mut client, server) = tokio::io::duplex(1024);
        let state = ConnState::new();
        let mut io = TimedIo::new(server, Arc::clone(&state), TIMEOUTS);
        let start = Instant::now();
        let e = read_until_timeout(&mut io).await;
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), TIMEOUTS.idle);
        assert_eq!(state.expired(), Some(Expiry::Idle));
        client.shutdown().await.ok();
    }

    #[tokio::test(start_paused = true)]
    async fn a_started_head_has_the_header_timeout() {
        let (mut client, server) = tokio::io::duplex(1024);
        let state = ConnState::new();
        let mut io = TimedIo::new(server, Arc::clone(&state), TIMEOUTS);
        tokio::time::sleep(Duration::from_secs(30)).await;
        client.write_all(b"GET /healthz HTTP/1.1\r\n").await.expect("the server reads");
        let start = Instant::now();
        let e = read_until_timeout(&mut io).await;
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), TIMEOUTS.header, "from the head's first byte, not the connection's");
        assert_eq!(state.expired(), Some(Expiry::Header));
    }

    #[tokio::test(start_paused = true)]
    async fn after_an_answer_the_idle_clock_starts_again() {
        let (mut client, server) = tokio::io::duplex(1024);
        let state = ConnState::new();
        let mut io = TimedIo::new(server, Arc::clone(&state), TIMEOUTS);
        client.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").await.expect("the server reads");
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.expect("a head") > 0);
        // hyper parses the head and calls the service, which answers after
        // 20 s (longer than the header timeout: it no longer applies).
        let in_flight = InFlight::begin(&state);
        let busy = tokio::time::timeout(Duration::from_secs(20), io.read(&mut buf)).await;
        assert!(busy.is_err(), "no clock runs out while a request is in flight");
        drop(in_flight);
        let answered = Instant::now();
        let e = read_until_timeout(&mut io).await;
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(answered.elapsed(), TIMEOUTS.idle);
        assert_eq!(state.expired(), Some(Expiry::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_start_no_header_clock() {
        let (mut client, server) = tokio::io::duplex(1024);
        let state = ConnState::new();
        let mut io = TimedIo::new(server, Arc::clone(&state), TIMEOUTS);
        client.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.expect("the server reads");
        let start = Instant::now();
        let e = read_until_timeout(&mut io).await;
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), TIMEOUTS.idle);
        assert_eq!(state.expired(), Some(Expiry::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_sent_a_byte_at_a_time_is_still_held_to_the_header_timeout() {
        let (mut client, server) = tokio::io::duplex(1024);
        let state = ConnState::new();
        let mut io = TimedIo::new(server, Arc::clone(&state), TIMEOUTS);
        let trickle = tokio::spawn(async move {
            for byte in b"POST /playback/update HTTP/1.1\r\n" {
                client.write_all(&[*byte]).await.expect("the server reads");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            client
        });
        let start = Instant::now();
        let e = read_until_timeout(&mut io).await;
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), TIMEOUTS.header);
        assert_eq!(state.expired(), Some(Expiry::Header));
        trickle.abort();
    }
}
