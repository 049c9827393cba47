//! JWT verification: keys, claims, and a cache of verified tokens.
//!
//! - **Keys.** An HS256 shared secret (`--jwt-secret-file`, for
//!   development), and public keys from a JWKS file and/or URL (RS256,
//!   ES256, EdDSA). A token is checked only with a key of its own
//!   algorithm: each key carries the one algorithm it may verify (from the
//!   JWK's `alg`, or its type and curve), so an HS256 token "signed" with
//!   an RSA public key finds no HS256 key and fails. `alg: none` never
//!   parses.
//! - **Rotation.** The JWKS URL is fetched at start (failing the start if it
//!   cannot be), refreshed every [`REFRESH_EVERY`], and fetched again when a
//!   token names a key id not in the set — at most once per
//!   [`MIN_REFETCH`], so unknown ids cannot turn into a flood of fetches.
//! - **Claims.** `exp` is required, checked with at most [`LEEWAY_SECS`] of
//!   leeway, as is `nbf` when present; `iss` and `aud` when configured. The
//!   account claim (`--jwt-account-claim`, default `sub`) names the one
//!   account the token may touch; `profiles` (array) and `scope` (string)
//!   are optional (see [`playmark_core::access`]).
//! - **Cache.** Signature checks cost tens of microseconds; a verified
//!   token is kept, keyed by the SHA-256 of the whole token, in a bounded
//!   cache, and `exp` is checked again on every hit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use playmark_core::{AccountId, Principal, ProfileId, Scopes};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AuthError;

/// How late an `exp` (or how early an `nbf`) is still accepted.
pub const LEEWAY_SECS: u64 = 60;
/// How often the JWKS URL is fetched again anyway.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// The least time between two fetches caused by unknown key ids.
pub const MIN_REFETCH: Duration = Duration::from_secs(2);
/// Verified tokens kept.
const CACHE_CAPACITY: usize = 100_000;

/// Where the keys come from and what the claims must say.
#[derive(Debug, Clone, Default)]
pub struct JwtOptions {
    /// A file whose bytes (a trailing newline dropped) are the HS256 secret.
    pub secret_file: Option<PathBuf>,
    /// A JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL.
    pub jwks_url: Option<String>,
    /// `iss` must be this, when set.
    pub issuer: Option<String>,
    /// `aud` must include this, when set.
    pub audience: Option<String>,
    /// The claim that names the account.
    pub account_claim: String,
}

/// One verification key and the algorithm it may verify.
struct Key {
    key: DecodingKey,
    algorithm: Algorithm,
}

/// The keys in force.
#[derive(Default)]
struct Keys {
    /// The HS256 secret.
    secret: Option<Arc<Key>>,
    /// Public keys by key id.
    by_id: HashMap<String, Arc<Key>>,
    /// Public keys without an id (usable by tokens without a `kid`).
    unnamed: Vec<Arc<Key>>,
}

/// A verified token: who it is for, and until when.
struct Verified {
    principal: Arc<Principal>,
    expires_at: u64,
}

/// An HTTP(S) client for the JWKS URL: hyper with rustls, so no other
/// client library in the process has its TLS set up for it.
type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<bytes::Bytes>,
>;

/// The largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks bearer tokens.
pub struct JwtVerifier {
    options: JwtOptions,
    keys: RwLock<Arc<Keys>>,
    http: Option<HttpClient>,
    /// When the JWKS URL was last fetched; one fetch at a time.
    fetched: tokio::sync::Mutex<Instant>,
    cache: quick_cache::sync::Cache<[u8; 32], Arc<Verified>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").field("options", &self.options).finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::Invalid(reason.into())
}

impl JwtVerifier {
    /// Loads every configured key (fetching the JWKS URL); fails with a
    /// message a person can act on when no key can be had.
    pub async fn new(options: JwtOptions) -> Result<Arc<Self>, String> {
        let http = match &options.jwks_url {
            None => None,
            Some(url) => Some(http_client(url)?),
        };
        let verifier = Self {
            options,
            keys: RwLock::new(Arc::new(Keys::default())),
            http,
            fetched: tokio::sync::Mutex::new(Instant::now()),
            cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
        };
        let keys = verifier.load().await?;
        if keys.secret.is_none() && keys.by_id.is_empty() && keys.unnamed.is_empty() {
            return Err(
                "--auth jwt has no key to verify tokens with: give --jwt-jwks-file, --jwt-jwks-url or \
                        --jwt-secret-file"
                    .into(),
            );
        }
        *verifier.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        Ok(Arc::new(verifier))
    }

    /// Refreshes the JWKS URL's keys every [`REFRESH_EVERY`] while the
    /// verifier lives; a failed refresh keeps the keys in force.
    pub fn spawn_refresh(self: &Arc<Self>) {
        if self.options.jwks_url.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(REFRESH_EVERY);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(verifier) = weak.upgrade() else { return };
                verifier.refetch().await;
            }
        });
    }

    /// Every key from every configured source.
    async fn load(&self) -> Result<Keys, String> {
        let mut keys = Keys::default();
        if let Some(path) = &self.options.secret_file {
            let mut secret = std::fs::read(path)
                .map_err(|e| format!("cannot read --jwt-secret-file {}: {e}", path.display()))?;
            if secret.last() == Some(&b'\n') {
                secret.pop();
            }
            let key = DecodingKey::from_secret(&secret)
                .map_err(|e| format!("--jwt-secret-file {} is not a usable secret: {e}", path.display()))?;
            keys.secret = Some(Arc::new(Key { key, algorithm: Algorithm::HS256 }));
        }
        if let Some(path) = &self.options.jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --jwt-jwks-file {}: {e}", path.display()))?;
            add_jwks(&mut keys, &text).map_err(|e| format!("--jwt-jwks-file {}: {e}", path.display()))?;
        }
        if let Some(url) = &self.options.jwks_url {
            let text = self.fetch(url).await?;
            add_jwks(&mut keys, &text).map_err(|e| format!("--jwt-jwks-url {url}: {e}"))?;
        }
        Ok(keys)
    }

    async fn fetch(&self, url: &str) -> Result<String, String> {
        use http_body_util::BodyExt;
        let http = self.http.as_ref().ok_or("no JWKS client")?;
        let fail = |e: &dyn std::fmt::Display| format!("cannot fetch --jwt-jwks-url {url}: {e}");
        let uri: axum::http::Uri = url.parse().map_err(|e| fail(&e))?;
        let fetch = async {
            let response = http.get(uri).await.map_err(|e| fail(&e))?;
            if !response.status().is_success() {
                return Err(fail(&format_args!("HTTP {}", response.status())));
            }
            let body = http_body_util::Limited::new(response.into_body(), MAX_JWKS_BYTES);
            let bytes = body.collect().await.map_err(|e| fail(&e))?.to_bytes();
            String::from_utf8(bytes.to_vec()).map_err(|e| fail(&e))
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch).await.map_err(|_| fail(&"no answer within 5 s"))?
    }

    /// Loads the keys again; on failure, keeps the ones in force.
    async fn refetch(&self) {
        let mut fetched = self.fetched.lock().await;
        match self.load().await {
            Ok(keys) => {
                *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
                tracing::debug!("jwt keys refreshed");
            }
            Err(e) => tracing::warn!(error = %e, "cannot refresh the jwt keys; keeping the ones in force"),
        }
        *fetched = Instant::now();
    }

    fn keys(&self) -> Arc<Keys> {
        Arc::clone(&self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The principal a token proves, or why it proves nothing.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cache.get(&digest) {
            // A cached token still expires.
            return if now_secs() <= hit.expires_at.saturating_add(LEEWAY_SECS) {
                Ok(Arc::clone(&hit.principal))
            } else {
                self.cache.remove(&digest);
                Err(invalid("the token has expired"))
            };
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| invalid(format!("malformed token: {e}")))?;
        let key = match self.key_for(&header) {
            Some(key) => key,
            None if header.kid.is_some() && self.options.jwks_url.is_some() => {
                // Perhaps the keys rotated: fetch them again, not too often.
                let due = self.fetched.lock().await.elapsed() >= MIN_REFETCH;
                if due {
                    self.refetch().await;
                }
                self.key_for(&header).ok_or_else(|| invalid("no key of the token's id and algorithm"))?
            }
            None => return Err(invalid("no key of the token's id and algorithm")),
        };
        let verified = self.check(token, &key)?;
        let principal = Arc::clone(&verified.principal);
        self.cache.insert(digest, Arc::new(verified));
        Ok(principal)
    }

    /// The key that may verify a token with this header: one of its
    /// algorithm, by id when it names one.
    fn key_for(&self, header: &jsonwebtoken::Header) -> Option<Arc<Key>> {
        let keys = self.keys();
        let candidate = if header.alg == Algorithm::HS256 {
            keys.secret.clone()
        } else {
            match &header.kid {
                Some(kid) => keys.by_id.get(kid).cloned(),
                None => keys.unnamed.iter().find(|k| k.algorithm == header.alg).cloned(),
            }
        };
        candidate.filter(|k| k.algorithm == header.alg)
    }

    fn check(&self, token: &str, key: &Key) -> Result<Verified, AuthError> {
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &self.options.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.options.issuer {
            validation.set_issuer(&[iss]);
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| invalid(describe(&e)))?;
        let claims = data.claims;
        let account = claims.get(&self.options.account_claim).and_then(Value::as_str).ok_or_else(|| {
            invalid(format!("the token has no {} claim naming the account", self.options.account_claim))
        })?;
        let account = AccountId::parse(account).map_err(|e| {
            invalid(format!("the token's {} claim is not an account id: {e}", self.options.account_claim))
        })?;
        let profiles = match claims.get("profiles") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|p| p.as_str().and_then(|s| ProfileId::parse(s).ok()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        invalid("the token's profiles claim holds something that is not a profile id")
                    })?,
            ),
            Some(_) => return Err(invalid("the token's profiles claim is not an array")),
        };
        let scope = match claims.get("scope") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(invalid("the token's scope claim is not a string")),
        };
        let expires_at = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let principal = Arc::new(Principal::new(account, profiles, Scopes::from_claim(scope)));
        Ok(Verified { principal, expires_at })
    }
}

/// A client for `url`: https checked against the system's roots (rustls),
/// or plain http (for a JWKS served on the same host or in tests).
fn http_client(url: &str) -> Result<HttpClient, String> {
    use playmark_store::tls::{Verify, client_config, roots};
    let roots = if url.starts_with("https://") {
        roots(None).map_err(|e| format!("--jwt-jwks-url {url}: {e}"))?
    } else {
        rustls::RootCertStore::empty()
    };
    let config = client_config(Verify::Full, roots).map_err(|e| format!("--jwt-jwks-url {url}: {e}"))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
}

/// What is wrong with a token, in words (never the token itself).
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the token's issuer is not the one configured".into(),
        ErrorKind::InvalidAudience => "the token's audience is not the one configured".into(),
        ErrorKind::InvalidSignature => "the signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not its key's".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        _ => format!("{e}"),
    }
}

/// Adds a JWKS's usable keys: RSA (RS256), EC P-256 (ES256) and Ed25519
/// (EdDSA); a key whose `alg` names another algorithm is skipped.
fn add_jwks(keys: &mut Keys, text: &str) -> Result<(), String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut usable = 0;
    for jwk in &set.keys {
        let natural = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Some(Algorithm::ES256),
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                Some(Algorithm::EdDSA)
            }
            _ => None,
        };
        let declared = jwk.common.key_algorithm.map(|a| match a {
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            _ => None,
        });
        let algorithm = match (natural, declared) {
            (Some(n), None) => n,
            (Some(n), Some(Some(d))) if n == d => n,
            _ => {
                tracing::warn!(kid = ?jwk.common.key_id, "skipping a JWKS key that is not RS256, ES256 or EdDSA");
                continue;
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {:?}: {e}", jwk.common.key_id))?;
        let key = Arc::new(Key { key, algorithm });
        match &jwk.common.key_id {
            Some(kid) => {
                keys.by_id.insert(kid.clone(), key);
            }
            None => keys.unnamed.push(key),
        }
        usable += 1;
    }
    if usable == 0 {
        return Err("no RS256, ES256 or EdDSA key in it".into());
    }
    Ok(())
}
