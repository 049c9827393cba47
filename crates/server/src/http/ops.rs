//! Operational routes: liveness, readiness, metrics, the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::AppState;
use super::openapi::ApiDoc;

/// The operational routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// Liveness or readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (alive), `ready`, `degraded` (the store answers, a cache or
    /// event sink does not) or `unavailable` (the store does not answer).
    pub status: &'static str,
    /// Each dependency (`store`, `cache`, `events`) and its state: `ok` or
    /// `unreachable` (the cause is in the log).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    pub checks: Option<Checks>,
}

/// Each dependency (`store`, and `cache` and `events` when configured) and
/// its state: `ok` or `unreachable` (the cause is in the log).
pub type Checks = std::collections::BTreeMap<&'static str, String>;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", checks: None })
}

/// The process can serve traffic: its store answers. A cache or event sink
/// that does not answer is reported (`degraded`) but keeps the node in
/// rotation: reads fall back to the store, events are dropped and counted.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready (or degraded)", body = Health),
        (status = 503, description = "The store does not answer", body = Health),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let readiness = state.service.readiness().await;
    let (code, status) = match (readiness.is_ready(), readiness.is_healthy()) {
        (true, true) => (StatusCode::OK, "ready"),
        (true, false) => (StatusCode::OK, "degraded"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    // The cause goes to the log, not to whoever can reach /readyz: driver
    // messages and paths are internals.
    let checks = readiness
        .checks
        .into_iter()
        .map(|(name, result)| match result {
            Ok(()) => (name, "ok".to_owned()),
            Err(e) => {
                tracing::warn!(dependency = name, error = %e, "readiness check failed");
                (name, "unreachable".to_owned())
            }
        })
        .collect();
    (code, Json(Health { status, checks: Some(checks) }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(),
    )
}

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi() -> impl IntoResponse {
    static DOC: std::sync::OnceLock<Arc<String>> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| Arc::new(ApiDoc::openapi().to_json().unwrap_or_default()));
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str().to_owned())
}
