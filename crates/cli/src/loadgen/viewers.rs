//! Simulated viewers: sessions, pauses, device switches, and the handoff
//! check.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use hyper::Method;
use playmark_core::{CheckpointConfig, CheckpointPolicy, PlayerInput};
use serde::Serialize;
use serde_json::Value;

use super::http::Conn;
use super::stats::Stats;
use super::{Checkpointing, LoadgenArgs, checkpoint_body, progress};

/// Simulated seconds per simulation step.
const STEP_S: u64 = 5;
/// The naive client's interval, seconds.
const NAIVE_EVERY_S: u64 = 10;

/// What the simulation saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Simulation {
    /// Sessions simulated.
    pub sessions: u64,
    /// Simulated hours of viewing (sessions x session length).
    pub viewing_hours: f64,
    /// Checkpoints written.
    pub writes: u64,
    /// Writes per viewer-hour.
    pub writes_per_viewer_hour: f64,
    /// Device switches checked.
    pub handoffs: u64,
    /// Resumes after a switch that returned less than the position the
    /// previous device had acknowledged. Must be 0.
    pub handoff_violations: u64,
}

impl fmt::Display for Simulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sessions, {:.1} viewer-hours, {} writes ({:.1} per viewer-hour), {} handoffs, {} handoff violations",
            self.sessions,
            self.viewing_hours,
            self.writes,
            self.writes_per_viewer_hour,
            self.handoffs,
            self.handoff_violations
        )
    }
}

/// The handoff check: the new device must resume at or after what the old
/// one had acknowledged (`None`: nothing was acknowledged yet).
pub fn handoff_ok(acknowledged: Option<f64>, resumed: Option<f64>) -> bool {
    match (acknowledged, resumed) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(r)) => r >= a,
    }
}

/// One device playing one title.
struct Device {
    name: &'static str,
    policy: CheckpointPolicy,
    last_naive_s: u64,
    acknowledged: Option<f64>,
}

impl Device {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            policy: CheckpointPolicy::new(CheckpointConfig::default()),
            last_naive_s: 0,
            acknowledged: None,
        }
    }
}

struct Session<'a> {
    conn: Conn,
    account: String,
    video: String,
    stats: BTreeMap<String, Stats>,
    sim: Simulation,
    args: &'a LoadgenArgs,
}

impl Session<'_> {
    async fn resume(&mut self, device: &str) -> Option<f64> {
        let path = format!(
            "/playback/resume?account_id={}&profile_id=A&video_id={}&device_id={device}",
            self.account, self.video
        );
        let started = Instant::now();
        let (status, body) = self.conn.send(Method::GET, &path, None).await;
        self.stats.entry("resume".into()).or_default().record(started.elapsed(), status);
        let answer: Value = serde_json::from_slice(&body).ok()?;
        answer["record"]["position"].as_f64()
    }

    async fn write(&mut self, device: &mut Device, position_ms: u64, event: &str) {
        let mut body: Value = serde_json::from_str(&checkpoint_body(
            &self.account,
            &self.video,
            position_ms as f64 / 1000.0,
            device.name,
        ))
        .unwrap_or_default();
        body["event"] = Value::from(event);
        let started = Instant::now();
        let (status, _) = self.conn.send(Method::POST, "/playback/update", Some(body.to_string())).await;
        self.stats.entry("update".into()).or_default().record(started.elapsed(), status);
        self.sim.writes += 1;
        if status == 200 {
            device.acknowledged = Some(position_ms as f64 / 1000.0);
        }
    }

    /// Feeds the policy (smart) or the 10-second rule (naive); writes what
    /// it says.
    async fn step(&mut self, device: &mut Device, input: PlayerInput, session_s: u64, position_ms: u64) {
        match self.args.checkpointing {
            Checkpointing::Smart => {
                if let Ok(send) = device.policy.handle(input) {
                    self.write(device, send.position, send.event.as_str()).await;
                    let _ = device.policy.handle(PlayerInput::Sent { now: send.at, ok: true });
                }
            }
            Checkpointing::Naive => {
                if session_s >= device.last_naive_s + NAIVE_EVERY_S {
                    device.last_naive_s = session_s;
                    self.write(device, position_ms, "progress").await;
                }
            }
        }
    }
}

/// Runs every viewer's session at once; returns the request stats, the wall
/// time, and what the simulation saw.
pub async fn run(args: &LoadgenArgs) -> (BTreeMap<String, Stats>, Duration, Simulation) {
    let start = Instant::now();
    let session_s = args.session.as_secs().max(STEP_S);
    let bar = progress(args, args.viewers as u64, "viewers");
    let run_id =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let tasks: Vec<_> = (0..args.viewers)
        .map(|v| {
            let (args, bar) = (args.clone(), bar.clone());
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(v as u64 + 7);
                let mut s = Session {
                    conn: Conn::new(&args.target, args.token.as_deref()),
                    account: format!("viewer-{run_id}-{v}"),
                    video: format!("V{}", v % 5),
                    stats: BTreeMap::new(),
                    sim: Simulation { sessions: 1, ..Simulation::default() },
                    args: &args,
                };
                let switch_at = (rng.f64() < args.switch_share).then(|| session_s * rng.u64(30..70) / 100);
                let pause = (rng.bool()).then(|| {
                    let at = session_s * rng.u64(10..60) / 100;
                    (at, at + rng.u64(60..180))
                });
                let tick = Duration::from_secs_f64(STEP_S as f64 / args.speedup);
                let mut device = Device::new("tv");
                let mut position_ms = s.resume(device.name).await.map_or(0, |p| (p * 1000.0) as u64);
                let now = |t: u64| t * 1000;
                let _ = device.policy.handle(PlayerInput::Play { now: 0, position: position_ms });
                let mut t = 0;
                while t < session_s {
                    tokio::time::sleep(tick).await;
                    t += STEP_S;
                    let paused = pause.is_some_and(|(from, to)| (from..to).contains(&t));
                    if pause.is_some_and(|(from, _)| t == from) {
                        s.step(
                            &mut device,
                            PlayerInput::Pause { now: now(t), position: position_ms },
                            t,
                            position_ms,
                        )
                        .await;
                    } else if pause.is_some_and(|(_, to)| t == to) {
                        let _ =
                            device.policy.handle(PlayerInput::Play { now: now(t), position: position_ms });
                    }
                    if !paused {
                        position_ms += STEP_S * 1000;
                        s.step(
                            &mut device,
                            PlayerInput::Tick { now: now(t), position: position_ms },
                            t,
                            position_ms,
                        )
                        .await;
                    }
                    if switch_at.is_some_and(|at| t >= at && at > t - STEP_S) {
                        // The viewer stops on the TV and picks up the phone.
                        if s.args.checkpointing == Checkpointing::Naive || device.acknowledged.is_none() {
                            s.write(&mut device, position_ms, "stop").await;
                        } else {
                            s.step(
                                &mut device,
                                PlayerInput::Stop { now: now(t), position: position_ms },
                                t,
                                position_ms,
                            )
                            .await;
                        }
                        let acknowledged = device.acknowledged;
                        device = Device::new("phone");
                        device.last_naive_s = t;
                        let resumed = s.resume(device.name).await;
                        s.sim.handoffs += 1;
                        if !handoff_ok(acknowledged, resumed) {
                            s.sim.handoff_violations += 1;
                        }
                        position_ms = resumed.map_or(position_ms, |p| (p * 1000.0) as u64);
                        let _ =
                            device.policy.handle(PlayerInput::Play { now: now(t), position: position_ms });
                    }
                }
                s.step(&mut device, PlayerInput::Stop { now: now(t), position: position_ms }, t, position_ms)
                    .await;
                bar.inc(1);
                (s.stats, s.sim)
            })
        })
        .collect();
    let mut stats: BTreeMap<String, Stats> = BTreeMap::new();
    let mut sim = Simulation::default();
    for task in tasks {
        if let Ok((s, one)) = task.await {
            for (kind, st) in s {
                stats.entry(kind).or_default().merge(&st);
            }
            sim.sessions += one.sessions;
            sim.writes += one.writes;
            sim.handoffs += one.handoffs;
            sim.handoff_violations += one.handoff_violations;
        }
    }
    bar.finish_and_clear();
    sim.viewing_hours = sim.sessions as f64 * session_s as f64 / 3600.0;
    sim.writes_per_viewer_hour =
        if sim.viewing_hours > 0.0 { sim.writes as f64 / sim.viewing_hours } else { 0.0 };
    (stats, start.elapsed(), sim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handoff_check_wants_at_least_the_acknowledged_position() {
        assert!(handoff_ok(None, None));
        assert!(handoff_ok(Some(600.0), Some(600.0)));
        assert!(handoff_ok(Some(600.0), Some(660.0)));
        assert!(!handoff_ok(Some(600.0), Some(599.5)));
        assert!(!handoff_ok(Some(600.0), None), "an acknowledged position vanished");
    }
}
