//! The Rust SDK for playmark.
//!
//! - [`Client`]: every endpoint, typed, with a per-request timeout, bounded
//!   retries with full jitter (network errors, 503 and 429 only: every playmark
//!   write is a conditional merge, so a retry is at worst a `duplicate`), and
//!   one pooled HTTP connection set.
//! - [`Tokens`]: bearer tokens for a playmark with `--auth jwt`, fixed or
//!   from an async provider that is asked again after a 401.
//! - [`Player`]: one title on one device. Feed it what the player does
//!   (`play`, `tick`, `pause`, ...); it applies the shared
//!   [`CheckpointPolicy`](playmark_core::CheckpointPolicy) (smart
//!   checkpointing) and sends what the policy says, with the stale-device
//!   guard armed. See `docs/player-policy.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), playmark_client::Error> {
//! use playmark_client::{Client, Player, TitleKey};
//! let client = Client::new("http://127.0.0.1:8080")?;
//! let key = TitleKey::new("acct-123", "A", "V1");
//! let mut tv = Player::new(client, key, "tv-livingroom").with_duration(3600.0);
//! let start = tv.resume(None).await?; // where to start, with the guardrails
//! let at = start.position.as_secs();
//! tv.play(at).await?;
//! tv.tick(at + 31.0).await?; // sends: moved 30 s
//! tv.pause(at + 40.0).await?; // sends: paused
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod client;
mod player;
mod token;
mod types;

pub use client::{Client, ClientBuilder, Error};
pub use player::{Player, Report};
pub use playmark_wire::{
    BatchItem, ErrorCode, HistoryResponse, NextUp, PlayerEvent, Record, ResumeAction, ResumeReason,
    ResumeResponse, Seconds, ShelfItem, UpdateOutcome, UpdateResponse,
};
pub use token::{TokenFuture, Tokens};
pub use types::{Checkpoint, Mark, ProfileKey, TitleKey};
