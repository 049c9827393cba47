//! A premiere's connection storm against the real binary: thousands of
//! players open a connection and ask where to resume, all in the same
//! instant. Every one must be answered, and the kernel's listen queue must
//! not overflow (an overflow costs the player a SYN retransmission: a
//! second).
//!
//! The kernel counts overflows per network namespace, for every socket in
//! it, so a test running beside this one could add to them: it is ignored
//! in the parallel run, and `scripts/test` runs it on its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use super::start_under;

/// Players opening at once: fewer than the default backlog (the kernel's
/// somaxconn, 4,096 here), more than the old fixed 128 by far.
const PLAYERS: usize = 3000;

/// The kernel's `TcpExt` counters (`/proc/net/netstat`) named `names`.
fn tcp_ext(names: &[&str]) -> Vec<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").expect("/proc/net/netstat");
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (header, values) = (lines.next().expect("TcpExt names"), lines.next().expect("TcpExt values"));
    let pairs: Vec<(&str, u64)> = header
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .map(|(n, v)| (n, v.parse().expect("a counter")))
        .collect();
    names
        .iter()
        .map(|name| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| *v).expect("the counter exists"))
        .collect()
}

/// One player: connect, ask where to resume, read the answer. Returns the
/// time to connect, the time to the whole answer, and its status line.
async fn player(addr: std::net::SocketAddr, i: usize, start: Arc<Barrier>) -> (Duration, Duration, String) {
    start.wait().await;
    let began = Instant::now();
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return (began.elapsed(), began.elapsed(), "no connection".into());
    };
    let connected = began.elapsed();
    let request = format!(
        "GET /playback/resume?account_id=storm-{i}&profile_id=A&video_id=V1&device_id=tv HTTP/1.1\r\n\
         Host: playmark\r\nConnection: close\r\n\r\n"
    );
    let mut answer = Vec::new();
    if stream.write_all(request.as_bytes()).await.is_err() || stream.read_to_end(&mut answer).await.is_err() {
        return (connected, began.elapsed(), "the connection failed".into());
    }
    let status = String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned();
    (connected, began.elapsed(), status)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "reads namespace-wide kernel counters: scripts/test runs it alone"]
async fn a_storm_of_players_opening_at_once_is_answered_without_listen_overflows() {
    let (soft, _) = playmark_server::serve::raise_open_file_limit().expect("the open-file limit");
    assert!(
        soft > 2 * PLAYERS as u64 + 100,
        "this test needs {} open files; the limit is {soft}",
        2 * PLAYERS
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start_under(dir.path(), &[], None).await;
    let addr = server.addr;

    const COUNTERS: [&str; 2] = ["ListenOverflows", "ListenDrops"];
    let before = tcp_ext(&COUNTERS);
    let start = Arc::new(Barrier::new(PLAYERS));
    let players: Vec<_> = (0..PLAYERS).map(|i| tokio::spawn(player(addr, i, Arc::clone(&start)))).collect();
    let mut connects = Vec::with_capacity(PLAYERS);
    let mut answers = Vec::with_capacity(PLAYERS);
    for player in players {
        let (connected, answered, status) = player.await.expect("the player finished");
        assert!(status.starts_with("HTTP/1.1 200"), "a player got {status:?}");
        connects.push(connected);
        answers.push(answered);
    }
    let after = tcp_ext(&COUNTERS);
    connects.sort();
    answers.sort();
    println!(
        "{PLAYERS} players at once: connect p50 {:?} p99 {:?} max {:?}; connect + resume p50 {:?} p99 {:?} max {:?}; \
         listen overflows {}, drops {}",
        percentile(&connects, 0.5),
        percentile(&connects, 0.99),
        connects[PLAYERS - 1],
        percentile(&answers, 0.5),
        percentile(&answers, 0.99),
        answers[PLAYERS - 1],
        after[0] - before[0],
        after[1] - before[1],
    );
    assert_eq!(after[0] - before[0], 0, "the listen queue overflowed");
    assert_eq!(after[1] - before[1], 0, "the kernel dropped connection requests");
    server.child.start_kill().expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_files_pauses_accepting_briefly_and_serves_everyone() {
    // 96 files in all: the store and the runtime take some, so a few dozen
    // connections at once run the process out (EMFILE on accept).
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start_under(dir.path(), &["--max-connections", "1000"], Some(96)).await;
    let addr = server.addr;
    const PLAYERS: usize = 300;
    let start = Arc::new(Barrier::new(PLAYERS));
    let players: Vec<_> = (0..PLAYERS).map(|i| tokio::spawn(player(addr, i, Arc::clone(&start)))).collect();
    let mut answers = Vec::with_capacity(PLAYERS);
    for player in players {
        let (_, answered, status) = player.await.expect("the player finished");
        assert!(status.starts_with("HTTP/1.1 200"), "a player got {status:?}");
        answers.push(answered);
    }
    answers.sort();
    println!(
        "{PLAYERS} players at once on 96 files: connect + resume p50 {:?} p99 {:?} max {:?}",
        percentile(&answers, 0.5),
        percentile(&answers, 0.99),
        answers[PLAYERS - 1]
    );
    assert!(server.child.try_wait().expect("process state").is_none(), "the server died");
    let metrics =
        reqwest::get(format!("http://{addr}/metrics")).await.expect("metrics").text().await.expect("text");
    let errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("playmark_accept_errors_total "))
        .and_then(|v| v.parse().ok())
        .expect("the accept error counter");
    assert!(errors > 0.0, "the process never ran out of files: the test proves nothing");
    let mut warned = false;
    while let Ok(line) = server.logs.try_recv() {
        warned |= line.contains("cannot accept connections");
    }
    assert!(warned, "running out of files was not logged");
    server.child.start_kill().expect("stopped");
}
