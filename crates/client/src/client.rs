//! The HTTP client.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use playmark_wire::{
    BatchItem, BatchResponse, ContinueWatchingResponse, ErrorBody, ErrorCode, HistoryResponse, Record,
    ResumeResponse, ShelfItem, UpdateResponse,
};

use crate::token::Tokens;
use crate::types::{Checkpoint, Mark, ProfileKey, TitleKey};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error (4xx, or 503 after the retries).
    #[error("{status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable error code. A code this client does not know (from a
        /// newer server) is read as the one its status implies.
        code: ErrorCode,
        /// What went wrong.
        message: String,
        /// The request field at fault.
        field: Option<String>,
        /// For `conflict`: the record that stands.
        record: Option<Box<Record>>,
    },
    /// No answer within the timeout (after the retries).
    #[error("playmark did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed (after the retries).
    #[error("cannot reach playmark: {0}")]
    Transport(String),
    /// The answer was not what the API promises.
    #[error("unexpected answer from playmark: {0}")]
    Decode(String),
    /// A bad base URL.
    #[error("invalid base URL {0:?}")]
    BaseUrl(String),
    /// The token provider could not give a token.
    #[error("cannot get a bearer token: {0}")]
    Token(String),
}

impl Error {
    /// True for a stale-device conflict (409).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Api { code: ErrorCode::Conflict, .. })
    }
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    timeout: Duration,
    retries: u32,
    tokens: Option<Tokens>,
}

impl ClientBuilder {
    /// Per-request timeout (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries after a network error, a 503 or a 429 (default 2).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sends this bearer token with every request (for `--auth jwt`).
    pub fn token(self, token: impl Into<String>) -> Self {
        self.tokens(Tokens::fixed(token))
    }

    /// Sends bearer tokens from `tokens` (e.g. [`Tokens::provider`], which
    /// is asked again after a 401).
    pub fn tokens(mut self, tokens: Tokens) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client, Error> {
        let base = self.base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::BaseUrl(self.base_url));
        }
        // reqwest's rustls needs the process's provider chosen first.
        #[cfg(feature = "tls")]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Transport(e.to_string()))?;
        Ok(Client { http, base, timeout: self.timeout, retries: self.retries, tokens: self.tokens })
    }
}

/// A playmark client. Cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    retries: u32,
    tokens: Option<Tokens>,
}

/// The longest pause between retries, whatever `Retry-After` says.
const MAX_PAUSE: Duration = Duration::from_secs(2);

impl Client {
    /// A client with the default timeout and retries.
    pub fn new(base_url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(base_url).build()
    }

    /// A builder, to set the timeout and retries.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder { base_url: base_url.into(), timeout: Duration::from_secs(2), retries: 2, tokens: None }
    }

    /// Records a checkpoint (`POST /playback/update`). A stale-device
    /// conflict is `Err(Error::Api { status: 409, record, .. })`.
    pub async fn update(&self, checkpoint: &Checkpoint) -> Result<UpdateResponse, Error> {
        let body = serde_json::to_value(checkpoint).map_err(|e| Error::Decode(e.to_string()))?;
        self.call(Method::POST, "/playback/update", move |r| r.json(&body)).await
    }

    /// Where to resume (`GET /playback/resume`); with `local_position`
    /// (seconds) the guardrails apply and the action may be `prompt`.
    pub async fn resume(
        &self,
        key: &TitleKey,
        device_id: Option<&str>,
        local_position: Option<f64>,
    ) -> Result<ResumeResponse, Error> {
        let mut query: Vec<(&str, String)> = vec![
            ("account_id", key.account_id.clone()),
            ("profile_id", key.profile_id.clone()),
            ("video_id", key.video_id.clone()),
        ];
        if let Some(device) = device_id {
            query.push(("device_id", device.to_owned()));
        }
        if let Some(local) = local_position {
            query.push(("local_position", local.to_string()));
        }
        self.call(Method::GET, "/playback/resume", move |r| r.query(&query)).await
    }

    /// The profile's titles in progress, newest first.
    pub async fn continue_watching(
        &self,
        profile: &ProfileKey,
        limit: Option<u32>,
    ) -> Result<Vec<Record>, Error> {
        let items = self.shelf(profile, limit, None).await?;
        // Without a group every item is a record.
        Ok(items
            .into_iter()
            .filter_map(|item| match item {
                ShelfItem::Record(record) => Some(record),
                ShelfItem::NextUp(_) => None,
            })
            .collect())
    }

    /// The profile's continue-watching row grouped by series
    /// (`group=series`): at most one item per series — its episode in
    /// progress, or the next one after a finished episode — and the titles
    /// without a series, newest activity first.
    pub async fn continue_watching_by_series(
        &self,
        profile: &ProfileKey,
        limit: Option<u32>,
    ) -> Result<Vec<ShelfItem>, Error> {
        self.shelf(profile, limit, Some("series")).await
    }

    async fn shelf(
        &self,
        profile: &ProfileKey,
        limit: Option<u32>,
        group: Option<&str>,
    ) -> Result<Vec<ShelfItem>, Error> {
        let mut query =
            vec![("account_id", profile.account_id.clone()), ("profile_id", profile.profile_id.clone())];
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(group) = group {
            query.push(("group", group.to_owned()));
        }
        let answer: ContinueWatchingResponse =
            self.call(Method::GET, "/playback/continue-watching", move |r| r.query(&query)).await?;
        Ok(answer.items)
    }

    /// A page of what the profile finished, newest finish first
    /// (`GET /playback/history`): pass the answer's `next_cursor` as
    /// `cursor` for the next page.
    pub async fn history(
        &self,
        profile: &ProfileKey,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<HistoryResponse, Error> {
        let mut query =
            vec![("account_id", profile.account_id.clone()), ("profile_id", profile.profile_id.clone())];
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        self.call(Method::GET, "/playback/history", move |r| r.query(&query)).await
    }

    /// Forgets a title (`DELETE /playback/progress`).
    pub async fn forget(&self, key: &TitleKey) -> Result<(), Error> {
        let key = key.clone();
        self.call_empty(Method::DELETE, "/playback/progress", move |r| r.query(&key)).await
    }

    /// Hides a title from continue-watching (`POST /playback/hide`).
    pub async fn hide(&self, key: &TitleKey) -> Result<(), Error> {
        let body = json!(key);
        self.call_empty(Method::POST, "/playback/hide", move |r| r.json(&body)).await
    }

    /// Marks a title watched or not watched (`POST /playback/watched`):
    /// merged like a checkpoint, so the answer may be `stale` when a newer
    /// write stands.
    pub async fn mark_watched(&self, mark: &Mark) -> Result<UpdateResponse, Error> {
        let body = serde_json::to_value(mark).map_err(|e| Error::Decode(e.to_string()))?;
        self.call(Method::POST, "/playback/watched", move |r| r.json(&body)).await
    }

    /// Records up to 500 checkpoints at once (`POST /playback/batch`).
    pub async fn batch(&self, checkpoints: &[Checkpoint]) -> Result<Vec<BatchItem>, Error> {
        let body = json!({ "checkpoints": checkpoints });
        let answer: BatchResponse =
            self.call(Method::POST, "/playback/batch", move |r| r.json(&body)).await?;
        Ok(answer.results)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<T, Error> {
        let response = self.send(method, path, build).await?;
        response.json().await.map_err(|e| Error::Decode(e.to_string()))
    }

    async fn call_empty(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<(), Error> {
        self.send(method, path, build).await.map(drop)
    }

    /// Sends, and once more with a fresh token after a 401 when the tokens
    /// come from a provider (the token expired or was revoked).
    async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let url = format!("{}{}", self.base, path);
        let Some(tokens) = &self.tokens else {
            return self.send_with_retries(&method, &url, &build, None).await;
        };
        let token = tokens.current().await.map_err(Error::Token)?;
        match self.send_with_retries(&method, &url, &build, Some(&token)).await {
            Err(Error::Api { code: ErrorCode::Unauthorized, .. }) if tokens.refreshes() => {
                let fresh = tokens.refresh().await.map_err(Error::Token)?;
                self.send_with_retries(&method, &url, &build, Some(&fresh)).await
            }
            other => other,
        }
    }

    /// Sends with bounded retries (network errors, 503 and 429, full
    /// jitter, honouring `Retry-After` up to [`MAX_PAUSE`]).
    async fn send_with_retries(
        &self,
        method: &Method,
        url: &str,
        build: &impl Fn(RequestBuilder) -> RequestBuilder,
        token: Option<&str>,
    ) -> Result<reqwest::Response, Error> {
        let mut backoff = Duration::from_millis(50);
        for attempt in 0..=self.retries {
            let last = attempt == self.retries;
            let mut request = build(self.http.request(method.clone(), url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let pause = match request.send().await {
                Ok(r) if r.status().is_success() => return Ok(r),
                // 503 (storage slow, or the node shedding) and 429 (over the
                // account's rate) both say when to come back.
                Ok(r) if retryable(r.status()) && !last => r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .map_or(backoff.mul_f64(fastrand::f64()), |s| Duration::from_secs(s).min(MAX_PAUSE)),
                Ok(r) => return Err(api_error(r).await),
                Err(e) if last => {
                    return Err(if e.is_timeout() {
                        Error::Timeout(self.timeout)
                    } else {
                        Error::Transport(e.to_string())
                    });
                }
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "playmark request failed; retrying");
                    backoff.mul_f64(fastrand::f64())
                }
            };
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(MAX_PAUSE);
        }
        Err(Error::Transport("no attempt was made".into()))
    }
}

/// Answers worth sending the same request again for: every playmark write
/// is a conditional merge, so a retry is at worst a `duplicate`.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
}

/// Reads an error answer leniently: a body that is not an [`ErrorBody`] (a
/// proxy's page, a newer server's code) still gives an error with the
/// status's code.
async fn api_error(response: reqwest::Response) -> Error {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if let Ok(ErrorBody { error, record }) = serde_json::from_value::<ErrorBody>(body.clone()) {
        return Error::Api {
            status,
            code: error.code,
            message: error.message,
            field: error.field,
            record: record.map(Box::new),
        };
    }
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Error::Api {
        status,
        code: ErrorCode::from_status(status),
        message: text(&body["error"]["message"]).unwrap_or_else(|| format!("HTTP {status}")),
        field: text(&body["error"]["field"]),
        record: serde_json::from_value(body["record"].clone()).ok().map(Box::new),
    }
}
