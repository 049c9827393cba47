//! Request extractors whose failures are [`ApiError`]s naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest JSON body accepted by the single-record endpoints.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The largest JSON body accepted by the batch endpoint.
pub const MAX_BATCH_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body of at most `LIMIT` bytes. Checks the content type,
/// reports an oversized body as 413, and names the field behind a type error.
/// The route must allow `LIMIT` (`DefaultBodyLimit`); the constant only
/// words the 413.
#[derive(Debug)]
pub struct JsonBody<T, const LIMIT: usize = MAX_BODY_BYTES>(pub T);

impl<T, S, const LIMIT: usize> FromRequest<S> for JsonBody<T, LIMIT>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(LIMIT)
            } else {
                ApiError::malformed(format!("could not read the request body: {}", rejection.body_text()))
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Decodes a JSON object, naming the field at fault when the problem is a
/// value's type or a repeated key.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde also reads structs from arrays; the contract is an object.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => return Err(ApiError::malformed("the request body is empty; send a JSON object")),
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
            return Err(ApiError::malformed("the request body must be a JSON object"));
        }
        Some(_) => {}
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let detail = strip_position(&message);
        match (inner.classify(), named_field(detail)) {
            (serde_json::error::Category::Data, Some(field)) => {
                ApiError::invalid_field(field, format!("{field} is given more than once"))
            }
            (serde_json::error::Category::Data, None) if path != "." => {
                ApiError::invalid_field(path.clone(), format!("{path} is invalid: {detail}"))
            }
            _ => ApiError::malformed(format!("malformed JSON: {message}")),
        }
    })
}

/// The field serde names in messages such as "duplicate field `position`".
fn named_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("duplicate field `")?;
    rest.split('`').next().filter(|f| !f.is_empty())
}

/// serde_json appends "at line 1 column 42"; for a field error the field name
/// says more.
fn strip_position(message: &str) -> &str {
    message.rfind(" at line ").map_or(message, |i| &message[..i])
}

/// Query-string parameters, with errors as [`ApiError`]s.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::try_from_uri(&parts.uri).map(|Query(v)| Params(v)).map_err(|e| {
            let text = e.body_text();
            match text.split(": ").last().and_then(named_field) {
                Some(field) => ApiError::invalid_field(field, format!("{field} is given more than once")),
                None => ApiError::malformed(format!("invalid query string: {text}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        position: Option<f64>,
    }

    fn error_of(json: &str) -> ApiError {
        parse_json::<Body>(json.as_bytes()).expect_err("should be rejected")
    }

    #[test]
    fn content_types_that_count_as_json() {
        assert!(is_json(Some(&HeaderValue::from_static("application/json"))));
        assert!(is_json(Some(&HeaderValue::from_static("Application/JSON; charset=utf-8"))));
        assert!(is_json(Some(&HeaderValue::from_static("application/vnd.playmark+json"))));
        assert!(!is_json(Some(&HeaderValue::from_static("text/plain"))));
        assert!(!is_json(Some(&HeaderValue::from_static("application/x-www-form-urlencoded"))));
        assert!(!is_json(None));
    }

    #[test]
    fn a_type_error_names_the_field() {
        let e = error_of(r#"{"position": "x"}"#);
        assert_eq!(
            (e.status_code(), e.code(), e.field()),
            (StatusCode::BAD_REQUEST, "invalid_request", Some("position"))
        );
    }

    #[test]
    fn a_repeated_key_names_the_field() {
        let e = error_of(r#"{"position": 1, "position": 2}"#);
        assert_eq!(e.field(), Some("position"));
    }

    #[test]
    fn syntax_errors_and_non_objects_name_no_field() {
        for json in ["{", "", "  ", "[]", "[1, 2]", "42", "null", r#"{"position": 1"#, "[1"] {
            let e = error_of(json);
            assert_eq!((e.status_code(), e.field()), (StatusCode::BAD_REQUEST, None), "{json:?}");
        }
    }

    #[test]
    fn position_suffix_is_stripped() {
        assert_eq!(
            strip_position("invalid type: string \"x\", expected f64 at line 1 column 16"),
            "invalid type: string \"x\", expected f64"
        );
        assert_eq!(strip_position("no suffix"), "no suffix");
    }
}
