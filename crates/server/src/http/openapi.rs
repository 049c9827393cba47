//! The OpenAPI document, generated from the handlers and types.

use utoipa::OpenApi;

use super::error::{ErrorBody, ErrorDetail};
use super::ops::Health;
use super::playback::{
    Action, BatchItem, BatchRequest, BatchResponse, ContinueWatchingResponse, HideRequest, Reason, Record,
    ResumeResponse, UpdateOutcome, UpdateRequest, UpdateResponse,
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
        super::playback::hide,
        super::playback::batch,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        super::ops::openapi,
    ),
    components(schemas(
        UpdateRequest, UpdateResponse, UpdateOutcome, Record, ResumeResponse, Action, Reason,
        BatchRequest, BatchResponse, BatchItem, HideRequest,
        ContinueWatchingResponse, ErrorBody, ErrorDetail, Health
    )),
    tags(
        (name = "playback", description = "Record and read playback progress"),
        (name = "operations", description = "Health, readiness, metrics")
    )
)]
pub struct ApiDoc;
