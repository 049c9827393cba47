//! The wire types, as the HTTP API defines them (`docs/api.md`).

use serde::{Deserialize, Serialize};

/// One title of one profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TitleKey {
    /// The account.
    pub account_id: String,
    /// The profile.
    pub profile_id: String,
    /// The title.
    pub video_id: String,
}

impl TitleKey {
    /// A key from its three ids.
    pub fn new(
        account_id: impl Into<String>,
        profile_id: impl Into<String>,
        video_id: impl Into<String>,
    ) -> Self {
        Self { account_id: account_id.into(), profile_id: profile_id.into(), video_id: video_id.into() }
    }
}

/// One profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileKey {
    /// The account.
    pub account_id: String,
    /// The profile.
    pub profile_id: String,
}

/// A checkpoint, as `POST /playback/update` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Which title.
    #[serde(flatten)]
    pub key: TitleKey,
    /// Seconds into the title.
    pub position: f64,
    /// The sending device.
    pub device_id: String,
    /// The title's length, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// The event time, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<u64>,
    /// `progress`, `pause`, `stop`, `background` or `seek`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The `updated_at` of the record this device last saw (arms the
    /// stale-device guard).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
}

/// A standing record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The account.
    pub account_id: String,
    /// The profile.
    pub profile_id: String,
    /// The title.
    pub video_id: String,
    /// Seconds into the title.
    pub position: f64,
    /// The title's length, seconds, when known.
    #[serde(default)]
    pub duration: Option<f64>,
    /// The device that wrote it.
    pub device_id: String,
    /// When, ms since the epoch.
    pub updated_at: u64,
}

/// The answer to an update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateAnswer {
    /// `applied`, `stale` or `duplicate`.
    pub outcome: String,
    /// The record that stands (`None` when a newer deletion stands).
    pub record: Option<Record>,
}

/// Where to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeAnswer {
    /// Whether anything is recorded.
    pub found: bool,
    /// Where to start, seconds.
    pub position: f64,
    /// `resume`, `prompt` or `start_over`.
    pub action: String,
    /// Why.
    pub reason: String,
    /// The device the record came from.
    #[serde(default)]
    pub device_id: Option<String>,
    /// For a prompt: this device's own position, seconds.
    #[serde(default)]
    pub alternative: Option<f64>,
    /// The standing record.
    #[serde(default)]
    pub record: Option<Record>,
}

/// One checkpoint's result in a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchResult {
    /// Merged like an update.
    Done(UpdateAnswer),
    /// Rejected: the error, and for a conflict the standing record.
    Failed {
        /// `{code, message, field}`.
        error: serde_json::Value,
        /// The standing record, for a conflict.
        #[serde(default)]
        record: Option<Record>,
    },
}
