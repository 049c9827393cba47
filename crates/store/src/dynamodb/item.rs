//! How an entry is laid out as a DynamoDB item, and the condition that
//! makes a write conditional on core's conflict order.
//!
//! An item of the table (partition `pk` = `account#profile`, sort `sk` =
//! `video_id`; ids cannot hold `#`, so keys never collide):
//!
//! | attribute | type | what |
//! |---|---|---|
//! | `k` | N | 0 live, 1 deleted (a deletion outranks a checkpoint at the same ms) |
//! | `ua` | N | `updated_at` in ms (a tombstone's: when the deletion took effect) |
//! | `dev`, `pos`, `dur` | S, N, N | device, position ms, duration ms or -1 for none (live only) |
//! | `hid`, `fin` | BOOL | hidden, finished (live only) |
//! | `tch` | N | when the server last wrote it, ms (for `expire`) |
//! | `exp` | N | when DynamoDB's TTL may delete it, epoch seconds (with a TTL) |
//! | `cw` | S | the continue-watching index's sort key, only while in progress (episodes: after a `z`) |
//! | `wr` | S | the written-order index's sort key (trim), on every row |
//! | `sid`, `ep` | S, N | the series and episode, when the record has one |
//! | `fa` | N | when the title first became finished, ms (finished only) |
//! | `hs` | S | the history index's sort key, only while finished |
//!
//! Each profile also has one item `sk` = `#meta` counting its rows (`n`),
//! with a `shard` that a global index sorts by count, so profiles over the
//! cap are found without a scan; and one item per series, `sk` =
//! `#series#{series}`, holding its pointer (`playmark_core::library::
//! SeriesPointer`: `sv` the episode, `sat` the time) and the series index's
//! sort key `se` (latest activity first).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use playmark_core::library::SeriesPointer;
use playmark_core::{
    AccountId, DeviceId, Duration, Entry, Position, ProfileId, ProfileKey, Progress, ProgressKey, Series,
    SeriesId, StaleGuard, Timestamp, VideoId,
};

/// An item, as the SDK takes and gives it.
pub type Item = HashMap<String, AttributeValue>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const KIND: &str = "k";
pub const UPDATED: &str = "ua";
pub const DEVICE: &str = "dev";
pub const POSITION: &str = "pos";
pub const DURATION: &str = "dur";
pub const HIDDEN: &str = "hid";
pub const FINISHED: &str = "fin";
pub const TOUCHED: &str = "tch";
pub const EXPIRES: &str = "exp";
pub const CONTINUE: &str = "cw";
pub const WRITTEN: &str = "wr";
pub const COUNT: &str = "n";
pub const SERIES: &str = "sid";
pub const EPISODE: &str = "ep";
pub const FINISHED_AT: &str = "fa";
pub const HISTORY: &str = "hs";
pub const ACTIVITY: &str = "se";
pub const POINTED_VIDEO: &str = "sv";
pub const POINTED_AT: &str = "sat";
/// What an episode's continue-watching key starts with: above every hex
/// digit, so a profile's standalone titles are the keys below it and its
/// episodes the keys from it on.
pub const EPISODE_MARK: &str = "z";
pub const SHARD: &str = "shard";

/// The sort key of a profile's row-count item (`#` is not allowed in a
/// video id).
pub const META: &str = "#meta";
/// Shards of the row-count index: profiles' counts are spread over this
/// many index partitions, and trim reads each.
pub const SHARDS: u64 = 16;

const LIVE: u8 = 0;
const DELETED: u8 = 1;
const NO_DURATION: i64 = -1;

/// The partition key of a profile.
pub fn partition(profile: &ProfileKey) -> String {
    format!("{}#{}", profile.account_id, profile.profile_id)
}

/// The profile a partition key names.
pub fn profile_of(pk: &str) -> Result<ProfileKey, String> {
    let (account, profile) = pk.split_once('#').ok_or_else(|| format!("partition key {pk:?} has no '#'"))?;
    Ok(ProfileKey {
        account_id: AccountId::parse(account.to_owned()).map_err(|e| format!("partition key {pk:?}: {e}"))?,
        profile_id: ProfileId::parse(profile.to_owned()).map_err(|e| format!("partition key {pk:?}: {e}"))?,
    })
}

/// The key of a title's item.
pub fn key(k: &ProgressKey) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(partition(&k.profile()))),
        (SK.to_owned(), AttributeValue::S(k.video_id.to_string())),
    ])
}

/// The key of a profile's row-count item.
pub fn meta_key(pk: &str) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk.to_owned())),
        (SK.to_owned(), AttributeValue::S(META.into())),
    ])
}

/// The row-count shard of a partition (any stable spread will do).
pub fn shard_of(pk: &str) -> String {
    // FNV-1a: stable across builds and processes, unlike std's hasher.
    let hash =
        pk.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % SHARDS).to_string()
}

/// Newest first, then video id ascending, as an ascending string: the
/// continue-watching index's sort key. The video id makes equal times
/// distinct, so the order never rests on how an index orders equal keys.
pub fn continue_key(updated_at: Timestamp, video: &VideoId) -> String {
    format!("{:016x}#{video}", u64::MAX - updated_at.as_millis())
}

/// Newest finish first, then video id ascending: the history index's sort
/// key.
pub fn history_key(finished_at: Timestamp, video: &VideoId) -> String {
    continue_key(finished_at, video)
}

/// Latest activity first, then series id ascending: the series index's
/// sort key.
pub fn activity_key(at: Timestamp, series: &SeriesId) -> String {
    format!("{:016x}#{series}", u64::MAX - at.as_millis())
}

/// The sort key of a series' pointer item.
pub fn series_key(profile: &ProfileKey, series: &SeriesId) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(partition(profile))),
        (SK.to_owned(), AttributeValue::S(format!("#series#{series}"))),
    ])
}

/// The pointer and series a pointer item holds.
pub fn pointer(item: &Item) -> Result<(SeriesId, SeriesPointer), String> {
    let sk = string(item, SK)?;
    let series = sk.strip_prefix("#series#").ok_or_else(|| format!("{sk:?} is not a series item"))?;
    let series = SeriesId::parse(series.to_owned()).map_err(|e| format!("series: {e}"))?;
    let video_id =
        VideoId::parse(string(item, POINTED_VIDEO)?.to_owned()).map_err(|e| format!("pointed video: {e}"))?;
    Ok((series, SeriesPointer { at: Timestamp::from_millis(unsigned(item, POINTED_AT)?), video_id }))
}

/// Least recently written first: the written-order index's sort key.
pub fn written_key(updated_at: Timestamp, video: &VideoId) -> String {
    format!("{:016x}#{video}", updated_at.as_millis())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The item that stores `entry` under `key`, written at `touched`, that
/// DynamoDB's TTL may delete after `expires` (epoch seconds).
pub fn item(k: &ProgressKey, entry: &Entry, touched: Timestamp, expires: Option<u64>) -> Item {
    let mut item = key(k);
    item.insert(UPDATED.into(), n(entry.updated_at().as_millis()));
    item.insert(TOUCHED.into(), n(touched.as_millis()));
    item.insert(WRITTEN.into(), AttributeValue::S(written_key(entry.updated_at(), &k.video_id)));
    if let Some(expires) = expires {
        item.insert(EXPIRES.into(), n(expires));
    }
    match entry {
        Entry::Live(p) => {
            item.insert(KIND.into(), n(LIVE));
            item.insert(DEVICE.into(), AttributeValue::S(p.device_id.to_string()));
            item.insert(POSITION.into(), n(p.position.as_millis()));
            item.insert(DURATION.into(), n(p.duration.map_or(NO_DURATION, |d| d.as_millis() as i64)));
            item.insert(HIDDEN.into(), AttributeValue::Bool(p.hidden));
            item.insert(FINISHED.into(), AttributeValue::Bool(p.finished));
            if p.in_progress() {
                let order = continue_key(p.updated_at, &k.video_id);
                let order = if p.series.is_some() { format!("{EPISODE_MARK}{order}") } else { order };
                item.insert(CONTINUE.into(), AttributeValue::S(order));
            }
            if let Some(series) = &p.series {
                item.insert(SERIES.into(), AttributeValue::S(series.id.to_string()));
                item.insert(EPISODE.into(), n(series.episode));
            }
            if let Some(at) = p.finished_at {
                item.insert(FINISHED_AT.into(), n(at.as_millis()));
            }
            if let Some(at) = p.finish_time() {
                item.insert(HISTORY.into(), AttributeValue::S(history_key(at, &k.video_id)));
            }
        }
        Entry::Deleted { .. } => {
            item.insert(KIND.into(), n(DELETED));
        }
    }
    item
}

fn number(item: &Item, name: &str) -> Result<i64, String> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| format!("{name} = {v:?} is not an integer")),
        Some(other) => Err(format!("{name} is {other:?}, not a number")),
        None => Err(format!("{name} is missing")),
    }
}

fn unsigned(item: &Item, name: &str) -> Result<u64, String> {
    let v = number(item, name)?;
    u64::try_from(v).map_err(|_| format!("{name} = {v} is negative"))
}

fn boolean(item: &Item, name: &str) -> Result<bool, String> {
    match item.get(name) {
        Some(AttributeValue::Bool(v)) => Ok(*v),
        None => Ok(false),
        Some(other) => Err(format!("{name} is {other:?}, not a boolean")),
    }
}

fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str, String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(other) => Err(format!("{name} is {other:?}, not a string")),
        None => Err(format!("{name} is missing")),
    }
}

/// The title an item is about.
pub fn progress_key(item: &Item) -> Result<ProgressKey, String> {
    let profile = profile_of(string(item, PK)?)?;
    let video = VideoId::parse(string(item, SK)?.to_owned()).map_err(|e| format!("sort key: {e}"))?;
    Ok(ProgressKey { account_id: profile.account_id, profile_id: profile.profile_id, video_id: video })
}

/// The entry an item stores.
pub fn entry(item: &Item) -> Result<Entry, String> {
    let updated_at = Timestamp::from_millis(unsigned(item, UPDATED)?);
    match u8::try_from(number(item, KIND)?) {
        Ok(LIVE) => {
            let duration = match number(item, DURATION)? {
                NO_DURATION => None,
                ms => Some(
                    Duration::from_millis(
                        u64::try_from(ms).map_err(|_| format!("duration {ms} is negative"))?,
                    )
                    .map_err(|e| format!("duration: {e}"))?,
                ),
            };
            Ok(Entry::Live(Progress {
                updated_at,
                device_id: DeviceId::parse(string(item, DEVICE)?.to_owned())
                    .map_err(|e| format!("device: {e}"))?,
                position: Position::from_millis(unsigned(item, POSITION)?)
                    .map_err(|e| format!("position: {e}"))?,
                duration,
                hidden: boolean(item, HIDDEN)?,
                finished: boolean(item, FINISHED)?,
                series: match item.get(SERIES) {
                    None => None,
                    Some(_) => Some(Series {
                        id: SeriesId::parse(string(item, SERIES)?.to_owned())
                            .map_err(|e| format!("series: {e}"))?,
                        episode: u32::try_from(unsigned(item, EPISODE)?)
                            .map_err(|_| format!("{EPISODE} is beyond an episode"))?,
                    }),
                },
                finished_at: item
                    .get(FINISHED_AT)
                    .map(|_| unsigned(item, FINISHED_AT))
                    .transpose()?
                    .map(Timestamp::from_millis),
            }))
        }
        Ok(DELETED) => Ok(Entry::Deleted { at: updated_at }),
        _ => Err(format!("kind {:?} is neither live (0) nor deleted (1)", item.get(KIND))),
    }
}

/// True when the item's TTL has passed (`now_s`, epoch seconds): it reads
/// as absent, whether or not DynamoDB has deleted it yet.
pub fn expired(item: &Item, now_s: u64) -> bool {
    number(item, EXPIRES).is_ok_and(|exp| exp < now_s as i64)
}

/// The `ExpressionAttributeNames` of expressions that name every attribute
/// as `#name` (DynamoDB reserves hundreds of words, `shard` and `at` among
/// them, so no attribute is ever named bare). Only the names used are
/// given: DynamoDB refuses unused ones.
pub fn names(expressions: &[&str]) -> HashMap<String, String> {
    let mut names = HashMap::new();
    for expression in expressions {
        let mut rest = *expression;
        while let Some(at) = rest.find('#') {
            let word: String =
                rest[at + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            rest = &rest[at + 1 + word.len()..];
            if !word.is_empty() {
                names.insert(format!("#{word}"), word);
            }
        }
    }
    names
}

/// A condition expression with its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The `ConditionExpression`.
    pub expression: String,
    /// Its `ExpressionAttributeValues`.
    pub values: HashMap<String, AttributeValue>,
}

impl Condition {
    /// Its `ExpressionAttributeNames`.
    pub fn names(&self) -> HashMap<String, String> {
        names(&[&self.expression])
    }
}

/// The condition under which `incoming` replaces the item that stands: it
/// is newer under core's conflict order ([`Entry::conflict_cmp`]), tie-breaks
/// included, and the stale-device `guard` (when given) does not refuse it.
/// An item whose TTL has passed (`now_s`, with a TTL) stands for nothing.
///
/// DynamoDB compares strings by their UTF-8 bytes, as Rust does, and a
/// comparison with a missing attribute is false, so the guard is written
/// as the disjunction of what lets a write through (no `NOT`). The whole is
/// at most 18 flat terms, well inside DynamoDB's 300 operators and 4 KB.
#[cfg(test)]
pub fn newer_than_standing(incoming: &Entry, guard: Option<StaleGuard>, ttl_now_s: Option<u64>) -> Condition {
    newer_than_assumed(incoming, guard, ttl_now_s, &[])
}

/// What a write assumed of the item that stands, for the fields it carries
/// over from it (`Progress::carry`): the write is applied only if the item
/// still holds what was carried, so a concurrent write cannot slip in
/// between the read of the carried fields and the put.
pub fn assumed(written: &Progress, named_series: bool, standing: Option<&Entry>) -> Vec<Assumption> {
    let live = standing.and_then(Entry::live);
    let mut out = Vec::new();
    if !named_series {
        out.push(Assumption::Series(live.and_then(|p| p.series.clone())));
    }
    if written.finished {
        out.push(Assumption::FinishedAt(live.filter(|p| p.finished).and_then(|p| p.finished_at)));
    }
    out
}

/// One field a write carried over, as it stood.
#[derive(Debug, Clone, PartialEq)]
pub enum Assumption {
    /// The standing record's series (none: it had none).
    Series(Option<Series>),
    /// The standing record's finish time (none: not finished, or finished
    /// before finish times were kept).
    FinishedAt(Option<Timestamp>),
}

/// [`newer_than_standing`], and every [`Assumption`] holds: each is added
/// to every term that a standing item can satisfy, so the expression stays
/// flat.
pub fn newer_than_assumed(
    incoming: &Entry,
    guard: Option<StaleGuard>,
    ttl_now_s: Option<u64>,
    assumptions: &[Assumption],
) -> Condition {
    let mut values =
        HashMap::from([(":ua".to_owned(), n(incoming.updated_at().as_millis())), (":live".into(), n(LIVE))]);
    // The order as a flat disjunction of conjunctions: an expression nested
    // deeper costs dynalite's parser over 100 ms a write (AWS does not care),
    // this shape 3 ms.
    let newer: &[&str] = match incoming {
        Entry::Live(p) => {
            values.insert(":dev".into(), AttributeValue::S(p.device_id.to_string()));
            values.insert(":pos".into(), n(p.position.as_millis()));
            values.insert(":dur".into(), n(p.duration.map_or(NO_DURATION, |d| d.as_millis() as i64)));
            &[
                "#ua < :ua",
                "#ua = :ua AND #k = :live AND #dev < :dev",
                "#ua = :ua AND #k = :live AND #dev = :dev AND #pos < :pos",
                "#ua = :ua AND #k = :live AND #dev = :dev AND #pos = :pos AND #dur < :dur",
            ]
        }
        // A deletion beats a checkpoint of the same millisecond, and equals
        // a deletion of it.
        Entry::Deleted { .. } => &["#ua < :ua", "#ua = :ua AND #k = :live"],
    };
    let mut terms: Vec<String> = vec!["attribute_not_exists(#pk)".into()];
    match (guard, incoming) {
        (Some(guard), Entry::Live(p)) => {
            values.insert(":rf".into(), n(guard.resumed_from.as_millis()));
            values
                .insert(":posreg".into(), n(p.position.as_millis().saturating_add(guard.max_regression_ms)));
            // Newer, and one of the ways the guard lets a write through.
            let lets_through = ["#k <> :live", "#ua <= :rf", "#dev = :dev", "#pos <= :posreg"];
            for term in newer {
                for through in lets_through {
                    terms.push(format!("({term} AND {through})"));
                }
            }
        }
        _ => terms.extend(newer.iter().map(|term| format!("({term})"))),
    }
    let mut holds = Vec::new();
    for assumption in assumptions {
        match assumption {
            Assumption::Series(None) => holds.push("attribute_not_exists(#sid)".to_owned()),
            Assumption::Series(Some(s)) => {
                values.insert(":sid".into(), AttributeValue::S(s.id.to_string()));
                values.insert(":ep".into(), n(s.episode));
                holds.push("#sid = :sid AND #ep = :ep".to_owned());
            }
            Assumption::FinishedAt(None) => holds.push("attribute_not_exists(#fa)".to_owned()),
            Assumption::FinishedAt(Some(at)) => {
                values.insert(":fa".into(), n(at.as_millis()));
                holds.push("#fa = :fa".to_owned());
            }
        }
    }
    if !holds.is_empty() {
        // Not on `attribute_not_exists(#pk)`: no item, nothing carried.
        let holds = holds.join(" AND ");
        for term in terms.iter_mut().skip(1) {
            // `(a AND b)` becomes `(a AND b AND holds)`: still one level.
            term.pop();
            term.push_str(&format!(" AND {holds})"));
        }
    }
    if let Some(now_s) = ttl_now_s {
        values.insert(":now".into(), n(now_s));
        terms.insert(0, "#exp < :now".into());
    }
    Condition { expression: terms.join(" OR "), values }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(at: u64, device: &str, pos: u64, dur: Option<u64>, hidden: bool) -> Entry {
        Entry::Live(Progress {
            updated_at: Timestamp::from_millis(at),
            device_id: DeviceId::parse(device.to_owned()).expect("device"),
            position: Position::from_millis(pos).expect("position"),
            duration: dur.map(|d| Duration::from_millis(d).expect("duration")),
            hidden,
            finished: false,
            series: None,
            finished_at: None,
        })
    }

    fn title() -> ProgressKey {
        ProgressKey {
            account_id: AccountId::parse("acct").expect("id"),
            profile_id: ProfileId::parse("A").expect("id"),
            video_id: VideoId::parse("V1").expect("id"),
        }
    }

    #[test]
    fn every_entry_reads_back_as_written() {
        for entry in [
            live(1_000, "tv", 0, None, false),
            live(u64::from(u32::MAX) * 1000, "phone", 3_600_000, Some(7_200_000), true),
            Entry::Deleted { at: Timestamp::from_millis(5) },
        ] {
            let item = item(&title(), &entry, Timestamp::from_millis(9), Some(10));
            assert_eq!(super::entry(&item), Ok(entry.clone()));
            assert_eq!(progress_key(&item), Ok(title()));
        }
    }

    #[test]
    fn only_titles_in_progress_are_in_the_continue_watching_index() {
        let shown = item(&title(), &live(1, "tv", 1, None, false), Timestamp::from_millis(1), None);
        let hidden = item(&title(), &live(1, "tv", 1, None, true), Timestamp::from_millis(1), None);
        let gone = item(
            &title(),
            &Entry::Deleted { at: Timestamp::from_millis(1) },
            Timestamp::from_millis(1),
            None,
        );
        assert!(shown.contains_key(CONTINUE));
        assert!(!hidden.contains_key(CONTINUE) && !gone.contains_key(CONTINUE));
        assert!(gone.contains_key(WRITTEN), "tombstones count against the cap");
    }

    #[test]
    fn the_index_keys_sort_newest_first_then_by_video_and_oldest_first() {
        let v = |s: &str| VideoId::parse(s.to_owned()).expect("id");
        let t = Timestamp::from_millis;
        let mut keys = vec![
            continue_key(t(5), &v("B")),
            continue_key(t(9), &v("Z")),
            continue_key(t(5), &v("A")),
            continue_key(t(10_000_000_000_000), &v("C")),
        ];
        keys.sort();
        assert_eq!(
            keys,
            [
                continue_key(t(10_000_000_000_000), &v("C")),
                continue_key(t(9), &v("Z")),
                continue_key(t(5), &v("A")),
                continue_key(t(5), &v("B")),
            ]
        );
        assert!(written_key(t(9), &v("Z")) < written_key(t(10), &v("A")));
    }

    #[test]
    fn a_corrupt_item_is_named_not_guessed() {
        let mut bad = item(&title(), &live(1, "tv", 1, None, false), Timestamp::from_millis(1), None);
        bad.insert(KIND.into(), AttributeValue::N("7".into()));
        assert!(entry(&bad).expect_err("corrupt").contains("kind"));
        bad.insert(KIND.into(), AttributeValue::S("0".into()));
        assert!(entry(&bad).expect_err("corrupt").contains("not a number"));
    }

    #[test]
    fn the_condition_is_flat_and_inside_dynamodb_s_limits() {
        let condition = newer_than_standing(
            &live(1, "tv", 1, Some(5), false),
            Some(StaleGuard { resumed_from: Timestamp::from_millis(1), max_regression_ms: 1 }),
            Some(1),
        );
        let e = &condition.expression;
        assert!(e.len() < 4096, "{} bytes", e.len());
        let operators = [" AND ", " OR ", " < ", " <= ", " = ", " <> ", "attribute_not_exists"]
            .iter()
            .map(|op| e.matches(op).count())
            .sum::<usize>();
        assert!(operators < 300, "{operators} operators");
        let depth = e.chars().fold((0i32, 0i32), |(d, most), c| match c {
            '(' => (d + 1, most.max(d + 1)),
            ')' => (d - 1, most),
            _ => (d, most),
        });
        assert_eq!(depth, (0, 1), "{e}");
    }

    #[test]
    fn every_attribute_an_expression_names_is_declared_once() {
        let condition = newer_than_standing(
            &live(1, "tv", 1, None, false),
            Some(StaleGuard { resumed_from: Timestamp::from_millis(1), max_regression_ms: 1 }),
            Some(1),
        );
        let names = condition.names();
        let mut declared: Vec<&str> = names.values().map(String::as_str).collect();
        declared.sort_unstable();
        assert_eq!(declared, ["dev", "dur", "exp", "k", "pk", "pos", "ua"]);
        assert!(names.iter().all(|(k, v)| *k == format!("#{v}")));
        assert_eq!(super::names(&["SET #hid = :t REMOVE #cw"]).len(), 2);
    }

    #[test]
    fn profiles_spread_over_every_shard() {
        let shards: std::collections::HashSet<String> =
            (0..1000).map(|i| shard_of(&format!("a{i}#A"))).collect();
        assert_eq!(shards.len() as u64, SHARDS);
    }
}
