//! The playback routes: update, resume, continue-watching, history, delete,
//! hide, mark watched, batch.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use futures::StreamExt;
use playmark_core::checkpoint::parse_id;
use playmark_core::library::{self, HistoryCursor};
use playmark_core::{
    Access, AccountId, Checkpoint, CheckpointInput, DeviceId, FieldError, Mark, MarkInput, PlayerEvent,
    Position, Principal, ProfileId, ProfileKey, ProgressKey, VideoId,
};
use playmark_wire::{
    BatchItem, BatchResponse, ContinueWatchingResponse, ErrorBody, ErrorCode, HistoryResponse, NextUp,
    Record, ResumeResponse, Seconds, ShelfItem, UpdateOutcome, UpdateResponse,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{JsonBody, MAX_BATCH_BODY_BYTES, Params, Warnings, parse_json, whole_number};
use super::limits::RateLimited;
use crate::auth::Caller;

/// Default and largest page of continue-watching.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// The playback routes.
pub fn router() -> Router<super::AppState> {
    Router::new()
        .route("/playback/update", post(update))
        .route("/playback/resume", get(resume))
        .route("/playback/continue-watching", get(continue_watching))
        .route("/playback/history", get(history))
        .route("/playback/progress", delete(forget))
        .route("/playback/hide", post(hide))
        .route("/playback/watched", post(watched))
        .route("/playback/batch", post(batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)))
}

/// A checkpoint, as sent by a player.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateRequest {
    /// The household account (1–128 of `A-Z a-z 0-9 . _ : -`).
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "acct-123")]
    pub account_id: Option<String>,
    /// The profile inside the account.
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "A")]
    pub profile_id: Option<String>,
    /// The title.
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "V1")]
    pub video_id: Option<String>,
    /// Seconds into the title, 0 to 2 592 000, millisecond precision. With a
    /// `duration`, up to 10 s past it is clamped to it, and more is a 400
    /// (a rule this schema cannot express).
    #[schema(required = true, value_type = f64, minimum = 0, maximum = 2592000, example = 1200.5)]
    pub position: Option<f64>,
    /// The device sending the checkpoint.
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "tv-livingroom")]
    pub device_id: Option<String>,
    /// The title's length in seconds, above 0.
    #[schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 2592000, example = 3600)]
    pub duration: Option<f64>,
    /// The client's event time, ms since the epoch. Absent: the server's
    /// clock. Too far ahead of the server's clock: the server's clock.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 9007199254740991_u64, example = 1764270000000_u64)]
    #[serde(default, deserialize_with = "whole_number")]
    pub updated_at: Option<u64>,
    /// What the player was doing (default `progress`). A `seek` is a
    /// deliberate choice: the stale-device guard never refuses it.
    #[schema(value_type = Option<PlayerEvent>, example = "progress")]
    pub event: Option<PlayerEvent>,
    /// The `updated_at` (ms) of the record this device resumed from or last
    /// wrote. Arms the stale-device guard: if a newer record from another
    /// device stands more than the guard (default 5 min) ahead, the update is
    /// refused with 409 and that record.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 9007199254740991_u64, example = 1764269000000_u64)]
    #[serde(default, deserialize_with = "whole_number")]
    pub resumed_from: Option<u64>,
    /// The series the title belongs to (an id like the others), with
    /// `episode`. Kept by the record until a checkpoint names another; a
    /// checkpoint without it keeps the standing one.
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "show-1")]
    pub series_id: Option<String>,
    /// The title's ordinal in its series, 0 to 2 147 483 647, with
    /// `series_id`.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 2147483647, example = 4)]
    #[serde(default, deserialize_with = "whole_number")]
    pub episode: Option<u64>,
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
            series_id: r.series_id,
            episode: r.episode,
        }
    }
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
        (status = 500, description = "The store holds a record it cannot read (logged)", body = ErrorBody),
        (status = 503, description = "Storage could not take the write in time; nothing acknowledged", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: JsonBody<UpdateRequest>,
) -> Result<(Warnings, Json<UpdateResponse>), ApiError> {
    let spend = |c: &Checkpoint| admit(&state, &c.key.account_id, Some(&c.device_id));
    let answer = apply(&state, &caller, body.value, spend).await?;
    Ok((body.warnings, Json(answer)))
}

/// Authorizes, validates, admits (`admit` spends the rate limits) and
/// records one checkpoint: the update endpoint, and each item of a batch.
async fn apply(
    state: &AppState,
    caller: &Principal,
    body: UpdateRequest,
    admit: impl FnOnce(&Checkpoint) -> Result<(), ApiError>,
) -> Result<UpdateResponse, ApiError> {
    let mut input = CheckpointInput::from(body);
    let account = account_of(state, caller, input.account_id.take())?;
    input.account_id = Some(account.to_string());
    let checkpoint = Checkpoint::try_from(input)?;
    authorize(state, caller, &checkpoint.key.profile(), Access::Write)?;
    admit(&checkpoint)?;
    let service = &state.service;
    let key = checkpoint.key.clone();
    let update = service.update(checkpoint).await?;
    answer(&key, update)
}

/// The answer to a write of `key` (a checkpoint or a mark): the outcome and
/// the record that stands, or the 409 of a refusal by the stale-device
/// guard.
fn answer(key: &ProgressKey, update: crate::service::Update) -> Result<UpdateResponse, ApiError> {
    let record = update.standing.as_ref().map(|p| record_of(key, p));
    match UpdateOutcome::try_from(update.outcome) {
        Ok(outcome) => Ok(UpdateResponse { outcome, record }),
        Err(_) => Err(ApiError::conflict(record)),
    }
}

/// Spends a token of the account's rate limit, and of the device's when
/// the request names one: checked once the caller may act on the account,
/// before the store is touched.
fn admit(state: &AppState, account: &AccountId, device: Option<&DeviceId>) -> Result<(), ApiError> {
    state.rate_limits.check(account, device).map_err(|limited| {
        state.metrics.rate_limited.inc();
        ApiError::rate_limited(&limited)
    })
}

fn record_of(key: &ProgressKey, p: &playmark_core::Progress) -> Record {
    Record::of(&key.profile(), &key.video_id, p)
}

/// The account a request acts on, for this caller (see
/// `Principal::account_for`).
fn account_of(
    state: &AppState,
    caller: &Principal,
    requested: Option<String>,
) -> Result<playmark_core::AccountId, ApiError> {
    caller.account_for(requested.as_deref()).map_err(|e| denied(state, caller, e))
}

/// Whether the caller may do `access` to `profile`: checked before the
/// store is touched.
fn authorize(
    state: &AppState,
    caller: &Principal,
    profile: &ProfileKey,
    access: Access,
) -> Result<(), ApiError> {
    caller.authorize(&profile.account_id, &profile.profile_id, access).map_err(|e| denied(state, caller, e))
}

fn denied(state: &AppState, caller: &Principal, e: playmark_core::Denied) -> ApiError {
    let api = ApiError::denied(e, caller);
    if api.status_code() == StatusCode::FORBIDDEN {
        state.metrics.forbidden.inc();
    }
    api
}

/// The profile a request names, once the caller may do `access` to it.
fn profile_key(
    state: &AppState,
    caller: &Principal,
    account_id: Option<String>,
    profile_id: Option<String>,
    access: Access,
) -> Result<ProfileKey, ApiError> {
    let account_id = account_of(state, caller, account_id)?;
    let profile_id = parse_id("profile_id", profile_id, ProfileId::parse)?;
    let profile = ProfileKey { account_id, profile_id };
    authorize(state, caller, &profile, access)?;
    Ok(profile)
}

/// The title a request names, once the caller may do `access` to it.
fn title_key(
    state: &AppState,
    caller: &Principal,
    [account_id, profile_id, video_id]: [Option<String>; 3],
    access: Access,
) -> Result<ProgressKey, ApiError> {
    let ProfileKey { account_id, profile_id } = profile_key(state, caller, account_id, profile_id, access)?;
    let video_id = parse_id("video_id", video_id, VideoId::parse)?;
    Ok(ProgressKey { account_id, profile_id, video_id })
}

/// Up to 500 checkpoints at once (an offline upload).
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// Update bodies, each exactly as `POST /playback/update` takes it. Each
    /// is decoded and checked on its own: an invalid item (of any JSON
    /// value) gets its own error in `results`, and the others proceed.
    #[schema(required = true, schema_with = batch_items)]
    pub checkpoints: Option<Vec<Box<RawValue>>>,
}

/// `checkpoints`: 1 to 500 items, each an update body or, as far as the
/// batch is concerned, anything (a bad item fails alone).
fn batch_items() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType};
    use utoipa::openapi::{Ref, RefOr, Schema};
    let anything = ObjectBuilder::new().schema_type(SchemaType::AnyValue).build();
    let item = AnyOfBuilder::new()
        .item(Ref::from_schema_name("UpdateRequest"))
        .item(RefOr::T(Schema::Object(anything)))
        .build();
    ArrayBuilder::new()
        .items(RefOr::T(Schema::AnyOf(item)))
        .min_items(Some(1))
        .max_items(Some(MAX_BATCH))
        .build()
}

/// The most checkpoints one batch may hold.
pub const MAX_BATCH: usize = 500;

/// Checkpoints of one batch written at once: enough to fill a group commit,
/// few enough that one batch cannot take the store's whole queue.
const BATCH_CONCURRENCY: usize = 16;

/// Record many checkpoints.
///
/// Each item is decoded and merged exactly as by `POST /playback/update`, a
/// few at a time; one bad item does not fail the others. Body limit 1 MiB.
#[utoipa::path(
    post, path = "/playback/batch", tag = "playback",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "One result per checkpoint, in order (a store failure is the failing item's `unavailable` or `internal` error)", body = BatchResponse),
        (status = 400, description = "Malformed JSON, or `checkpoints` missing, empty or over 500", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = ErrorBody),
    )
)]
pub async fn batch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: JsonBody<BatchRequest, MAX_BATCH_BODY_BYTES>,
) -> Result<(Warnings, Json<BatchResponse>), ApiError> {
    let mut warnings = body.warnings;
    let items = body.value.checkpoints.ok_or_else(|| FieldError::required("checkpoints"))?;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(FieldError::invalid(
            "checkpoints",
            format_args!("must hold 1 to {MAX_BATCH} checkpoints"),
        )
        .into());
    }
    // Each item is parsed as an update body on its own, so it is held to
    // the same rules: a repeated key is an error, unknown fields are named.
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        parsed.push(parse_json::<UpdateRequest>(item.get().as_bytes()).and_then(|(body, unknown)| {
            warnings.extend(state.unknown_fields(
                unknown,
                &format!("checkpoints[{i}]."),
                "checkpoints[].",
            )?);
            Ok(body)
        }));
    }
    let (state, caller) = (&state, &caller);
    // The batch counts once against each account it names: the first item
    // of an account spends its token, the others share the verdict.
    let verdicts: Mutex<HashMap<AccountId, Result<(), RateLimited>>> = Mutex::default();
    let admit_once = |c: &Checkpoint| {
        let mut verdicts = verdicts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let verdict = *verdicts
            .entry(c.key.account_id.clone())
            .or_insert_with(|| state.rate_limits.check(&c.key.account_id, None));
        verdict.map_err(|limited| {
            state.metrics.rate_limited.inc();
            ApiError::rate_limited(&limited)
        })
    };
    let admit_once = &admit_once;
    // Results are positional, so an item's error names its own field. Each
    // item is authorized on its own: a foreign one fails alone.
    let results: Vec<BatchItem> = futures::stream::iter(parsed)
        .map(|item| async move {
            match item {
                Ok(body) => apply(state, caller, body, admit_once).await,
                Err(e) => Err(e),
            }
        })
        .buffered(BATCH_CONCURRENCY)
        .map(|result| match result {
            Ok(done) => BatchItem::Done(done),
            Err(e) => BatchItem::Failed(e.into_body()),
        })
        .collect()
        .await;
    // Every item refused for its account's rate: the batch as a whole is
    // refused, so the client retries it whole after the wait.
    let verdicts = verdicts.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let refused_all = results
        .iter()
        .all(|item| matches!(item, BatchItem::Failed(e) if e.error.code == ErrorCode::RateLimited));
    if refused_all
        && let Some(longest) = verdicts.values().filter_map(|v| v.err()).max_by_key(|l| l.retry_after)
    {
        return Err(ApiError::rate_limited(&longest));
    }
    Ok((warnings, Json(BatchResponse { results })))
}

/// Names a title to hide.
#[derive(Debug, Deserialize, ToSchema)]
pub struct HideRequest {
    /// The account.
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "acct-123")]
    pub account_id: Option<String>,
    /// The profile.
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "A")]
    pub profile_id: Option<String>,
    /// The title.
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "V1")]
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
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = ErrorBody),
        (status = 500, description = "The store holds a record it cannot read (logged)", body = ErrorBody),
        (status = 503, description = "Storage could not take the change in time", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn hide(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: JsonBody<HideRequest>,
) -> Result<(Warnings, StatusCode), ApiError> {
    let HideRequest { account_id, profile_id, video_id } = body.value;
    let key = title_key(&state, &caller, [account_id, profile_id, video_id], Access::Write)?;
    admit(&state, &key.account_id, None)?;
    state.service.hide(&key).await?;
    Ok((body.warnings, StatusCode::NO_CONTENT))
}

/// A title marked watched or not watched by the viewer.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WatchedRequest {
    /// The account.
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "acct-123")]
    pub account_id: Option<String>,
    /// The profile.
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "A")]
    pub profile_id: Option<String>,
    /// The title.
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "V1")]
    pub video_id: Option<String>,
    /// The device the viewer marked it on.
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "phone-anna")]
    pub device_id: Option<String>,
    /// `true`: watched (finished: out of continue-watching, resume starts
    /// over). `false`: not watched (back to the start, and out of
    /// continue-watching until it is played again).
    #[schema(required = true, value_type = bool, example = true)]
    pub watched: Option<bool>,
    /// The title's length in seconds, above 0. A title marked watched
    /// stands at its end.
    #[schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 2592000, example = 3600)]
    pub duration: Option<f64>,
    /// When the viewer marked it, ms since the epoch. Absent: the server's
    /// clock. Too far ahead of the server's clock: the server's clock.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 9007199254740991_u64, example = 1764270000000_u64)]
    #[serde(default, deserialize_with = "whole_number")]
    pub updated_at: Option<u64>,
    /// The series the title belongs to (an id like the others), with
    /// `episode`. Kept by the record until a checkpoint names another; a
    /// checkpoint without it keeps the standing one.
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "show-1")]
    pub series_id: Option<String>,
    /// The title's ordinal in its series, 0 to 2 147 483 647, with
    /// `series_id`.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 2147483647, example = 4)]
    #[serde(default, deserialize_with = "whole_number")]
    pub episode: Option<u64>,
}

/// Mark a title watched or not watched.
///
/// Merged like a checkpoint (last write wins on `updated_at`), so a late
/// checkpoint from an old device cannot undo a newer mark, and playing the
/// title again after the mark undoes it. Acknowledged only once durable.
#[utoipa::path(
    post, path = "/playback/watched", tag = "playback",
    request_body = WatchedRequest,
    responses(
        (status = 200, description = "The mark was merged; the record that stands (`stale`: a newer write stands)", body = UpdateResponse),
        (status = 400, description = "Malformed JSON or an invalid field (named in `field`)", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = ErrorBody),
        (status = 500, description = "The store holds a record it cannot read (logged)", body = ErrorBody),
        (status = 503, description = "Storage could not take the write in time; nothing acknowledged", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn watched(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: JsonBody<WatchedRequest>,
) -> Result<(Warnings, Json<UpdateResponse>), ApiError> {
    let WatchedRequest {
        account_id,
        profile_id,
        video_id,
        device_id,
        watched,
        duration,
        updated_at,
        series_id,
        episode,
    } = body.value;
    let account = account_of(&state, &caller, account_id)?;
    let mark = Mark::try_from(MarkInput {
        account_id: Some(account.to_string()),
        profile_id,
        video_id,
        device_id,
        watched,
        duration,
        updated_at,
        series_id,
        episode,
    })?;
    authorize(&state, &caller, &mark.key.profile(), Access::Write)?;
    admit(&state, &mark.key.account_id, Some(&mark.device_id))?;
    let key = mark.key.clone();
    let update = state.service.mark(mark).await?;
    Ok((body.warnings, Json(answer(&key, update)?)))
}

/// Identifies one title of one profile.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TitleQuery {
    /// The account.
    #[param(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "acct-123")]
    pub account_id: Option<String>,
    /// The profile.
    #[param(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "A")]
    pub profile_id: Option<String>,
    /// The title.
    #[param(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "V1")]
    pub video_id: Option<String>,
}

impl TitleQuery {
    fn parts(self) -> [Option<String>; 3] {
        [self.account_id, self.profile_id, self.video_id]
    }
}

/// A title, and optionally what the asking device knows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResumeQuery {
    /// The account.
    #[param(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "acct-123")]
    pub account_id: Option<String>,
    /// The profile.
    #[param(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "A")]
    pub profile_id: Option<String>,
    /// The title.
    #[param(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "V1")]
    pub video_id: Option<String>,
    /// The asking device.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub device_id: Option<String>,
    /// The asking device's own position, seconds. Turns on the resume
    /// guardrails: small regressions keep it; big backward jumps prompt.
    #[param(value_type = Option<f64>, minimum = 0, maximum = 2592000)]
    pub local_position: Option<String>,
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
        (status = 500, description = "The store holds a record it cannot read (logged)", body = ErrorBody),
        (status = 503, description = "Storage could not answer in time", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Params(query): Params<ResumeQuery>,
) -> Result<Json<ResumeResponse>, ApiError> {
    let key = title_key(&state, &caller, [query.account_id, query.profile_id, query.video_id], Access::Read)?;
    let device = query
        .device_id
        .map(|device| DeviceId::parse(device).map_err(|e| FieldError::invalid("device_id", e)))
        .transpose()?;
    let local = query
        .local_position
        .map(|raw| {
            let secs = raw
                .parse::<f64>()
                .map_err(|_| FieldError::invalid("local_position", "must be a number of seconds"))?;
            Position::from_secs(secs).map_err(|e| FieldError::invalid("local_position", e))
        })
        .transpose()?;
    admit(&state, &key.account_id, device.as_ref())?;
    let resume = state.service.resume(&key, local).await?;
    let d = resume.decision;
    Ok(Json(ResumeResponse {
        found: resume.record.is_some(),
        position: Seconds(d.position.as_millis()),
        action: d.action,
        reason: d.reason,
        device_id: resume.record.as_ref().map(|p| p.device_id.to_string()),
        alternative: resume.alternative.map(|p| Seconds(p.as_millis())),
        record: resume.record.as_ref().map(|p| record_of(&key, p)),
    }))
}

/// Identifies a profile, how many titles to return, and how to group them.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContinueWatchingQuery {
    /// The account.
    #[param(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "acct-123")]
    pub account_id: Option<String>,
    /// The profile.
    #[param(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "A")]
    pub profile_id: Option<String>,
    /// How many items, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `series`: at most one item per series, chosen by the series' most
    /// recent activity: the episode in progress, or what comes after a
    /// finished one (a `NextUp`). Absent: every title in progress.
    #[param(value_type = Option<String>, pattern = "^series$", example = "series")]
    pub group: Option<String>,
}

/// Reads `limit` (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]).
fn page_limit(raw: Option<String>) -> Result<usize, FieldError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
            FieldError::invalid("limit", format_args!("must be an integer from 1 to {MAX_LIMIT}"))
        }),
    }
}

/// The profile's titles in progress.
///
/// Newest first, without finished or deleted titles. With `group=series`,
/// one item per series: its episode in progress, or, when the latest
/// episode was finished, `{series_id, next_episode, after}`.
#[utoipa::path(
    get, path = "/playback/continue-watching", tag = "playback",
    params(ContinueWatchingQuery),
    responses(
        (status = 200, description = "Titles in progress (and, grouped, what comes next)", body = ContinueWatchingResponse),
        (status = 400, description = "A missing or invalid parameter (named in `field`)", body = ErrorBody),
        (status = 500, description = "The store holds a record it cannot read (logged)", body = ErrorBody),
        (status = 503, description = "Storage could not answer in time", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn continue_watching(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Params(query): Params<ContinueWatchingQuery>,
) -> Result<Json<ContinueWatchingResponse>, ApiError> {
    let profile = profile_key(&state, &caller, query.account_id, query.profile_id, Access::Read)?;
    let limit = page_limit(query.limit)?;
    let by_series = match query.group.as_deref() {
        None => false,
        Some("series") => true,
        Some(_) => return Err(FieldError::invalid("group", "must be series (or left out)").into()),
    };
    admit(&state, &profile.account_id, None)?;
    let items = if by_series {
        let shelf = state.service.continue_watching_by_series(&profile, limit).await?;
        shelf.iter().map(|item| shelf_item(&profile, item)).collect()
    } else {
        let rows = state.service.continue_watching(&profile, limit).await?;
        rows.iter().map(|(video, p)| ShelfItem::Record(Record::of(&profile, video, p))).collect()
    };
    Ok(Json(ContinueWatchingResponse { items }))
}

fn shelf_item(profile: &ProfileKey, item: &library::ShelfItem) -> ShelfItem {
    match item {
        library::ShelfItem::Title { video_id, progress } => {
            ShelfItem::Record(Record::of(profile, video_id, progress))
        }
        library::ShelfItem::NextUp { series, next_episode, video_id, after } => ShelfItem::NextUp(NextUp {
            series_id: series.to_string(),
            next_episode: *next_episode,
            after: Record::of(profile, video_id, after),
        }),
    }
}

/// Identifies a profile, and a page of its history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The account.
    #[param(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "acct-123")]
    pub account_id: Option<String>,
    /// The profile.
    #[param(required = true, value_type = String, pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "A")]
    pub profile_id: Option<String>,
    /// How many titles, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Where the previous page ended: its `next_cursor`, as given (opaque;
    /// the pattern only bounds it).
    #[param(value_type = Option<String>, pattern = r"^h1\.[0-9]{1,15}\.[A-Za-z0-9._:-]{1,128}$", example = "h1.1764270000000.V1")]
    pub cursor: Option<String>,
}

/// What the profile finished.
///
/// Finished titles, newest finish first (`finished_at`, ties by video id),
/// in pages: pass `next_cursor` back as `cursor` for the next one. Paging
/// never repeats or skips a title, even while others finish.
#[utoipa::path(
    get, path = "/playback/history", tag = "playback",
    params(HistoryQuery),
    responses(
        (status = 200, description = "A page of finished titles", body = HistoryResponse),
        (status = 400, description = "A missing or invalid parameter (named in `field`)", body = ErrorBody),
        (status = 500, description = "The store holds a record it cannot read (logged)", body = ErrorBody),
        (status = 503, description = "Storage could not answer in time", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Params(query): Params<HistoryQuery>,
) -> Result<Json<HistoryResponse>, ApiError> {
    let profile = profile_key(&state, &caller, query.account_id, query.profile_id, Access::Read)?;
    let limit = page_limit(query.limit)?;
    let after = query.cursor.as_deref().map(HistoryCursor::parse).transpose()?;
    admit(&state, &profile.account_id, None)?;
    let (rows, next) = state.service.history(&profile, after, limit).await?;
    Ok(Json(HistoryResponse {
        items: rows.iter().map(|(video, p)| Record::of(&profile, video, p)).collect(),
        next_cursor: next.map(|c| c.encode()),
    }))
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
        (status = 500, description = "The store holds a record it cannot read (logged)", body = ErrorBody),
        (status = 503, description = "Storage could not take the deletion in time", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn forget(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Params(query): Params<TitleQuery>,
) -> Result<StatusCode, ApiError> {
    let key = title_key(&state, &caller, query.parts(), Access::Write)?;
    admit(&state, &key.account_id, None)?;
    state.service.delete(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}
