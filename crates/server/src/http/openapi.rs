//! The OpenAPI document, generated from the handlers and types.

use utoipa::OpenApi;

use super::error::{ErrorBody, ErrorDetail};
use super::ops::Health;
use super::playback::{
    Action, ContinueWatchingResponse, Reason, Record, ResumeResponse, UpdateOutcome, UpdateRequest,
    UpdateResponse,
};

/// playmark's HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "playmark",
        description = "Cross-device playback resume: players send progress checkpoints; any device of the same profile asks where to resume."
    ),
    paths(
        super::playback::update,
        super::playback::resume,
        super::playback::continue_watching,
        super::playback::forget,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        super::ops::openapi,
    ),
    components(schemas(
        UpdateRequest, UpdateResponse, UpdateOutcome, Record, ResumeResponse, Action, Reason,
        ContinueWatchingResponse, ErrorBody, ErrorDetail, Health
    )),
    tags(
        (name = "playback", description = "Record and read playback progress"),
        (name = "operations", description = "Health, readiness, metrics")
    )
)]
pub struct ApiDoc;
