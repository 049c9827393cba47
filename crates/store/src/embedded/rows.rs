//! The value of a row: a format byte, then a postcard-encoded record, so the
//! layout can evolve without rewriting existing files. Format 4 (current)
//! added the series and the finish time; format 3 added `finished`; older
//! rows read as their defaults (not finished, no series, no finish time).

use playmark_core::{DeviceId, Duration, Entry, Position, Progress, Series, SeriesId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::StoreError;

const FORMAT_V1: u8 = 1;
/// V1 plus `hidden`.
const FORMAT_V2: u8 = 2;
/// V2 plus `finished`.
const FORMAT_V3: u8 = 3;
/// V3 plus the series and the finish time.
const FORMAT_V4: u8 = 4;

#[derive(Serialize, Deserialize)]
struct StoredV4<'a> {
    touched_at: u64,
    #[serde(borrow)]
    entry: EntryV4<'a>,
}

#[derive(Serialize, Deserialize)]
enum EntryV4<'a> {
    Live {
        updated_at: u64,
        device_id: &'a str,
        position_ms: u64,
        duration_ms: Option<u64>,
        hidden: bool,
        finished: bool,
        series: Option<(&'a str, u32)>,
        finished_at: Option<u64>,
    },
    Deleted {
        at: u64,
    },
}

#[derive(Deserialize)]
struct StoredV3<'a> {
    touched_at: u64,
    #[serde(borrow)]
    entry: EntryV3<'a>,
}

#[derive(Deserialize)]
enum EntryV3<'a> {
    Live {
        updated_at: u64,
        device_id: &'a str,
        position_ms: u64,
        duration_ms: Option<u64>,
        hidden: bool,
        finished: bool,
    },
    Deleted {
        at: u64,
    },
}

#[derive(Deserialize)]
struct StoredV2<'a> {
    touched_at: u64,
    #[serde(borrow)]
    entry: EntryV2<'a>,
}

#[derive(Deserialize)]
enum EntryV2<'a> {
    Live { updated_at: u64, device_id: &'a str, position_ms: u64, duration_ms: Option<u64>, hidden: bool },
    Deleted { at: u64 },
}

#[derive(Deserialize)]
struct StoredV1<'a> {
    touched_at: u64,
    #[serde(borrow)]
    entry: EntryV1<'a>,
}

#[derive(Deserialize)]
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

fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt { backend: super::BACKEND, detail: detail.into() }
}

/// A row's value bytes.
pub(crate) fn encode(entry: &Entry, touched_at: Timestamp) -> Vec<u8> {
    let entry = match entry {
        Entry::Live(p) => EntryV4::Live {
            updated_at: p.updated_at.as_millis(),
            device_id: p.device_id.as_str(),
            position_ms: p.position.as_millis(),
            duration_ms: p.duration.map(Duration::as_millis),
            hidden: p.hidden,
            finished: p.finished,
            series: p.series.as_ref().map(|s| (s.id.as_str(), s.episode)),
            finished_at: p.finished_at.map(Timestamp::as_millis),
        },
        Entry::Deleted { at } => EntryV4::Deleted { at: at.as_millis() },
    };
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT_V4);
    // Writing into a Vec cannot fail, and every field fits postcard.
    postcard::to_io(&StoredV4 { touched_at: touched_at.as_millis(), entry }, &mut out)
        .unwrap_or_else(|_| unreachable!("postcard writes into a Vec"));
    out
}

/// A row read back. Rows of older formats read as their defaults.
pub(crate) fn decode(bytes: &[u8]) -> Result<Stored, StoreError> {
    let undecodable = |e: postcard::Error| corrupt(format!("undecodable row: {e}"));
    let (touched_at, entry) = match bytes.split_first() {
        Some((&FORMAT_V4, body)) => {
            let stored: StoredV4<'_> = postcard::from_bytes(body).map_err(undecodable)?;
            (stored.touched_at, stored.entry)
        }
        Some((&FORMAT_V3, body)) => {
            let stored: StoredV3<'_> = postcard::from_bytes(body).map_err(undecodable)?;
            let entry = match stored.entry {
                EntryV3::Live { updated_at, device_id, position_ms, duration_ms, hidden, finished } => {
                    EntryV4::Live {
                        updated_at,
                        device_id,
                        position_ms,
                        duration_ms,
                        hidden,
                        finished,
                        series: None,
                        finished_at: None,
                    }
                }
                EntryV3::Deleted { at } => EntryV4::Deleted { at },
            };
            (stored.touched_at, entry)
        }
        Some((&FORMAT_V2, body)) => {
            let stored: StoredV2<'_> = postcard::from_bytes(body).map_err(undecodable)?;
            let entry = match stored.entry {
                EntryV2::Live { updated_at, device_id, position_ms, duration_ms, hidden } => EntryV4::Live {
                    updated_at,
                    device_id,
                    position_ms,
                    duration_ms,
                    hidden,
                    finished: false,
                    series: None,
                    finished_at: None,
                },
                EntryV2::Deleted { at } => EntryV4::Deleted { at },
            };
            (stored.touched_at, entry)
        }
        Some((&FORMAT_V1, body)) => {
            let stored: StoredV1<'_> = postcard::from_bytes(body).map_err(undecodable)?;
            let entry = match stored.entry {
                EntryV1::Live { updated_at, device_id, position_ms, duration_ms } => EntryV4::Live {
                    updated_at,
                    device_id,
                    position_ms,
                    duration_ms,
                    hidden: false,
                    finished: false,
                    series: None,
                    finished_at: None,
                },
                EntryV1::Deleted { at } => EntryV4::Deleted { at },
            };
            (stored.touched_at, entry)
        }
        _ => return Err(corrupt("unknown row format")),
    };
    let entry = match entry {
        EntryV4::Live {
            updated_at,
            device_id,
            position_ms,
            duration_ms,
            hidden,
            finished,
            series,
            finished_at,
        } => Entry::Live(Progress {
            updated_at: Timestamp::from_millis(updated_at),
            device_id: DeviceId::parse(device_id).map_err(|e| corrupt(format!("device id {e}")))?,
            position: Position::from_millis(position_ms).map_err(|e| corrupt(format!("position {e}")))?,
            duration: duration_ms
                .map(Duration::from_millis)
                .transpose()
                .map_err(|e| corrupt(format!("duration {e}")))?,
            hidden,
            finished,
            series: series
                .map(|(id, episode)| {
                    SeriesId::parse(id)
                        .map(|id| Series { id, episode })
                        .map_err(|e| corrupt(format!("series id {e}")))
                })
                .transpose()?,
            finished_at: finished_at.map(Timestamp::from_millis),
        }),
        EntryV4::Deleted { at } => Entry::Deleted { at: Timestamp::from_millis(at) },
    };
    Ok(Stored { entry, touched_at: Timestamp::from_millis(touched_at) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let live = Entry::Live(Progress {
            updated_at: Timestamp::from_millis(1_764_270_000_000),
            device_id: DeviceId::parse("tv-livingroom").expect("valid"),
            position: Position::from_millis(1_200_500).expect("valid"),
            duration: Some(Duration::from_millis(3_600_000).expect("valid")),
            hidden: true,
            finished: true,
            series: Some(Series { id: SeriesId::parse("show").expect("valid"), episode: 4 }),
            finished_at: Some(Timestamp::from_millis(1_764_269_000_000)),
        });
        for entry in [live, Entry::Deleted { at: Timestamp::from_millis(7) }] {
            let back = decode(&encode(&entry, Timestamp::from_millis(42))).expect("decodes");
            assert_eq!(back, Stored { entry, touched_at: Timestamp::from_millis(42) });
        }
    }

    #[test]
    fn rows_of_older_formats_still_decode() {
        #[derive(Serialize)]
        struct V1<'a> {
            touched_at: u64,
            entry: E1<'a>,
        }
        #[derive(Serialize)]
        enum E1<'a> {
            Live { updated_at: u64, device_id: &'a str, position_ms: u64, duration_ms: Option<u64> },
        }
        let mut bytes = vec![FORMAT_V1];
        let v1 = V1 {
            touched_at: 42,
            entry: E1::Live { updated_at: 7, device_id: "tv", position_ms: 1_000, duration_ms: None },
        };
        postcard::to_io(&v1, &mut bytes).expect("encodes");
        let back = decode(&bytes).expect("decodes");
        assert_eq!(
            back.entry.live().map(|p| (p.position.as_millis(), p.hidden, p.finished)),
            Some((1_000, false, false))
        );
    }

    #[test]
    fn garbage_is_reported_as_corrupt_not_a_panic() {
        for bytes in [
            &[][..],
            &[9, 1, 2][..],
            &[FORMAT_V1, 0xff, 0xff][..],
            &[FORMAT_V3, 0xff][..],
            &[FORMAT_V4, 0xff][..],
        ] {
            assert!(matches!(decode(bytes), Err(StoreError::Corrupt { .. })));
        }
    }
}
