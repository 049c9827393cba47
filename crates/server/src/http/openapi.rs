//! The OpenAPI document, generated from the handlers and types.

use utoipa::OpenApi;

use playmark_wire::{
    BatchItem, BatchResponse, ContinueWatchingResponse, ErrorBody, ErrorCode, ErrorDetail, PlayerEvent,
    Record, ResumeAction, ResumeReason, ResumeResponse, UpdateOutcome, UpdateResponse,
};

use super::ops::Health;
use super::playback::{BatchRequest, HideRequest, UpdateRequest};

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
        UpdateRequest, UpdateResponse, UpdateOutcome, Record, ResumeResponse, ResumeAction, ResumeReason,
        PlayerEvent, BatchRequest, BatchResponse, BatchItem, HideRequest,
        ContinueWatchingResponse, ErrorBody, ErrorDetail, ErrorCode, Health
    )),
    tags(
        (name = "playback", description = "Record and read playback progress"),
        (name = "operations", description = "Health, readiness, metrics")
    )
)]
pub struct ApiDoc;
