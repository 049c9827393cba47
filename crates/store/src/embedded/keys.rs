//! How the embedded store lays its data out: one ordered key space (the redb
//! table `kv`, and the memtables above it), split by a leading byte into:
//!
//! - **rows** `R account NUL profile NUL video` → the entry ([`super::rows`]);
//! - **continue-watching** `C account NUL profile NUL ~updated_at video` →
//!   the row's value: one key per standalone title in progress (live, not
//!   hidden, not finished, no series), newest first (`~updated_at` is the
//!   time's complement, big endian), ties by video id ascending. A
//!   profile's row is a prefix range, read only as far as the limit;
//! - **episodes in progress** `E account NUL profile NUL ~updated_at video`
//!   → the row's value: the same for titles with a series, so the row
//!   grouped by series reads standalone titles without wading through
//!   episodes, and the plain row merges the two ranges;
//! - **history** `H account NUL profile NUL ~finish_time video` → the row's
//!   value: one key per finished title, newest finish first;
//! - **series pointers** `S account NUL profile NUL series` → `at video`
//!   (`at` big endian): the episode written last
//!   (`playmark_core::library::SeriesPointer`);
//! - **series activity** `A account NUL profile NUL ~at series` → `video`:
//!   the pointers, latest activity first;
//! - **counts** `N account NUL profile NUL` → how many rows (tombstones
//!   included) the profile has;
//! - **by count** `B count account NUL profile NUL` → nothing: the profiles
//!   ordered by their count, so those over a cap are a range;
//! - **meta** `M name` → the store's own facts (the checkpointed LSN).
//!
//! Ids never contain NUL (see `playmark_core::ids`), so a profile's keys of
//! each kind sit together and never mix with another profile's.

use playmark_core::library::SeriesPointer;
use playmark_core::{AccountId, ProfileId, ProfileKey, ProgressKey, SeriesId, Timestamp, VideoId};

use crate::StoreError;

const SEP: u8 = 0;
/// Rows.
pub(crate) const ROW: u8 = b'R';
/// Continue-watching order (standalone titles).
pub(crate) const CW: u8 = b'C';
/// Continue-watching order (episodes).
pub(crate) const EPISODES: u8 = b'E';
/// History order.
pub(crate) const HISTORY: u8 = b'H';
/// Series pointers.
pub(crate) const SERIES: u8 = b'S';
/// Series activity order.
pub(crate) const ACTIVITY: u8 = b'A';
/// Rows per profile.
pub(crate) const COUNT: u8 = b'N';
/// Profiles by row count.
pub(crate) const BY_COUNT: u8 = b'B';
/// Meta keys start with `M`.
///
/// `M checkpoint`: the LSN of the last log group the B-tree holds.
pub(crate) const CHECKPOINT_LSN: &[u8] = b"Mcheckpoint";
/// `M probe`: written by readiness probes.
pub(crate) const PROBE: &[u8] = b"Mprobe";
/// `M history`: present once the history order holds every finished row
/// (built on the first open of a data file that predates it).
pub(crate) const HISTORY_BUILT: &[u8] = b"Mhistory";

fn push_profile(out: &mut Vec<u8>, profile: &ProfileKey) {
    out.extend_from_slice(profile.account_id.as_str().as_bytes());
    out.push(SEP);
    out.extend_from_slice(profile.profile_id.as_str().as_bytes());
    out.push(SEP);
}

/// `kind account NUL profile NUL`.
pub(crate) fn profile_prefix(kind: u8, profile: &ProfileKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(kind);
    push_profile(&mut out, profile);
    out
}

/// The row key of a title.
pub(crate) fn row(key: &ProgressKey) -> Vec<u8> {
    let mut out = profile_prefix(ROW, &key.profile());
    out.extend_from_slice(key.video_id.as_str().as_bytes());
    out
}

/// The continue-watching key of a title last written at `updated_at`.
pub(crate) fn cw(profile: &ProfileKey, video: &VideoId, updated_at: Timestamp) -> Vec<u8> {
    timed(CW, profile, updated_at, video.as_str())
}

/// A key of one of the time orders (`C`, `E`, `H`, `A`): the profile, the
/// time's complement (newest first), then `id`.
pub(crate) fn timed(kind: u8, profile: &ProfileKey, at: Timestamp, id: &str) -> Vec<u8> {
    let mut out = profile_prefix(kind, profile);
    out.extend_from_slice(&(u64::MAX - at.as_millis()).to_be_bytes());
    out.extend_from_slice(id.as_bytes());
    out
}

/// The time and id of a [`timed`] key whose profile prefix is
/// `prefix_len` long.
pub(crate) fn decode_timed(key: &[u8], prefix_len: usize) -> Result<(Timestamp, &str), StoreError> {
    let (Some(at), Some(id)) = (key.get(prefix_len..prefix_len + 8), key.get(prefix_len + 8..)) else {
        return Err(corrupt("an order key is cut short"));
    };
    let at = u64::from_be_bytes(at.try_into().map_err(|_| corrupt("an order key is cut short"))?);
    let id = std::str::from_utf8(id).map_err(|_| corrupt("an order key is not UTF-8"))?;
    Ok((Timestamp::from_millis(u64::MAX - at), id))
}

/// The series pointer key of a series.
pub(crate) fn series(profile: &ProfileKey, series: &SeriesId) -> Vec<u8> {
    let mut out = profile_prefix(SERIES, profile);
    out.extend_from_slice(series.as_str().as_bytes());
    out
}

/// A series pointer's value.
pub(crate) fn encode_pointer(pointer: &SeriesPointer) -> Vec<u8> {
    let mut out = pointer.at.as_millis().to_be_bytes().to_vec();
    out.extend_from_slice(pointer.video_id.as_str().as_bytes());
    out
}

/// A series pointer read back.
pub(crate) fn decode_pointer(bytes: &[u8]) -> Result<SeriesPointer, StoreError> {
    let (Some(at), Some(video)) = (bytes.get(..8), bytes.get(8..)) else {
        return Err(corrupt("a series pointer is cut short"));
    };
    let at = u64::from_be_bytes(at.try_into().map_err(|_| corrupt("a series pointer is cut short"))?);
    let video = std::str::from_utf8(video).map_err(|_| corrupt("a series pointer is not UTF-8"))?;
    Ok(SeriesPointer { at: Timestamp::from_millis(at), video_id: VideoId::parse(video).map_err(invalid)? })
}

/// The count key of a profile.
pub(crate) fn count(profile: &ProfileKey) -> Vec<u8> {
    profile_prefix(COUNT, profile)
}

/// The by-count key of a profile with `n` rows.
pub(crate) fn by_count(n: u64, profile: &ProfileKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(BY_COUNT);
    out.extend_from_slice(&n.to_be_bytes());
    push_profile(&mut out, profile);
    out
}

/// The first by-count key of profiles with more than `n` rows.
pub(crate) fn by_count_above(n: u64) -> Vec<u8> {
    let mut out = vec![BY_COUNT];
    out.extend_from_slice(&n.saturating_add(1).to_be_bytes());
    out
}

/// The end (exclusive) of the range that starts at `prefix`, which ends in
/// a separator: every id byte is printable ASCII, far above `SEP + 1`, so
/// swapping the last byte for `SEP + 1` gives the first key past every key
/// under the prefix and before any other profile's.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last = SEP + 1;
    }
    end
}

/// The end (exclusive) of every key of one kind.
pub(crate) fn kind_end(kind: u8) -> Vec<u8> {
    vec![kind + 1]
}

fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt { backend: super::BACKEND, detail: detail.into() }
}

fn ids(bytes: &[u8], n: usize) -> Result<Vec<&str>, StoreError> {
    let parts: Vec<_> = bytes.splitn(n, |b| *b == SEP).collect();
    if parts.len() != n {
        return Err(corrupt("a key does not hold its ids"));
    }
    parts
        .into_iter()
        .map(|p| std::str::from_utf8(p).map_err(|_| corrupt("a key holds an id that is not UTF-8")))
        .collect()
}

fn invalid(e: playmark_core::IdError) -> StoreError {
    corrupt(format!("a key holds an invalid id: {e}"))
}

/// The title a row key names.
pub(crate) fn decode_row(key: &[u8]) -> Result<ProgressKey, StoreError> {
    let rest = key.strip_prefix(&[ROW]).ok_or_else(|| corrupt("not a row key"))?;
    let parts = ids(rest, 3)?;
    Ok(ProgressKey {
        account_id: AccountId::parse(parts[0]).map_err(invalid)?,
        profile_id: ProfileId::parse(parts[1]).map_err(invalid)?,
        video_id: VideoId::parse(parts[2]).map_err(invalid)?,
    })
}

/// The video id of a continue-watching, episode or history key whose
/// profile prefix is `prefix_len` long.
pub(crate) fn decode_cw_video(key: &[u8], prefix_len: usize) -> Result<VideoId, StoreError> {
    VideoId::parse(decode_timed(key, prefix_len)?.1).map_err(invalid)
}

/// The profile a `kind account NUL profile NUL` key names.
pub(crate) fn decode_profile(key: &[u8]) -> Result<ProfileKey, StoreError> {
    profile_of(key.get(1..).ok_or_else(|| corrupt("a profile key is cut short"))?)
}

/// The profile a by-count key names.
pub(crate) fn decode_by_count(key: &[u8]) -> Result<ProfileKey, StoreError> {
    profile_of(key.get(1 + 8..).ok_or_else(|| corrupt("a by-count key is cut short"))?)
}

/// `account NUL profile NUL` as a profile.
fn profile_of(bytes: &[u8]) -> Result<ProfileKey, StoreError> {
    let parts = ids(bytes.strip_suffix(&[SEP]).unwrap_or(bytes), 2)?;
    Ok(ProfileKey {
        account_id: AccountId::parse(parts[0]).map_err(invalid)?,
        profile_id: ProfileId::parse(parts[1]).map_err(invalid)?,
    })
}

/// A count value.
pub(crate) fn encode_count(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

/// A count value read back.
pub(crate) fn decode_count(bytes: &[u8]) -> Result<u64, StoreError> {
    bytes.try_into().map(u64::from_le_bytes).map_err(|_| corrupt("a count is not 8 bytes"))
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
        let prefix = profile_prefix(ROW, &key("acct", "A", "x").profile());
        let end = prefix_end(&prefix);
        let inside = |k: &ProgressKey| {
            let b = row(k);
            b >= prefix && b < end
        };
        assert!(inside(&key("acct", "A", "V1")));
        assert!(inside(&key("acct", "A", "-")));
        assert!(!inside(&key("acct", "AB", "V1")));
        assert!(!inside(&key("acct-2", "A", "V1")));
        assert!(!inside(&key("acc", "tA", "V1")));
    }

    #[test]
    fn continue_watching_keys_sort_newest_first_then_by_video() {
        let p = key("acct", "A", "x").profile();
        let v = |s: &str| VideoId::parse(s).expect("valid");
        let mut keys = [
            cw(&p, &v("b"), Timestamp::from_millis(5)),
            cw(&p, &v("a"), Timestamp::from_millis(5)),
            cw(&p, &v("z"), Timestamp::from_millis(9)),
            cw(&p, &v("c"), Timestamp::from_millis(1)),
        ];
        keys.sort();
        let prefix_len = profile_prefix(CW, &p).len();
        let order: Vec<_> =
            keys.iter().map(|k| decode_cw_video(k, prefix_len).expect("decodes").to_string()).collect();
        assert_eq!(order, ["z", "a", "b", "c"]);
    }

    #[test]
    fn keys_round_trip() {
        let k = key("acct-1", "A", "V:1");
        assert_eq!(decode_row(&row(&k)).expect("decodes"), k);
        assert_eq!(decode_by_count(&by_count(7, &k.profile())).expect("decodes"), k.profile());
        assert!(by_count(8, &k.profile()) >= by_count_above(7));
        assert!(by_count(7, &k.profile()) < by_count_above(7));
        assert!(matches!(decode_row(b"Racct\0A"), Err(StoreError::Corrupt { .. })));
    }
}
