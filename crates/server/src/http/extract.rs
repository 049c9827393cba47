//! Request extractors whose failures are [`ApiError`]s naming the field.
//!
//! JSON bodies are decoded by [`parse_json`], the one decoder of every body
//! and of every item of a batch: a type error names its field, a repeated
//! key is a 400, and fields the endpoint does not know are collected, so
//! the answer can name them in `Warning` headers (or, with
//! `--reject-unknown-fields`, refuse them).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponseParts, ResponseParts};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;

/// The largest JSON body accepted by the single-record endpoints.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The largest JSON body accepted by the batch endpoint.
pub const MAX_BATCH_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body of at most `LIMIT` bytes, and the fields in it the
/// endpoint does not know. Checks the content type, reports an oversized
/// body as 413, and names the field behind a type error. The route must
/// allow `LIMIT` (`DefaultBodyLimit`); the constant only words the 413.
#[derive(Debug)]
pub struct JsonBody<T, const LIMIT: usize = MAX_BODY_BYTES> {
    /// The decoded body.
    pub value: T,
    /// Its unknown fields, for the answer's `Warning` headers.
    pub warnings: Warnings,
}

impl<T, const LIMIT: usize> FromRequest<AppState> for JsonBody<T, LIMIT>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::unsupported_media_type());
        }
        // A client that trickles its body is held to the header timeout
        // too: a slow body must not hold a request slot for ever.
        let read = tokio::time::timeout(state.body_timeout, Bytes::from_request(req, state));
        let bytes =
            read.await.map_err(|_| ApiError::request_timeout(state.body_timeout))?.map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(LIMIT)
                } else {
                    ApiError::malformed(format!("could not read the request body: {}", rejection.body_text()))
                }
            })?;
        let (value, unknown) = parse_json(&bytes)?;
        let warnings = state.unknown_fields(unknown, "", "")?;
        Ok(JsonBody { value, warnings })
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
/// value's type or a repeated key. Returns the value and the paths of the
/// fields it ignored (fields `T` does not have).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, Vec<String>), ApiError> {
    // serde also reads structs from arrays; the contract is an object.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => return Err(ApiError::malformed("the request body is empty; send a JSON object")),
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
            return Err(ApiError::malformed("the request body must be a JSON object"));
        }
        Some(_) => {}
    }
    let mut unknown = Vec::new();
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let decoded = {
        let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&mut *de, &mut note))
    };
    let value = decoded.map_err(|e| {
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
    })?;
    de.end().map_err(|e| ApiError::malformed(format!("malformed JSON: {e}")))?;
    Ok((value, unknown))
}

/// The fields of a request the endpoint did not know, for `Warning`
/// headers on the answer (RFC 7234 style, code 299, one per distinct field,
/// at most [`MAX_WARNINGS`]).
#[derive(Debug, Default)]
pub struct Warnings(Vec<String>);

/// The most `Warning` headers on one answer; a last one says how many more
/// fields there were.
pub const MAX_WARNINGS: usize = 16;

impl Warnings {
    /// Warnings naming `fields`.
    pub fn unknown_fields(fields: impl IntoIterator<Item = String>) -> Self {
        let mut warnings = Warnings::default();
        warnings.add(fields);
        warnings
    }

    /// Adds another set (a batch item's); a field already named is not
    /// named twice.
    pub fn extend(&mut self, other: Warnings) {
        self.add(other.0);
    }

    fn add(&mut self, fields: impl IntoIterator<Item = String>) {
        for field in fields {
            if !self.0.contains(&field) {
                self.0.push(field);
            }
        }
    }
}

impl IntoResponseParts for Warnings {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        let more = self.0.len().saturating_sub(MAX_WARNINGS);
        for field in self.0.into_iter().take(MAX_WARNINGS) {
            // Field names come from the client: escape what a quoted
            // string cannot hold, and drop what a header cannot.
            let escaped = field.replace('\\', "\\\\").replace('"', "\\\"");
            if let Ok(value) =
                HeaderValue::from_str(&format!("299 playmark \"unknown field \\\"{escaped}\\\"\""))
            {
                res.headers_mut().append(header::WARNING, value);
            }
        }
        if more > 0
            && let Ok(value) = HeaderValue::from_str(&format!("299 playmark \"{more} more unknown fields\""))
        {
            res.headers_mut().append(header::WARNING, value);
        }
        Ok(res)
    }
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

/// Reads an optional whole number that JSON may spell `8260` or `8260.0`:
/// JSON Schema's `integer` (what `/openapi.json` declares) allows both, so
/// the server must too. A fraction, a negative number or anything else is
/// an error naming the field.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct WholeNumber;

    impl<'de> serde::de::Visitor<'de> for WholeNumber {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a whole number from 0")
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
            Ok(Some(n))
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
            u64::try_from(n).map(Some).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
        }

        fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<Self::Value, E> {
            // 2^64 is exactly representable; anything below it that is whole
            // converts exactly.
            if x.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&x) {
                Ok(Some(x as u64))
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(x), &self))
            }
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
    }

    d.deserialize_option(WholeNumber)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[derive(Debug, serde::Deserialize)]
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
            (StatusCode::BAD_REQUEST, playmark_wire::ErrorCode::InvalidRequest, Some("position"))
        );
    }

    #[test]
    fn unknown_fields_are_collected_not_rejected() {
        let (body, unknown) =
            parse_json::<Body>(br#"{"position": 1, "updatedAt": 5, "x": {"y": 1}}"#).expect("parses");
        assert_eq!(body.position, Some(1.0));
        assert_eq!(unknown, ["updatedAt", "x"]);
    }

    #[test]
    fn trailing_bytes_after_the_object_are_malformed() {
        let e = error_of(r#"{"position": 1} x"#);
        assert_eq!((e.status_code(), e.field()), (StatusCode::BAD_REQUEST, None));
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
