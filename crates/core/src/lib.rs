//! playmark's domain, free of I/O.
//!
//! Everything the service decides lives here, so it can be tested exhaustively
//! without a server, a disk or a clock:
//!
//! - [`ids`]: the validated identifiers (`AccountId`, `ProfileId`, `VideoId`,
//!   `DeviceId`) and the keys built from them ([`ProgressKey`], [`ProfileKey`]).
//! - [`time`]: [`Timestamp`] and the clock-skew clamp applied to client event times.
//! - [`position`]: [`Position`] and [`Duration`], seconds on the wire, integer
//!   milliseconds inside.
//! - [`entry`]: a stored [`Entry`] (a live [`Progress`] or a deletion tombstone),
//!   its total order and the last-write-wins merge rule.
//! - [`checkpoint`]: turning untrusted request fields into a valid [`Checkpoint`],
//!   with errors that name the offending field.
//! - [`resume`]: the [`ResumePolicy`] that turns a record into "resume at N" or
//!   "start over".
//! - [`library`]: history paging and next up: which item each series
//!   shows in continue-watching.
//! - [`watched`]: marking a title watched or unwatched by hand ([`Mark`]).
//! - [`handoff`]: the resume guardrails for a device that has its own
//!   position (ignore small regressions, prompt on big backward jumps).
//! - [`policy`]: the player's [`CheckpointPolicy`]: when to send a checkpoint.
//! - [`access`]: who may touch which progress: a verified [`Principal`]
//!   and the authorization decision.
//! - [`names`]: [`wire_names!`], which gives enums such as [`ResumeAction`]
//!   their one set of wire names (with `serde` and `utoipa` support behind
//!   the `serde` and `openapi` features).

#![warn(missing_docs)]

pub mod access;
pub mod checkpoint;
pub mod entry;
pub mod handoff;
pub mod ids;
pub mod library;
pub mod names;
pub mod policy;
pub mod position;
pub mod resume;
pub mod time;
pub mod watched;

pub use access::{Access, Denied, Principal, Scope, Scopes};
pub use checkpoint::{Checkpoint, CheckpointInput, FieldError, PlayerEvent};
pub use entry::{Entry, Outcome, Progress, Series, StaleGuard};
pub use handoff::{Handoff, HandoffConfig};
pub use ids::{AccountId, DeviceId, IdError, ProfileId, ProfileKey, ProgressKey, SeriesId, VideoId};
pub use policy::{CheckpointConfig, CheckpointPolicy, PlayerInput, Send, Skip};
pub use position::{Duration, Position, PositionError};
pub use resume::{ResumeAction, ResumeDecision, ResumePolicy, ResumeReason};
pub use time::{EventTime, Timestamp};
pub use watched::{Mark, MarkInput};
