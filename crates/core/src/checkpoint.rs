//! Turning untrusted request fields into a valid [`Checkpoint`].
//!
//! The HTTP layer only decodes JSON types; every rule about *values* lives here,
//! and every failure names the field a person has to fix.

use std::fmt;

use crate::{
    AccountId, DeviceId, Duration, IdError, Position, ProfileId, ProfileKey, Progress, ProgressKey, Series,
    SeriesId, Timestamp, VideoId,
};

/// How far past the known duration a position may be before it is rejected.
/// Players overshoot by a few frames or report a rounded duration; such a
/// position is clamped to the duration instead.
pub const POSITION_OVERSHOOT_SLACK_MS: u64 = 10_000;

/// The largest time accepted in a request: 2^53 - 1 ms (the largest
/// integer JSON carries exactly).
pub const MAX_SAFE_MILLIS: u64 = (1 << 53) - 1;

/// An invalid or missing request field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The field's name as the client sent it (`position`, `video_id`, ...).
    pub field: &'static str,
    /// A sentence a person can act on, starting with the field name.
    pub message: String,
}

impl FieldError {
    /// A field that must be given but was not.
    pub fn required(field: &'static str) -> Self {
        Self { field, message: format!("{field} is required") }
    }

    /// A field whose value breaks a rule; `problem` completes "`field` ...".
    pub fn invalid(field: &'static str, problem: impl fmt::Display) -> Self {
        Self { field, message: format!("{field} {problem}") }
    }
}

/// Parses a required id field, naming the field on failure.
pub fn parse_id<T>(
    field: &'static str,
    value: Option<String>,
    parse: impl FnOnce(String) -> Result<T, IdError>,
) -> Result<T, FieldError> {
    let value = value.ok_or_else(|| FieldError::required(field))?;
    parse(value).map_err(|e| FieldError::invalid(field, e))
}

/// Parses an optional `duration` in seconds.
pub fn parse_duration(duration: Option<f64>) -> Result<Option<Duration>, FieldError> {
    duration.map(Duration::from_secs).transpose().map_err(|e| FieldError::invalid("duration", e))
}

/// Parses an optional time in ms since the epoch (`updated_at`,
/// `resumed_from`). JSON numbers above 2^53 are not exact anywhere; beyond
/// that a time is a client bug, and stores keep times as signed 64-bit
/// integers.
pub fn parse_time(field: &'static str, ms: Option<u64>) -> Result<Option<Timestamp>, FieldError> {
    match ms {
        Some(ms) if ms > MAX_SAFE_MILLIS => {
            Err(FieldError::invalid(field, "must be a time in ms since the epoch"))
        }
        ms => Ok(ms.map(Timestamp::from_millis)),
    }
}

/// Parses the optional `series_id` and `episode` of a write: both or
/// neither, each naming itself when it is the one missing.
pub fn parse_series(series_id: Option<String>, episode: Option<u64>) -> Result<Option<Series>, FieldError> {
    match (series_id, episode) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(FieldError::invalid("series_id", "is required with episode")),
        (Some(_), None) => Err(FieldError::invalid("episode", "is required with series_id")),
        (Some(id), Some(episode)) => {
            let id = SeriesId::parse(id).map_err(|e| FieldError::invalid("series_id", e))?;
            let episode =
                u32::try_from(episode).ok().filter(|n| *n <= Series::MAX_EPISODE).ok_or_else(|| {
                    FieldError::invalid(
                        "episode",
                        format_args!("must be an integer from 0 to {}", Series::MAX_EPISODE),
                    )
                })?;
            Ok(Some(Series { id, episode }))
        }
    }
}

/// Parses the `(account_id, profile_id)` pair of a request.
pub fn parse_profile_key(
    account_id: Option<String>,
    profile_id: Option<String>,
) -> Result<ProfileKey, FieldError> {
    Ok(ProfileKey {
        account_id: parse_id("account_id", account_id, AccountId::parse)?,
        profile_id: parse_id("profile_id", profile_id, ProfileId::parse)?,
    })
}

/// Parses the `(account_id, profile_id, video_id)` triple of a request.
pub fn parse_progress_key(
    account_id: Option<String>,
    profile_id: Option<String>,
    video_id: Option<String>,
) -> Result<ProgressKey, FieldError> {
    let ProfileKey { account_id, profile_id } = parse_profile_key(account_id, profile_id)?;
    Ok(ProgressKey { account_id, profile_id, video_id: parse_id("video_id", video_id, VideoId::parse)? })
}

crate::wire_names! {
    /// What the player was doing when it sent a checkpoint.
    #[derive(Default)]
    pub enum PlayerEvent {
        /// A periodic progress report while playing.
        #[default]
        Progress = "progress",
        /// The viewer paused.
        Pause = "pause",
        /// Playback stopped (the viewer left the player).
        Stop = "stop",
        /// The app went to the background.
        Background = "background",
        /// The viewer deliberately jumped to a position.
        Seek = "seek",
    }
}

/// The fields of an update request, as decoded but not yet validated.
#[derive(Debug, Clone, Default)]
pub struct CheckpointInput {
    /// `account_id`, required.
    pub account_id: Option<String>,
    /// `profile_id`, required.
    pub profile_id: Option<String>,
    /// `video_id`, required.
    pub video_id: Option<String>,
    /// `position` in seconds, required.
    pub position: Option<f64>,
    /// `device_id`, required.
    pub device_id: Option<String>,
    /// `duration` in seconds, optional.
    pub duration: Option<f64>,
    /// `updated_at`, the client's event time in ms, optional.
    pub updated_at: Option<u64>,
    /// `event`, optional, defaults to `progress`.
    pub event: Option<PlayerEvent>,
    /// `resumed_from`, optional: the `updated_at` of the record the device
    /// resumed from or last wrote (arms the stale-device guard).
    pub resumed_from: Option<u64>,
    /// `series_id`, optional, with `episode`.
    pub series_id: Option<String>,
    /// `episode`, optional, with `series_id`.
    pub episode: Option<u64>,
}

/// A validated checkpoint, before the server decides its time.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Whose progress, in which title.
    pub key: ProgressKey,
    /// The device that sent it.
    pub device_id: DeviceId,
    /// Where the viewer is (clamped to the duration when slightly beyond it).
    pub position: Position,
    /// The title's length, if the player knows it.
    pub duration: Option<Duration>,
    /// The client's own event time, if it sent one.
    pub client_time: Option<Timestamp>,
    /// What the player was doing.
    pub event: PlayerEvent,
    /// The record the device last saw, if it said (see [`crate::StaleGuard`]).
    pub resumed_from: Option<Timestamp>,
    /// The series the title belongs to, if the player said.
    pub series: Option<Series>,
}

impl TryFrom<CheckpointInput> for Checkpoint {
    type Error = FieldError;

    fn try_from(input: CheckpointInput) -> Result<Self, FieldError> {
        let key = parse_progress_key(input.account_id, input.profile_id, input.video_id)?;
        let position = input.position.ok_or_else(|| FieldError::required("position"))?;
        let position = Position::from_secs(position).map_err(|e| FieldError::invalid("position", e))?;
        let device_id = parse_id("device_id", input.device_id, DeviceId::parse)?;
        let duration = parse_duration(input.duration)?;
        let position = match duration {
            Some(d) if position.as_millis() > d.as_millis() + POSITION_OVERSHOOT_SLACK_MS => {
                return Err(FieldError::invalid(
                    "position",
                    format_args!("must not be beyond duration ({} s)", d.as_secs()),
                ));
            }
            Some(d) if position.as_millis() > d.as_millis() => {
                Position::from_millis(d.as_millis()).map_err(|e| FieldError::invalid("position", e))?
            }
            _ => position,
        };
        let event = input.event.unwrap_or_default();
        let resumed_from = parse_time("resumed_from", input.resumed_from)?;
        let client_time = parse_time("updated_at", input.updated_at)?;
        let series = parse_series(input.series_id, input.episode)?;
        Ok(Checkpoint { key, device_id, position, duration, client_time, event, resumed_from, series })
    }
}

impl Checkpoint {
    /// The progress this checkpoint records, stamped with its resolved time.
    pub fn progress_at(&self, at: Timestamp) -> Progress {
        Progress {
            updated_at: at,
            device_id: self.device_id.clone(),
            position: self.position,
            duration: self.duration,
            hidden: false,
            finished: false,
            series: self.series.clone(),
            finished_at: None,
        }
    }

    /// The stale-device guard this checkpoint arms: none for a deliberate
    /// seek, nor without `resumed_from` (plain last-write-wins).
    pub fn guard(&self, max_regression_ms: u64) -> Option<crate::StaleGuard> {
        match (self.event, self.resumed_from) {
            (PlayerEvent::Seek, _) | (_, None) => None,
            (_, Some(resumed_from)) => Some(crate::StaleGuard { resumed_from, max_regression_ms }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> CheckpointInput {
        CheckpointInput {
            account_id: Some("acct-123".into()),
            profile_id: Some("A".into()),
            video_id: Some("V1".into()),
            position: Some(1200.5),
            device_id: Some("tv-livingroom".into()),
            duration: Some(3600.0),
            updated_at: Some(1_764_270_000_000),
            event: Some(PlayerEvent::Pause),
            resumed_from: None,
            series_id: None,
            episode: None,
        }
    }

    fn field_of(input: CheckpointInput) -> &'static str {
        Checkpoint::try_from(input).expect_err("input should be rejected").field
    }

    #[test]
    fn a_complete_input_is_accepted() {
        let c = Checkpoint::try_from(valid()).expect("valid input");
        assert_eq!(c.position.as_millis(), 1_200_500);
        assert_eq!(c.event, PlayerEvent::Pause);
        assert_eq!(c.client_time, Some(Timestamp::from_millis(1_764_270_000_000)));
    }

    #[test]
    fn each_missing_required_field_is_named() {
        assert_eq!(field_of(CheckpointInput { account_id: None, ..valid() }), "account_id");
        assert_eq!(field_of(CheckpointInput { profile_id: None, ..valid() }), "profile_id");
        assert_eq!(field_of(CheckpointInput { video_id: None, ..valid() }), "video_id");
        assert_eq!(field_of(CheckpointInput { position: None, ..valid() }), "position");
        assert_eq!(field_of(CheckpointInput { device_id: None, ..valid() }), "device_id");
    }

    #[test]
    fn optional_fields_may_be_absent() {
        let c = Checkpoint::try_from(CheckpointInput {
            duration: None,
            updated_at: None,
            event: None,
            ..valid()
        })
        .expect("valid input");
        assert_eq!((c.duration, c.client_time, c.event), (None, None, PlayerEvent::Progress));
    }

    #[test]
    fn invalid_values_are_named() {
        assert_eq!(field_of(CheckpointInput { position: Some(-1.0), ..valid() }), "position");
        assert_eq!(field_of(CheckpointInput { duration: Some(0.0), ..valid() }), "duration");
        assert_eq!(field_of(CheckpointInput { device_id: Some("tv 1".into()), ..valid() }), "device_id");
    }

    #[test]
    fn series_and_episode_come_together_and_each_names_itself() {
        let with = |series_id: Option<&str>, episode| CheckpointInput {
            series_id: series_id.map(str::to_owned),
            episode,
            ..valid()
        };
        assert_eq!(field_of(with(None, Some(3))), "series_id");
        assert_eq!(field_of(with(Some("show"), None)), "episode");
        assert_eq!(field_of(with(Some("a show"), Some(3))), "series_id");
        assert_eq!(field_of(with(Some("show"), Some(u64::from(Series::MAX_EPISODE) + 1))), "episode");
        let c = Checkpoint::try_from(with(Some("show"), Some(0))).expect("valid");
        assert_eq!(c.series.map(|s| (s.id.to_string(), s.episode)), Some(("show".to_owned(), 0)));
    }

    #[test]
    fn absurd_times_are_named() {
        let huge = Some(u64::MAX);
        assert_eq!(field_of(CheckpointInput { resumed_from: huge, ..valid() }), "resumed_from");
        assert_eq!(field_of(CheckpointInput { updated_at: huge, ..valid() }), "updated_at");
    }

    #[test]
    fn position_beyond_the_duration_is_rejected_past_the_slack() {
        let err = Checkpoint::try_from(CheckpointInput { position: Some(3610.001), ..valid() })
            .expect_err("beyond slack");
        assert_eq!(err.field, "position");
        assert!(err.message.contains("beyond duration"), "{}", err.message);
    }

    #[test]
    fn small_overshoot_is_clamped_to_the_duration() {
        let c = Checkpoint::try_from(CheckpointInput { position: Some(3605.0), ..valid() })
            .expect("within slack");
        assert_eq!(c.position.as_millis(), 3_600_000);
    }
}
