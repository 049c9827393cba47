//! Where playmark keeps progress: the [`ProgressStore`] port and its adapters.
//!
//! - [`port`]: the object-safe async trait every backend implements. Each
//!   method is one conditional round trip; timeouts, retries and fallbacks are
//!   the service layer's business, not the adapter's.
//! - [`error`]: the one [`StoreError`] every adapter maps its failures into.
//! - [`embedded`] (feature `embedded`, on by default): the durable single-node
//!   store on redb, with group commit.
//! - [`postgres`] (feature `postgres`): PostgreSQL as the shared source of
//!   truth, with conditional multi-row upserts.
//! - [`conformance`] (feature `conformance`): the suite every adapter passes,
//!   written once against the port. An adapter's tests invoke
//!   [`conformance_tests!`] with a fixture constructor.

#![warn(missing_docs)]

pub mod error;
pub mod port;

#[cfg(feature = "embedded")]
pub mod embedded;

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::StoreError;
pub use port::{ProgressStore, Written};
