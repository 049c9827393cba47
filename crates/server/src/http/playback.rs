//! The playback routes: update, resume, continue-watching, delete.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use playmark_core::checkpoint::{parse_profile_key, parse_progress_key};
use playmark_core::{
    Checkpoint, CheckpointInput, DeviceId, FieldError, Outcome, Position, ProfileKey, Progress, ProgressKey,
    ResumeAction, ResumeReason, VideoId,
};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, MAX_BATCH_BODY_BYTES, Params};
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
        .route("/playback/hide", post(hide))
        .route("/playback/batch", post(batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)))
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
    /// A `seek` is a deliberate choice: the stale-device guard never refuses it.
    #[schema(value_type = Option<String>, example = "progress")]
    pub event: Option<String>,
    /// The `updated_at` (ms) of the record this device resumed from or last
    /// wrote. Arms the stale-device guard: if a newer record from another
    /// device stands more than the guard (default 5 min) ahead, the update is
    /// refused with 409 and that record.
    #[schema(value_type = Option<u64>, example = 1764269000000_u64)]
    pub resumed_from: Option<u64>,
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
            resumed_from: r.resumed_from,
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
/// what stands (and, with `resumed_from`, not refused by the stale-device
/// guard). Acknowledged only once durable.
#[utoipa::path(
    post, path = "/playback/update", tag = "playback",
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The checkpoint was merged; the record that stands", body = UpdateResponse),
        (status = 400, description = "Malformed JSON or an invalid field (named in `field`)", body = ErrorBody),
        (status = 409, description = "Refused by the stale-device guard; `record` is the standing record", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = ErrorBody),
        (status = 503, description = "Storage could not take the write in time; nothing acknowledged", body = ErrorBody),
    )
)]
pub async fn update(
    State(service): State<Arc<PlaybackService>>,
    JsonBody(body): JsonBody<UpdateRequest>,
) -> Result<Json<UpdateResponse>, ApiError> {
    apply(&service, body).await.map(Json)
}

/// Validates and records one checkpoint: the update endpoint, and each item
/// of a batch.
async fn apply(service: &PlaybackService, body: UpdateRequest) -> Result<UpdateResponse, ApiError> {
    let checkpoint = Checkpoint::try_from(CheckpointInput::from(body))?;
    let key = checkpoint.key.clone();
    let update = service.update(checkpoint).await?;
    let record = update.standing.as_ref().map(|p| Record::new(&key, p));
    let outcome = match update.outcome {
        Outcome::Applied => UpdateOutcome::Applied,
        Outcome::Stale => UpdateOutcome::Stale,
        Outcome::Duplicate => UpdateOutcome::Duplicate,
        Outcome::Conflict => return Err(ApiError::conflict(record)),
    };
    Ok(UpdateResponse { outcome, record })
}

/// Up to 500 checkpoints at once (an offline upload).
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// Update bodies, each exactly as `POST /playback/update` takes it.
    #[schema(required = true, value_type = Vec<UpdateRequest>)]
    pub checkpoints: Option<Vec<serde_json::Value>>,
}

/// One checkpoint's result: an update answer, or its error.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    /// Merged like an update.
    Done(UpdateResponse),
    /// Rejected (`invalid_request` naming the field, or `conflict` with the
    /// standing record).
    Failed(ErrorBody),
}

/// The batch answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// One entry per checkpoint, in order.
    pub results: Vec<BatchItem>,
}

/// The most checkpoints one batch may hold.
pub const MAX_BATCH: usize = 500;

/// Record many checkpoints.
///
/// Each is merged by the same rule as `POST /playback/update`, concurrently;
/// one bad item does not fail the others. Body limit 1 MiB.
#[utoipa::path(
    post, path = "/playback/batch", tag = "playback",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "One result per checkpoint, in order", body = BatchResponse),
        (status = 400, description = "Malformed JSON, or `checkpoints` missing, empty or over 500", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = ErrorBody),
    )
)]
pub async fn batch(
    State(service): State<Arc<PlaybackService>>,
    JsonBody(body): JsonBody<BatchRequest, MAX_BATCH_BODY_BYTES>,
) -> Result<Json<BatchResponse>, ApiError> {
    let items = body.checkpoints.ok_or_else(|| FieldError::required("checkpoints"))?;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(FieldError::invalid(
            "checkpoints",
            format_args!("must hold 1 to {MAX_BATCH} checkpoints"),
        )
        .into());
    }
    let service = &service;
    // Results are positional, so an item's error names its own field.
    let results = futures::future::join_all(items.into_iter().map(|item| async move {
        let result = match serde_path_to_error::deserialize::<_, UpdateRequest>(item) {
            Ok(body) => apply(service, body).await,
            Err(e) => {
                let path = e.path().to_string();
                Err(ApiError::invalid_field(path.clone(), format!("{path} is invalid: {}", e.into_inner())))
            }
        };
        match result {
            Ok(done) => BatchItem::Done(done),
            Err(e) => BatchItem::Failed(e.into_body()),
        }
    }))
    .await;
    Ok(Json(BatchResponse { results }))
}

/// Names a title to hide.
#[derive(Debug, Deserialize, ToSchema)]
pub struct HideRequest {
    /// The account.
    #[schema(required = true, value_type = String)]
    pub account_id: Option<String>,
    /// The profile.
    #[schema(required = true, value_type = String)]
    pub profile_id: Option<String>,
    /// The title.
    #[schema(required = true, value_type = String)]
    pub video_id: Option<String>,
}

/// Hide a title from continue-watching.
///
/// The progress is kept (resume still finds it); the next applied
/// checkpoint for the title shows it again. Hiding an unknown title is fine.
#[utoipa::path(
    post, path = "/playback/hide", tag = "playback",
    request_body = HideRequest,
    responses(
        (status = 204, description = "Hidden"),
        (status = 400, description = "A missing or invalid field (named in `field`)", body = ErrorBody),
        (status = 503, description = "Storage could not take the change in time", body = ErrorBody),
    )
)]
pub async fn hide(
    State(service): State<Arc<PlaybackService>>,
    JsonBody(body): JsonBody<HideRequest>,
) -> Result<StatusCode, ApiError> {
    let key = parse_progress_key(body.account_id, body.profile_id, body.video_id)?;
    service.hide(&key).await?;
    Ok(StatusCode::NO_CONTENT)
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

/// A title, and optionally what the asking device knows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResumeQuery {
    /// The account.
    #[param(required = true, value_type = String)]
    pub account_id: Option<String>,
    /// The profile.
    #[param(required = true, value_type = String)]
    pub profile_id: Option<String>,
    /// The title.
    #[param(required = true, value_type = String)]
    pub video_id: Option<String>,
    /// The asking device.
    #[param(value_type = Option<String>)]
    pub device_id: Option<String>,
    /// The asking device's own position, seconds. Turns on the resume
    /// guardrails: small regressions keep it; big backward jumps prompt.
    #[param(value_type = Option<f64>)]
    pub local_position: Option<String>,
}

/// What the player should do.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Seek to `position` and play.
    Resume,
    /// Play from the beginning.
    StartOver,
    /// Ask the viewer: the record is far behind the device's own position.
    /// `position` is the record's offer, `alternative` the device's own.
    Prompt,
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
    /// The record was only slightly behind the device's own position,
    /// which is kept.
    KeptLocal,
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
    /// The device the record came from, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// For a prompt: the asking device's own position, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub alternative: Option<Seconds>,
    /// The standing record, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
}

/// Where to resume a title.
///
/// With a known duration the resume thresholds apply: barely started, too
/// short or finished titles start over at 0. With `local_position`, the
/// resume guardrails apply too (and `action` may be `prompt`).
#[utoipa::path(
    get, path = "/playback/resume", tag = "playback",
    params(ResumeQuery),
    responses(
        (status = 200, description = "Where to resume", body = ResumeResponse),
        (status = 400, description = "A missing or invalid parameter (named in `field`)", body = ErrorBody),
        (status = 503, description = "Storage could not answer in time", body = ErrorBody),
    )
)]
pub async fn resume(
    State(service): State<Arc<PlaybackService>>,
    Params(query): Params<ResumeQuery>,
) -> Result<Json<ResumeResponse>, ApiError> {
    let key = parse_progress_key(query.account_id, query.profile_id, query.video_id)?;
    if let Some(device) = query.device_id {
        DeviceId::parse(device).map_err(|e| FieldError::invalid("device_id", e))?;
    }
    let local = query
        .local_position
        .map(|raw| {
            let secs = raw
                .parse::<f64>()
                .map_err(|_| FieldError::invalid("local_position", "must be a number of seconds"))?;
            Position::from_secs(secs).map_err(|e| FieldError::invalid("local_position", e))
        })
        .transpose()?;
    let resume = service.resume(&key, local).await?;
    let d = resume.decision;
    Ok(Json(ResumeResponse {
        found: resume.record.is_some(),
        position: Seconds(d.position.as_millis()),
        action: match d.action {
            ResumeAction::Resume => Action::Resume,
            ResumeAction::StartOver => Action::StartOver,
            ResumeAction::Prompt => Action::Prompt,
        },
        reason: match d.reason {
            ResumeReason::NoRecord => Reason::NoRecord,
            ResumeReason::NotStarted => Reason::NotStarted,
            ResumeReason::TooShort => Reason::TooShort,
            ResumeReason::Finished => Reason::Finished,
            ResumeReason::InProgress => Reason::InProgress,
            ResumeReason::KeptLocal => Reason::KeptLocal,
        },
        device_id: resume.record.as_ref().map(|p| p.device_id.to_string()),
        alternative: resume.alternative.map(|p| Seconds(p.as_millis())),
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
