//! The real `playmark` binary as a child process: crash safety, signals,
//! help text, startup errors.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

mod storm;

const BIN: &str = env!("CARGO_BIN_EXE_playmark");

struct Server {
    child: Child,
    addr: SocketAddr,
    /// Every log line after "listening", collected until the process exits.
    logs: mpsc::UnboundedReceiver<String>,
}

/// Starts `playmark serve` on a free port over `data_dir`, and waits until it
/// says where it listens.
async fn start(data_dir: &Path) -> Server {
    start_with(data_dir, &[]).await
}

/// Like [`start`], with extra flags.
async fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
    start_under(data_dir, extra, None).await
}

/// Like [`start_with`], under `prlimit` with that many open files at most
/// when `open_files` is given.
async fn start_under(data_dir: &Path, extra: &[&str], open_files: Option<u32>) -> Server {
    let mut command = match open_files {
        Some(n) => {
            let mut prlimit = Command::new("prlimit");
            prlimit.arg(format!("--nofile={n}:{n}")).arg("--").arg(BIN);
            prlimit
        }
        None => Command::new(BIN),
    };
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("stdout readable") {
            let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
            if event["message"] == "playmark listening" {
                return event["addr"].as_str().expect("addr logged").parse().expect("addr parses");
            }
        }
        panic!("playmark exited before listening");
    })
    .await
    .expect("playmark listens within 30 s");
    let (tx, logs) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    Server { child, addr, logs }
}

/// `GET /playback/resume` for profile A of `account`, as JSON.
async fn resume(client: &reqwest::Client, server: &Server, account: &str, video: &str) -> Value {
    client
        .get(format!("http://{}/playback/resume", server.addr))
        .query(&[("account_id", account), ("profile_id", "A"), ("video_id", video)])
        .send()
        .await
        .expect("resume sent")
        .json()
        .await
        .expect("JSON answer")
}

#[derive(Debug, Clone)]
struct Acked {
    video: String,
    position: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_write_storm_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    kill_9_storm(dir.path(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_on_postgres_and_redis_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let postgres = playmark_testkit::shared::postgres_url().expect("shared PostgreSQL");
    let prefix = playmark_testkit::shared::unique_name("pm") + ":";
    let redis = playmark_testkit::shared::redis_url();
    let flags = [
        "--store",
        "postgres",
        "--postgres-url",
        &postgres,
        "--cache",
        "redis",
        "--redis-url",
        &redis,
        "--redis-key-prefix",
        &prefix,
    ];
    kill_9_storm(dir.path(), &flags).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_on_dynamodb_and_redis_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (endpoint, table) =
        (playmark_testkit::shared::moto_url(), playmark_testkit::shared::unique_name("pm"));
    let prefix = playmark_testkit::shared::unique_name("pm") + ":";
    let redis = playmark_testkit::shared::redis_url();
    let flags = [
        "--store",
        "dynamodb",
        "--dynamodb-endpoint",
        &endpoint,
        "--dynamodb-table",
        &table,
        "--cache",
        "redis",
        "--redis-url",
        &redis,
        "--redis-key-prefix",
        &prefix,
    ];
    kill_9_storm(dir.path(), &flags).await;
}

/// 16 writers send distinct checkpoints as fast as they can; the node is
/// killed with SIGKILL mid-flight, restarted with the same flags, and every
/// acknowledged checkpoint must be there.
async fn kill_9_storm(data_dir: &Path, flags: &[&str]) {
    // One account writing as fast as it can: far over a household's rate,
    // so the limit is off here.
    let flags = [flags, &["--account-rate", "0"]].concat();
    let mut server = start_with(data_dir, &flags).await;
    let url = format!("http://{}/playback/update", server.addr);
    let client = reqwest::Client::new();

    let (acks_tx, mut acks) = mpsc::unbounded_channel::<Acked>();
    for w in 0..16u64 {
        let (client, url, acks_tx) = (client.clone(), url.clone(), acks_tx.clone());
        tokio::spawn(async move {
            for i in 0..10_000u64 {
                let video = format!("w{w}-{i}");
                let position = 1 + w * 100_000 + i;
                let body = json!({"account_id": "acct", "profile_id": "A", "video_id": video,
                                  "position": position, "device_id": format!("dev-{w}")});
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        if acks_tx.send(Acked { video, position }).is_err() {
                            return;
                        }
                    }
                    // The server is gone: stop.
                    _ => return,
                }
            }
        });
    }
    drop(acks_tx);

    let mut acked = Vec::new();
    while acked.len() < 300 {
        acked.push(acks.recv().await.expect("writers keep acknowledging until the kill"));
    }
    server.child.start_kill().expect("SIGKILL sent");
    server.child.wait().await.expect("child reaped");
    // Acknowledgements already on their way back count too.
    while let Some(a) = acks.recv().await {
        acked.push(a);
    }

    let server = start_with(data_dir, &flags).await;
    for a in &acked {
        let answer = resume(&client, &server, "acct", &a.video).await;
        assert_eq!(answer["found"], true, "acknowledged write {a:?} was lost");
        assert_eq!(answer["position"], a.position, "acknowledged write {a:?} changed");
    }
    eprintln!("{} acknowledged writes all survived kill -9", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_with_exit_code_zero_and_keeps_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start(dir.path()).await;
    let client = reqwest::Client::new();
    let body =
        json!({"account_id": "acct", "profile_id": "A", "video_id": "V1", "position": 42, "device_id": "tv"});
    let status = client
        .post(format!("http://{}/playback/update", server.addr))
        .json(&body)
        .send()
        .await
        .expect("sent")
        .status();
    assert!(status.is_success());

    let pid = server.child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(sent.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("exits within 30 s")
        .expect("child reaped");
    assert!(exit.success(), "exit status {exit:?}");
    let mut logs = Vec::new();
    while let Ok(line) = server.logs.try_recv() {
        logs.push(line);
    }
    assert!(logs.iter().any(|l| l.contains("playmark stopped cleanly")), "{logs:#?}");

    let server = start(dir.path()).await;
    assert_eq!(resume(&client, &server, "acct", "V1").await["position"], 42);
}

/// Every flag of every subcommand has help text and a `PLAYMARK_*` env var:
/// read from `--help` itself, so a new flag cannot miss either.
#[test]
fn every_flag_has_help_and_an_env_var() {
    for command in ["serve", "loadgen", "token"] {
        let output = std::process::Command::new(BIN).args([command, "--help"]).output().expect("runs");
        assert!(output.status.success());
        let help = String::from_utf8(output.stdout).expect("utf-8");
        // Options start a line, indented at most 6, with `--name` (or `-x,
        // --name`); their text, indented deeper, runs until the next option.
        let mut options: Vec<(String, String)> = Vec::new();
        for line in help.lines().skip_while(|l| *l != "Options:") {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let flag =
                trimmed.strip_prefix("-h, ").or(Some(trimmed)).filter(|t| indent <= 6 && t.starts_with("--"));
            match flag {
                Some(flag) => {
                    let name = flag.split([' ', '=', '<']).next().unwrap_or_default().to_owned();
                    // Short help puts the text on the option's own line, after
                    // the value name.
                    let rest = flag[name.len()..].trim_start();
                    let rest = if rest.starts_with('<') {
                        rest.split_once('>').map_or("", |(_, r)| r)
                    } else {
                        rest
                    };
                    options.push((name, format!("{rest} ")));
                }
                None => {
                    if let Some((_, text)) = options.last_mut() {
                        text.push_str(line);
                        text.push(' ');
                    }
                }
            }
        }
        let options: Vec<_> =
            options.into_iter().filter(|(name, _)| name != "--help" && name != "--version").collect();
        assert!(options.len() >= 3, "{command}: no options found in:\n{help}");
        for (name, text) in options {
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(text.contains("[env: PLAYMARK_"), "{command} {name} has no PLAYMARK_* env var:\n{text}");
            let words = text.split("[env:").next().unwrap_or_default().split_whitespace().count();
            assert!(words >= 3, "{command} {name} has no help text: {text:?}");
        }
    }
}

#[test]
fn serving_a_public_address_without_auth_refuses_to_start_and_names_the_ways_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--auth jwt") && stderr.contains("--allow-unauthenticated"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playmark_token_mints_a_token_the_node_accepts_for_its_scope() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "process-test-secret\n").expect("write");
    let secret = secret.to_str().expect("utf-8 path");
    let data = dir.path().join("data");
    let server = start_with(&data, &["--auth", "jwt", "--jwt-secret-file", secret]).await;
    let mint = |scope: &str| {
        let output = std::process::Command::new(BIN)
            .args(["token", "--secret-file", secret, "--account", "acct", "--scope", scope, "--ttl", "5m"])
            .output()
            .expect("runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
    };
    let client = reqwest::Client::new();
    let url = format!("http://{}/playback/update", server.addr);
    let body = json!({"profile_id": "A", "video_id": "V1", "device_id": "tv", "position": 10});
    let read_only =
        client.post(&url).bearer_auth(mint("playback:read")).json(&body).send().await.expect("sent");
    assert_eq!(read_only.status(), reqwest::StatusCode::FORBIDDEN);
    let writer =
        client.post(&url).bearer_auth(mint("playback:write")).json(&body).send().await.expect("sent");
    assert_eq!(writer.status(), reqwest::StatusCode::OK);
    let anonymous = client.post(&url).json(&body).send().await.expect("sent");
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playmark_token_signs_with_a_private_key_whose_jwks_the_node_trusts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/tests/keys/ed25519.pem");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(BIN).arg("token").args(args).output().expect("runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
    };
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, run(&["--key-file", key, "--algorithm", "eddsa", "--kid", "ed-1", "--jwks"]))
        .expect("write");
    let server = start_with(
        &dir.path().join("data"),
        &["--auth", "jwt", "--jwt-jwks-file", jwks.to_str().expect("utf-8")],
    )
    .await;
    let token = run(&["--key-file", key, "--algorithm", "eddsa", "--kid", "ed-1", "--account", "acct"]);
    let answer = reqwest::Client::new()
        .get(format!("http://{}/playback/resume?profile_id=A&video_id=V1", server.addr))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
}

#[test]
fn a_bad_flag_value_is_a_readable_error() {
    let output =
        std::process::Command::new(BIN).args(["serve", "--max-clock-skew", "soon"]).output().expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--max-clock-skew"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _first = start(dir.path()).await;
    let output = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
}

/// Runs `playmark loadgen --json --quiet` with `args` against `server`.
async fn loadgen(server: &Server, args: &[&str]) -> Value {
    let output = Command::new(BIN)
        .args(["loadgen", "--target", &server.addr.to_string(), "--json", "--quiet"])
        .args(args)
        .output()
        .await
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "loadgen failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("loadgen printed no JSON ({e}): {stdout}"))
}

fn kind<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["summary"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["kind"] == kind))
        .expect("a row per kind")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_preloads_then_runs_a_mixed_load_without_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(dir.path()).await;
    let report = loadgen(
        &server,
        &[
            "--preload",
            "2000",
            "--mode",
            "mixed",
            "--duration",
            "1s",
            "--concurrency",
            "4",
            "--accounts",
            "400",
        ],
    )
    .await;
    assert_eq!(report["preload"]["records"], 2000);
    for k in ["resume", "update"] {
        let row = kind(&report, k);
        assert!(row["requests"].as_u64() > Some(0), "{row}");
        assert_eq!(row["errors"], 0, "{row}");
        assert!(row["p50_ms"].as_f64() <= row["p99_ms"].as_f64());
    }
    // Preloaded titles are there.
    assert_eq!(resume(&reqwest::Client::new(), &server, "acct-399", "V4").await["found"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_open_loop_sends_about_the_rate_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(dir.path()).await;
    let report =
        loadgen(&server, &["--mode", "resume", "--rate", "200", "--duration", "1s", "--concurrency", "8"])
            .await;
    let requests = kind(&report, "resume")["requests"].as_u64().expect("count");
    // An open loop sends what is due, no more: at most rate x duration.
    assert!((1..=200).contains(&requests), "{requests} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_viewers_switch_devices_without_handoff_violations_and_smart_writes_less() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 3600x: each simulated viewer sends an hour's checkpoints a second,
    // far over a household's rate, so the limit is off here.
    let server = start_with(dir.path(), &["--account-rate", "0"]).await;
    let run = |mode: &'static str| {
        let server = &server;
        async move {
            loadgen(
                server,
                &[
                    "--mode",
                    "viewers",
                    "--viewers",
                    "20",
                    "--session",
                    "30m",
                    "--speedup",
                    "3600",
                    "--switch-share",
                    "1",
                    "--checkpointing",
                    mode,
                ],
            )
            .await
        }
    };
    let smart = run("smart").await;
    let naive = run("naive").await;
    for report in [&smart, &naive] {
        assert_eq!(report["viewers"]["handoffs"], 20, "{report}");
        assert_eq!(report["viewers"]["handoff_violations"], 0, "{report}");
        assert_eq!(kind(report, "update")["errors"], 0);
    }
    let (s, n) =
        (smart["viewers"]["writes"].as_u64().expect("n"), naive["viewers"]["writes"].as_u64().expect("n"));
    assert!(s * 3 <= n, "smart {s} writes vs naive {n}");
}
