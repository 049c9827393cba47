//! The SDK client, and the table: created on start if missing, safe when
//! several nodes start at once.
//!
//! The table (on-demand capacity):
//! - partition key `pk` (S, `account#profile`), sort key `sk` (S, `video_id`);
//! - local secondary indexes, which only a table's creation can add (at
//!   most five), and which alone give consistent reads:
//!   - `continue_watching` on `cw` (titles in progress, newest first), all
//!     attributes projected;
//!   - `written` on `wr` (every row, least recently written first), keys
//!     only, for the per-profile cap;
//!   - `history` on `hs` (finished titles, newest finish first) and
//!     `series` on `se` (series pointers, latest activity first), all
//!     attributes projected;
//! - a global secondary index `profile_sizes` on (`shard`, `n`) over the
//!   profiles' row-count items, keys only;
//! - TTL on `exp`.
//!
//! A later index that must be consistent (local) needs a new table and a
//! backfill: create `playmark_progress_v2` with it, copy every item (a
//! parallel `Scan` writing conditional puts, so checkpoints written
//! meanwhile win), then point the nodes at it with `--dynamodb-table`.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex,
    Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use super::{
    BACKEND, CONTINUE_INDEX, DynamoOptions, HISTORY_INDEX, SERIES_INDEX, SIZES_INDEX, WRITTEN_INDEX, item,
    sdk_error,
};
use crate::StoreError;

/// The SDK client: rustls on ring (no C TLS library), the configured
/// endpoint, region, credentials, timeouts and retries. Region and
/// credentials not given come from the standard AWS chain.
pub async fn client(options: &DynamoOptions) -> Client {
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(options.connect_timeout)
                .operation_attempt_timeout(options.attempt_timeout)
                .operation_timeout(options.operation_timeout)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(options.max_attempts.max(1))
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_millis(400)),
        );
    match (&options.region, &options.endpoint) {
        (Some(region), _) => loader = loader.region(Region::new(region.clone())),
        // An emulator or Alternator answers any region; AWS needs the real one.
        (None, Some(_))
            if std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none() =>
        {
            loader = loader.region(Region::new("us-east-1"));
        }
        _ => {}
    }
    // An emulator (or Alternator without authentication) takes any
    // signature: with an endpoint and no credentials in the environment,
    // sign with placeholders rather than probe profiles and instance roles.
    let local = options.endpoint.is_some()
        && [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ]
        .iter()
        .all(|name| std::env::var_os(name).is_none());
    let credentials = options
        .credentials
        .clone()
        .or_else(|| local.then(|| ("playmark-local".to_owned(), "playmark-local".to_owned())));
    if let Some((id, secret)) = credentials {
        loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "playmark-options"));
    }
    if let Some(endpoint) = &options.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    Client::new(&loader.load().await)
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .expect("name and type are set")
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("name and type are set")
}

fn projection(kind: ProjectionType) -> Projection {
    Projection::builder().projection_type(kind).build()
}

fn local(name: &str, sort: &str, kind: ProjectionType) -> LocalSecondaryIndex {
    LocalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(item::PK, KeyType::Hash))
        .key_schema(key(sort, KeyType::Range))
        .projection(projection(kind))
        .build()
        .expect("the index is complete")
}

/// Creates `table` unless it exists, waits until it is active, and turns
/// on TTL when `ttl` (an emulator without TTL gets a warning).
pub async fn create(client: &Client, table: &str, ttl: bool) -> Result<(), StoreError> {
    let s = ScalarAttributeType::S;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(item::PK, s.clone()))
        .attribute_definitions(attribute(item::SK, s.clone()))
        .attribute_definitions(attribute(item::CONTINUE, s.clone()))
        .attribute_definitions(attribute(item::WRITTEN, s.clone()))
        .attribute_definitions(attribute(item::HISTORY, s.clone()))
        .attribute_definitions(attribute(item::ACTIVITY, s.clone()))
        .attribute_definitions(attribute(item::SHARD, s.clone()))
        .attribute_definitions(attribute(item::COUNT, ScalarAttributeType::N))
        .key_schema(key(item::PK, KeyType::Hash))
        .key_schema(key(item::SK, KeyType::Range))
        .local_secondary_indexes(local(CONTINUE_INDEX, item::CONTINUE, ProjectionType::All))
        .local_secondary_indexes(local(WRITTEN_INDEX, item::WRITTEN, ProjectionType::KeysOnly))
        .local_secondary_indexes(local(HISTORY_INDEX, item::HISTORY, ProjectionType::All))
        .local_secondary_indexes(local(SERIES_INDEX, item::ACTIVITY, ProjectionType::All))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(SIZES_INDEX)
                .key_schema(key(item::SHARD, KeyType::Hash))
                .key_schema(key(item::COUNT, KeyType::Range))
                .projection(projection(ProjectionType::KeysOnly))
                .build()
                .expect("the index is complete"),
        )
        .send()
        .await;
    match created {
        Ok(_) => tracing::info!(table, "created the dynamodb table"),
        // Another node made it first, or it was made by hand.
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ResourceInUseException") => {}
        Err(e) => return Err(sdk_error(e)),
    }
    wait_active(client, table).await?;
    if ttl {
        enable_ttl(client, table).await?;
    }
    Ok(())
}

/// Fails clearly when `table` is missing (`--dynamodb-create-table=false`).
pub async fn check(client: &Client, table: &str) -> Result<(), StoreError> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ResourceNotFoundException") => {
            Err(StoreError::Unavailable {
                backend: BACKEND,
                reason: format!(
                    "the table {table} does not exist, and --dynamodb-create-table=false: create it as the README \
                     shows (docs: DynamoDB)"
                ),
            })
        }
        Err(e) => Err(sdk_error(e)),
    }
}

async fn wait_active(client: &Client, table: &str) -> Result<(), StoreError> {
    for _ in 0..300 {
        let described = client.describe_table().table_name(table).send().await.map_err(sdk_error)?;
        if described.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(StoreError::Unavailable {
        backend: BACKEND,
        reason: format!("the table {table} did not become active in 60 s"),
    })
}

async fn enable_ttl(client: &Client, table: &str) -> Result<(), StoreError> {
    let described = client.describe_time_to_live().table_name(table).send().await;
    match described {
        Ok(d) => {
            let status = d.time_to_live_description.and_then(|t| t.time_to_live_status);
            if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
                return Ok(());
            }
        }
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("UnknownOperationException") => {
            tracing::warn!(
                table,
                "this DynamoDB endpoint has no TTL: expired items read as absent, but stay stored"
            );
            return Ok(());
        }
        Err(e) => return Err(sdk_error(e)),
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(item::EXPIRES)
        .enabled(true)
        .build()
        .expect("name and flag are set");
    match client.update_time_to_live().table_name(table).time_to_live_specification(spec).send().await {
        Ok(_) => Ok(()),
        // Another node turned it on meanwhile.
        Err(e)
            if e.as_service_error()
                .and_then(|s| s.message())
                .is_some_and(|m| m.contains("already enabled")) =>
        {
            Ok(())
        }
        // dynalite describes TTL (always off) but cannot turn it on.
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("UnknownOperationException") => {
            tracing::warn!(
                table,
                "this DynamoDB endpoint has no TTL: expired items read as absent, but stay stored"
            );
            Ok(())
        }
        Err(e) => Err(sdk_error(e)),
    }
}
