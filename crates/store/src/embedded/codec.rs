//! How entries are laid out in redb.
//!
//! Keys are `account_id NUL profile_id NUL video_id`. Ids never contain NUL
//! (see `playmark_core::ids`), so all of a profile's rows sit together and
//! "continue watching" is one range read over `account NUL profile NUL ..
//! account NUL profile SOH`.
//!
//! Values are a format byte followed by a postcard-encoded record, so the
//! layout can evolve without a migration of existing files.

use playmark_core::{
    AccountId, DeviceId, Duration, Entry, Position, ProfileId, ProfileKey, Progress, ProgressKey, Timestamp,
    VideoId,
};
use serde::{Deserialize, Serialize};

use crate::StoreError;

const BACKEND: &str = "embedded";
const FORMAT_V1: u8 = 1;
/// V1 plus the `hidden` flag.
const FORMAT_V2: u8 = 2;
const SEP: u8 = 0;

/// The key bytes of one title's row.
pub(crate) fn encode_key(key: &ProgressKey) -> Vec<u8> {
    let mut out = profile_prefix(&key.profile());
    out.extend_from_slice(key.video_id.as_str().as_bytes());
    out
}

/// The bytes every row of `profile` starts with.
pub(crate) fn profile_prefix(profile: &ProfileKey) -> Vec<u8> {
    let (a, p) = (profile.account_id.as_str(), profile.profile_id.as_str());
    let mut out = Vec::with_capacity(a.len() + p.len() + 2 + 32);
    out.extend_from_slice(a.as_bytes());
    out.push(SEP);
    out.extend_from_slice(p.as_bytes());
    out.push(SEP);
    out
}

/// The end (exclusive) of the range that starts at `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    // The prefix ends in SEP (0). Every id byte is printable ASCII, far above
    // SEP + 1, so swapping the last byte for SEP + 1 gives the first key past
    // every row under the prefix and before any other profile's rows.
    if let Some(last) = end.last_mut() {
        *last = SEP + 1;
    }
    end
}

/// The key a row's key bytes encode.
pub(crate) fn decode_key(bytes: &[u8]) -> Result<ProgressKey, StoreError> {
    let mut parts = bytes.splitn(3, |b| *b == SEP).map(std::str::from_utf8);
    let mut next = || parts.next().and_then(Result::ok).ok_or_else(|| corrupt("row key is not three ids"));
    let (account, profile, video) = (next()?, next()?, next()?);
    let invalid = |e: playmark_core::IdError| corrupt(format!("row key holds an invalid id: {e}"));
    Ok(ProgressKey {
        account_id: AccountId::parse(account).map_err(invalid)?,
        profile_id: ProfileId::parse(profile).map_err(invalid)?,
        video_id: VideoId::parse(video).map_err(invalid)?,
    })
}

/// The video id part of a row key of a known profile prefix.
pub(crate) fn video_of(key: &[u8], prefix_len: usize) -> Result<VideoId, StoreError> {
    let raw = key.get(prefix_len..).unwrap_or_default();
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| VideoId::parse(s).ok())
        .ok_or_else(|| corrupt("row key does not end in a valid video id"))
}

#[derive(Serialize, Deserialize)]
struct StoredV1<'a> {
    touched_at: u64,
    #[serde(borrow)]
    entry: EntryV1<'a>,
}

#[derive(Serialize, Deserialize)]
struct StoredV2<'a> {
    touched_at: u64,
    #[serde(borrow)]
    entry: EntryV2<'a>,
}

#[derive(Serialize, Deserialize)]
enum EntryV2<'a> {
    Live { updated_at: u64, device_id: &'a str, position_ms: u64, duration_ms: Option<u64>, hidden: bool },
    Deleted { at: u64 },
}

#[derive(Serialize, Deserialize)]
enum EntryV1<'a> {
    Live { updated_at: u64, device_id: &'a str, position_ms: u64, duration_ms: Option<u64> },
    Deleted { at: u64 },
}

/// A decoded row: the entry and when the server last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub entry: Entry,
    pub touched_at: Timestamp,
}

pub(crate) fn encode_value(entry: &Entry, touched_at: Timestamp) -> Result<Vec<u8>, StoreError> {
    let entry = match entry {
        Entry::Live(p) => EntryV2::Live {
            updated_at: p.updated_at.as_millis(),
            device_id: p.device_id.as_str(),
            position_ms: p.position.as_millis(),
            duration_ms: p.duration.map(Duration::as_millis),
            hidden: p.hidden,
        },
        Entry::Deleted { at } => EntryV2::Deleted { at: at.as_millis() },
    };
    let stored = StoredV2 { touched_at: touched_at.as_millis(), entry };
    let mut out = vec![FORMAT_V2];
    postcard::to_io(&stored, &mut out)
        .map_err(|e| StoreError::Backend { backend: BACKEND, source: Box::new(e) })?;
    Ok(out)
}

pub(crate) fn decode_value(bytes: &[u8]) -> Result<Stored, StoreError> {
    let undecodable = |e: postcard::Error| corrupt(format!("undecodable value: {e}"));
    let (touched_at, entry) = match bytes.split_first() {
        Some((&FORMAT_V2, body)) => {
            let stored: StoredV2<'_> = postcard::from_bytes(body).map_err(undecodable)?;
            (stored.touched_at, stored.entry)
        }
        Some((&FORMAT_V1, body)) => {
            let stored: StoredV1<'_> = postcard::from_bytes(body).map_err(undecodable)?;
            let entry = match stored.entry {
                EntryV1::Live { updated_at, device_id, position_ms, duration_ms } => {
                    EntryV2::Live { updated_at, device_id, position_ms, duration_ms, hidden: false }
                }
                EntryV1::Deleted { at } => EntryV2::Deleted { at },
            };
            (stored.touched_at, entry)
        }
        _ => return Err(corrupt("unknown value format")),
    };
    let entry = match entry {
        EntryV2::Live { updated_at, device_id, position_ms, duration_ms, hidden } => Entry::Live(Progress {
            updated_at: Timestamp::from_millis(updated_at),
            device_id: DeviceId::parse(device_id).map_err(|e| corrupt(format!("device id {e}")))?,
            position: Position::from_millis(position_ms).map_err(|e| corrupt(format!("position {e}")))?,
            duration: duration_ms
                .map(Duration::from_millis)
                .transpose()
                .map_err(|e| corrupt(format!("duration {e}")))?,
            hidden,
        }),
        EntryV2::Deleted { at } => Entry::Deleted { at: Timestamp::from_millis(at) },
    };
    Ok(Stored { entry, touched_at: Timestamp::from_millis(touched_at) })
}

fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt { backend: BACKEND, detail: detail.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: &str, p: &str, v: &str) -> ProgressKey {
        ProgressKey {
            account_id: AccountId::parse(a).expect("valid"),
            profile_id: ProfileId::parse(p).expect("valid"),
            video_id: VideoId::parse(v).expect("valid"),
        }
    }

    #[test]
    fn a_profiles_rows_fall_inside_its_range_and_no_others_do() {
        let prefix = profile_prefix(&key("acct", "A", "x").profile());
        let end = prefix_end(&prefix);
        let inside = |k: &ProgressKey| {
            let b = encode_key(k);
            b >= prefix && b < end
        };
        assert!(inside(&key("acct", "A", "V1")));
        assert!(inside(&key("acct", "A", "-")));
        assert!(!inside(&key("acct", "AB", "V1")));
        assert!(!inside(&key("acct-2", "A", "V1")));
        assert!(!inside(&key("acc", "tA", "V1")));
    }

    #[test]
    fn keys_round_trip() {
        let k = key("acct-1", "A", "V:1");
        assert_eq!(decode_key(&encode_key(&k)).expect("decodes"), k);
        assert!(matches!(decode_key(b"acct\0A"), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn values_round_trip() {
        let live = Entry::Live(Progress {
            updated_at: Timestamp::from_millis(1_764_270_000_000),
            device_id: DeviceId::parse("tv-livingroom").expect("valid"),
            position: Position::from_millis(1_200_500).expect("valid"),
            duration: Some(Duration::from_millis(3_600_000).expect("valid")),
            hidden: false,
        });
        for entry in [live, Entry::Deleted { at: Timestamp::from_millis(7) }] {
            let bytes = encode_value(&entry, Timestamp::from_millis(42)).expect("encodes");
            let back = decode_value(&bytes).expect("decodes");
            assert_eq!(back, Stored { entry, touched_at: Timestamp::from_millis(42) });
        }
    }

    #[test]
    fn version_1_values_still_decode() {
        let v1 = StoredV1 {
            touched_at: 42,
            entry: EntryV1::Live { updated_at: 7, device_id: "tv", position_ms: 1_000, duration_ms: None },
        };
        let mut bytes = vec![FORMAT_V1];
        postcard::to_io(&v1, &mut bytes).expect("encodes");
        let back = decode_value(&bytes).expect("decodes");
        assert_eq!(back.entry.live().map(|p| (p.position.as_millis(), p.hidden)), Some((1_000, false)));
    }

    #[test]
    fn garbage_is_reported_as_corrupt_not_a_panic() {
        for bytes in [&[][..], &[9, 1, 2][..], &[FORMAT_V1, 0xff, 0xff][..], &[FORMAT_V2, 0xff][..]] {
            assert!(matches!(decode_value(bytes), Err(StoreError::Corrupt { .. })));
        }
    }
}
