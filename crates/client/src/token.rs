//! Bearer tokens for a playmark with `--auth jwt`.
//!
//! A [`Client`](crate::Client) sends `Authorization: Bearer <token>` with
//! every request. The token is either fixed ([`Tokens::fixed`]) or comes
//! from an async provider ([`Tokens::provider`]), asked once and asked
//! again when the server answers 401 (the token expired or was revoked):
//! the request is then retried once with the fresh token.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A future of a token, or of why none could be had.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

type Provider = dyn Fn() -> TokenFuture + Send + Sync;

/// Where a client's bearer tokens come from.
#[derive(Clone)]
pub struct Tokens {
    provider: Option<Arc<Provider>>,
    current: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for Tokens {
    // Never the token itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").field("refreshes", &self.provider.is_some()).finish_non_exhaustive()
    }
}

impl Tokens {
    /// Always this token (a 401 is final).
    pub fn fixed(token: impl Into<String>) -> Self {
        Self { provider: None, current: Arc::new(Mutex::new(Some(token.into()))) }
    }

    /// Tokens from `provider`: called for the first request, and again
    /// after a 401.
    pub fn provider<F, Fut>(provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        let provider: Arc<Provider> = Arc::new(move || Box::pin(provider()) as TokenFuture);
        Self { provider: Some(provider), current: Arc::new(Mutex::new(None)) }
    }

    /// The token to send now (asking the provider if there is none yet).
    pub(crate) async fn current(&self) -> Result<String, String> {
        let held = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match (held, &self.provider) {
            (Some(token), _) => Ok(token),
            (None, Some(_)) => self.refresh().await,
            (None, None) => Err("no token".into()),
        }
    }

    /// True when a rejected token can be replaced by a fresh one.
    pub(crate) fn refreshes(&self) -> bool {
        self.provider.is_some()
    }

    /// A fresh token from the provider, which becomes the current one.
    pub(crate) async fn refresh(&self) -> Result<String, String> {
        let provider = self.provider.as_ref().ok_or("no token provider")?;
        let token = provider().await?;
        *self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token.clone());
        Ok(token)
    }
}
