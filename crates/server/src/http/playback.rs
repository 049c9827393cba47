//! The playback routes: update, resume, continue-watching, delete.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use playmark_core::checkpoint::{parse_profile_key, parse_progress_key};
use playmark_core::{
    Checkpoint, CheckpointInput, FieldError, Outcome, ProfileKey, Progress, ProgressKey, ResumeAction,
    ResumeReason, VideoId,
};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, Params};
use crate::service::PlaybackService;

/// Default and largest page of continue-watching.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// The playback routes.
pub fn router() -> Router<super::AppState> {
    Router::new()
        .route("/playback/update", post(update))
        .route("/playback/resume", get(resume))
        .route("/playback/continue-watching", get(continue_watching))
        .route("/playback/progress", delete(forget))
}

/// Milliseconds, written as seconds: an integer when whole (`3600`), a
/// fraction otherwise (`1200.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(1000) {
            s.serialize_u64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

/// A checkpoint, as sent by a player.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateRequest {
    /// The household account (1–128 of `A-Z a-z 0-9 . _ : -`).
    #[schema(required = true, value_type = String, example = "acct-123")]
    pub account_id: Option<String>,
    /// The profile inside the account.
    #[schema(required = true, value_type = String, example = "A")]
    pub profile_id: Option<String>,
    /// The title.
    #[schema(required = true, value_type = String, example = "V1")]
    pub video_id: Option<String>,
    /// Seconds into the title, 0 to 2 592 000, millisecond precision. At most
    /// the duration when one is given (a few seconds over are clamped).
    #[schema(required = true, value_type = f64, example = 1200.5)]
    pub position: Option<f64>,
    /// The device sending the checkpoint.
    #[schema(required = true, value_type = String, example = "tv-livingroom")]
    pub device_id: Option<String>,
    /// The title's length in seconds, above 0.
    #[schema(value_type = Option<f64>, example = 3600)]
    pub duration: Option<f64>,
    /// The client's event time, ms since the epoch. Absent: the server's
    /// clock. Too far ahead of the server's clock: the server's clock.
    #[schema(value_type = Option<u64>, example = 1764270000000_u64)]
    pub updated_at: Option<u64>,
    /// What the player was doing: progress, pause, stop, background, seek.
    #[schema(value_type = Option<String>, example = "progress")]
    pub event: Option<String>,
}

impl From<UpdateRequest> for CheckpointInput {
    fn from(r: UpdateRequest) -> Self {
        CheckpointInput {
            account_id: r.account_id,
            profile_id: r.profile_id,
            video_id: r.video_id,
            position: r.position,
            device_id: r.device_id,
            duration: r.duration,
            updated_at: r.updated_at,
            event: r.event,
        }
    }
}

/// A standing progress record.
#[derive(Debug, Serialize, ToSchema)]
pub struct Record {
    /// The account.
    pub account_id: String,
    /// The profile.
    pub profile_id: String,
    /// The title.
    pub video_id: String,
    /// Seconds into the title.
    #[schema(value_type = f64, example = 1200.5)]
    pub position: Seconds,
    /// The title's length in seconds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>, example = 3600)]
    pub duration: Option<Seconds>,
    /// The device that reported it.
    pub device_id: String,
    /// When, in ms since the epoch.
    pub updated_at: u64,
}

impl Record {
    fn new(key: &ProgressKey, p: &Progress) -> Self {
        Self::of_profile(&key.profile(), &key.video_id, p)
    }

    fn of_profile(profile: &ProfileKey, video_id: &VideoId, p: &Progress) -> Self {
        Record {
            account_id: profile.account_id.to_string(),
            profile_id: profile.profile_id.to_string(),
            video_id: video_id.to_string(),
            position: Seconds(p.position.as_millis()),
            duration: p.duration.map(|d| Seconds(d.as_millis())),
            device_id: p.device_id.to_string(),
            updated_at: p.updated_at.as_millis(),
        }
    }
}

/// What happened to a checkpoint.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOutcome {
    /// It was newer than what stood, and now stands.
    Applied,
    /// A newer record (or a newer deletion) already stands.
    Stale,
    /// The very same checkpoint was already applied.
    Duplicate,
}

/// The answer to an update.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateResponse {
    /// What happened to this checkpoint.
    pub outcome: UpdateOutcome,
    /// The record that stands now; `null` only when the title was deleted
    /// after this checkpoint's time.
    pub record: Option<Record>,
}

/// Record a checkpoint.
///
/// Conditional last-write-wins on `updated_at`: applied only when newer than
/// what stands. Acknowledged only once durable.
#[utoipa::path(
    post, path = "/playback/update", tag = "playback",
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The checkpoint was merged; the record that stands", body = UpdateResponse),
        (status = 400, description = "Malformed JSON or an invalid field (named in `field`)", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = ErrorBody),
        (status = 503, description = "Storage could not take the write in time; nothing acknowledged", body = ErrorBody),
    )
)]
pub async fn update(
    State(service): State<Arc<PlaybackService>>,
    JsonBody(body): JsonBody<UpdateRequest>,
) -> Result<Json<UpdateResponse>, ApiError> {
    let checkpoint = Checkpoint::try_from(CheckpointInput::from(body))?;
    let key = checkpoint.key.clone();
    let update = service.update(checkpoint).await?;
    Ok(Json(UpdateResponse {
        outcome: match update.outcome {
            Outcome::Applied => UpdateOutcome::Applied,
            Outcome::Stale => UpdateOutcome::Stale,
            Outcome::Duplicate => UpdateOutcome::Duplicate,
        },
        record: update.standing.as_ref().map(|p| Record::new(&key, p)),
    }))
}

/// Identifies one title of one profile.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TitleQuery {
    /// The account.
    #[param(required = true, value_type = String)]
    pub account_id: Option<String>,
    /// The profile.
    #[param(required = true, value_type = String)]
    pub profile_id: Option<String>,
    /// The title.
    #[param(required = true, value_type = String)]
    pub video_id: Option<String>,
}

impl TitleQuery {
    fn key(self) -> Result<ProgressKey, FieldError> {
        parse_progress_key(self.account_id, self.profile_id, self.video_id)
    }
}

/// What the player should do.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Seek to `position` and play.
    Resume,
    /// Play from the beginning.
    StartOver,
}

/// Why the action was chosen.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No record for this title.
    NoRecord,
    /// Under the minimum resume percentage.
    NotStarted,
    /// Shorter than the minimum length worth resuming.
    TooShort,
    /// Over the maximum resume percentage: watched.
    Finished,
    /// Part-way through.
    InProgress,
}

/// Where to resume.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResumeResponse {
    /// Whether any progress is recorded for the title.
    pub found: bool,
    /// Where to start playing, in seconds (0 when starting over).
    #[schema(value_type = f64, example = 1200.5)]
    pub position: Seconds,
    /// `resume` or `start_over`.
    pub action: Action,
    /// Why that action.
    pub reason: Reason,
    /// The standing record, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
}

/// Where to resume a title.
///
/// With a known duration the resume thresholds apply: barely started, too
/// short or finished titles start over at 0.
#[utoipa::path(
    get, path = "/playback/resume", tag = "playback",
    params(TitleQuery),
    responses(
        (status = 200, description = "Where to resume", body = ResumeResponse),
        (status = 400, description = "A missing or invalid parameter (named in `field`)", body = ErrorBody),
        (status = 503, description = "Storage could not answer in time", body = ErrorBody),
    )
)]
pub async fn resume(
    State(service): State<Arc<PlaybackService>>,
    Params(query): Params<TitleQuery>,
) -> Result<Json<ResumeResponse>, ApiError> {
    let key = query.key()?;
    let resume = service.resume(&key).await?;
    let d = resume.decision;
    Ok(Json(ResumeResponse {
        found: resume.record.is_some(),
        position: Seconds(d.position.as_millis()),
        action: match d.action {
            ResumeAction::Resume => Action::Resume,
            ResumeAction::StartOver => Action::StartOver,
        },
        reason: match d.reason {
            ResumeReason::NoRecord => Reason::NoRecord,
            ResumeReason::NotStarted => Reason::NotStarted,
            ResumeReason::TooShort => Reason::TooShort,
            ResumeReason::Finished => Reason::Finished,
            ResumeReason::InProgress => Reason::InProgress,
        },
        record: resume.record.as_ref().map(|p| Record::new(&key, p)),
    }))
}

/// Identifies a profile, and how many rows to return.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProfileQuery {
    /// The account.
    #[param(required = true, value_type = String)]
    pub account_id: Option<String>,
    /// The profile.
    #[param(required = true, value_type = String)]
    pub profile_id: Option<String>,
    /// How many titles, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// The continue-watching row.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContinueWatchingResponse {
    /// Titles in progress, newest `updated_at` first.
    pub items: Vec<Record>,
}

/// The profile's titles in progress.
///
/// Newest first, without finished or deleted titles.
#[utoipa::path(
    get, path = "/playback/continue-watching", tag = "playback",
    params(ProfileQuery),
    responses(
        (status = 200, description = "Titles in progress", body = ContinueWatchingResponse),
        (status = 400, description = "A missing or invalid parameter (named in `field`)", body = ErrorBody),
        (status = 503, description = "Storage could not answer in time", body = ErrorBody),
    )
)]
pub async fn continue_watching(
    State(service): State<Arc<PlaybackService>>,
    Params(query): Params<ProfileQuery>,
) -> Result<Json<ContinueWatchingResponse>, ApiError> {
    let profile = parse_profile_key(query.account_id, query.profile_id)?;
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(raw) => raw.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
            FieldError::invalid("limit", format_args!("must be an integer from 1 to {MAX_LIMIT}"))
        })?,
    };
    let rows = service.continue_watching(&profile, limit).await?;
    let items = rows.iter().map(|(video, p)| Record::of_profile(&profile, video, p)).collect();
    Ok(Json(ContinueWatchingResponse { items }))
}

/// Forget one title for a profile.
///
/// Leaves a deletion marker, so a checkpoint older than the deletion (a late
/// offline upload) cannot bring the title back. Deleting twice is fine.
#[utoipa::path(
    delete, path = "/playback/progress", tag = "playback",
    params(TitleQuery),
    responses(
        (status = 204, description = "Forgotten"),
        (status = 400, description = "A missing or invalid parameter (named in `field`)", body = ErrorBody),
        (status = 503, description = "Storage could not take the deletion in time", body = ErrorBody),
    )
)]
pub async fn forget(
    State(service): State<Arc<PlaybackService>>,
    Params(query): Params<TitleQuery>,
) -> Result<StatusCode, ApiError> {
    service.delete(&query.key()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_are_integers_and_fractions_stay_fractions() {
        let json = |ms| serde_json::to_string(&Seconds(ms)).expect("serializes");
        assert_eq!(json(3_600_000), "3600");
        assert_eq!(json(0), "0");
        assert_eq!(json(1_200_500), "1200.5");
        assert_eq!(json(1), "0.001");
    }
}
