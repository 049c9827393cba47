//! The request types the client builds. The answers' types, and every
//! name on the wire, are `playmark-wire`'s, shared with the server.

use playmark_wire::PlayerEvent;
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
    /// What the player was doing (`progress` when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<PlayerEvent>,
    /// The `updated_at` of the record this device last saw (arms the
    /// stale-device guard).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
    /// The series the title belongs to, with `episode` (kept by the
    /// record until another is named).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_id: Option<String>,
    /// The title's ordinal in its series, with `series_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode: Option<u32>,
}

/// A title marked watched or not watched, as `POST /playback/watched` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// Which title.
    #[serde(flatten)]
    pub key: TitleKey,
    /// The device the viewer marked it on.
    pub device_id: String,
    /// Watched (`true`) or not watched (`false`).
    pub watched: bool,
    /// The title's length, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// When the viewer marked it, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<u64>,
    /// The series the title belongs to, with `episode` (kept by the
    /// record until another is named).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_id: Option<String>,
    /// The title's ordinal in its series, with `series_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode: Option<u32>,
}
