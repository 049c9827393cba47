//! `playmark loadgen`: load a playmark the way viewers do, and measure it.
//!
//! - Raw modes (`resume`, `update`, `mixed`): at a fixed concurrency as fast
//!   as possible (closed loop), or at a fixed `--rate` (open loop, latency
//!   measured from each request's intended send time, so queueing shows).
//! - `viewers`: simulated sessions as docs/design.md#scale sizes them: resume
//!   at start, checkpoints while playing (smart: the shared policy; naive:
//!   every 10 s), a pause, and a share of sessions that switch device
//!   mid-way. After each switch the **handoff check**: the new device's
//!   resume must return at least the position the old device last had
//!   acknowledged. Time is compressed by `--speedup`.
//! - `--preload N`: bulk-loads N synthetic records through the batch
//!   endpoint first.
//!
//! Latencies go into HdrHistograms per request kind; the summary is a table
//! (or JSON with `--json`).

mod http;
mod stats;
mod viewers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::sync::Semaphore;

use http::Conn;
use stats::{Recorder, Stats};

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Only `GET /playback/resume`.
    Resume,
    /// Only `POST /playback/update`.
    Update,
    /// Both, `--update-share` of them updates.
    Mixed,
    /// Only `GET /playback/continue-watching` (`--limit`), for profile A
    /// of the accounts.
    ContinueWatching,
    /// Only `GET /playback/continue-watching?group=series` (`--limit`),
    /// for profile A of the accounts.
    ContinueWatchingBySeries,
    /// Only `GET /playback/history` (`--limit`, first page), for profile A
    /// of the accounts.
    History,
    /// Simulated viewers with sessions, pauses and device switches.
    Viewers,
    /// Open `--concurrency` keep-alive connections, one resume on each,
    /// and hold them open for `--duration` (the server's memory per
    /// connection).
    Hold,
}

/// How simulated players decide when to checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Checkpointing {
    /// The shared checkpoint policy (30 s moves, pause, stop, ...).
    Smart,
    /// Every 10 seconds, the naive baseline of docs/design.md#scale.
    Naive,
}

/// Every flag of `playmark loadgen`.
#[derive(Debug, Clone, Args)]
pub struct LoadgenArgs {
    /// The playmark to load, host:port.
    #[arg(long, env = "PLAYMARK_LOADGEN_TARGET", default_value = "127.0.0.1:8080")]
    pub target: String,
    /// What to send.
    #[arg(long, env = "PLAYMARK_LOADGEN_MODE", value_enum, default_value_t = Mode::Mixed)]
    pub mode: Mode,
    /// Connections (workers) in raw modes.
    #[arg(long, env = "PLAYMARK_LOADGEN_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,
    /// How long raw modes run.
    #[arg(long, env = "PLAYMARK_LOADGEN_DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Open loop: requests per second across all workers. 0 runs closed
    /// loop (each worker sends as soon as its last answer arrived).
    #[arg(long, env = "PLAYMARK_LOADGEN_RATE", default_value_t = 0.0)]
    pub rate: f64,
    /// In mixed mode, the share of requests that are updates (0 to 1).
    #[arg(long, env = "PLAYMARK_LOADGEN_UPDATE_SHARE", default_value_t = 0.5)]
    pub update_share: f64,
    /// Page size of the read modes (continue-watching, history), 1 to 100.
    #[arg(long, env = "PLAYMARK_LOADGEN_LIMIT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: u32,
    /// Distinct accounts in raw modes (each with profile A and titles V0..V4).
    #[arg(long, env = "PLAYMARK_LOADGEN_ACCOUNTS", default_value_t = 100_000)]
    pub accounts: u64,
    /// Raw modes: accounts are named PREFIX-0, PREFIX-1, ... (`acct` is
    /// what --preload loads).
    #[arg(long, env = "PLAYMARK_LOADGEN_ACCOUNT_PREFIX", default_value = "acct")]
    pub account_prefix: String,
    /// Viewers mode: simulated viewers, all watching at once.
    #[arg(long, env = "PLAYMARK_LOADGEN_VIEWERS", default_value_t = 200)]
    pub viewers: usize,
    /// Viewers mode: the simulated length of each session.
    #[arg(long, env = "PLAYMARK_LOADGEN_SESSION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub session: Duration,
    /// Viewers mode: simulated seconds per real second.
    #[arg(long, env = "PLAYMARK_LOADGEN_SPEEDUP", default_value_t = 60.0)]
    pub speedup: f64,
    /// Viewers mode: how players checkpoint.
    #[arg(long, env = "PLAYMARK_LOADGEN_CHECKPOINTING", value_enum, default_value_t = Checkpointing::Smart)]
    pub checkpointing: Checkpointing,
    /// Viewers mode: the share of sessions that switch device mid-way (0 to 1).
    #[arg(long, env = "PLAYMARK_LOADGEN_SWITCH_SHARE", default_value_t = 0.3)]
    pub switch_share: f64,
    /// Viewers mode: spread the sessions' starts evenly over this long (0:
    /// every player opens at once, a premiere's storm).
    #[arg(long, env = "PLAYMARK_LOADGEN_RAMP", default_value = "0s", value_parser = humantime::parse_duration)]
    pub ramp: Duration,
    /// Speak HTTP/2 with prior knowledge (h2c), multiplexing the workers or
    /// viewers over --connections connections, as a gateway would.
    #[arg(long, env = "PLAYMARK_LOADGEN_HTTP2")]
    pub http2: bool,
    /// With --http2: the connections requests are multiplexed over. (Over
    /// HTTP/1.1 each worker or viewer has its own.)
    #[arg(long, env = "PLAYMARK_LOADGEN_CONNECTIONS", default_value_t = 8)]
    pub connections: usize,
    /// Spread connections over the source addresses 127.0.0.1 ..
    /// 127.0.0.N (a loopback target only): each has its own ~28,000
    /// ephemeral ports.
    #[arg(long, env = "PLAYMARK_LOADGEN_SOURCES", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    pub sources: u8,
    /// Bulk-load this many synthetic records (accounts acct-0.., each with
    /// --preload-titles titles in profile A) before the run.
    #[arg(long, env = "PLAYMARK_LOADGEN_PRELOAD", default_value_t = 0)]
    pub preload: u64,
    /// Titles per preloaded profile: 5 matches the raw modes' V0..V4; one
    /// profile of 100,000 titles is `--preload 100000 --preload-titles
    /// 100000`.
    #[arg(long, env = "PLAYMARK_LOADGEN_PRELOAD_TITLES", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub preload_titles: u64,
    /// Preload every title watched to its end (finished: in history, not
    /// in continue-watching).
    #[arg(long, env = "PLAYMARK_LOADGEN_PRELOAD_FINISHED")]
    pub preload_finished: bool,
    /// Preload each profile's titles as episodes of this many series (S0,
    /// S1, ...; title n is episode n of series n mod this); 0: no series.
    #[arg(long, env = "PLAYMARK_LOADGEN_PRELOAD_SERIES", default_value_t = 0)]
    pub preload_series: u64,
    /// A bearer token sent with every request, for a node with --auth jwt
    /// (a `playback:admin` token reaches every simulated account).
    #[arg(long, env = "PLAYMARK_LOADGEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the results as JSON instead of a table.
    #[arg(long, env = "PLAYMARK_LOADGEN_JSON")]
    pub json: bool,
    /// No progress bar.
    #[arg(long, env = "PLAYMARK_LOADGEN_QUIET")]
    pub quiet: bool,
}

/// Runs the load and prints the results.
pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    anyhow::ensure!((0.0..=1.0).contains(&args.update_share), "--update-share must be from 0 to 1");
    anyhow::ensure!((0.0..=1.0).contains(&args.switch_share), "--switch-share must be from 0 to 1");
    anyhow::ensure!(args.concurrency > 0 && args.viewers > 0, "--concurrency and --viewers must be above 0");
    anyhow::ensure!(args.speedup > 0.0, "--speedup must be above 0");
    anyhow::ensure!(args.connections > 0, "--connections must be above 0");
    let target =
        Arc::new(http::Target::resolve(&args.target, args.token.as_deref(), args.http2, args.sources).await?);
    let mut report = serde_json::Map::new();
    if args.preload > 0 {
        let (loaded, took) = preload(&args, &target).await?;
        report.insert("preload".into(), json!({"records": loaded, "seconds": took.as_secs_f64()}));
        if !args.json {
            emit(&format!(
                "preloaded {loaded} records in {:.1} s ({:.0}/s)",
                took.as_secs_f64(),
                loaded as f64 / took.as_secs_f64()
            ))?;
        }
    }
    let (summary, elapsed, extra) = match args.mode {
        Mode::Viewers => {
            let (stats, elapsed, sim) = viewers::run(&args, &target).await;
            (stats::summarize(&stats, elapsed), elapsed, Some(sim))
        }
        Mode::Hold => {
            let (stats, elapsed) = hold(&args, &target).await;
            (stats::summarize(&stats, elapsed), elapsed, None)
        }
        _ => {
            let (stats, elapsed) = raw(&args, &target).await;
            (stats::summarize(&stats, elapsed), elapsed, None)
        }
    };
    if args.json {
        report.insert("mode".into(), json!(format!("{:?}", args.mode).to_lowercase()));
        report.insert("seconds".into(), json!(elapsed.as_secs_f64()));
        report.insert("protocol".into(), json!(if args.http2 { "h2c" } else { "http/1.1" }));
        report.insert("open_file_limit".into(), json!(playmark_server::serve::open_file_limit()));
        report.insert("summary".into(), serde_json::to_value(&summary)?);
        if let Some(sim) = &extra {
            report.insert("viewers".into(), serde_json::to_value(sim)?);
        }
        emit(&serde_json::Value::Object(report).to_string())?;
    } else {
        emit(stats::table(&summary).trim_end())?;
        if let Some(sim) = &extra {
            emit(&sim.to_string())?;
        }
    }
    let violations = extra.as_ref().map_or(0, |s| s.handoff_violations);
    anyhow::ensure!(
        violations == 0,
        "{violations} handoff violations: a resume returned less than an acknowledged position"
    );
    Ok(())
}

/// Prints one line of results. A reader that has gone away (`| head -1`)
/// is not worth a panic: the rest of the output is dropped.
fn emit(line: &str) -> std::io::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written,
    }
}

fn progress(args: &LoadgenArgs, len: u64, what: &str) -> ProgressBar {
    if args.quiet || args.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} {per_sec} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

fn checkpoint_body(account: &str, video: &str, position: f64, device: &str) -> String {
    json!({"account_id": account, "profile_id": "A", "video_id": video, "position": position,
           "device_id": device, "duration": 3600})
    .to_string()
}

/// Raw modes: `concurrency` workers until the duration ends.
///
/// Every connection is opened before the clock starts, so connection setup
/// (and a listen backlog overflowing when hundreds connect at once) is not
/// measured. In open loop a pacer thread releases one permit per request as
/// it falls due, checking every 100 µs: tokio's timers tick in whole
/// milliseconds, which would add up to a millisecond to every latency. The
/// first idle worker takes the permit; when none is idle, the permit waits
/// and its latency, counted from the intended send time, includes the wait.
async fn raw(args: &LoadgenArgs, target: &Arc<http::Target>) -> (BTreeMap<String, Stats>, Duration) {
    let recorder = Arc::new(Recorder::default());
    let mut conns: Vec<Conn> = Vec::with_capacity(args.concurrency);
    for w in 0..args.concurrency {
        let conn = if args.http2 && w >= args.connections {
            // Workers beyond --connections share one of the first.
            conns[w % args.connections].share()
        } else {
            let mut conn = Conn::new(target, w);
            // A failure here is recorded as a failed connect; each request
            // retries the connection.
            conn.connect(&recorder).await;
            conn
        };
        conns.push(conn);
    }
    let start = Instant::now();
    let deadline = start + args.duration;
    let pacer = (args.rate > 0.0).then(|| Pacer::start(start, args.duration, args.rate));
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let bar = progress(args, args.duration.as_secs(), &format!("{:?}", args.mode).to_lowercase());
    let ticker = {
        let (bar, done) = (bar.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                bar.set_position(start.elapsed().as_secs());
                bar.set_message(format!("{} requests", done.load(Ordering::Relaxed)));
            }
        })
    };
    let workers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(w, mut conn)| {
            let (args, next, done, recorder) =
                (args.clone(), Arc::clone(&next), Arc::clone(&done), Arc::clone(&recorder));
            let permits = pacer.as_ref().map(|p| Arc::clone(&p.permits));
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(w as u64 + 1);
                loop {
                    let due = match &permits {
                        Some(permits) => {
                            // Closed at the end of the run.
                            let Ok(permit) = permits.acquire().await else { break };
                            permit.forget();
                            start + stats::intended_offset(next.fetch_add(1, Ordering::Relaxed), args.rate)
                        }
                        None => {
                            let now = Instant::now();
                            if now >= deadline {
                                break;
                            }
                            now
                        }
                    };
                    let account = format!("{}-{}", args.account_prefix, rng.u64(0..args.accounts.max(1)));
                    let video = format!("V{}", rng.u8(0..5));
                    let kind = match args.mode {
                        Mode::Update => "update",
                        Mode::ContinueWatching => "continue_watching",
                        Mode::ContinueWatchingBySeries => "continue_watching_by_series",
                        Mode::History => "history",
                        Mode::Mixed if rng.f64() < args.update_share => "update",
                        _ => "resume",
                    };
                    let answer = match kind {
                        "update" => {
                            let body = checkpoint_body(&account, &video, f64::from(rng.u32(0..3600)), "tv");
                            conn.send(&recorder, Method::POST, "/playback/update", Some(body.into())).await
                        }
                        "continue_watching" | "continue_watching_by_series" | "history" => {
                            let limit = args.limit;
                            let path = match kind {
                                "history" => {
                                    format!("/playback/history?account_id={account}&profile_id=A&limit={limit}")
                                }
                                "continue_watching" => format!(
                                    "/playback/continue-watching?account_id={account}&profile_id=A&limit={limit}"
                                ),
                                _ => format!(
                                    "/playback/continue-watching?account_id={account}&profile_id=A&limit={limit}&group=series"
                                ),
                            };
                            conn.send(&recorder, Method::GET, &path, None).await
                        }
                        _ => {
                            let path = format!(
                                "/playback/resume?account_id={account}&profile_id=A&video_id={video}"
                            );
                            conn.send(&recorder, Method::GET, &path, None).await
                        }
                    };
                    // Not connected: the failed connect is recorded, the
                    // request was never sent.
                    if let Some(answer) = answer {
                        recorder.record(kind, due.elapsed(), answer.status);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    if let Some(pacer) = pacer {
        pacer.join();
    }
    ticker.abort();
    bar.finish_and_clear();
    (recorder.take(), start.elapsed())
}

/// Hold mode: `--concurrency` connections opened (spread over
/// `--sources`), a resume on each, then held idle for `--duration` while
/// the caller measures the server; closed at the end.
async fn hold(args: &LoadgenArgs, target: &Arc<http::Target>) -> (BTreeMap<String, Stats>, Duration) {
    let recorder = Arc::new(Recorder::default());
    let bar = progress(args, args.concurrency as u64, "connections");
    let start = Instant::now();
    // Opened a few hundred at a time: this measures memory, not a storm.
    let opened: Vec<Conn> = open_held(args, target, &recorder, &bar).await;
    bar.finish_and_clear();
    if !args.quiet && !args.json {
        eprintln!("holding {} connections for {:?}", opened.len(), args.duration);
    }
    tokio::time::sleep(args.duration).await;
    drop(opened);
    (recorder.take(), start.elapsed())
}

/// Opens the hold mode's connections, 256 at a time, each with one resume.
async fn open_held(
    args: &LoadgenArgs,
    target: &Arc<http::Target>,
    recorder: &Arc<Recorder>,
    bar: &ProgressBar,
) -> Vec<Conn> {
    let mut opened = Vec::with_capacity(args.concurrency);
    for chunk_start in (0..args.concurrency).step_by(256) {
        let chunk: Vec<_> = (chunk_start..(chunk_start + 256).min(args.concurrency))
            .map(|i| {
                let (target, recorder) = (Arc::clone(target), Arc::clone(recorder));
                tokio::spawn(async move {
                    let mut conn = Conn::new(&target, i);
                    let path = format!("/playback/resume?account_id=hold-{i}&profile_id=A&video_id=V1");
                    if let Some(answer) = conn.send(&recorder, Method::GET, &path, None).await {
                        recorder.record("resume", answer.took, answer.status);
                    }
                    conn
                })
            })
            .collect();
        for task in chunk {
            if let Ok(conn) = task.await {
                opened.push(conn);
                bar.inc(1);
            }
        }
    }
    opened
}

/// The open-loop clock: a thread that adds a permit for each request as it
/// falls due, and closes the permits when the run is over, once every
/// released permit has been taken. If the workers are still 60 s behind
/// then, the rest are not sent, and a warning says how many.
struct Pacer {
    permits: Arc<Semaphore>,
    thread: std::thread::JoinHandle<()>,
}

impl Pacer {
    fn start(start: Instant, duration: Duration, rate: f64) -> Self {
        let permits = Arc::new(Semaphore::new(0));
        let released = Arc::clone(&permits);
        let thread = std::thread::spawn(move || {
            let mut sent = 0u64;
            loop {
                let elapsed = start.elapsed();
                let due = stats::due_by(elapsed, duration, rate);
                released.add_permits(usize::try_from(due - sent).unwrap_or(usize::MAX));
                sent = due;
                if elapsed >= duration {
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            // Let the workers take what is still queued (bounded, in case
            // they are stuck on a server that stopped answering).
            let drain = Instant::now();
            while released.available_permits() > 0 && drain.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let unsent = released.available_permits();
            if unsent > 0 {
                eprintln!("loadgen: {unsent} due requests were not sent: the target stayed 60 s behind");
            }
            released.close();
        });
        Self { permits, thread }
    }

    fn join(self) {
        let _ = self.thread.join();
    }
}

/// Bulk-loads `--preload` records through `POST /playback/batch`, 500 per
/// request, 8 requests at a time.
async fn preload(args: &LoadgenArgs, target: &Arc<http::Target>) -> anyhow::Result<(u64, Duration)> {
    const PER_BATCH: u64 = 500;
    let total = args.preload;
    let batches = total.div_ceil(PER_BATCH);
    let titles = args.preload_titles;
    let (finished, series) = (args.preload_finished, args.preload_series);
    // Distinct, increasing times, so a profile's continue-watching order is
    // known (the newest record is the last one loaded).
    let base_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        - total
        - 60_000;
    let next = Arc::new(AtomicU64::new(0));
    let bar = progress(args, total, "preload");
    let start = Instant::now();
    let recorder = Arc::new(Recorder::default());
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (next, bar, recorder) = (Arc::clone(&next), bar.clone(), Arc::clone(&recorder));
            let mut conn = Conn::new(target, w);
            tokio::spawn(async move {
                let mut loaded = 0u64;
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        return Ok::<u64, anyhow::Error>(loaded);
                    }
                    let records = (b * PER_BATCH..((b + 1) * PER_BATCH).min(total))
                        .map(|r| {
                            let position = if finished { 3600.0 } else { (r % 3000) as f64 + 300.0 };
                            let mut record = json!({"account_id": format!("acct-{}", r / titles), "profile_id": "A",
                                   "video_id": format!("V{}", r % titles), "position": position,
                                   "device_id": "preload", "duration": 3600, "updated_at": base_ms + r});
                            if series > 0 {
                                record["series_id"] = json!(format!("S{}", (r % titles) % series));
                                record["episode"] = json!(r % titles);
                            }
                            record
                        })
                        .collect::<Vec<_>>();
                    let n = records.len() as u64;
                    let body = json!({"checkpoints": records}).to_string();
                    let answer =
                        conn.send(&recorder, Method::POST, "/playback/batch", Some(body.into())).await;
                    let status = answer.map(|a| a.status);
                    anyhow::ensure!(
                        status == Some(200),
                        "preload batch {b} failed: {}",
                        match status {
                            None => "cannot connect".to_owned(),
                            Some(0) => "no answer".to_owned(),
                            Some(s) => format!("HTTP {s}"),
                        }
                    );
                    loaded += n;
                    bar.inc(n);
                }
            })
        })
        .collect();
    let mut loaded = 0;
    for worker in workers {
        loaded += worker.await??;
    }
    bar.finish_and_clear();
    Ok((loaded, start.elapsed()))
}
