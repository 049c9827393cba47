//! Where playmark keeps progress: the [`ProgressStore`] port and its adapters.
//!
//! - [`port`]: the object-safe async trait every backend implements. Each
//!   method is one conditional round trip; timeouts, retries and fallbacks are
//!   the service layer's business, not the adapter's.
//! - [`error`]: the one [`StoreError`] every adapter maps its failures into.
//! - [`cache`]: the [`ProgressCache`] port, with the [`redis`] (feature
//!   `redis`, single node or cluster) and [`memory`] (feature `memory`)
//!   adapters. Caches hold entries under the same merge rule as stores.
//! - [`embedded`] (feature `embedded`, on by default): the durable single-node
//!   store on redb, with group commit.
//! - [`postgres`] (feature `postgres`): PostgreSQL as the shared source of
//!   truth, with conditional multi-row upserts.
//! - [`dynamodb`] (feature `dynamodb`): DynamoDB (or ScyllaDB Alternator) as
//!   the shared source of truth, one conditional write per checkpoint.
//! - [`tls`]: rustls (on `ring`) for the network adapters, with libpq's
//!   verification modes.
//! - [`events`]: the [`EventSink`] port for analytics events, with the
//!   [`nats`] JetStream adapter (feature `nats`).
//! - [`conformance`] (feature `conformance`): the suite every adapter passes,
//!   written once against the port. An adapter's tests invoke
//!   [`conformance_tests!`] with a fixture constructor. Beside it,
//!   [`faulty::FaultyStore`], a wrapper that makes any store slow for
//!   fault tests.

#![warn(missing_docs)]

pub mod cache;
pub mod error;
pub mod events;
pub mod port;

#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "embedded")]
pub mod embedded;

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;

#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "conformance")]
pub mod faulty;

pub use cache::{CacheError, ProgressCache};
pub use error::StoreError;
pub use events::{EventError, EventKind, EventSink, ProgressEvent};
pub use port::{ProgressStore, Written};
