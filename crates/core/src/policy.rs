//! The player's checkpoint policy: when a player should send its position.
//!
//! Smart checkpointing (docs/design.md#checkpoint-policy): not every few
//! seconds, but when the
//! position moved at least `delta_ms` since the last checkpoint sent, when
//! the viewer pauses, seeks, stops or sends the app to the background, and
//! at least every `max_interval_ms` while playing. Never two sends in
//! flight: a checkpoint due while one is in flight (or while offline) waits,
//! and only the latest waiting one is kept, with its original event time. A
//! failed send is dropped, not retried: the next checkpoint reconciles.
//!
//! One [`CheckpointPolicy`] per title being played. It is a pure state
//! machine fed [`PlayerInput`]s; the SDKs wire it to a clock, a player and
//! an HTTP client. `docs/player-policy.md` states the same rules, and
//! `vectors/player-policy.json` holds the cases every SDK must pass.

use crate::PlayerEvent;

/// The policy's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Send when the position moved at least this much (ms). Default 30 000;
    /// 15 000 to 30 000 all serve (docs/design.md#checkpoint-policy).
    pub delta_ms: u64,
    /// While playing, send at least this often (ms) if the position changed.
    /// Default 60 000.
    pub max_interval_ms: u64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { delta_ms: 30_000, max_interval_ms: 60_000 }
    }
}

/// Something the player did or learned. Times are the client's clock (ms
/// since the epoch); positions are ms into the title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerInput {
    /// Playback started or resumed at `position`.
    Play {
        /// Client time.
        now: u64,
        /// Position.
        position: u64,
    },
    /// A periodic position report from the player (e.g. every second).
    Tick {
        /// Client time.
        now: u64,
        /// Position.
        position: u64,
    },
    /// The viewer paused.
    Pause {
        /// Client time.
        now: u64,
        /// Position.
        position: u64,
    },
    /// The viewer jumped to `position` on purpose.
    Seek {
        /// Client time.
        now: u64,
        /// Position.
        position: u64,
    },
    /// The app went to the background.
    Background {
        /// Client time.
        now: u64,
        /// Position.
        position: u64,
    },
    /// The app came back to the foreground.
    Foreground {
        /// Client time.
        now: u64,
    },
    /// Playback ended or the viewer left the player.
    Stop {
        /// Client time.
        now: u64,
        /// Position.
        position: u64,
    },
    /// The network went away.
    Offline {
        /// Client time.
        now: u64,
    },
    /// The network came back.
    Online {
        /// Client time.
        now: u64,
    },
    /// The send in flight finished (`ok`: acknowledged by the server).
    Sent {
        /// Client time.
        now: u64,
        /// Whether the server acknowledged it.
        ok: bool,
    },
}

/// A checkpoint to send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Send {
    /// Position, ms.
    pub position: u64,
    /// What the player was doing.
    pub event: PlayerEvent,
    /// When it happened (client clock, ms): the `updated_at` to send.
    pub at: u64,
}

crate::wire_names! {
    /// Why an input did not produce a send, for logs and the demo page (the
    /// names are those of `vectors/player-policy.json`).
    pub enum Skip {
        /// Nothing to send for this input.
        Nothing = "nothing",
        /// Not playing: ticks are ignored.
        NotPlaying = "not_playing",
        /// The position moved less than the delta and the interval has not passed.
        BelowDelta = "below_delta",
        /// The position is the one last sent.
        Unchanged = "unchanged",
        /// Due, but a send is in flight: kept as the one waiting checkpoint.
        QueuedInFlight = "queued_in_flight",
        /// Due, but offline: kept as the one waiting checkpoint.
        QueuedOffline = "queued_offline",
    }
}

/// The policy's state for one title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPolicy {
    config: CheckpointConfig,
    playing: bool,
    online: bool,
    in_flight: bool,
    last_position: Option<u64>,
    last_at: u64,
    pending: Option<Send>,
}

impl CheckpointPolicy {
    /// A fresh policy: online, not playing, nothing sent.
    pub fn new(config: CheckpointConfig) -> Self {
        Self {
            config,
            playing: false,
            online: true,
            in_flight: false,
            last_position: None,
            last_at: 0,
            pending: None,
        }
    }

    /// The checkpoint waiting to be sent, if any.
    pub fn pending(&self) -> Option<Send> {
        self.pending
    }

    /// Feeds one input; returns the checkpoint to send now, or why not.
    pub fn handle(&mut self, input: PlayerInput) -> Result<Send, Skip> {
        match input {
            PlayerInput::Play { now, position } => {
                self.playing = true;
                self.last_position.get_or_insert(position);
                // The periodic clock restarts with playback.
                self.last_at = now;
                Err(Skip::Nothing)
            }
            PlayerInput::Tick { now, position } => {
                if !self.playing {
                    return Err(Skip::NotPlaying);
                }
                let last = self.last_position.unwrap_or(position);
                let moved = position.abs_diff(last) >= self.config.delta_ms;
                let periodic =
                    now.saturating_sub(self.last_at) >= self.config.max_interval_ms && position != last;
                if moved || periodic {
                    self.emit(Send { position, event: PlayerEvent::Progress, at: now })
                } else {
                    Err(Skip::BelowDelta)
                }
            }
            PlayerInput::Pause { now, position } => {
                self.playing = false;
                self.emit_if_moved(Send { position, event: PlayerEvent::Pause, at: now })
            }
            PlayerInput::Stop { now, position } => {
                self.playing = false;
                self.emit_if_moved(Send { position, event: PlayerEvent::Stop, at: now })
            }
            PlayerInput::Background { now, position } => {
                self.emit_if_moved(Send { position, event: PlayerEvent::Background, at: now })
            }
            PlayerInput::Seek { now, position } => {
                self.emit_if_moved(Send { position, event: PlayerEvent::Seek, at: now })
            }
            PlayerInput::Foreground { .. } => Err(Skip::Nothing),
            PlayerInput::Offline { .. } => {
                self.online = false;
                Err(Skip::Nothing)
            }
            PlayerInput::Online { .. } => {
                self.online = true;
                self.flush()
            }
            PlayerInput::Sent { .. } => {
                // Acknowledged or failed, the slot is free; a failure is not
                // retried (the next checkpoint reconciles).
                self.in_flight = false;
                self.flush()
            }
        }
    }

    fn emit_if_moved(&mut self, send: Send) -> Result<Send, Skip> {
        if self.last_position == Some(send.position) {
            return Err(Skip::Unchanged);
        }
        self.emit(send)
    }

    /// Sends now, or keeps it as the one waiting checkpoint.
    fn emit(&mut self, send: Send) -> Result<Send, Skip> {
        self.last_position = Some(send.position);
        self.last_at = send.at;
        if !self.online {
            self.pending = Some(send);
            return Err(Skip::QueuedOffline);
        }
        if self.in_flight {
            self.pending = Some(send);
            return Err(Skip::QueuedInFlight);
        }
        self.in_flight = true;
        Ok(send)
    }

    /// Sends the waiting checkpoint if the slot is free and we are online.
    fn flush(&mut self) -> Result<Send, Skip> {
        if !self.online || self.in_flight {
            return Err(Skip::Nothing);
        }
        match self.pending.take() {
            Some(send) => {
                self.in_flight = true;
                Ok(send)
            }
            None => Err(Skip::Nothing),
        }
    }
}
