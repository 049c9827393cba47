//! Integration tests: the real application on a free port, driven over HTTP.

mod helpers;

mod concurrency;
mod continue_watching;
mod delete;
mod errors;
mod lifecycle;
mod ops;
mod resume;
mod update;
