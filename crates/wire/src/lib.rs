//! playmark's HTTP wire types, shared by the server and the Rust client.
//!
//! Every name that travels — an update's outcome, a resume's action and
//! reason, an error code — is declared once here or in `playmark-core`
//! (with [`playmark_core::wire_names!`]), so the server, the Rust client and
//! `/openapi.json` (feature `openapi`) spell it the same way. The JavaScript
//! SDK's types are checked against `/openapi.json` by its own tests
//! (`sdk/js/test/types.test.mjs`).
//!
//! - [`UpdateOutcome`], [`ErrorCode`]: names only the wire has. A checkpoint
//!   refused by the stale-device guard is not an outcome: it is an error
//!   ([`ErrorCode::Conflict`], HTTP 409), which [`UpdateOutcome::try_from`]
//!   makes explicit.
//! - [`Record`], [`UpdateResponse`], [`ResumeResponse`],
//!   [`ContinueWatchingResponse`] (of [`ShelfItem`]s: records and
//!   [`NextUp`]s), [`HistoryResponse`], [`BatchResponse`]: the answers.
//! - [`ErrorBody`]: every error answer.
//! - [`Seconds`]: positions and durations, integer milliseconds inside,
//!   seconds on the wire.

#![warn(missing_docs)]

use playmark_core::{Outcome, ProfileKey, Progress, VideoId};
pub use playmark_core::{PlayerEvent, ResumeAction, ResumeReason};
use serde::{Deserialize, Serialize};

/// The pattern every identifier matches (see `playmark_core::ids`).
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";

playmark_core::wire_names! {
    /// What happened to a checkpoint that was merged.
    pub enum UpdateOutcome {
        /// It was newer than what stood, and now stands.
        Applied = "applied",
        /// A newer record (or a newer deletion) already stands.
        Stale = "stale",
        /// The very same checkpoint already stands (a retry); nothing changed.
        Duplicate = "duplicate",
    }
}

impl TryFrom<Outcome> for UpdateOutcome {
    type Error = ErrorCode;

    /// A write refused by the stale-device guard is the error
    /// [`ErrorCode::Conflict`] on the wire, not an outcome.
    fn try_from(outcome: Outcome) -> Result<Self, ErrorCode> {
        match outcome {
            Outcome::Applied => Ok(UpdateOutcome::Applied),
            Outcome::Stale => Ok(UpdateOutcome::Stale),
            Outcome::Duplicate => Ok(UpdateOutcome::Duplicate),
            Outcome::Conflict => Err(ErrorCode::Conflict),
        }
    }
}

playmark_core::wire_names! {
    /// The stable machine code of an error answer.
    pub enum ErrorCode {
        /// 400: malformed JSON, or a missing or invalid field (named in `field`).
        InvalidRequest = "invalid_request",
        /// 401: no valid bearer token (auth on).
        Unauthorized = "unauthorized",
        /// 403: a valid token for another account, profile or scope.
        Forbidden = "forbidden",
        /// 404: no such endpoint.
        NotFound = "not_found",
        /// 405: the endpoint does not take this method.
        MethodNotAllowed = "method_not_allowed",
        /// 408: the request body did not arrive within the header timeout;
        /// nothing was read or written.
        RequestTimeout = "request_timeout",
        /// 409: refused by the stale-device guard; the standing record is in
        /// the answer.
        Conflict = "conflict",
        /// 413: the body is over the limit.
        PayloadTooLarge = "payload_too_large",
        /// 415: the body is not declared as JSON.
        UnsupportedMediaType = "unsupported_media_type",
        /// 429: the account is over its rate limit (see `Retry-After`).
        RateLimited = "rate_limited",
        /// 500: a bug or corrupt data; logged.
        Internal = "internal",
        /// 503: the store could not serve the request in time; nothing was
        /// acknowledged (see `Retry-After`).
        Unavailable = "unavailable",
        /// 503: shed before any work, the node is at its in-flight limit
        /// (see `Retry-After`).
        Overloaded = "overloaded",
    }
}

impl ErrorCode {
    /// The code a status implies, for an answer whose code this version
    /// does not know (a newer server).
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::RequestTimeout,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            429 => ErrorCode::RateLimited,
            503 => ErrorCode::Unavailable,
            500..=599 => ErrorCode::Internal,
            _ => ErrorCode::InvalidRequest,
        }
    }
}

/// A position or duration: integer milliseconds inside, seconds on the wire
/// — an integer when whole (`3600`), a fraction otherwise (`1200.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seconds(pub u64);

impl Seconds {
    /// The value in seconds.
    pub fn as_secs(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// The value in milliseconds.
    pub fn as_millis(self) -> u64 {
        self.0
    }
}

/// As on the wire: `3600`, `1200.5`.
impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_secs())
    }
}

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(1000) {
            s.serialize_u64(self.0 / 1000)
        } else {
            s.serialize_f64(self.as_secs())
        }
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let secs = f64::deserialize(d)?;
        if !secs.is_finite() || secs < 0.0 {
            return Err(serde::de::Error::custom("seconds must be a finite number >= 0"));
        }
        // Non-negative and finite; `as` saturates above u64::MAX.
        Ok(Seconds((secs * 1000.0).round() as u64))
    }
}

/// A standing progress record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Record {
    /// The account.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "acct-123"))]
    pub account_id: String,
    /// The profile.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "A"))]
    pub profile_id: String,
    /// The title.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "V1"))]
    pub video_id: String,
    /// Seconds into the title.
    #[cfg_attr(feature = "openapi", schema(value_type = f64, minimum = 0, maximum = 2592000, example = 1200.5))]
    pub position: Seconds,
    /// The title's length in seconds, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 2592000, example = 3600)
    )]
    pub duration: Option<Seconds>,
    /// The device that reported it.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "tv-livingroom"))]
    pub device_id: String,
    /// When, in ms since the epoch.
    #[cfg_attr(feature = "openapi", schema(example = 1764270000000_u64))]
    pub updated_at: u64,
    /// The series the title belongs to, as the player said (kept until a
    /// checkpoint names another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "show-1"))]
    pub series_id: Option<String>,
    /// The title's ordinal in its series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 2147483647, example = 4))]
    pub episode: Option<u32>,
    /// When the title first became finished, ms since the epoch: present
    /// exactly while it is finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = 1764270000000_u64))]
    pub finished_at: Option<u64>,
}

impl Record {
    /// The record of `profile`'s progress `p` in `video`.
    pub fn of(profile: &ProfileKey, video: &VideoId, p: &Progress) -> Self {
        Record {
            account_id: profile.account_id.to_string(),
            profile_id: profile.profile_id.to_string(),
            video_id: video.to_string(),
            position: Seconds(p.position.as_millis()),
            duration: p.duration.map(|d| Seconds(d.as_millis())),
            device_id: p.device_id.to_string(),
            updated_at: p.updated_at.as_millis(),
            series_id: p.series.as_ref().map(|s| s.id.to_string()),
            episode: p.series.as_ref().map(|s| s.episode),
            finished_at: p.finish_time().map(playmark_core::Timestamp::as_millis),
        }
    }
}

/// The answer to an update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateResponse {
    /// What happened to this checkpoint.
    pub outcome: UpdateOutcome,
    /// The record that stands now; `null` only when the title was deleted
    /// after this checkpoint's time.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub record: Option<Record>,
}

/// Where to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResumeResponse {
    /// Whether any progress is recorded for the title.
    pub found: bool,
    /// Where to start playing, in seconds (0 when starting over).
    #[cfg_attr(feature = "openapi", schema(value_type = f64, minimum = 0, maximum = 2592000, example = 1200.5))]
    pub position: Seconds,
    /// What to do: `resume`, `start_over`, or `prompt` (only with a
    /// `local_position`).
    pub action: ResumeAction,
    /// Why that action.
    pub reason: ResumeReason,
    /// The device the record came from, when found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,128}$"))]
    pub device_id: Option<String>,
    /// For a prompt: the asking device's own position, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>, minimum = 0, maximum = 2592000))]
    pub alternative: Option<Seconds>,
    /// The standing record, when found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
}

/// The continue-watching row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContinueWatchingResponse {
    /// Titles in progress, newest `updated_at` first. With `group=series`,
    /// at most one item per series (a record, or what comes next), newest
    /// activity first.
    pub items: Vec<ShelfItem>,
}

/// One item of the continue-watching row: a title to resume, or, with
/// `group=series`, the next episode of a series whose latest episode was
/// finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ShelfItem {
    /// The next episode of a series (told apart by `next_episode`).
    NextUp(NextUp),
    /// A title in progress.
    Record(Record),
}

/// A series whose most recent activity is a finished episode: play the
/// episode after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NextUp {
    /// The series.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "show-1"))]
    pub series_id: String,
    /// The ordinal after the finished episode's: the player maps it to a
    /// title of its own catalog.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 2147483647, example = 5))]
    pub next_episode: u32,
    /// The finished episode's record.
    pub after: Record,
}

/// A page of history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryResponse {
    /// Finished titles, newest finish (`finished_at`) first.
    pub items: Vec<Record>,
    /// Pass as `cursor` for the next page; `null` when this page is the
    /// last.
    #[cfg_attr(feature = "openapi", schema(required = true, example = "h1.1764270000000.V1"))]
    pub next_cursor: Option<String>,
}

/// A machine code, a human message, and the field at fault if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// The stable machine code.
    pub code: ErrorCode,
    /// What went wrong and how to fix it.
    #[cfg_attr(feature = "openapi", schema(example = "position must be >= 0"))]
    pub message: String,
    /// The request field at fault, for `invalid_request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "position"))]
    pub field: Option<String>,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
    /// For `conflict`: the record that stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
}

/// One checkpoint's result in a batch: an update answer, or its error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum BatchItem {
    /// Merged like an update.
    Done(UpdateResponse),
    /// Rejected: `invalid_request` naming the field, `conflict` with the
    /// standing record, or the store's `unavailable`.
    Failed(ErrorBody),
}

/// The batch answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchResponse {
    /// One entry per checkpoint, in order.
    pub results: Vec<BatchItem>,
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

    #[test]
    fn seconds_round_trip_to_the_millisecond() {
        for text in ["3600", "1200.5", "0.001", "0"] {
            let s: Seconds = serde_json::from_str(text).expect("parses");
            assert_eq!(serde_json::to_string(&s).expect("serializes"), text);
        }
        assert!(serde_json::from_str::<Seconds>("-1").is_err());
    }

    #[test]
    fn a_guard_refusal_is_an_error_code_not_an_outcome() {
        assert_eq!(UpdateOutcome::try_from(Outcome::Conflict), Err(ErrorCode::Conflict));
        assert_eq!(UpdateOutcome::try_from(Outcome::Duplicate), Ok(UpdateOutcome::Duplicate));
    }

    #[test]
    fn names_parse_back_and_unknown_ones_are_errors() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).expect("serializes");
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).expect("parses"), *code);
        }
        let err = serde_json::from_str::<ResumeAction>("\"rewind\"").expect_err("unknown");
        assert!(err.to_string().contains("resume, start_over, prompt"), "{err}");
    }
}
