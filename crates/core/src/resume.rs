//! Where to resume: the thresholds common media servers apply.
//!
//! With a known duration, a title barely started (under `min_resume_percent`)
//! or a title too short to be worth resuming starts over, and a title watched
//! past `max_resume_percent` counts as finished and starts over too. Without a
//! duration there is nothing to measure against: resume where the viewer was.

use crate::{Position, Progress};

crate::wire_names! {
    /// Why a decision was made; sent to clients so they can explain it.
    pub enum ResumeReason {
        /// Nothing recorded for this title.
        NoRecord = "no_record",
        /// Watched less than the minimum resume percentage.
        NotStarted = "not_started",
        /// Shorter than the minimum length worth resuming.
        TooShort = "too_short",
        /// Watched past the maximum resume percentage, or marked watched.
        Finished = "finished",
        /// Part-way through: resume.
        InProgress = "in_progress",
        /// The server's position was only slightly behind the device's own:
        /// the device keeps its position (see [`crate::handoff`]).
        KeptLocal = "kept_local",
    }
}

crate::wire_names! {
    /// What the player should do.
    pub enum ResumeAction {
        /// Seek to the position and play.
        Resume = "resume",
        /// Play from the beginning.
        StartOver = "start_over",
        /// Ask the viewer: the server's position is far behind the device's own.
        Prompt = "prompt",
    }
}

/// The answer to "where do I resume this title?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeDecision {
    /// What to do.
    pub action: ResumeAction,
    /// Where to start playing (0 when starting over).
    pub position: Position,
    /// Why.
    pub reason: ResumeReason,
}

impl ResumeDecision {
    fn start_over(reason: ResumeReason) -> Self {
        Self { action: ResumeAction::StartOver, position: Position::START, reason }
    }
}

/// The resume thresholds. Defaults match Jellyfin's and Emby's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResumePolicy {
    /// Below this share watched (percent), start over. Default 5.
    pub min_resume_percent: f64,
    /// Above this share watched (percent), the title is finished. Default 90.
    pub max_resume_percent: f64,
    /// Titles shorter than this (ms) always start over. Default 300 000 (5 min).
    pub min_resume_duration_ms: u64,
}

impl Default for ResumePolicy {
    fn default() -> Self {
        Self { min_resume_percent: 5.0, max_resume_percent: 90.0, min_resume_duration_ms: 300_000 }
    }
}

impl ResumePolicy {
    fn percent_watched(progress: &Progress) -> Option<f64> {
        progress.duration.map(|d| progress.position.as_millis() as f64 * 100.0 / d.as_millis() as f64)
    }

    /// True when the title counts as watched to the end.
    pub fn is_finished(&self, progress: &Progress) -> bool {
        Self::percent_watched(progress).is_some_and(|pct| pct > self.max_resume_percent)
    }

    /// Decides where to resume, given the standing progress (if any).
    pub fn decide(&self, progress: Option<&Progress>) -> ResumeDecision {
        let Some(progress) = progress else {
            return ResumeDecision::start_over(ResumeReason::NoRecord);
        };
        // Finished when written (past the maximum then, or marked watched).
        if progress.finished {
            return ResumeDecision::start_over(ResumeReason::Finished);
        }
        let (Some(duration), Some(pct)) = (progress.duration, Self::percent_watched(progress)) else {
            return ResumeDecision {
                action: ResumeAction::Resume,
                position: progress.position,
                reason: ResumeReason::InProgress,
            };
        };
        if pct > self.max_resume_percent {
            ResumeDecision::start_over(ResumeReason::Finished)
        } else if duration.as_millis() < self.min_resume_duration_ms {
            ResumeDecision::start_over(ResumeReason::TooShort)
        } else if pct < self.min_resume_percent {
            ResumeDecision::start_over(ResumeReason::NotStarted)
        } else {
            ResumeDecision {
                action: ResumeAction::Resume,
                position: progress.position,
                reason: ResumeReason::InProgress,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceId, Duration, Timestamp};

    fn progress(pos_s: f64, dur_s: Option<f64>) -> Progress {
        Progress {
            updated_at: Timestamp::from_millis(1),
            device_id: DeviceId::parse("tv").expect("valid"),
            position: Position::from_secs(pos_s).expect("valid"),
            duration: dur_s.map(|d| Duration::from_secs(d).expect("valid")),
            hidden: false,
            finished: false,
            series: None,
            finished_at: None,
        }
    }

    fn decide(pos_s: f64, dur_s: Option<f64>) -> (ResumeAction, f64, ResumeReason) {
        let d = ResumePolicy::default().decide(Some(&progress(pos_s, dur_s)));
        (d.action, d.position.as_secs(), d.reason)
    }

    #[test]
    fn part_way_through_resumes_at_the_position() {
        assert_eq!(decide(1200.5, Some(3600.0)), (ResumeAction::Resume, 1200.5, ResumeReason::InProgress));
    }

    #[test]
    fn under_five_percent_starts_over() {
        assert_eq!(decide(179.0, Some(3600.0)).2, ResumeReason::NotStarted);
        assert_eq!(decide(180.0, Some(3600.0)).2, ResumeReason::InProgress);
    }

    #[test]
    fn over_ninety_percent_is_finished() {
        assert_eq!(decide(3240.0, Some(3600.0)).2, ResumeReason::InProgress);
        assert_eq!(decide(3240.001, Some(3600.0)), (ResumeAction::StartOver, 0.0, ResumeReason::Finished));
        assert!(ResumePolicy::default().is_finished(&progress(3500.0, Some(3600.0))));
        assert!(!ResumePolicy::default().is_finished(&progress(3500.0, None)));
    }

    #[test]
    fn short_titles_start_over() {
        assert_eq!(decide(120.0, Some(299.0)).2, ResumeReason::TooShort);
        assert_eq!(decide(150.0, Some(300.0)).2, ResumeReason::InProgress);
    }

    #[test]
    fn unknown_duration_resumes_where_the_viewer_was() {
        assert_eq!(decide(7.0, None), (ResumeAction::Resume, 7.0, ResumeReason::InProgress));
    }

    /// docs/design.md, Guardrails: after the threshold changes, a stored
    /// title is finished if its stored flag or the threshold in force says so.
    #[test]
    fn a_stored_finished_flag_and_the_threshold_in_force_each_finish_a_title() {
        let raised = ResumePolicy { max_resume_percent: 95.0, ..ResumePolicy::default() };
        let written_under_90 = Progress { finished: true, ..progress(3312.0, Some(3600.0)) };
        assert_eq!(raised.decide(Some(&written_under_90)).reason, ResumeReason::Finished, "92 %, flagged");
        assert_eq!(raised.decide(Some(&progress(3312.0, Some(3600.0)))).reason, ResumeReason::InProgress);
        let lowered = ResumePolicy { max_resume_percent: 85.0, ..ResumePolicy::default() };
        assert_eq!(
            lowered.decide(Some(&progress(3132.0, Some(3600.0)))).reason,
            ResumeReason::Finished,
            "87 %"
        );
    }

    #[test]
    fn no_record_starts_over() {
        let d = ResumePolicy::default().decide(None);
        assert_eq!((d.action, d.reason), (ResumeAction::StartOver, ResumeReason::NoRecord));
    }
}
