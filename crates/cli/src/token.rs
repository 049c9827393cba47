//! `playmark token`: prints a token, for development, the demo page and
//! operators' smoke tests: HS256 with the secret a node reads with
//! `--jwt-secret-file`, or RS256/ES256/EdDSA with a private key whose public
//! half the node trusts (`--jwks` prints that half as a JWKS, for
//! `--jwt-jwks-file`).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, ValueEnum};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// The asymmetric algorithms a node verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlgorithm {
    /// RSA with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    Eddsa,
}

/// Every flag of `playmark token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The HS256 secret, the same file the node reads (--jwt-secret-file);
    /// a trailing newline is dropped.
    #[arg(
        long,
        env = "PLAYMARK_JWT_SECRET_FILE",
        conflicts_with = "key_file",
        required_unless_present = "key_file"
    )]
    pub secret_file: Option<PathBuf>,
    /// A PKCS#8 PEM private key (e.g. from `openssl genpkey`), to sign with
    /// --algorithm instead of a secret.
    #[arg(long, env = "PLAYMARK_TOKEN_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// The algorithm of --key-file.
    #[arg(long, env = "PLAYMARK_TOKEN_ALGORITHM", value_enum, default_value_t = KeyAlgorithm::Rs256)]
    pub algorithm: KeyAlgorithm,
    /// The key id (`kid`) to put in the token's header (and in --jwks).
    #[arg(long, env = "PLAYMARK_TOKEN_KID")]
    pub kid: Option<String>,
    /// Print the JWKS of --key-file's public half instead of a token (for a
    /// node's --jwt-jwks-file).
    #[arg(long, env = "PLAYMARK_TOKEN_JWKS", requires = "key_file")]
    pub jwks: bool,
    /// The account the token may touch (its `sub` claim, or the claim named
    /// by --account-claim).
    #[arg(long, env = "PLAYMARK_TOKEN_ACCOUNT", required_unless_present = "jwks", default_value = "")]
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

/// What to print: the signed token, or with `--jwks` the key's JWKS.
pub fn token(args: &TokenArgs) -> anyhow::Result<String> {
    let (key, algorithm) = signing_key(args)?;
    if args.jwks {
        let mut jwk = Jwk::from_encoding_key(&key, algorithm).context("cannot describe the key as a JWK")?;
        jwk.common.key_id = args.kid.clone();
        return Ok(serde_json::to_string_pretty(&JwkSet { keys: vec![jwk] })?);
    }
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
    let header = Header { kid: args.kid.clone(), ..Header::new(algorithm) };
    jsonwebtoken::encode(&header, &claims, &key).context("cannot sign the token")
}

/// The key to sign with: the secret, or the private key file.
fn signing_key(args: &TokenArgs) -> anyhow::Result<(EncodingKey, Algorithm)> {
    if let Some(path) = &args.key_file {
        let pem =
            std::fs::read(path).with_context(|| format!("cannot read --key-file {}", path.display()))?;
        let (key, algorithm) = match args.algorithm {
            KeyAlgorithm::Rs256 => (EncodingKey::from_rsa_pem(&pem), Algorithm::RS256),
            KeyAlgorithm::Es256 => (EncodingKey::from_ec_pem(&pem), Algorithm::ES256),
            KeyAlgorithm::Eddsa => (EncodingKey::from_ed_pem(&pem), Algorithm::EdDSA),
        };
        let key = key.with_context(|| {
            format!("--key-file {} is not a PKCS#8 PEM key for {:?}", path.display(), args.algorithm)
        })?;
        return Ok((key, algorithm));
    }
    let path = args.secret_file.as_ref().context("give --secret-file or --key-file")?;
    let mut secret =
        std::fs::read(path).with_context(|| format!("cannot read --secret-file {}", path.display()))?;
    if secret.last() == Some(&b'\n') {
        secret.pop();
    }
    Ok((EncodingKey::from_secret(&secret).context("the secret file is empty")?, Algorithm::HS256))
}
