//! DynamoDB (and the DynamoDB API of ScyllaDB Alternator) as the durable
//! store, through the official AWS SDK for Rust.
//!
//! - Every checkpoint is one conditional `PutItem`: its condition is core's
//!   conflict order, tie-breaks and the stale-device guard included
//!   ([`item::newer_than_standing`]). A refused write learns what stands in
//!   the same round trip (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), or,
//!   where the server does not return it (dynalite), from one consistent
//!   `GetItem`.
//! - A deletion is a conditional put of a tombstone; hiding, a conditional
//!   update.
//! - Continue-watching is a `Query` of the profile's partition through a
//!   local secondary index kept in order (newest first), its limit pushed
//!   down, `ConsistentRead` (which only local indexes give). Never a scan.
//!   Episodes sort after standalone titles in that index, so each half is
//!   a key range; history and series activity are two more such indexes.
//! - A checkpoint that carries fields over from what stands
//!   (`Progress::carry`: the series, the first finish time) puts them on
//!   the condition that they still stand ([`item::newer_than_assumed`]);
//!   the first try assumes nothing stands, and a refusal returns the item,
//!   so a checkpoint that names its series costs one call as before. An
//!   applied episode then moves its series' pointer: one conditional
//!   `UpdateItem`.
//! - TTL: with one configured, every applied write refreshes `exp` and
//!   DynamoDB deletes expired items itself; since that can lag by days (and
//!   emulators do not do it), an expired item reads as absent.
//! - The per-profile cap: each profile's row count is kept in one item,
//!   brought up to date a moment after writes add rows (coalesced, off the
//!   write's path); a profile found over the cap then is trimmed at once,
//!   and [`ProgressStore::trim`] finds profiles over a cap through a global
//!   index on those counts.
//! - The table is created on start if missing ([`schema`]).

mod item;
pub mod schema;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, Select};
use playmark_core::library::{self, HistoryCursor, SeriesActivity};
use playmark_core::{
    Entry, Outcome, ProfileKey, Progress, ProgressKey, SeriesId, StaleGuard, Timestamp, VideoId,
};

use crate::{ProgressStore, StoreError, Written};
use item::Item;

const BACKEND: &str = "dynamodb";

/// The index continue-watching reads (local: consistent reads).
pub const CONTINUE_INDEX: &str = "continue_watching";
/// The index of finished titles, newest finish first (local).
pub const HISTORY_INDEX: &str = "history";
/// The index of series pointers, latest activity first (local).
pub const SERIES_INDEX: &str = "series";
/// The index of every row, least recently written first (local): trimming.
pub const WRITTEN_INDEX: &str = "written";
/// The index of profiles' row counts (global, sharded): finding profiles
/// over a cap.
pub const SIZES_INDEX: &str = "profile_sizes";

// The expressions, every attribute as `#name` (see `item::names`).
const BY_PARTITION: &str = "#pk = :pk";
const ADD_ROW: &str = "ADD #n :one SET #shard = if_not_exists(#shard, :shard)";
const SET_COUNT: &str = "SET #n = :n, #shard = if_not_exists(#shard, :shard)";
const UNCHANGED: &str = "#wr = :wr";
const HIDE: &str = "SET #hid = :t REMOVE #cw";
const IDLE: &str = "#tch < :cutoff";
const OVER_CAP: &str = "#shard = :shard AND #n > :max";
const STANDALONE: &str = "#pk = :pk AND #cw < :mark";
const EPISODES: &str = "#pk = :pk AND #cw >= :mark";
const HISTORY_AFTER: &str = "#pk = :pk AND #hs > :after";
const SERIES_AFTER: &str = "#pk = :pk AND #se > :after";
const POINT: &str = "SET #sv = :sv, #sat = :sat, #se = :se";
const POINT_TTL: &str = "SET #sv = :sv, #sat = :sat, #se = :se, #exp = :exp";
/// `SeriesPointer::moves`: none yet, a later write, or a tie won by the
/// larger (or the same) video id. Never back in time: the pointer moves in
/// a call of its own, after the write, so two writes of one episode may
/// reach it out of order.
const MOVES: &str = "attribute_not_exists(#sat) OR #sat < :sat OR (#sat = :sat AND #sv <= :sv)";

/// How to reach DynamoDB and what to keep.
#[derive(Debug, Clone)]
pub struct DynamoOptions {
    /// The table.
    pub table: String,
    /// An endpoint URL (Alternator, or a local emulator); `None` is AWS.
    pub endpoint: Option<String>,
    /// The region; `None` takes it from the AWS chain (`AWS_REGION`,
    /// profiles), or `us-east-1` with an explicit endpoint.
    pub region: Option<String>,
    /// Static credentials `(access key id, secret)`; `None` takes them from
    /// the AWS chain (environment, profiles, roles), or, with an `endpoint`
    /// and no credentials in the environment, placeholders (an emulator
    /// takes any).
    pub credentials: Option<(String, String)>,
    /// Create the table (and turn on TTL) when it is missing.
    pub create_table: bool,
    /// How long after its last write an item may be deleted by DynamoDB's
    /// TTL; `None`: never.
    pub ttl: Option<Duration>,
    /// The per-profile cap enforced at write time; `None`: none.
    pub max_titles: Option<usize>,
    /// Longest a new connection may take to open.
    pub connect_timeout: Duration,
    /// Longest a call may take, its retries included.
    pub operation_timeout: Duration,
    /// Longest one attempt may take.
    pub attempt_timeout: Duration,
    /// Attempts per call (throttling and transient errors are retried with
    /// the SDK's backoff).
    pub max_attempts: u32,
}

impl Default for DynamoOptions {
    fn default() -> Self {
        Self {
            table: "playmark_progress".into(),
            endpoint: None,
            region: None,
            credentials: None,
            create_table: true,
            ttl: None,
            max_titles: None,
            connect_timeout: Duration::from_millis(500),
            operation_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_millis(800),
            max_attempts: 3,
        }
    }
}

/// The DynamoDB-backed [`ProgressStore`].
#[derive(Debug, Clone)]
pub struct DynamoStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    table: String,
    ttl: Option<Duration>,
    max_titles: Option<usize>,
    /// Rows added to (or removed from) each profile since the counts were
    /// last written, by partition key. Written every [`COUNT_FLUSH`] by a
    /// background task, so a write never waits for its profile's count, and
    /// a burst of inserts into one profile (an offline upload) is one update
    /// of its count item rather than one per row.
    counts: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// How often the profiles' row counts are brought up to date.
const COUNT_FLUSH: Duration = Duration::from_millis(200);

impl DynamoStore {
    /// Builds the client, and creates the table if it is missing and
    /// `create_table` is on (several nodes may start at once).
    pub async fn connect(options: DynamoOptions) -> Result<Self, StoreError> {
        let client = schema::client(&options).await;
        if options.create_table {
            schema::create(&client, &options.table, options.ttl.is_some()).await?;
        } else {
            schema::check(&client, &options.table).await?;
        }
        tracing::info!(table = %options.table, endpoint = ?options.endpoint, "dynamodb store connected");
        let inner = Arc::new(Inner {
            client,
            table: options.table,
            ttl: options.ttl,
            max_titles: options.max_titles,
            counts: std::sync::Mutex::default(),
        });
        let flusher = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(COUNT_FLUSH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Until the store is dropped.
                let Some(inner) = flusher.upgrade() else { return };
                if let Err(e) = inner.flush_counts().await {
                    tracing::warn!(error = %e, "cannot update the profiles' row counts; retrying");
                }
            }
        });
        Ok(Self { inner })
    }

    /// The SDK client (for tests that look at the table itself).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.inner.table
    }
}

fn epoch_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Inner {
    /// Epoch seconds now, when a TTL applies (expired items read as absent).
    fn ttl_now(&self) -> Option<u64> {
        self.ttl.map(|_| epoch_s())
    }

    /// When an item written at `now` may expire.
    fn expires(&self, now: Timestamp) -> Option<u64> {
        self.ttl.map(|ttl| now.as_millis() / 1000 + ttl.as_secs())
    }

    /// The item under `key`, consistently read; an expired one reads as
    /// absent.
    async fn read(&self, key: &ProgressKey) -> Result<Option<Item>, StoreError> {
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item::key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(answer.item.filter(|i| self.ttl_now().is_none_or(|now| !item::expired(i, now))))
    }

    /// Puts `entry` under `key` if it is newer than what stands (and the
    /// guard lets it). `Ok(Ok(inserted))` when applied (`inserted`: no row
    /// stood, so the profile has one more); `Ok(Err(standing))` when
    /// refused, with what stands if anything does.
    async fn put(
        &self,
        key: &ProgressKey,
        entry: &Entry,
        now: Timestamp,
        guard: Option<StaleGuard>,
        assumptions: &[item::Assumption],
    ) -> Result<Result<bool, Option<Entry>>, StoreError> {
        let condition = item::newer_than_assumed(entry, guard, self.ttl_now(), assumptions);
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::item(key, entry, now, self.expires(now))))
            .set_expression_attribute_names(Some(condition.names()))
            .condition_expression(condition.expression)
            .set_expression_attribute_values(Some(condition.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(answer) => Ok(Ok(answer.attributes.is_none_or(|old| old.is_empty()))),
            Err(e) if is_condition_failure(&e) => {
                let returned = match &e {
                    SdkError::ServiceError(s) => match s.err() {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                            c.item.clone()
                        }
                        _ => None,
                    },
                    _ => None,
                };
                // dynalite does not return the item: read it.
                let standing = match returned.filter(|i| !i.is_empty()) {
                    Some(old) => Some(old),
                    None => self.read(key).await?,
                };
                Ok(Err(standing.map(|i| decode(&i)).transpose()?))
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// Moves `series`' pointer to the episode `video` written at `at`, if
    /// `SeriesPointer::moves` says so (the condition; a refusal is that
    /// answer, not a failure).
    async fn point(
        &self,
        profile: &ProfileKey,
        series: &SeriesId,
        at: Timestamp,
        video: &VideoId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let expires = self.expires(now);
        let update = if expires.is_some() { POINT_TTL } else { POINT };
        let mut values = std::collections::HashMap::from([
            (":sv".to_owned(), AttributeValue::S(video.to_string())),
            (":sat".to_owned(), AttributeValue::N(at.as_millis().to_string())),
            (":se".to_owned(), AttributeValue::S(item::activity_key(at, series))),
        ]);
        if let Some(exp) = expires {
            values.insert(":exp".to_owned(), AttributeValue::N(exp.to_string()));
        }
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::series_key(profile, series)))
            .update_expression(update)
            .condition_expression(MOVES)
            .set_expression_attribute_names(Some(item::names(&[update, MOVES])))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// Up to `limit` live titles of one of a profile's ordered indexes,
    /// through `condition` (`:pk` is the profile; `values` the rest),
    /// skipping items whose TTL has passed.
    async fn titles(
        &self,
        index: &str,
        profile: &ProfileKey,
        condition: &str,
        values: &[(&str, AttributeValue)],
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        self.query(index, profile, condition, values, limit, |i| {
            let key = item::progress_key(i).map_err(corrupt)?;
            Ok(match decode(i)? {
                Entry::Live(p) => Some((key.video_id, p)),
                Entry::Deleted { .. } => None,
            })
        })
        .await
    }

    /// Up to `limit` of what `read` makes of the items of one of a
    /// profile's ordered indexes, through `condition` (`:pk` is the
    /// profile; `values` the rest), page after page; items whose TTL has
    /// passed, and those `read` passes over (`None`), do not count.
    async fn query<T>(
        &self,
        index: &str,
        profile: &ProfileKey,
        condition: &str,
        values: &[(&str, AttributeValue)],
        limit: usize,
        read: impl Fn(&Item) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let ttl_now = self.ttl_now();
        let mut found = Vec::with_capacity(limit.min(128));
        let mut start = None;
        while found.len() < limit {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression(condition)
                .set_expression_attribute_names(Some(item::names(&[condition])))
                .expression_attribute_values(":pk", AttributeValue::S(item::partition(profile)))
                .consistent_read(true)
                .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start);
            for (name, value) in values {
                query = query.expression_attribute_values(*name, value.clone());
            }
            let page = query.send().await.map_err(sdk_error)?;
            for i in page.items.unwrap_or_default() {
                if ttl_now.is_some_and(|now| item::expired(&i, now)) {
                    continue;
                }
                found.extend(read(&i)?);
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                break;
            }
        }
        found.truncate(limit);
        Ok(found)
    }

    /// The entries of a profile's `videos`, consistently read in batches of
    /// 100 (`BatchGetItem`); absent and expired ones are left out.
    async fn read_many(
        &self,
        profile: &ProfileKey,
        videos: &[&VideoId],
    ) -> Result<std::collections::HashMap<VideoId, Entry>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let ttl_now = self.ttl_now();
        let mut found = std::collections::HashMap::with_capacity(videos.len());
        for chunk in videos.chunks(100) {
            let keys = chunk
                .iter()
                .map(|video| {
                    item::key(&ProgressKey {
                        account_id: profile.account_id.clone(),
                        profile_id: profile.profile_id.clone(),
                        video_id: (*video).clone(),
                    })
                })
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Backend { backend: BACKEND, source: Box::new(e) })?,
            );
            // DynamoDB may leave some keys for another call.
            while let Some(keys) = request.take() {
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                for i in answer.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                    if ttl_now.is_none_or(|now| !item::expired(&i, now)) {
                        found.insert(item::progress_key(&i).map_err(corrupt)?.video_id, decode(&i)?);
                    }
                }
                request = answer
                    .unprocessed_keys
                    .and_then(|mut r| r.remove(&self.table))
                    .filter(|k| !k.keys.is_empty());
            }
        }
        Ok(found)
    }

    /// Notes `delta` rows more (or fewer) in `pk`'s profile, for the next
    /// flush of the counts.
    fn count(&self, pk: &str, delta: i64) {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(pk.to_owned()).or_default() += delta;
    }

    /// Adds the noted row counts to the profiles' count items; a profile
    /// that is over the cap is trimmed at once. A count that cannot be
    /// written is noted again for the next flush.
    async fn flush_counts(self: &Arc<Self>) -> Result<(), StoreError> {
        let noted =
            std::mem::take(&mut *self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut failure = None;
        for (pk, delta) in noted {
            if delta == 0 {
                continue;
            }
            let answer = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item::meta_key(&pk)))
                .update_expression(ADD_ROW)
                .set_expression_attribute_names(Some(item::names(&[ADD_ROW])))
                .expression_attribute_values(":one", AttributeValue::N(delta.to_string()))
                .expression_attribute_values(":shard", AttributeValue::S(item::shard_of(&pk)))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(e) => {
                    self.count(&pk, delta);
                    failure = Some(sdk_error(e));
                    continue;
                }
            };
            let count = answer
                .attributes
                .as_ref()
                .and_then(|a| a.get(item::COUNT))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            if let Some(max) = self.max_titles
                && count > max as i64
            {
                // Off every write's path: the writes are durable already,
                // and the cap is about storage, not their answers.
                let inner = Arc::clone(self);
                tokio::spawn(async move {
                    if let Err(e) = inner.trim_profile(&pk, max, usize::MAX).await {
                        tracing::warn!(error = %e, profile = %pk, "cannot trim a profile over the cap; the sweeper will");
                    }
                });
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Brings `pk`'s rows down to `max`, removing the least recently
    /// written first, at most `budget` of them; returns their keys.
    async fn trim_profile(
        &self,
        pk: &str,
        max: usize,
        budget: usize,
    ) -> Result<Vec<ProgressKey>, StoreError> {
        let rows = self.count_rows(pk).await?;
        let excess = rows.saturating_sub(max).min(budget);
        let mut removed = Vec::new();
        if excess > 0 {
            let oldest = self
                .query_partition(WRITTEN_INDEX, pk)
                .limit(i32::try_from(excess).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(sdk_error)?;
            for row in oldest.items.unwrap_or_default() {
                let Some(written) = row.get(item::WRITTEN).cloned() else { continue };
                let key = item::progress_key(&row).map_err(corrupt)?;
                // Only if it was not written again since it was listed.
                if self.delete_if(&key, UNCHANGED, (":wr", written)).await? {
                    removed.push(key);
                }
            }
        }
        // The count, corrected: rows the TTL deleted were never subtracted.
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::meta_key(pk)))
            .update_expression(SET_COUNT)
            .set_expression_attribute_names(Some(item::names(&[SET_COUNT])))
            .expression_attribute_values(":n", AttributeValue::N((rows - removed.len()).to_string()))
            .expression_attribute_values(":shard", AttributeValue::S(item::shard_of(pk)))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(removed)
    }

    /// Deletes `key`'s item if `condition` (whose one value is `value`
    /// under `name`) still holds; false when it no longer does.
    async fn delete_if(
        &self,
        key: &ProgressKey,
        condition: &str,
        (name, value): (&str, AttributeValue),
    ) -> Result<bool, StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item::key(key)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(item::names(&[condition])))
            .expression_attribute_values(name, value)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// A consistent query of one profile's partition through `index`.
    fn query_partition(
        &self,
        index: &str,
        pk: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression(BY_PARTITION)
            .set_expression_attribute_names(Some(item::names(&[BY_PARTITION])))
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
    }

    /// The rows of a profile, counted through the written-order index.
    async fn count_rows(&self, pk: &str) -> Result<usize, StoreError> {
        let mut rows = 0usize;
        let mut start = None;
        loop {
            let page = self
                .query_partition(WRITTEN_INDEX, pk)
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            rows += usize::try_from(page.count).unwrap_or(0);
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(rows);
            }
        }
    }

    /// One row fewer in each profile named (after `expire` deleted them).
    fn removed_rows(&self, keys: &[ProgressKey]) {
        for key in keys {
            self.count(&item::partition(&key.profile()), -1);
        }
    }
}

fn decode(i: &Item) -> Result<Entry, StoreError> {
    item::entry(i).map_err(corrupt)
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt { backend: BACKEND, detail }
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(s) if s.err().code() == Some("ConditionalCheckFailedException"))
}

/// Keeps the kind of an SDK failure: a timeout is a timeout, an
/// unreachable endpoint or throttling that outlasted the retries is
/// unavailable, anything else the backend's own error.
fn sdk_error<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &e {
        SdkError::TimeoutError(_) => StoreError::Timeout { backend: BACKEND },
        SdkError::DispatchFailure(d) if d.is_timeout() => StoreError::Timeout { backend: BACKEND },
        SdkError::DispatchFailure(d) => StoreError::Unavailable {
            backend: BACKEND,
            reason: format!("cannot reach DynamoDB: {:?}", d.as_connector_error()),
        },
        SdkError::ServiceError(s)
            if matches!(
                s.err().code(),
                Some(
                    "ProvisionedThroughputExceededException"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "ServiceUnavailable"
                )
            ) =>
        {
            StoreError::Unavailable {
                backend: BACKEND,
                reason: format!(
                    "{} after the retries: {}",
                    s.err().code().unwrap_or("throttled"),
                    s.err().message().unwrap_or("")
                ),
            }
        }
        SdkError::ResponseError(_) => StoreError::Unavailable {
            backend: BACKEND,
            reason: format!("unreadable answer from DynamoDB: {e}"),
        },
        // The whole chain, as the SDK words it: the code and the message.
        _ => StoreError::Backend {
            backend: BACKEND,
            source: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string().into(),
        },
    }
}

impl DynamoStore {
    /// Moves the pointer of the series `stored` belongs to (if any) to it.
    async fn point_at(&self, key: &ProgressKey, stored: &Entry, now: Timestamp) -> Result<(), StoreError> {
        match stored.live().and_then(|p| p.series.as_ref().map(|series| (series, p.updated_at))) {
            Some((series, at)) => self.inner.point(&key.profile(), &series.id, at, &key.video_id, now).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl ProgressStore for DynamoStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn upsert(
        &self,
        key: &ProgressKey,
        progress: Progress,
        now: Timestamp,
        guard: Option<StaleGuard>,
    ) -> Result<Written, StoreError> {
        let s = &self.inner;
        let incoming = Entry::Live(progress.clone());
        let named_series = progress.series.is_some();
        // First assume nothing stands to carry from; a refusal tells what
        // does. A refusal whose standing item vanished before it could be
        // read (the TTL, a trim) is retried too: nothing stands now.
        let mut standing: Option<Entry> = None;
        for _ in 0..4 {
            let stored = progress.clone().carry(standing.as_ref());
            let assumptions = item::assumed(&stored, named_series, standing.as_ref());
            let stored = Entry::Live(stored);
            match s.put(key, &stored, now, guard, &assumptions).await? {
                Ok(inserted) => {
                    if inserted {
                        s.count(&item::partition(&key.profile()), 1);
                    }
                    self.point_at(key, &stored, now).await?;
                    return Ok(Written { outcome: Outcome::Applied, standing: stored });
                }
                Err(Some(now_standing)) => {
                    let outcome = Entry::merge(Some(&now_standing), &incoming);
                    let refused = guard.is_some_and(|g| g.refuses(&now_standing, &progress));
                    match outcome {
                        // Newer, yet refused: the guard, or what it carried
                        // changed; then again with what stands now.
                        Outcome::Applied if refused => {
                            return Ok(Written { outcome: Outcome::Conflict, standing: now_standing });
                        }
                        Outcome::Applied => standing = Some(now_standing),
                        other => {
                            if other == Outcome::Duplicate {
                                // A retry of a write whose pointer move failed.
                                self.point_at(key, &now_standing, now).await?;
                            }
                            return Ok(Written { outcome: other, standing: now_standing });
                        }
                    }
                }
                Err(None) => standing = None,
            }
        }
        Err(StoreError::Unavailable {
            backend: BACKEND,
            reason: "the item kept changing under the write".into(),
        })
    }

    async fn get(&self, key: &ProgressKey) -> Result<Option<Entry>, StoreError> {
        self.inner.read(key).await?.map(|i| decode(&i)).transpose()
    }

    async fn continue_watching(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        // The two key ranges, each as far as the limit, merged.
        let s = &self.inner;
        let mark = [(":mark", AttributeValue::S(item::EPISODE_MARK.into()))];
        let (standalone, episodes) = tokio::try_join!(
            s.titles(CONTINUE_INDEX, profile, STANDALONE, &mark, limit),
            s.titles(CONTINUE_INDEX, profile, EPISODES, &mark, limit),
        )?;
        let mut rows = standalone;
        rows.extend(episodes);
        Ok(library::newest_first(rows, limit))
    }

    async fn standalone_in_progress(
        &self,
        profile: &ProfileKey,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        let mark = [(":mark", AttributeValue::S(item::EPISODE_MARK.into()))];
        self.inner.titles(CONTINUE_INDEX, profile, STANDALONE, &mark, limit).await
    }

    async fn history(
        &self,
        profile: &ProfileKey,
        after: Option<&HistoryCursor>,
        limit: usize,
    ) -> Result<Vec<(VideoId, Progress)>, StoreError> {
        // (A key condition may not compare with an empty string.)
        match after {
            None => self.inner.titles(HISTORY_INDEX, profile, BY_PARTITION, &[], limit).await,
            Some(c) => {
                let after = [(":after", AttributeValue::S(item::history_key(c.finished_at, &c.video_id)))];
                self.inner.titles(HISTORY_INDEX, profile, HISTORY_AFTER, &after, limit).await
            }
        }
    }

    async fn series_activity(
        &self,
        profile: &ProfileKey,
        after: Option<&(Timestamp, SeriesId)>,
        limit: usize,
    ) -> Result<Vec<SeriesActivity>, StoreError> {
        let s = &self.inner;
        let after =
            after.map(|(at, series)| [(":after", AttributeValue::S(item::activity_key(*at, series)))]);
        let (condition, values) = match &after {
            Some(after) => (SERIES_AFTER, &after[..]),
            None => (BY_PARTITION, &[][..]),
        };
        let pointers = s
            .query(SERIES_INDEX, profile, condition, values, limit, |i| {
                item::pointer(i).map(Some).map_err(corrupt)
            })
            .await?;
        // Two series may name one episode (it moved): BatchGetItem refuses
        // a key twice.
        let mut videos: Vec<&VideoId> = pointers.iter().map(|(_, pointer)| &pointer.video_id).collect();
        videos.sort_unstable();
        videos.dedup();
        let latest = s.read_many(profile, &videos).await?;
        Ok(pointers
            .into_iter()
            .map(|(series, pointer)| {
                let entry = latest.get(&pointer.video_id).cloned();
                SeriesActivity { series, pointer, latest: entry }
            })
            .collect())
    }

    async fn delete(&self, key: &ProgressKey, now: Timestamp) -> Result<Written, StoreError> {
        let s = &self.inner;
        let mut standing = s.read(key).await?.map(|i| decode(&i)).transpose()?;
        // The tombstone depends on what stands: if that changed before the
        // put, it is made again from the new standing entry.
        for _ in 0..5 {
            let tombstone = Entry::tombstone(standing.as_ref(), now);
            match s.put(key, &tombstone, now, None, &[]).await? {
                Ok(inserted) => {
                    if inserted {
                        s.count(&item::partition(&key.profile()), 1);
                    }
                    return Ok(Written { outcome: Outcome::Applied, standing: tombstone });
                }
                Err(now_standing) if now_standing == standing => {
                    let now_standing = now_standing.unwrap_or_else(|| tombstone.clone());
                    let outcome = Entry::merge(Some(&now_standing), &tombstone);
                    return Ok(Written { outcome, standing: now_standing });
                }
                Err(changed) => standing = changed,
            }
        }
        Err(StoreError::Unavailable {
            backend: BACKEND,
            reason: "the item kept changing under the delete".into(),
        })
    }

    async fn hide(&self, key: &ProgressKey) -> Result<Option<Progress>, StoreError> {
        let s = &self.inner;
        let mut update = s
            .client
            .update_item()
            .table_name(&s.table)
            .set_key(Some(item::key(key)))
            .update_expression(HIDE)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":live", AttributeValue::N("0".into()))
            .return_values(ReturnValue::AllNew);
        update = match s.ttl_now() {
            Some(now) => {
                let condition = "#k = :live AND (attribute_not_exists(#exp) OR #exp >= :now)";
                update
                    .condition_expression(condition)
                    .set_expression_attribute_names(Some(item::names(&[HIDE, condition])))
                    .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            }
            None => update
                .condition_expression("#k = :live")
                .set_expression_attribute_names(Some(item::names(&[HIDE, "#k"]))),
        };
        match update.send().await {
            Ok(answer) => match answer.attributes.map(|i| decode(&i)).transpose()? {
                Some(Entry::Live(p)) => Ok(Some(p)),
                _ => Ok(None),
            },
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn expire(&self, untouched_since: Timestamp, limit: usize) -> Result<Vec<ProgressKey>, StoreError> {
        // DynamoDB's own TTL is what keeps a table small (the node does not
        // sweep this store); this is the port's explicit sweep, a scan.
        let s = &self.inner;
        let cutoff = AttributeValue::N(untouched_since.as_millis().to_string());
        let mut removed = Vec::new();
        let mut start = None;
        while removed.len() < limit {
            let page = s
                .client
                .scan()
                .table_name(&s.table)
                .filter_expression(IDLE)
                .projection_expression("#pk, #sk")
                .set_expression_attribute_names(Some(item::names(&[IDLE, "#pk, #sk"])))
                .expression_attribute_values(":cutoff", cutoff.clone())
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            for row in page.items.unwrap_or_default() {
                if removed.len() >= limit {
                    break;
                }
                let key = item::progress_key(&row).map_err(corrupt)?;
                // Only if it was not written since the scan saw it.
                if s.delete_if(&key, IDLE, (":cutoff", cutoff.clone())).await? {
                    removed.push(key);
                }
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                break;
            }
        }
        s.removed_rows(&removed);
        Ok(removed)
    }

    async fn trim(&self, max_titles: usize, limit: usize) -> Result<Vec<ProgressKey>, StoreError> {
        let s = &self.inner;
        // The counts noted since the last flush first, so a profile that
        // just went over the cap is found.
        s.flush_counts().await?;
        let mut removed = Vec::new();
        for shard in 0..item::SHARDS {
            let mut start = None;
            loop {
                let page = s
                    .client
                    .query()
                    .table_name(&s.table)
                    .index_name(SIZES_INDEX)
                    .key_condition_expression(OVER_CAP)
                    .set_expression_attribute_names(Some(item::names(&[OVER_CAP])))
                    .expression_attribute_values(":shard", AttributeValue::S(shard.to_string()))
                    .expression_attribute_values(":max", AttributeValue::N(max_titles.to_string()))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                for meta in page.items.unwrap_or_default() {
                    let Some(AttributeValue::S(pk)) = meta.get(item::PK) else { continue };
                    removed.extend(s.trim_profile(pk, max_titles, limit - removed.len()).await?);
                    if removed.len() >= limit {
                        return Ok(removed);
                    }
                }
                start = page.last_evaluated_key.filter(|k| !k.is_empty());
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(removed)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A write: a table that answers reads but refuses writes is not ready.
        let s = &self.inner;
        s.client
            .put_item()
            .table_name(&s.table)
            .item(item::PK, AttributeValue::S("#ping".into()))
            .item(item::SK, AttributeValue::S("#ping".into()))
            .item("at", AttributeValue::N(epoch_s().to_string()))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Every write is acknowledged by DynamoDB before it returns; only
        // the row counts wait here.
        self.inner.flush_counts().await
    }
}
