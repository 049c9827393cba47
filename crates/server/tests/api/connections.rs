//! The serve loop, over raw TCP: slow clients are cut off by the header
//! timeout, idle keep-alive connections live the idle timeout, the
//! connection limit waits in the backlog, h2c is served, and the backlog is
//! the configured one.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, checkpoint, now_ms};

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: playmark\r\n\r\n";

/// Reads one small response (the whole of it arrives in one segment on
/// loopback); `None` if the connection was closed.
async fn read_response(stream: &mut TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match stream.read(&mut buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
    }
}

/// Waits for the server to close `stream`: true if it did within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Waits (up to 10 s) for /metrics to hold `sample`: a connection's
/// counters are updated just after its socket is closed.
async fn assert_metric(app: &TestApp, sample: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = app.get("/metrics").await.text().await.expect("metrics");
        if text.contains(sample) {
            return;
        }
        assert!(Instant::now() < deadline, "no {sample} in:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_while_others_are_served() {
    const SLOW: usize = 300;
    let app = TestApp::spawn_with(|c| c.header_timeout = Duration::from_secs(1)).await;
    // Hundreds of connections that start a request head and never end it.
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(app.addr).await.expect("connect");
        stream
            .write_all(b"POST /playback/update HTTP/1.1\r\nHost: playmark\r\nContent-")
            .await
            .expect("write");
        slow.push(stream);
    }
    let started = Instant::now();
    // Meanwhile a normal client checkpoints and resumes, within budget (a
    // read past --read-timeout, or a write past --write-timeout, is a 503).
    let mut took = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        assert_eq!(
            app.update(&checkpoint("V1", "tv", f64::from(i) + 1.0, now_ms())).await.status(),
            StatusCode::OK
        );
        assert_eq!(app.resume_of_raw("acct", "A", "V1").await.status(), StatusCode::OK);
        took.push(t.elapsed());
    }
    took.sort();
    println!(
        "a normal client's update + resume while {SLOW} slow clients hang: median {:?}, max {:?}",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    // Every slow connection is closed, once its header timeout has passed.
    for stream in &mut slow {
        assert!(closed_within(stream, Duration::from_secs(10)).await, "a slow client was never cut off");
    }
    assert!(started.elapsed() >= Duration::from_millis(900), "cut off before the header timeout");
    assert_metric(&app, &format!("playmark_connections_expired_total{{reason=\"header_timeout\"}} {SLOW}\n"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_is_refused_after_the_header_timeout() {
    let app = TestApp::spawn_with(|c| c.header_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    // A whole head, then 10 bytes of a 100-byte body, then nothing.
    stream
        .write_all(
            b"POST /playback/update HTTP/1.1\r\nHost: playmark\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"account_",
        )
        .await
        .expect("write");
    let answer = tokio::time::timeout(Duration::from_secs(10), read_response(&mut stream))
        .await
        .expect("answered within 10 s")
        .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    // Nothing was written.
    assert_eq!(app.resume("V1").await["found"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout() {
    let app = TestApp::spawn_with(|c| c.header_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream.write_all(HEALTHZ).await.expect("write");
    assert!(read_response(&mut stream).await.expect("an answer").starts_with("HTTP/1.1 200"));
    // A player between two checkpoints: longer than the header timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stream.write_all(HEALTHZ).await.expect("write");
    let second = read_response(&mut stream).await.expect("the connection is still open");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let app = TestApp::spawn_with(|c| c.idle_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream.write_all(HEALTHZ).await.expect("write");
    assert!(read_response(&mut stream).await.expect("an answer").starts_with("HTTP/1.1 200"));
    let idle = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(10)).await);
    assert!(idle.elapsed() >= Duration::from_millis(900), "closed before the idle timeout");
    assert_metric(&app, "playmark_connections_expired_total{reason=\"idle_timeout\"} 1\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_in_the_backlog() {
    let app = TestApp::spawn_with(|c| c.max_connections = Some(2)).await;
    let mut first = TcpStream::connect(app.addr).await.expect("connect");
    let second = TcpStream::connect(app.addr).await.expect("connect");
    first.write_all(HEALTHZ).await.expect("write");
    assert!(read_response(&mut first).await.expect("answered").starts_with("HTTP/1.1 200"));
    // The kernel completes the third handshake, but playmark does not
    // accept it while two are open: its request waits.
    let mut third = TcpStream::connect(app.addr).await.expect("the kernel queues it");
    third.write_all(HEALTHZ).await.expect("write");
    let waiting = tokio::time::timeout(Duration::from_millis(500), read_response(&mut third)).await;
    assert!(waiting.is_err(), "a third connection was served beyond --max-connections 2");
    // A slot frees: the third is accepted and answered.
    drop(second);
    let answer = tokio::time::timeout(Duration::from_secs(10), read_response(&mut third)).await;
    assert!(answer.expect("answered once a slot freed").expect("an answer").starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_is_served_on_the_same_port() {
    let app = TestApp::spawn().await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().expect("client");
    let app = app.with_client(h2);
    let response = app.update(&checkpoint("V1", "tv", 42.0, now_ms())).await;
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let resumed = app.resume("V1").await;
    assert_eq!(resumed["position"], 42);
    // HTTP/1.1 on the same port still works.
    let h1 = reqwest::Client::new().get(app.url("/healthz")).send().await.expect("request");
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
}

/// The listening socket's backlog, as `ss` reports it (Send-Q of a
/// listening socket).
fn backlog_of(port: u16) -> u32 {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    fields.get(2).and_then(|f| f.parse().ok()).unwrap_or_else(|| panic!("unexpected ss output: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listen_backlog_is_the_configured_one() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("somaxconn")
        .trim()
        .parse()
        .expect("a number");
    let by_default = TestApp::spawn().await;
    assert_eq!(backlog_of(by_default.addr.port()), somaxconn, "the default is the kernel's somaxconn");
    let configured = TestApp::spawn_with(|c| c.listen_backlog = Some(777.min(somaxconn))).await;
    assert_eq!(backlog_of(configured.addr.port()), 777.min(somaxconn));
}
