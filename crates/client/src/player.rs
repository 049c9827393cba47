//! One title on one device: the shared checkpoint policy wired to the client.

use playmark_core::{CheckpointConfig, CheckpointPolicy, PlayerEvent, PlayerInput, Skip};
use playmark_wire::{ErrorCode, ResumeResponse, UpdateOutcome};

use crate::client::{Client, Error};
use crate::types::{Checkpoint, TitleKey};

/// What one player action led to.
#[derive(Debug, Default)]
pub struct Report {
    /// Checkpoints sent and acknowledged: `(position seconds, event, outcome)`.
    pub sent: Vec<(f64, PlayerEvent, UpdateOutcome)>,
    /// Why nothing was sent, when nothing was.
    pub skipped: Option<Skip>,
    /// Sends that failed (dropped; the next checkpoint reconciles).
    pub failed: Vec<String>,
    /// A stale-device conflict: ask the viewer. Holds the error with the
    /// standing record.
    pub conflict: Option<Error>,
}

/// A player for one title on one device.
pub struct Player {
    client: Client,
    key: TitleKey,
    device_id: String,
    duration: Option<f64>,
    /// The series and episode, sent with every checkpoint.
    series: Option<(String, u32)>,
    policy: CheckpointPolicy,
    /// The `updated_at` of the record this device resumed from or last
    /// wrote: sent as `resumed_from`.
    seen: Option<u64>,
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("key", &self.key)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(secs: f64) -> u64 {
    // Positions are at most 30 days: far inside u64.
    (secs.max(0.0) * 1000.0).round() as u64
}

impl Player {
    /// A player with the default policy (30 s delta, 60 s interval).
    pub fn new(client: Client, key: TitleKey, device_id: impl Into<String>) -> Self {
        Self {
            client,
            key,
            device_id: device_id.into(),
            duration: None,
            series: None,
            policy: CheckpointPolicy::new(CheckpointConfig::default()),
            seen: None,
            clock: Box::new(system_now),
        }
    }

    /// The title's length, sent with every checkpoint.
    pub fn with_duration(mut self, seconds: f64) -> Self {
        self.duration = Some(seconds);
        self
    }

    /// The series the title belongs to and its episode, sent with every
    /// checkpoint (for history and next up).
    pub fn with_series(mut self, series_id: impl Into<String>, episode: u32) -> Self {
        self.series = Some((series_id.into(), episode));
        self
    }

    /// Another policy configuration.
    pub fn with_policy(mut self, config: CheckpointConfig) -> Self {
        self.policy = CheckpointPolicy::new(config);
        self
    }

    /// Another clock (ms since the epoch), e.g. for simulations.
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Asks where to start, with this device's own position if it has one,
    /// and remembers the record for the stale-device guard.
    pub async fn resume(&mut self, local_position: Option<f64>) -> Result<ResumeResponse, Error> {
        let answer = self.client.resume(&self.key, Some(&self.device_id), local_position).await?;
        self.seen = answer.record.as_ref().map(|r| r.updated_at);
        Ok(answer)
    }

    /// Playback started at `position` seconds.
    pub async fn play(&mut self, position: f64) -> Result<Report, Error> {
        let now = (self.clock)();
        self.handle(PlayerInput::Play { now, position: ms(position) }).await
    }

    /// The player's periodic position report.
    pub async fn tick(&mut self, position: f64) -> Result<Report, Error> {
        let now = (self.clock)();
        self.handle(PlayerInput::Tick { now, position: ms(position) }).await
    }

    /// The viewer paused.
    pub async fn pause(&mut self, position: f64) -> Result<Report, Error> {
        let now = (self.clock)();
        self.handle(PlayerInput::Pause { now, position: ms(position) }).await
    }

    /// The viewer jumped to `position` on purpose.
    pub async fn seek(&mut self, position: f64) -> Result<Report, Error> {
        let now = (self.clock)();
        self.handle(PlayerInput::Seek { now, position: ms(position) }).await
    }

    /// The app went to the background.
    pub async fn background(&mut self, position: f64) -> Result<Report, Error> {
        let now = (self.clock)();
        self.handle(PlayerInput::Background { now, position: ms(position) }).await
    }

    /// Playback ended or the viewer left.
    pub async fn stop(&mut self, position: f64) -> Result<Report, Error> {
        let now = (self.clock)();
        self.handle(PlayerInput::Stop { now, position: ms(position) }).await
    }

    /// The network went away: checkpoints wait (only the latest).
    pub async fn offline(&mut self) -> Result<Report, Error> {
        let now = (self.clock)();
        self.handle(PlayerInput::Offline { now }).await
    }

    /// The network is back: the waiting checkpoint goes out.
    pub async fn online(&mut self) -> Result<Report, Error> {
        let now = (self.clock)();
        self.handle(PlayerInput::Online { now }).await
    }

    /// Feeds the policy and performs the sends it asks for, one at a time.
    /// Errors only for programming errors (a bad key); failed sends are
    /// reported, not returned.
    pub async fn handle(&mut self, input: PlayerInput) -> Result<Report, Error> {
        let mut report = Report::default();
        let mut decision = self.policy.handle(input);
        if let Err(skip) = decision {
            report.skipped = Some(skip);
        }
        while let Ok(send) = decision {
            let checkpoint = Checkpoint {
                key: self.key.clone(),
                position: send.position as f64 / 1000.0,
                device_id: self.device_id.clone(),
                duration: self.duration,
                updated_at: Some(send.at),
                event: Some(send.event),
                resumed_from: self.seen,
                series_id: self.series.as_ref().map(|(id, _)| id.clone()),
                episode: self.series.as_ref().map(|(_, n)| *n),
            };
            let ok = match self.client.update(&checkpoint).await {
                Ok(answer) => {
                    if answer.outcome == UpdateOutcome::Applied {
                        self.seen = answer.record.as_ref().map(|r| r.updated_at).or(self.seen);
                    }
                    report.sent.push((checkpoint.position, send.event, answer.outcome));
                    true
                }
                Err(e @ Error::Api { code: ErrorCode::InvalidRequest, .. }) => return Err(e),
                Err(e) if e.is_conflict() => {
                    report.conflict = Some(e);
                    true
                }
                Err(e) => {
                    report.failed.push(e.to_string());
                    false
                }
            };
            let now = (self.clock)();
            decision = self.policy.handle(PlayerInput::Sent { now, ok });
        }
        if report.sent.is_empty() && report.skipped.is_none() {
            report.skipped = Some(Skip::Nothing);
        }
        Ok(report)
    }
}
