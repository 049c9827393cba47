//! Marking a title watched or unwatched by hand ("mark as played").
//!
//! A mark is a checkpoint with a decided outcome: it goes through the same
//! last-write-wins merge as any checkpoint ([`crate::Entry::merge`]), so a
//! late checkpoint from an old device cannot undo a newer mark, and a newer
//! checkpoint (a rewatch) undoes an older one.

use crate::checkpoint::{parse_duration, parse_id, parse_progress_key, parse_series, parse_time};
use crate::{DeviceId, Duration, FieldError, Position, Progress, ProgressKey, Series, Timestamp};

/// The fields of a mark request, as decoded but not yet validated.
#[derive(Debug, Clone, Default)]
pub struct MarkInput {
    /// `account_id`, required.
    pub account_id: Option<String>,
    /// `profile_id`, required.
    pub profile_id: Option<String>,
    /// `video_id`, required.
    pub video_id: Option<String>,
    /// `device_id`, required: the device the viewer marked it on.
    pub device_id: Option<String>,
    /// `watched`, required.
    pub watched: Option<bool>,
    /// `duration` in seconds, optional.
    pub duration: Option<f64>,
    /// `updated_at`, the client's event time in ms, optional.
    pub updated_at: Option<u64>,
    /// `series_id`, optional, with `episode`.
    pub series_id: Option<String>,
    /// `episode`, optional, with `series_id`.
    pub episode: Option<u64>,
}

/// A validated mark, before the server decides its time.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Whose progress, in which title.
    pub key: ProgressKey,
    /// The device it was marked on.
    pub device_id: DeviceId,
    /// Watched (`true`) or not watched (`false`).
    pub watched: bool,
    /// The title's length, if the player knows it.
    pub duration: Option<Duration>,
    /// The client's own event time, if it sent one.
    pub client_time: Option<Timestamp>,
    /// The series the title belongs to, if the player said.
    pub series: Option<Series>,
}

impl TryFrom<MarkInput> for Mark {
    type Error = FieldError;

    fn try_from(input: MarkInput) -> Result<Self, FieldError> {
        let key = parse_progress_key(input.account_id, input.profile_id, input.video_id)?;
        let device_id = parse_id("device_id", input.device_id, DeviceId::parse)?;
        let watched = input.watched.ok_or_else(|| FieldError::required("watched"))?;
        let duration = parse_duration(input.duration)?;
        let client_time = parse_time("updated_at", input.updated_at)?;
        let series = parse_series(input.series_id, input.episode)?;
        Ok(Mark { key, device_id, watched, duration, client_time, series })
    }
}

impl Mark {
    /// The progress this mark records, stamped with its resolved time.
    ///
    /// - Watched: finished, at the end (the duration, when known; otherwise
    ///   0, since a finished title starts over anyway). It leaves
    ///   continue-watching, and resume starts over.
    /// - Not watched: not finished, at the start, and hidden, so the title
    ///   leaves continue-watching until the viewer plays it again (the next
    ///   checkpoint is never hidden), and resume starts over.
    pub fn progress_at(&self, at: Timestamp) -> Progress {
        let end =
            self.duration.and_then(|d| Position::from_millis(d.as_millis()).ok()).unwrap_or(Position::START);
        Progress {
            updated_at: at,
            device_id: self.device_id.clone(),
            position: if self.watched { end } else { Position::START },
            duration: self.duration,
            hidden: !self.watched,
            finished: self.watched,
            series: self.series.clone(),
            finished_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ResumeAction, ResumePolicy, ResumeReason};

    fn valid() -> MarkInput {
        MarkInput {
            account_id: Some("acct-123".into()),
            profile_id: Some("A".into()),
            video_id: Some("V1".into()),
            device_id: Some("phone".into()),
            watched: Some(true),
            duration: Some(3600.0),
            updated_at: Some(1_764_270_000_000),
            series_id: None,
            episode: None,
        }
    }

    fn field_of(input: MarkInput) -> &'static str {
        Mark::try_from(input).expect_err("input should be rejected").field
    }

    #[test]
    fn each_missing_required_field_is_named() {
        assert_eq!(field_of(MarkInput { account_id: None, ..valid() }), "account_id");
        assert_eq!(field_of(MarkInput { profile_id: None, ..valid() }), "profile_id");
        assert_eq!(field_of(MarkInput { video_id: None, ..valid() }), "video_id");
        assert_eq!(field_of(MarkInput { device_id: None, ..valid() }), "device_id");
        assert_eq!(field_of(MarkInput { watched: None, ..valid() }), "watched");
    }

    #[test]
    fn invalid_values_are_named() {
        assert_eq!(field_of(MarkInput { duration: Some(0.0), ..valid() }), "duration");
        assert_eq!(field_of(MarkInput { updated_at: Some(u64::MAX), ..valid() }), "updated_at");
        assert_eq!(field_of(MarkInput { device_id: Some("tv 1".into()), ..valid() }), "device_id");
    }

    #[test]
    fn watched_is_finished_at_the_end_and_starts_over() {
        let mark = Mark::try_from(valid()).expect("valid");
        let p = mark.progress_at(Timestamp::from_millis(5));
        assert_eq!((p.position.as_millis(), p.finished, p.hidden), (3_600_000, true, false));
        assert!(!p.in_progress());
        let decision = ResumePolicy::default().decide(Some(&p));
        assert_eq!((decision.action, decision.reason), (ResumeAction::StartOver, ResumeReason::Finished));
    }

    #[test]
    fn watched_without_a_duration_is_still_finished() {
        let mark = Mark::try_from(MarkInput { duration: None, ..valid() }).expect("valid");
        let p = mark.progress_at(Timestamp::from_millis(5));
        assert_eq!((p.position, p.finished), (Position::START, true));
        let decision = ResumePolicy::default().decide(Some(&p));
        assert_eq!((decision.action, decision.reason), (ResumeAction::StartOver, ResumeReason::Finished));
    }

    #[test]
    fn not_watched_starts_over_and_leaves_continue_watching_until_played() {
        let mark = Mark::try_from(MarkInput { watched: Some(false), ..valid() }).expect("valid");
        let p = mark.progress_at(Timestamp::from_millis(5));
        assert_eq!((p.position, p.finished, p.hidden), (Position::START, false, true));
        assert!(!p.in_progress());
        assert_eq!(ResumePolicy::default().decide(Some(&p)).action, ResumeAction::StartOver);
    }
}
