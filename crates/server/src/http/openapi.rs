//! The OpenAPI document, generated from the handlers and types, and shaped
//! by the node's flags: with `--auth jwt` it declares the bearer scheme, the
//! 401 and 403 answers of every playback route, and `account_id` as
//! optional (the token names it); with `--auth none`, none of that. So a
//! fuzzer's authentication checks hold in both modes.

use utoipa::OpenApi;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::Link;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, Ref, RefOr, Required};

use playmark_wire::{
    BatchItem, BatchResponse, ContinueWatchingResponse, ErrorBody, ErrorCode, ErrorDetail, HistoryResponse,
    NextUp, PlayerEvent, Record, ResumeAction, ResumeReason, ResumeResponse, ShelfItem, UpdateOutcome,
    UpdateResponse,
};

use super::ops::Health;
use super::playback::{BatchRequest, HideRequest, UpdateRequest, WatchedRequest};

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
        super::playback::history,
        super::playback::forget,
        super::playback::hide,
        super::playback::watched,
        super::playback::batch,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        super::ops::openapi,
    ),
    components(schemas(
        UpdateRequest, UpdateResponse, UpdateOutcome, Record, ResumeResponse, ResumeAction, ResumeReason,
        PlayerEvent, BatchRequest, BatchResponse, BatchItem, HideRequest, WatchedRequest,
        ContinueWatchingResponse, ShelfItem, NextUp, HistoryResponse, ErrorBody, ErrorDetail, ErrorCode, Health
    )),
    tags(
        (name = "playback", description = "Record and read playback progress"),
        (name = "operations", description = "Health, readiness, metrics")
    )
)]
pub struct ApiDoc;

/// The document `/openapi.json` serves with default flags, as
/// pretty-printed JSON (what `playmark openapi` prints and
/// `docs/openapi.json` holds).
pub fn json() -> String {
    json_for(false)
}

/// The document for a node with authentication on or off, as JSON.
pub fn json_for(auth: bool) -> String {
    document(auth).to_pretty_json().unwrap_or_default()
}

/// The bearer scheme's name in the document.
const BEARER: &str = "bearer";

/// The document for a node with authentication on or off.
pub fn document(auth: bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    add_links(&mut doc);
    add_limits(&mut doc);
    if !auth {
        return doc;
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.into(),
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A JWT for one account (its account claim), optionally some of its profiles \
                     (`profiles`), with `scope` playback:read, playback:write or playback:admin.",
                ))
                .build(),
        )
        .into(),
    );
    // The account comes from the token: in every request body, `account_id`
    // may be left out (or sent as null, as any optional field may).
    for (name, schema) in components.schemas.iter_mut() {
        if !name.ends_with("Request") {
            continue;
        }
        if let RefOr::T(Schema::Object(object)) = schema {
            object.required.retain(|field| field != "account_id");
            if let Some(RefOr::T(Schema::Object(account))) = object.properties.get_mut("account_id") {
                account.schema_type = SchemaType::Array(vec![Type::String, Type::Null]);
            }
        }
    }
    let error = || ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    for (path, item) in doc.paths.paths.iter_mut() {
        // The metrics need an admin token (or --metrics-listen).
        if !path.starts_with("/playback/") && path != "/metrics" {
            continue;
        }
        for operation in [&mut item.get, &mut item.post, &mut item.delete].into_iter().flatten() {
            protect(operation, &error);
        }
    }
    doc
}

/// Declares the answers of the overload limits on every playback
/// operation: 429 `rate_limited` (the account's or device's rate) and 503
/// `overloaded` (`--max-in-flight`), each with `Retry-After`; and, where a
/// body is sent, 408 `request_timeout` (a body slower than the header
/// timeout).
fn add_limits(doc: &mut utoipa::openapi::OpenApi) {
    let error = || ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    let retry_after = || {
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
            .description(Some("Seconds to wait before retrying"))
            .build()
    };
    const OVERLOADED: &str = "`overloaded`: the node had --max-in-flight requests in flight, so this one was \
        shed before its body was read (nothing read or written)";
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/playback/") {
            continue;
        }
        for operation in [&mut item.get, &mut item.post, &mut item.delete].into_iter().flatten() {
            let has_body = operation.request_body.is_some();
            let responses = &mut operation.responses.responses;
            if has_body {
                responses.insert(
                    "408".into(),
                    ResponseBuilder::new()
                        .description(
                            "`request_timeout`: the body did not arrive within --header-timeout; nothing was read \
                             or written",
                        )
                        .content("application/json", error())
                        .build()
                        .into(),
                );
            }
            responses.insert(
                "429".into(),
                ResponseBuilder::new()
                    .description(
                        "`rate_limited`: the account (or this device, within it) is over --account-rate; \
                         nothing was read or written",
                    )
                    .content("application/json", error())
                    .header("Retry-After", retry_after())
                    .build()
                    .into(),
            );
            match responses.get_mut("503") {
                Some(RefOr::T(unavailable)) => {
                    unavailable.description =
                        format!("`unavailable`: {}; or {OVERLOADED}", unavailable.description);
                }
                _ => {
                    responses.insert(
                        "503".into(),
                        ResponseBuilder::new()
                            .description(OVERLOADED)
                            .content("application/json", error())
                            .header("Retry-After", retry_after())
                            .build()
                            .into(),
                    );
                }
            }
        }
    }
}

/// The links between operations: which values of one request feed which
/// later request. They let an OpenAPI-driven client, and a stateful fuzzer,
/// walk update → resume → forget → resume.
fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    let (body, query) = ("$request.body#/", "$request.query.");
    let update = ("/playback/update", "post", "200");
    add_link(doc, update, "resume", title_link("resume", body, "Where to resume the title just written"));
    add_link(doc, update, "forget", title_link("forget", body, "Forget the title just written"));
    add_link(doc, update, "continue_watching", profile_link(body, "The profile's row"));
    add_link(doc, update, "hide", body_link("hide", body, "Hide the title just written"));
    let forget = ("/playback/progress", "delete", "204");
    add_link(doc, forget, "resume", title_link("resume", query, "A forgotten title has nothing to resume"));
    add_link(doc, forget, "update", body_link("update", query, "A checkpoint after the deletion"));
    let resume = ("/playback/resume", "get", "200");
    add_link(doc, resume, "update", body_link("update", query, "Keep watching from here"));
    let hide = ("/playback/hide", "post", "204");
    add_link(doc, hide, "continue_watching", profile_link(body, "The row, without the title"));
    let watched = ("/playback/watched", "post", "200");
    add_link(doc, watched, "resume", title_link("resume", body, "A title marked watched starts over"));
    add_link(doc, watched, "continue_watching", profile_link(body, "The row, without the title"));
}

/// A link to `operation` whose `account_id`, `profile_id` and `video_id`
/// parameters come from the same fields of this request (`from`).
fn title_link(operation: &str, from: &str, description: &str) -> Link {
    Link::builder()
        .operation_id(operation)
        .description(description)
        .parameter("account_id", serde_json::json!(format!("{from}account_id")))
        .parameter("profile_id", serde_json::json!(format!("{from}profile_id")))
        .parameter("video_id", serde_json::json!(format!("{from}video_id")))
        .build()
}

/// A link to continue-watching of this request's profile.
fn profile_link(from: &str, description: &str) -> Link {
    Link::builder()
        .operation_id("continue_watching")
        .description(description)
        .parameter("account_id", serde_json::json!(format!("{from}account_id")))
        .parameter("profile_id", serde_json::json!(format!("{from}profile_id")))
        .build()
}

/// A link to `operation` whose body names this request's title.
fn body_link(operation: &str, from: &str, description: &str) -> Link {
    let body = serde_json::json!({
        "account_id": format!("{from}account_id"),
        "profile_id": format!("{from}profile_id"),
        "video_id": format!("{from}video_id"),
    });
    Link::builder().operation_id(operation).description(description).request_body(Some(body)).build()
}

/// Adds `link` to the answer `(path, method, status)`.
fn add_link(
    doc: &mut utoipa::openapi::OpenApi,
    (path, method, status): (&str, &str, &str),
    name: &str,
    link: Link,
) {
    let Some(item) = doc.paths.paths.get_mut(path) else { return };
    let operation = match method {
        "get" => item.get.as_mut(),
        "post" => item.post.as_mut(),
        _ => item.delete.as_mut(),
    };
    if let Some(RefOr::T(response)) = operation.and_then(|o| o.responses.responses.get_mut(status)) {
        response.links.insert(name.into(), RefOr::T(link));
    }
}

/// Declares what the bearer scheme adds to one playback operation.
fn protect(operation: &mut Operation, error: &dyn Fn() -> utoipa::openapi::Content) {
    operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && parameter.name == "account_id"
        {
            parameter.required = Required::False;
            parameter.description = Some("The account; the token's own when left out.".into());
        }
    }
    let challenge = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(
            "The RFC 6750 challenge: Bearer realm=\"playmark\", with error=\"invalid_token\" for a bad token",
        ))
        .build();
    let responses = &mut operation.responses.responses;
    responses.insert(
        "401".into(),
        ResponseBuilder::new()
            .description("No bearer token, or one that is malformed, badly signed, expired, not yet valid, or for another issuer or audience")
            .content("application/json", error())
            .header("WWW-Authenticate", challenge)
            .build()
            .into(),
    );
    responses.insert(
        "403".into(),
        ResponseBuilder::new()
            .description("A valid token for another account, profile or scope: nothing was read or written")
            .content("application/json", error())
            .build()
            .into(),
    );
}
