//! The resume guardrails (docs/design.md#guardrails): what a device should do
//! when it already has a local position and the server says something else.
//!
//! Last write wins on the server; these rules keep the result from
//! surprising the viewer:
//!
//! - the server's answer first goes through the [`ResumePolicy`] thresholds
//!   (barely started, too short or finished titles start over at 0);
//! - a server position ahead of the local one is taken (the viewer watched
//!   further elsewhere);
//! - a small regression (less than `small_regression_ms` behind the local
//!   position) is ignored: keep the local position;
//! - a moderate regression is taken;
//! - a jump backwards of `prompt_backward_ms` or more is never silent: it
//!   becomes a prompt ("Resume from 11:11, watched on Phone?") with the local
//!   position as the alternative.

use crate::{Position, Progress, ResumeAction, ResumeDecision, ResumePolicy, ResumeReason};

/// The guardrails' thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoffConfig {
    /// Regressions smaller than this (ms) keep the local position. Default 10 000.
    pub small_regression_ms: u64,
    /// Backward jumps of at least this (ms) become a prompt. Default 300 000.
    pub prompt_backward_ms: u64,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self { small_regression_ms: 10_000, prompt_backward_ms: 300_000 }
    }
}

/// What a device should do, given the server's record and its own position.
#[derive(Debug, Clone, PartialEq)]
pub struct Handoff {
    /// The decision (its action may be [`ResumeAction::Prompt`]).
    pub decision: ResumeDecision,
    /// For a prompt: the device's own position, the other choice.
    pub alternative: Option<Position>,
}

impl HandoffConfig {
    /// Decides where to resume on a device that knows `local` (if anything).
    pub fn decide(
        &self,
        policy: &ResumePolicy,
        record: Option<&Progress>,
        local: Option<Position>,
    ) -> Handoff {
        let server = policy.decide(record);
        let Some(local) = local else {
            return Handoff { decision: server, alternative: None };
        };
        let backward = local.as_millis().saturating_sub(server.position.as_millis());
        let decision = if backward == 0 {
            server
        } else if backward < self.small_regression_ms {
            ResumeDecision { action: ResumeAction::Resume, position: local, reason: ResumeReason::KeptLocal }
        } else if backward < self.prompt_backward_ms {
            server
        } else {
            return Handoff {
                decision: ResumeDecision { action: ResumeAction::Prompt, ..server },
                alternative: Some(local),
            };
        };
        Handoff { decision, alternative: None }
    }
}
