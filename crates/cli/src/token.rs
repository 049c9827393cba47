//! `playmark token`: prints an HS256 token, for development, the demo page
//! and operators' smoke tests against a node started with
//! `--auth jwt --jwt-secret-file`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// Every flag of `playmark token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The HS256 secret, the same file the node reads (--jwt-secret-file);
    /// a trailing newline is dropped.
    #[arg(long, env = "PLAYMARK_JWT_SECRET_FILE")]
    pub secret_file: PathBuf,
    /// The account the token may touch (its `sub` claim, or the claim named
    /// by --account-claim).
    #[arg(long, env = "PLAYMARK_TOKEN_ACCOUNT")]
    pub account: String,
    /// Only these profiles of the account, comma-separated (all when left out).
    #[arg(long, env = "PLAYMARK_TOKEN_PROFILES", value_delimiter = ',')]
    pub profiles: Vec<String>,
    /// Space-separated scopes: playback:read, playback:write, playback:admin
    /// (read and write when left out).
    #[arg(long, env = "PLAYMARK_TOKEN_SCOPE")]
    pub scope: Option<String>,
    /// How long the token is valid (e.g. 1h, 15m).
    #[arg(long, env = "PLAYMARK_TOKEN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// The `iss` claim (match the node's --jwt-issuer).
    #[arg(long, env = "PLAYMARK_TOKEN_ISSUER")]
    pub issuer: Option<String>,
    /// The `aud` claim (match the node's --jwt-audience).
    #[arg(long, env = "PLAYMARK_TOKEN_AUDIENCE")]
    pub audience: Option<String>,
    /// The claim that names the account (match the node's --jwt-account-claim).
    #[arg(long, env = "PLAYMARK_JWT_ACCOUNT_CLAIM", default_value = "sub")]
    pub account_claim: String,
}

/// The signed token.
pub fn token(args: &TokenArgs) -> anyhow::Result<String> {
    let mut secret = std::fs::read(&args.secret_file)
        .with_context(|| format!("cannot read --secret-file {}", args.secret_file.display()))?;
    if secret.last() == Some(&b'\n') {
        secret.pop();
    }
    let key = EncodingKey::from_secret(&secret).context("the secret file is empty")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_secs();
    let mut claims = json!({ "iat": now, "exp": now + args.ttl.as_secs() });
    claims[&args.account_claim] = json!(args.account);
    if !args.profiles.is_empty() {
        claims["profiles"] = json!(args.profiles);
    }
    if let Some(scope) = &args.scope {
        claims["scope"] = json!(scope);
    }
    if let Some(issuer) = &args.issuer {
        claims["iss"] = json!(issuer);
    }
    if let Some(audience) = &args.audience {
        claims["aud"] = json!(audience);
    }
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).context("cannot sign the token")
}
