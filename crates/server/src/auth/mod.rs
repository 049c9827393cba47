//! Who is calling: bearer tokens (JWT) verified into a [`Principal`].
//!
//! With `--auth none` every request acts as [`Principal::unrestricted`]
//! (the loopback guard in [`crate::config`] keeps such a node off public
//! addresses). With `--auth jwt`, a request must carry `Authorization:
//! Bearer <token>`; [`jwt::JwtVerifier`] checks its signature against the
//! configured keys and its claims, and the [`Caller`] extractor hands the
//! principal to the handler, which asks core's
//! [`Principal::authorize`](playmark_core::Principal::authorize) before
//! touching the store.

pub mod jwt;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use playmark_core::Principal;

use crate::http::AppState;
use crate::http::error::ApiError;

/// How requests prove who they are.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// They don't: every request is unrestricted.
    Off,
    /// A bearer JWT, verified by this.
    Jwt(Arc<jwt::JwtVerifier>),
}

/// Why a request is not authenticated: always a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("this request needs a bearer token (Authorization: Bearer <token>)")]
    Missing,
    /// A token that is not a valid, current token for this service.
    #[error("the bearer token is not valid: {0}")]
    Invalid(String),
}

impl Authenticator {
    /// The unrestricted principal, shared by every request with auth off.
    fn unrestricted() -> Arc<Principal> {
        static OPEN: std::sync::OnceLock<Arc<Principal>> = std::sync::OnceLock::new();
        Arc::clone(OPEN.get_or_init(|| Arc::new(Principal::unrestricted())))
    }

    /// True when requests must carry a token.
    pub fn is_on(&self) -> bool {
        matches!(self, Authenticator::Jwt(_))
    }

    /// The principal behind an `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Arc<Principal>, AuthError> {
        match self {
            Authenticator::Off => Ok(Self::unrestricted()),
            Authenticator::Jwt(verifier) => {
                let token = bearer(authorization).ok_or(AuthError::Missing)?;
                verifier.verify(token).await
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive, RFC 6750).
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// The verified caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(state, &parts.headers).await.map(Caller)
    }
}

/// The principal behind a request's headers, or the 401 (counted) to
/// answer instead.
pub async fn caller(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Arc<Principal>, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.auth.authenticate(authorization).await.map_err(|e| {
        state.metrics.auth_failures.inc();
        ApiError::unauthorized(&e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_header_with_a_token_carries_one() {
        assert_eq!(bearer(Some("Bearer abc.def.ghi")), Some("abc.def.ghi"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        for bad in [None, Some(""), Some("Bearer"), Some("Bearer  "), Some("Basic dXNlcg=="), Some("abc")] {
            assert_eq!(bearer(bad), None, "{bad:?}");
        }
    }
}
