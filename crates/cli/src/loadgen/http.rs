//! A lean client, so the load generator is not the bottleneck: one hyper
//! connection per worker or viewer (HTTP/1.1), or a few shared ones that
//! multiplex many viewers (h2c), no pool, no redirects.
//!
//! Opening a connection is measured apart from the requests: each attempt
//! is recorded as a `connect` (its time, or a failure), and a request's
//! time starts once it has a connection.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpSocket;

use super::stats::Recorder;

/// Where requests go, and how.
#[derive(Debug)]
pub struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    /// `Bearer <token>`, sent with every request when set.
    authorization: Option<HeaderValue>,
    http2: bool,
    /// Local addresses connections are spread over (empty: the kernel
    /// picks). Each source address has its own ~28,000 ephemeral ports.
    sources: Vec<IpAddr>,
}

impl Target {
    /// Resolves `host_port`; `sources` > 1 spreads connections over
    /// 127.0.0.1 .. 127.0.0.`sources` (a loopback target only).
    pub async fn resolve(
        host_port: &str,
        token: Option<&str>,
        http2: bool,
        sources: u8,
    ) -> anyhow::Result<Self> {
        let addr = tokio::net::lookup_host(host_port)
            .await?
            .next()
            .ok_or_else(|| anyhow::anyhow!("--target {host_port} resolves to no address"))?;
        let sources = if sources > 1 {
            anyhow::ensure!(addr.ip().is_loopback(), "--sources needs a loopback --target");
            (1..=sources).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i))).collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            addr,
            host: HeaderValue::from_str(host_port)?,
            authorization: token.map(|t| HeaderValue::from_str(&format!("Bearer {t}"))).transpose()?,
            http2,
            sources,
        })
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// An answer: the status (0: the connection failed before one came), the
/// body, and the time from sending to the end of the body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub took: Duration,
}

/// One connection to the target, (re)opened when needed.
pub struct Conn {
    target: Arc<Target>,
    /// Which of the target's sources this connection uses.
    index: usize,
    sender: Option<Sender>,
}

impl Conn {
    /// Connection number `index` to `target`, opened on first use.
    pub fn new(target: &Arc<Target>, index: usize) -> Self {
        Self { target: Arc::clone(target), index, sender: None }
    }

    /// A handle on the same HTTP/2 connection (streams multiplexed over
    /// it); an HTTP/1.1 connection cannot be shared, so that is a new one.
    pub fn share(&self) -> Self {
        let sender = match &self.sender {
            Some(Sender::H2(h2)) => Some(Sender::H2(h2.clone())),
            _ => None,
        };
        Self { target: Arc::clone(&self.target), index: self.index, sender }
    }

    /// Opens the connection now, if it is not open; records the attempt.
    pub async fn connect(&mut self, recorder: &Recorder) -> bool {
        let open = match &self.sender {
            Some(Sender::H1(s)) => !s.is_closed(),
            Some(Sender::H2(s)) => !s.is_closed(),
            None => false,
        };
        if open {
            return true;
        }
        let started = Instant::now();
        match self.open().await {
            Ok(sender) => {
                recorder.record("connect", started.elapsed(), 200);
                self.sender = Some(sender);
                true
            }
            Err(_) => {
                recorder.record("connect", started.elapsed(), 0);
                self.sender = None;
                false
            }
        }
    }

    async fn open(&self) -> std::io::Result<Sender> {
        let target = &self.target;
        let socket = if target.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if !target.sources.is_empty() {
            socket.bind(SocketAddr::new(target.sources[self.index % target.sources.len()], 0))?;
        }
        socket.set_nodelay(true)?;
        let stream = TokioIo::new(socket.connect(target.addr).await?);
        if target.http2 {
            let (sender, conn) =
                http2::handshake(TokioExecutor::new(), stream).await.map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn) = http1::handshake(stream).await.map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            Ok(Sender::H1(sender))
        }
    }

    /// Sends a request on an open connection (opening it first, recorded as
    /// a `connect`). `None`: no connection could be opened, so nothing was
    /// sent. A request that fails on the connection drops it (the next one
    /// reconnects) and answers status 0.
    pub async fn send(
        &mut self,
        recorder: &Recorder,
        method: Method,
        path: &str,
        json: Option<Bytes>,
    ) -> Option<Answer> {
        if !self.connect(recorder).await {
            return None;
        }
        let started = Instant::now();
        match self.try_send(method, path, json).await {
            Ok((status, body)) => Some(Answer { status, body, took: started.elapsed() }),
            Err(_) => {
                self.sender = None;
                Some(Answer { status: 0, body: Bytes::new(), took: started.elapsed() })
            }
        }
    }

    async fn try_send(
        &mut self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
    ) -> Result<(u16, Bytes), BoxError> {
        let target = &self.target;
        let mut request = Request::builder().method(method);
        request = if target.http2 {
            // HTTP/2 carries the authority in the URI.
            request.uri(format!("http://{}{path}", target.addr))
        } else {
            request.uri(path).header(HOST, target.host.clone())
        };
        if let Some(authorization) = &target.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        if json.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request.body(Full::new(json.unwrap_or_default()))?;
        let response = match self.sender.as_mut() {
            Some(Sender::H1(sender)) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Some(Sender::H2(sender)) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            None => return Err("not connected".into()),
        };
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
