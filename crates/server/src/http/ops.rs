//! Operational routes: liveness, readiness, metrics, the OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use playmark_core::{Denied, Scope};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use crate::metrics::Metrics;

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
        (status = 503, description = "The store does not answer, or cannot write", body = Health,
            headers(("Retry-After" = u32, description = "Seconds to wait before asking again"))),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
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
    let body = Json(Health { status, checks: Some(checks) });
    if code == StatusCode::SERVICE_UNAVAILABLE {
        (code, [(header::RETRY_AFTER, "1")], body).into_response()
    } else {
        (code, body).into_response()
    }
}

/// Prometheus metrics in the OpenMetrics text format. With `--auth jwt`,
/// only for a `playback:admin` token (or on `--metrics-listen`).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text format",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if state.auth.is_on() {
        let caller = crate::auth::caller(&state, &headers).await?;
        if !caller.is_admin() {
            state.metrics.forbidden.inc();
            return Err(ApiError::denied(Denied::MissingScope(Scope::Admin), &caller));
        }
    }
    Ok(render_metrics(&state.metrics))
}

/// The metrics as an answer.
pub fn render_metrics(metrics: &Metrics) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.render())
        .into_response()
}

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi.as_str().to_owned())
}
