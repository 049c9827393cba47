//! The HTTP layer: one router per resource, merged here with the
//! cross-cutting layers (metrics, tracing, panic guard, body limit) and the
//! JSON 404/405 fallbacks.

pub mod assets;
pub mod error;
pub mod extract;
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
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

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
}

impl FromRef<AppState> for Arc<PlaybackService> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.service)
    }
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(playback::router())
        .merge(ops::router())
        .merge(assets::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(Arc::clone(&state.metrics), record_metrics))
        // Store failures are logged once, by the service, with their cause;
        // the per-request trace stays at debug.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
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
/// let clients create unbounded label sets).
async fn record_metrics(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = match *req.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::HEAD
        | Method::PATCH
        | Method::OPTIONS => req.method().as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let response = next.run(req).await;
    metrics
        .request_seconds
        .get_or_create(&RouteLabels { route: route.clone(), method: method.clone() })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels { route, method, status: response.status().as_u16() })
        .inc();
    response
}
