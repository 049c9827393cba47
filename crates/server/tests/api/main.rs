//! Integration tests: the real application on a free port, driven over HTTP.

// Shared with tests/faults.rs, which uses parts this binary does not.
#[allow(dead_code)]
mod helpers;

mod auth;
mod concurrency;
mod connections;
mod continue_watching;
mod delete;
mod errors;
mod library;
mod lifecycle;
mod ops;
mod overload;
mod player;
mod resume;
mod update;
