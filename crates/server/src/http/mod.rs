//! The HTTP layer: one router per resource, merged here with the
//! cross-cutting layers (metrics and request logs, panic guard, body limit) and the
//! JSON 404/405 fallbacks.

pub mod assets;
pub mod error;
pub mod extract;
pub mod limits;
pub mod openapi;
pub mod ops;
pub mod playback;

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::service::PlaybackService;
use error::ApiError;
use extract::MAX_BODY_BYTES;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The playback service.
    pub service: Arc<PlaybackService>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// Refuse request bodies with fields the endpoint does not know
    /// (`--reject-unknown-fields`) instead of warning about them.
    pub reject_unknown_fields: bool,
    /// How callers prove who they are.
    pub auth: crate::auth::Authenticator,
    /// `/openapi.json`, as this node's flags make it.
    pub openapi: Arc<String>,
    /// Browser origins allowed to call the API (CORS).
    pub cors_origins: Arc<Vec<String>>,
    /// The per-account and per-device rate limits.
    pub rate_limits: Arc<limits::RateLimits>,
    /// How long a request body may take to arrive (`--header-timeout`).
    pub body_timeout: std::time::Duration,
}

impl AppState {
    /// What to do about the unknown fields of a body: count them, and
    /// refuse the body when configured to (the error names the field as
    /// `error_prefix` places it: `checkpoints[3].`), or warn about them in
    /// the answer (as `warning_prefix` places it: `checkpoints[].`, once for
    /// every item).
    pub fn unknown_fields(
        &self,
        fields: Vec<String>,
        error_prefix: &str,
        warning_prefix: &str,
    ) -> Result<extract::Warnings, ApiError> {
        let Some(first) = fields.first() else {
            return Ok(extract::Warnings::default());
        };
        self.metrics.unknown_fields.inc_by(fields.len() as u64);
        if self.reject_unknown_fields {
            let field = format!("{error_prefix}{first}");
            return Err(ApiError::invalid_field(
                field.clone(),
                format!("{field} is not a field of this request (the server refuses unknown fields)"),
            ));
        }
        tracing::debug!(?fields, "request with unknown fields");
        Ok(extract::Warnings::unknown_fields(fields.into_iter().map(|f| format!("{warning_prefix}{f}"))))
    }
}

impl FromRef<AppState> for Arc<PlaybackService> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.service)
    }
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let cors = cors(&state.cors_origins);
    let router = Router::new()
        .merge(playback::router())
        .merge(ops::router())
        .merge(assets::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(Arc::clone(&state.metrics), observe));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(CatchPanicLayer::custom(panic_response)).with_state(state)
}

/// CORS for the browser SDK: exactly the configured origins, the methods and
/// headers the API uses (`Authorization` among them), and the headers an
/// answer carries that the SDK reads. Preflights are answered by the layer.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, header};
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers(
                [header::RETRY_AFTER, header::WARNING, header::WWW_AUTHENTICATE] as [HeaderName; 3]
            )
            .max_age(std::time::Duration::from_secs(600)),
    )
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

/// A panic is a bug: log it, answer 500 JSON, keep serving.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "request handler panicked");
    ApiError::internal().into_response()
}

/// Counts and times every request by route (never by raw path, which would
/// let clients create unbounded label sets), and logs it at debug level.
///
/// One middleware instead of tower-http's `TraceLayer`: that layer cost
/// about 1 µs per request (a tenth of a resume) to build spans nobody reads
/// at the default level. Store failures are logged once, by the service,
/// with their cause; this line only says which request it was.
async fn observe(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(req).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    tracing::debug!(method, route, status, took_ms = took.as_secs_f64() * 1e3, "request");
    metrics
        .request_seconds
        .get_or_create(&RouteLabels { route: route.clone(), method })
        .observe(took.as_secs_f64());
    metrics.requests.get_or_create(&RequestLabels { route, method, status }).inc();
    response
}
