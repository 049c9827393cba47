//! A lean keep-alive HTTP/1.1 connection, so the load generator is not the
//! bottleneck: one hyper connection per worker, no pool, no redirects.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One connection to the server, reopened after an error.
pub struct Conn {
    addr: String,
    host: String,
    /// `Bearer <token>`, sent with every request when set.
    authorization: Option<hyper::header::HeaderValue>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection to `addr` (`host:port`), opened on first use, sending
    /// `token` as a bearer token when given.
    pub fn new(addr: &str, token: Option<&str>) -> Self {
        let authorization =
            token.and_then(|t| hyper::header::HeaderValue::from_str(&format!("Bearer {t}")).ok());
        Self { addr: addr.to_owned(), host: addr.to_owned(), authorization, sender: None }
    }

    /// Opens the connection now rather than on the first request.
    pub async fn connect(&mut self) -> std::io::Result<()> {
        self.sender().await.map(drop)
    }

    async fn sender(&mut self) -> std::io::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or_else(|| std::io::Error::other("no connection"))
    }

    /// Sends a request; returns the status and body. An I/O error drops the
    /// connection (the next call reconnects) and reads as status 0.
    pub async fn send(&mut self, method: Method, path: &str, json: Option<String>) -> (u16, Bytes) {
        match self.try_send(method, path, json).await {
            Ok(answer) => answer,
            Err(_) => {
                self.sender = None;
                (0, Bytes::new())
            }
        }
    }

    async fn try_send(
        &mut self,
        method: Method,
        path: &str,
        json: Option<String>,
    ) -> std::io::Result<(u16, Bytes)> {
        let mut request = Request::builder().method(method).uri(path).header("host", self.host.as_str());
        if let Some(authorization) = &self.authorization {
            request = request.header(hyper::header::AUTHORIZATION, authorization.clone());
        }
        if json.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(json.map(Bytes::from).unwrap_or_default()))
            .map_err(std::io::Error::other)?;
        let sender = self.sender().await?;
        sender.ready().await.map_err(std::io::Error::other)?;
        let response = sender.send_request(request).await.map_err(std::io::Error::other)?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
        Ok((status, body))
    }
}
