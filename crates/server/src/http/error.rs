//! The one error type every handler returns.
//!
//! Clients get a stable code, a message a person can act on and, for bad
//! input, the offending field. Internal causes are logged, never sent.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use playmark_core::FieldError;
use playmark_wire::{ErrorBody, ErrorCode, ErrorDetail, Record};

use playmark_core::{Denied, Principal};

use super::limits::RateLimited;
use crate::auth::AuthError;
use crate::service::ServiceError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
    // Boxed: only conflicts carry one, and it keeps every Result small.
    record: Option<Box<Record>>,
    retry_after: Option<Duration>,
    /// A 401's `WWW-Authenticate` challenge.
    challenge: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            detail: ErrorDetail { code, message: message.into(), field: None },
            record: None,
            retry_after: None,
            challenge: None,
        }
    }

    /// 400: a request field is missing or invalid.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message);
        e.detail.field = Some(field.into());
        e
    }

    /// 400: the request as a whole cannot be understood.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    /// 404: no such path.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no such endpoint: {path} (see /openapi.json)"),
        )
    }

    /// 405: the path exists, the method does not.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed on {path} (see /openapi.json)"),
        )
    }

    /// 415: the body is not declared as JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON: send Content-Type: application/json",
        )
    }

    /// 413: the body is over the limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the request body must be at most {} KiB", limit / 1024),
        )
    }

    /// 408: the body did not arrive in time.
    pub fn request_timeout(within: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} s (--header-timeout); nothing was read or written",
                within.as_secs_f64()
            ),
        )
    }

    /// 409: the stale-device guard refused the update; `record` stands.
    pub fn conflict(record: Option<Record>) -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "a newer record from another device is far ahead of this position; ask the viewer, \
             then resend with event \"seek\" to move the position back on purpose",
        );
        e.record = record.map(Box::new);
        e
    }

    /// 401: no valid bearer token. Carries the RFC 6750 challenge.
    pub fn unauthorized(e: &AuthError) -> Self {
        let mut api = Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, e.to_string());
        api.challenge = Some(match e {
            AuthError::Missing => r#"Bearer realm="playmark""#.to_owned(),
            AuthError::Invalid(reason) => format!(
                r#"Bearer realm="playmark", error="invalid_token", error_description="{}""#,
                reason.replace(['"', '\\'], "'")
            ),
        });
        api
    }

    /// 403, or 400 for an `account_id` a request had to give or got wrong.
    pub fn denied(e: Denied, principal: &Principal) -> Self {
        match e {
            Denied::AccountRequired if principal.is_unrestricted() => {
                FieldError::required("account_id").into()
            }
            Denied::AccountRequired => Self::invalid_field("account_id", e.to_string()),
            Denied::InvalidAccount(problem) => FieldError::invalid("account_id", problem).into(),
            Denied::OtherAccount | Denied::OtherProfile(_) | Denied::MissingScope(_) => Self::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                format!("{e}; nothing was read or written"),
            ),
        }
    }

    /// 503: `--max-in-flight` requests are in flight; shed before the body
    /// is read.
    pub fn overloaded() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            "the server is at its limit of requests in flight; nothing was read or written, retry shortly",
        );
        e.retry_after = Some(Duration::from_secs(1));
        e
    }

    /// 429: the account (or the device, within it) is over its rate.
    pub fn rate_limited(limited: &RateLimited) -> Self {
        let whose = if limited.device { "this device" } else { "this account" };
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!(
                "{whose} is sending faster than the server allows (--account-rate); nothing was read or \
                 written, retry after the Retry-After seconds"
            ),
        );
        e.retry_after = Some(limited.retry_after);
        e
    }

    /// 500: a bug. The cause goes to the log only.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; it has been logged",
        )
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        self.status
    }

    /// The machine code.
    pub fn code(&self) -> ErrorCode {
        self.detail.code
    }

    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&str> {
        self.detail.field.as_deref()
    }

    /// The JSON body, e.g. for one item of a batch answer.
    pub fn into_body(self) -> ErrorBody {
        ErrorBody { error: self.detail, record: self.record.map(|r| *r) }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::invalid_field(e.field, e.message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        // The cause was logged by the service; clients get what they can act on.
        let retry_after = e.retry_after();
        let mut api = match e {
            // A write that timed out may still commit later; only the
            // acknowledgement is certain to be missing. Retrying is safe:
            // a replay of an applied checkpoint is a `duplicate`.
            ServiceError::Unavailable { op, .. } if op.is_write() => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "storage did not confirm the write in time, so it was not acknowledged \
                 (it may or may not have been applied); retrying is safe",
            ),
            ServiceError::Unavailable { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "storage did not answer in time; retry shortly",
            ),
            ServiceError::Corrupt { .. } | ServiceError::Internal { .. } => Self::internal(),
        };
        api.retry_after = retry_after;
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        let (status, retry_after, challenge) = (self.status, self.retry_after, self.challenge.take());
        let mut response = (status, Json(self.into_body())).into_response();
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(after) = retry_after {
            // Whole seconds, rounded up: a client that waits this long is admitted.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            let secs = secs.max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
