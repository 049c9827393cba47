//! Simulated viewers: sessions, pauses, device switches, and the handoff
//! check.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use playmark_core::{CheckpointConfig, CheckpointPolicy, PlayerInput};
use serde::{Deserialize, Serialize};

use super::http::{Conn, Target};
use super::stats::{Recorder, Stats};
use super::{Checkpointing, LoadgenArgs, progress};

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
    /// Resumes after a switch that answered with less than the position
    /// the previous device had acknowledged. Must be 0.
    pub handoff_violations: u64,
    /// Resumes after a switch that got no answer to check (an error: it is
    /// counted with the resumes' errors too).
    pub handoffs_unanswered: u64,
    /// How long the run should have taken: the ramp, then one session at
    /// `--speedup`.
    pub scheduled_s: f64,
    /// How long it took.
    pub elapsed_s: f64,
    /// Writes per second the schedule asked for, and what was achieved.
    pub scheduled_writes_per_s: f64,
    /// Writes per second over the real run.
    pub achieved_writes_per_s: f64,
    /// How late simulation steps started against their schedule (the
    /// generator or the server falling behind), in ms.
    pub lag_p50_ms: f64,
    /// 99th percentile of the lag.
    pub lag_p99_ms: f64,
    /// The latest step.
    pub lag_max_ms: f64,
}

impl fmt::Display for Simulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sessions, {:.1} viewer-hours, {} writes ({:.1} per viewer-hour), {} handoffs, {} handoff violations, \
             {} handoffs unanswered\n\
             schedule: {:.1} s planned, {:.1} s taken; writes {:.0}/s planned, {:.0}/s achieved; \
             step lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.sessions,
            self.viewing_hours,
            self.writes,
            self.writes_per_viewer_hour,
            self.handoffs,
            self.handoff_violations,
            self.handoffs_unanswered,
            self.scheduled_s,
            self.elapsed_s,
            self.scheduled_writes_per_s,
            self.achieved_writes_per_s,
            self.lag_p50_ms,
            self.lag_p99_ms,
            self.lag_max_ms,
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
    /// Its resume request, built once.
    resume_path: String,
    /// Where and when the policy last sent (or playback started): what
    /// its next send depends on while the viewer just keeps watching.
    mark_ms: Option<u64>,
    mark_at_ms: u64,
}

impl Device {
    fn new(name: &'static str, account: &str, video: &str) -> Self {
        Self {
            name,
            policy: CheckpointPolicy::new(CHECKPOINTING),
            last_naive_s: 0,
            acknowledged: None,
            resume_path: format!(
                "/playback/resume?account_id={account}&profile_id=A&video_id={video}&device_id={name}"
            ),
            mark_ms: None,
            mark_at_ms: 0,
        }
    }

    fn play(&mut self, now_ms: u64, position_ms: u64) {
        let _ = self.policy.handle(PlayerInput::Play { now: now_ms, position: position_ms });
        self.mark_ms.get_or_insert(position_ms);
        self.mark_at_ms = now_ms;
    }

    /// Steps of uninterrupted playback, from `t` at `position_ms`, before
    /// the one at which this device may send: each step before it would be
    /// a tick the policy skips, so the simulation need not wake for it.
    fn quiet_steps(&self, checkpointing: Checkpointing, t: u64, position_ms: u64) -> u64 {
        let step_ms = STEP_S * 1000;
        let sending_step = match checkpointing {
            Checkpointing::Naive => (self.last_naive_s + NAIVE_EVERY_S).saturating_sub(t).div_ceil(STEP_S),
            Checkpointing::Smart => {
                let moved = position_ms.abs_diff(self.mark_ms.unwrap_or(position_ms));
                let by_delta = CHECKPOINTING.delta_ms.saturating_sub(moved).div_ceil(step_ms);
                let by_interval = (self.mark_at_ms + CHECKPOINTING.max_interval_ms)
                    .saturating_sub(t * 1000)
                    .div_ceil(step_ms);
                by_delta.min(by_interval)
            }
        };
        sending_step.max(1) - 1
    }
}

/// The players' checkpoint policy.
const CHECKPOINTING: CheckpointConfig = CheckpointConfig { delta_ms: 30_000, max_interval_ms: 60_000 };

/// What a resume answer holds that the simulation reads.
#[derive(Deserialize)]
struct Resumed {
    record: Option<ResumedRecord>,
}

#[derive(Deserialize)]
struct ResumedRecord {
    position: f64,
}

struct Session<'a> {
    conn: Conn,
    account: String,
    video: String,
    recorder: &'a Recorder,
    sim: Simulation,
    args: &'a LoadgenArgs,
}

impl Session<'_> {
    /// Asks where to resume; returns the answer's status (0: none, or no
    /// connection) and the position found.
    async fn resume(&mut self, device: &Device) -> (u16, Option<f64>) {
        let Some(answer) = self.conn.send(self.recorder, Method::GET, &device.resume_path, None).await else {
            return (0, None);
        };
        self.recorder.record("resume", answer.took, answer.status);
        let resumed: Option<Resumed> = serde_json::from_slice(&answer.body).ok();
        (answer.status, resumed.and_then(|r| r.record).map(|r| r.position))
    }

    async fn write(&mut self, device: &mut Device, position_ms: u64, event: &str) {
        let body = format!(
            r#"{{"account_id":"{}","profile_id":"A","video_id":"{}","position":{}.{:03},"device_id":"{}","duration":3600,"event":"{event}"}}"#,
            self.account,
            self.video,
            position_ms / 1000,
            position_ms % 1000,
            device.name,
        );
        self.sim.writes += 1;
        let Some(answer) =
            self.conn.send(self.recorder, Method::POST, "/playback/update", Some(body.into())).await
        else {
            return;
        };
        self.recorder.record("update", answer.took, answer.status);
        if answer.status == 200 {
            device.acknowledged = Some(position_ms as f64 / 1000.0);
        }
    }

    /// Feeds the policy (smart) or the 10-second rule (naive); writes what
    /// it says.
    async fn step(&mut self, device: &mut Device, input: PlayerInput, session_s: u64, position_ms: u64) {
        match self.args.checkpointing {
            Checkpointing::Smart => {
                if let Ok(send) = device.policy.handle(input) {
                    (device.mark_ms, device.mark_at_ms) = (Some(send.position), send.at);
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

/// Runs every viewer's session (all at once, or their starts spread over
/// `--ramp`), each step at its scheduled time; returns the request stats,
/// the wall time, and what the simulation saw.
pub async fn run(
    args: &LoadgenArgs,
    target: &Arc<Target>,
) -> (BTreeMap<String, Stats>, Duration, Simulation) {
    let session_s = args.session.as_secs().max(STEP_S);
    let recorder = Arc::new(Recorder::default());
    // HTTP/2: the viewers share a few connections, opened first.
    let mut shared = Vec::new();
    if args.http2 {
        for c in 0..args.connections.max(1) {
            let mut conn = Conn::new(target, c);
            conn.connect(&recorder).await;
            shared.push(conn);
        }
    }
    let bar = progress(args, args.viewers as u64, "viewers");
    let run_id =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let tick = Duration::from_secs_f64(STEP_S as f64 / args.speedup);
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.viewers)
        .map(|v| {
            let (args, bar, recorder) = (args.clone(), bar.clone(), Arc::clone(&recorder));
            let conn =
                if shared.is_empty() { Conn::new(target, v) } else { shared[v % shared.len()].share() };
            let target = Arc::clone(target);
            let begins = start + args.ramp.mul_f64(v as f64 / args.viewers as f64);
            tokio::spawn(async move {
                tokio::time::sleep_until(begins.into()).await;
                let mut rng = fastrand::Rng::with_seed(v as u64 + 7);
                let account = format!("viewer-{run_id}-{v}");
                let video = format!("V{}", v % 5);
                let mut s = Session {
                    conn,
                    recorder: &recorder,
                    sim: Simulation { sessions: 1, ..Simulation::default() },
                    args: &args,
                    account,
                    video,
                };
                let switch_at = (rng.f64() < args.switch_share).then(|| session_s * rng.u64(30..70) / 100);
                let pause = (rng.bool()).then(|| {
                    let at = session_s * rng.u64(10..60) / 100;
                    (at, at + rng.u64(60..180))
                });
                let mut device = Device::new("tv", &s.account, &s.video);
                let (status, resumed) = s.resume(&device).await;
                // What the viewer waited for when opening the app: the
                // connection and the first resume, from the planned start.
                recorder.record("start", begins.elapsed(), status);
                let mut position_ms = resumed.map_or(0, |p| (p * 1000.0) as u64);
                let now = |t: u64| t * 1000;
                device.play(0, position_ms);
                // The steps at which something other than a skipped tick
                // happens: the pause, its end, the switch, the end.
                let switch_step_t = switch_at.map(|at| at.div_ceil(STEP_S) * STEP_S);
                let events: Vec<u64> =
                    [pause.map(|p| p.0), pause.map(|p| p.1), switch_step_t, Some(session_s)]
                        .into_iter()
                        .flatten()
                        .collect();
                let mut t = 0;
                let mut step = 0u32;
                while t < session_s {
                    // Skip the steps that would only feed the policy a tick
                    // it ignores (or pass a pause): fewer wake-ups per viewer.
                    let next_event = events.iter().copied().filter(|&e| e > t).min().unwrap_or(session_s);
                    let until_event = (next_event - t) / STEP_S;
                    let paused_now = pause.is_some_and(|(from, to)| (from..to).contains(&t));
                    let quiet = if paused_now {
                        until_event.saturating_sub(1)
                    } else {
                        device
                            .quiet_steps(args.checkpointing, t, position_ms)
                            .min(until_event.saturating_sub(1))
                    };
                    step += u32::try_from(quiet).unwrap_or(0);
                    t += quiet * STEP_S;
                    if !paused_now {
                        position_ms += quiet * STEP_S * 1000;
                    }
                    step += 1;
                    // Each step at its time, not after the last one's
                    // requests: a generator or server that falls behind
                    // shows as lag instead of a quietly slower schedule.
                    let due = begins + tick * step;
                    tokio::time::sleep_until(due.into()).await;
                    recorder.record("lag", due.elapsed(), 200);
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
                        device.play(now(t), position_ms);
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
                        device = Device::new("phone", &s.account, &s.video);
                        device.last_naive_s = t;
                        // Another device: over HTTP/1.1, its own connection.
                        if !args.http2 {
                            s.conn = Conn::new(&target, v + args.viewers);
                        }
                        let (status, resumed) = s.resume(&device).await;
                        s.sim.handoffs += 1;
                        if status != 200 {
                            // No answer to check (counted as an error).
                            s.sim.handoffs_unanswered += 1;
                        } else if !handoff_ok(acknowledged, resumed) {
                            s.sim.handoff_violations += 1;
                        }
                        position_ms = resumed.map_or(position_ms, |p| (p * 1000.0) as u64);
                        device.play(now(t), position_ms);
                    }
                }
                s.step(&mut device, PlayerInput::Stop { now: now(t), position: position_ms }, t, position_ms)
                    .await;
                bar.inc(1);
                s.sim
            })
        })
        .collect();
    drop(shared);
    let mut sim = Simulation::default();
    for task in tasks {
        if let Ok(one) = task.await {
            sim.sessions += one.sessions;
            sim.writes += one.writes;
            sim.handoffs += one.handoffs;
            sim.handoff_violations += one.handoff_violations;
            sim.handoffs_unanswered += one.handoffs_unanswered;
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let mut stats = recorder.take();
    if let Some(lag) = stats.remove("lag") {
        let ms = |us: u64| us as f64 / 1000.0;
        sim.lag_p50_ms = ms(lag.latency.value_at_quantile(0.50));
        sim.lag_p99_ms = ms(lag.latency.value_at_quantile(0.99));
        sim.lag_max_ms = ms(lag.latency.max());
    }
    sim.viewing_hours = sim.sessions as f64 * session_s as f64 / 3600.0;
    sim.writes_per_viewer_hour =
        if sim.viewing_hours > 0.0 { sim.writes as f64 / sim.viewing_hours } else { 0.0 };
    sim.scheduled_s =
        (args.ramp + tick * u32::try_from(session_s / STEP_S).unwrap_or(u32::MAX)).as_secs_f64();
    sim.elapsed_s = elapsed.as_secs_f64();
    sim.scheduled_writes_per_s = sim.writes as f64 / sim.scheduled_s.max(1e-9);
    sim.achieved_writes_per_s = sim.writes as f64 / sim.elapsed_s.max(1e-9);
    (stats, elapsed, sim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_players_use_the_default_policy() {
        assert_eq!(CHECKPOINTING, CheckpointConfig::default());
    }

    #[test]
    fn the_handoff_check_wants_at_least_the_acknowledged_position() {
        assert!(handoff_ok(None, None));
        assert!(handoff_ok(Some(600.0), Some(600.0)));
        assert!(handoff_ok(Some(600.0), Some(660.0)));
        assert!(!handoff_ok(Some(600.0), Some(599.5)));
        assert!(!handoff_ok(Some(600.0), None), "an acknowledged position vanished");
    }
}
