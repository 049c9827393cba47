//! playmark's service layer and HTTP API.
//!
//! A library, so integration tests start the real application in-process on
//! port 0; the `playmark` binary is a thin shell around [`Application`].
//!
//! - [`config`]: every flag of `playmark serve`, each with a `PLAYMARK_*` env var.
//! - [`auth`]: bearer tokens (JWT) verified into a `Principal`.
//! - [`service`]: the write flow and read flow (`docs/design.md`) over any
//!   [`ProgressStore`](playmark_store::ProgressStore). Owns every timeout,
//!   retry and fallback, once.
//! - [`cached`]: the cache in front of the store (timeouts, fallback to
//!   the store, off-path refills, repair of failed cache updates).
//! - [`events`]: publishing applied checkpoints off the request path.
//! - [`http`]: routes, JSON in and out, the error type, OpenAPI, rate
//!   limits and load shedding.
//! - [`serve`]: the listening socket, the accept loop, HTTP/1.1 and h2c
//!   connections with their header and idle clocks.
//! - [`metrics`]: the Prometheus registry behind `/metrics`.
//! - [`sweeper`]: the background task that purges idle entries (TTL).
//! - [`app`]: build → bind → run until a shutdown signal → flush.
//! - [`telemetry`]: human or JSON logs.

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod cached;
pub mod config;
pub mod events;
pub mod http;
pub mod metrics;
pub mod serve;
pub mod service;
pub mod sweeper;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
