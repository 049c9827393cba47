//! The Prometheus metrics behind `GET /metrics`.
//!
//! One registry per [`Metrics`] value (no global state), so several apps in
//! one test process never share counters.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route, e.g. `/playback/update`, or `unmatched`.
    pub route: String,
    /// The HTTP method, or `other`.
    pub method: &'static str,
    /// The response status code.
    pub status: u16,
}

/// Labels of an HTTP request's latency.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route.
    pub route: String,
    /// The HTTP method, or `other`.
    pub method: &'static str,
}

/// Labels of a store operation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// Which backend.
    pub backend: &'static str,
    /// `upsert`, `get`, `continue_watching`, `delete`, `hide`, `expire`,
    /// `trim`.
    pub op: &'static str,
    /// `ok`, `error` or `timeout`.
    pub result: &'static str,
}

/// Labels of a checkpoint's outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `applied`, `stale` or `duplicate`.
    pub outcome: &'static str,
}

/// Labels of a cache lookup.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit`, `miss`, `error`, `timeout`, or `bypass` (the key's cache
    /// update is still pending, so the store answered).
    pub result: &'static str,
}

/// Labels of a dropped event.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// `queue_full`, `publish_failed` or `shutdown`.
    pub reason: &'static str,
}

/// Labels of a connection closed by its clock.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// `header_timeout` or `idle_timeout`.
    pub reason: &'static str,
}

/// Every metric playmark exports.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// HTTP request latency by route and method.
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Store operation latency by backend, operation and result.
    pub store_seconds: Family<StoreLabels, Histogram, fn() -> Histogram>,
    /// Checkpoints and marks (watched, unwatched) by outcome.
    pub checkpoints: Family<OutcomeLabels, Counter>,
    /// Client event times replaced by the server's clock (skew too large).
    pub clocks_clamped: Counter,
    /// Store operations retried after a transient failure.
    pub store_retries: Counter,
    /// Requests answered 503 because the store could not serve them in time.
    pub unavailable: Counter,
    /// Entries purged by the TTL sweeper.
    pub expired: Counter,
    /// Entries purged because their profile was over
    /// `--max-titles-per-profile`.
    pub trimmed: Counter,
    /// Cache lookups by result.
    pub cache_lookups: Family<CacheLabels, Counter>,
    /// Cache updates that failed after the store write, and were queued
    /// for repair.
    pub cache_update_failures: Counter,
    /// Keys waiting for their cache entry to be repaired.
    pub cache_repairs_pending: Gauge,
    /// Repairs given up (queue full): such keys rely on the cache TTL.
    pub cache_repairs_dropped: Counter,
    /// Events stored by the sink.
    pub events_published: Counter,
    /// Events not published, by reason.
    pub events_dropped: Family<DropLabels, Counter>,
    /// Request body fields the endpoint does not know (ignored with a
    /// `Warning` header, or refused with `--reject-unknown-fields`).
    pub unknown_fields: Counter,
    /// Requests refused 401: no valid bearer token.
    pub auth_failures: Counter,
    /// Requests (or batch items) refused 403: a valid token for another
    /// account, profile or scope.
    pub forbidden: Counter,
    /// Client connections open now.
    pub connections_open: Gauge,
    /// Connections closed by their header or idle clock, by reason.
    pub connections_closed: Family<ConnectionLabels, Counter>,
    /// Failed accepts (EMFILE and the like), each followed by a short pause.
    pub accept_errors: Counter,
    /// Requests shed at once with 503 `overloaded`: `--max-in-flight` were
    /// already in flight.
    pub shed: Counter,
    /// Requests (or batch items) refused 429: their account or device was
    /// over its rate.
    pub rate_limited: Counter,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~3.3 s, doubling: resolves both cache-hit reads and fsyncs.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("playmark");
        let requests = Family::default();
        registry.register("http_requests", "HTTP requests by route, method and status", requests.clone());
        let request_seconds = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and method",
            request_seconds.clone(),
        );
        let store_seconds = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "store_operation_duration_seconds",
            "Store operation latency by backend, operation and result",
            store_seconds.clone(),
        );
        let checkpoints = Family::default();
        registry.register(
            "checkpoints",
            "Checkpoints and marks (watched, unwatched) received, by outcome (applied, stale, duplicate)",
            checkpoints.clone(),
        );
        let clocks_clamped = Counter::default();
        registry.register(
            "clock_clamped",
            "Client event times too far ahead of the server clock, replaced by it",
            clocks_clamped.clone(),
        );
        let store_retries = Counter::default();
        registry.register(
            "store_retries",
            "Store writes retried after a transient failure",
            store_retries.clone(),
        );
        let unavailable = Counter::default();
        registry.register(
            "unavailable_responses",
            "Requests answered 503 because the store could not serve them in time",
            unavailable.clone(),
        );
        let expired = Counter::default();
        registry.register("expired_entries", "Entries purged by the TTL sweeper", expired.clone());
        let trimmed = Counter::default();
        registry.register(
            "trimmed_entries",
            "Least recently written entries purged from profiles over --max-titles-per-profile",
            trimmed.clone(),
        );
        let cache_lookups = Family::default();
        registry.register(
            "cache_lookups",
            "Cache lookups by result (hit, miss, error, timeout, bypass)",
            cache_lookups.clone(),
        );
        let cache_update_failures = Counter::default();
        registry.register(
            "cache_update_failures",
            "Cache updates that failed after the store write and were queued for repair",
            cache_update_failures.clone(),
        );
        let cache_repairs_pending = Gauge::default();
        registry.register(
            "cache_repairs_pending",
            "Keys waiting for their cache entry to be repaired",
            cache_repairs_pending.clone(),
        );
        let cache_repairs_dropped = Counter::default();
        registry.register(
            "cache_repairs_dropped",
            "Cache repairs given up because the repair queue was full",
            cache_repairs_dropped.clone(),
        );
        let events_published = Counter::default();
        registry.register(
            "events_published",
            "Progress events stored by the event sink",
            events_published.clone(),
        );
        let events_dropped = Family::default();
        registry.register(
            "events_dropped",
            "Progress events not published, by reason",
            events_dropped.clone(),
        );
        let unknown_fields = Counter::default();
        registry.register(
            "unknown_fields",
            "Request body fields the endpoint does not know (a typo, or a newer client)",
            unknown_fields.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Requests refused 401: no valid bearer token",
            auth_failures.clone(),
        );
        let forbidden = Counter::default();
        registry.register(
            "forbidden",
            "Requests or batch items refused 403: a token for another account, profile or scope",
            forbidden.clone(),
        );
        let connections_open = Gauge::default();
        registry.register("connections_open", "Client connections open now", connections_open.clone());
        let connections_closed = Family::default();
        registry.register(
            "connections_expired",
            "Connections closed by their clock: header_timeout (a request head too slow) or idle_timeout",
            connections_closed.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "accept_errors",
            "Failed accepts (such as too many open files), each followed by a short pause",
            accept_errors.clone(),
        );
        let shed = Counter::default();
        registry.register(
            "shed_requests",
            "Requests answered 503 overloaded at once because --max-in-flight were in flight",
            shed.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited_requests",
            "Requests and batch items refused 429: their account or device was over its rate",
            rate_limited.clone(),
        );
        Self {
            registry,
            connections_open,
            connections_closed,
            accept_errors,
            shed,
            rate_limited,
            unknown_fields,
            auth_failures,
            forbidden,
            cache_lookups,
            cache_update_failures,
            cache_repairs_pending,
            cache_repairs_dropped,
            events_published,
            events_dropped,
            requests,
            request_seconds,
            store_seconds,
            checkpoints,
            clocks_clamped,
            store_retries,
            unavailable,
            expired,
            trimmed,
        }
    }
}

impl Metrics {
    /// Records one store operation.
    pub fn store_op(&self, backend: &'static str, op: &'static str, result: &'static str, took: Duration) {
        self.store_seconds.get_or_create(&StoreLabels { backend, op, result }).observe(took.as_secs_f64());
    }

    /// The registry in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}
