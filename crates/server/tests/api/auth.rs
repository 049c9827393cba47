//! Identity and tenancy: with `--auth jwt`, every playback route checks the
//! bearer token before it touches the store, and a token touches only its
//! own account (its profiles, its scopes) unless it is an admin's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, checkpoint, json_of, now_ms};

const ISSUER: &str = "https://id.example.test";
const AUDIENCE: &str = "playmark";
const SECRET: &[u8] = b"a development secret, long enough to be one";

fn key_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys").join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).expect("test key")
}

/// A signing key and how its tokens are headed.
struct Signer {
    key: EncodingKey,
    algorithm: Algorithm,
    kid: Option<&'static str>,
}

impl Signer {
    fn rsa() -> Self {
        Self::rsa_named("rsa.pem", "rsa-1")
    }

    fn rsa_named(file: &str, kid: &'static str) -> Self {
        let key = EncodingKey::from_rsa_pem(&pem(file)).expect("RSA key");
        Signer { key, algorithm: Algorithm::RS256, kid: Some(kid) }
    }

    fn ec() -> Self {
        Signer {
            key: EncodingKey::from_ec_pem(&pem("ec.pem")).expect("EC key"),
            algorithm: Algorithm::ES256,
            kid: Some("ec-1"),
        }
    }

    fn ed() -> Self {
        Signer {
            key: EncodingKey::from_ed_pem(&pem("ed25519.pem")).expect("Ed key"),
            algorithm: Algorithm::EdDSA,
            kid: Some("ed-1"),
        }
    }

    fn hs256() -> Self {
        Signer {
            key: EncodingKey::from_secret(SECRET).expect("secret"),
            algorithm: Algorithm::HS256,
            kid: None,
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.algorithm).expect("JWK");
        jwk.common.key_id = self.kid.map(str::to_owned);
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        let header = Header { kid: self.kid.map(str::to_owned), ..Header::new(self.algorithm) };
        jsonwebtoken::encode(&header, claims, &self.key).expect("signed")
    }
}

fn now_secs() -> u64 {
    now_ms() / 1_000
}

/// Valid claims for account `acct`, with `extra` merged in (a `null` removes
/// a claim).
fn claims(extra: Value) -> Value {
    let mut claims =
        json!({ "sub": "acct", "iss": ISSUER, "aud": AUDIENCE, "exp": now_secs() + 600, "iat": now_secs() });
    for (k, v) in extra.as_object().expect("an object").clone() {
        match v {
            Value::Null => drop(claims.as_object_mut().expect("object").remove(&k)),
            v => claims[k] = v,
        }
    }
    claims
}

/// A JWKS of the trusted public keys, and the secret, in a temp dir.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let set = JwkSet { keys: vec![Signer::rsa().jwk(), Signer::ec().jwk(), Signer::ed().jwk()] };
        std::fs::write(dir.path().join("jwks.json"), serde_json::to_string(&set).expect("JSON"))
            .expect("write");
        std::fs::write(dir.path().join("secret"), [SECRET, b"\n"].concat()).expect("write");
        Keys { dir }
    }

    fn jwks(&self) -> PathBuf {
        self.dir.path().join("jwks.json")
    }

    fn secret(&self) -> PathBuf {
        self.dir.path().join("secret")
    }
}

/// A node with `--auth jwt`, trusting the test keys and the secret.
async fn secured() -> (TestApp, Keys) {
    let keys = Keys::new();
    let (jwks, secret) = (keys.jwks(), keys.secret());
    let app = TestApp::spawn_with(move |c| {
        c.auth = playmark_server::config::AuthMode::Jwt;
        c.jwt_jwks_file = Some(jwks);
        c.jwt_secret_file = Some(secret);
        c.jwt_issuer = Some(ISSUER.into());
        c.jwt_audience = Some(AUDIENCE.into());
    })
    .await;
    (app, keys)
}

/// One request of the matrix, with a token (or none).
#[derive(Debug, Clone, Copy)]
enum Route {
    Update,
    Batch,
    Resume,
    ContinueWatching,
    History,
    Hide,
    Watched,
    Delete,
}

impl Route {
    const ALL: [Route; 8] = [
        Route::Update,
        Route::Batch,
        Route::Resume,
        Route::ContinueWatching,
        Route::History,
        Route::Hide,
        Route::Watched,
        Route::Delete,
    ];

    fn writes(self) -> bool {
        !matches!(self, Route::Resume | Route::ContinueWatching | Route::History)
    }

    async fn send(self, app: &TestApp, token: Option<&str>) -> reqwest::Response {
        let t = now_ms() - 5_000;
        let request = match self {
            Route::Update => {
                app.client.post(app.url("/playback/update")).json(&checkpoint("V1", "intruder", 999.0, t))
            }
            Route::Batch => app
                .client
                .post(app.url("/playback/batch"))
                .json(&json!({"checkpoints": [checkpoint("V1", "intruder", 999.0, t)]})),
            Route::Resume => {
                app.client.get(app.url("/playback/resume?account_id=acct&profile_id=A&video_id=V1"))
            }
            Route::ContinueWatching => {
                app.client.get(app.url("/playback/continue-watching?account_id=acct&profile_id=A"))
            }
            Route::History => app.client.get(app.url("/playback/history?account_id=acct&profile_id=A")),
            Route::Hide => app
                .client
                .post(app.url("/playback/hide"))
                .json(&json!({"account_id": "acct", "profile_id": "A", "video_id": "V1"})),
            Route::Watched => app.client.post(app.url("/playback/watched")).json(&json!({
                "account_id": "acct", "profile_id": "A", "video_id": "V1",
                "device_id": "intruder", "watched": true, "updated_at": t,
            })),
            Route::Delete => {
                app.client.delete(app.url("/playback/progress?account_id=acct&profile_id=A&video_id=V1"))
            }
        };
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        request.send().await.expect("sent")
    }
}

/// What stands for acct/A/V1, read with an admin token: (position, listed
/// in continue-watching).
async fn standing(app: &TestApp, admin: &str) -> (Value, bool) {
    let resume = app
        .client
        .get(app.url("/playback/resume?account_id=acct&profile_id=A&video_id=V1"))
        .bearer_auth(admin)
        .send()
        .await
        .expect("sent");
    let resume = json_of(resume, StatusCode::OK).await;
    let row = app
        .client
        .get(app.url("/playback/continue-watching?account_id=acct&profile_id=A"))
        .bearer_auth(admin)
        .send()
        .await
        .expect("sent");
    let row = json_of(row, StatusCode::OK).await;
    let listed = row["items"].as_array().is_some_and(|items| items.iter().any(|i| i["video_id"] == "V1"));
    (resume["position"].clone(), listed)
}

/// Every playback route × every kind of bad or foreign token: the exact
/// status and code, and — read back with an admin token — nothing changed.
#[tokio::test]
async fn every_route_refuses_what_the_token_does_not_allow_and_changes_nothing() {
    let (app, _keys) = secured().await;
    let admin = Signer::rsa().sign(&claims(json!({"sub": "support", "scope": "playback:admin"})));
    let owner = Signer::rsa().sign(&claims(json!({})));
    // What stands: the owner's checkpoint, listed in continue-watching.
    let t = now_ms() - 60_000;
    let first = app
        .client
        .post(app.url("/playback/update"))
        .bearer_auth(&owner)
        .json(&checkpoint("V1", "tv", 100.0, t));
    json_of(first.send().await.expect("sent"), StatusCode::OK).await;
    let before = standing(&app, &admin).await;
    assert_eq!(before, (json!(100), true));

    let rsa_public_as_secret = EncodingKey::from_secret(&pem("rsa.pub.pem")).expect("bytes");
    let confused =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(json!({})), &rsa_public_as_secret)
            .expect("signed");
    let none = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(claims(json!({})).to_string())
        )
    };
    let stranger = Signer { kid: Some("rsa-1"), ..Signer::rsa_named("rsa-stranger.pem", "rsa-1") };
    let unauthorized: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("not-a-jwt".into())),
        ("expired", Some(Signer::rsa().sign(&claims(json!({"exp": now_secs() - 120}))))),
        ("not yet valid", Some(Signer::ec().sign(&claims(json!({"nbf": now_secs() + 120}))))),
        ("no exp", Some(Signer::ed().sign(&claims(json!({"exp": null}))))),
        ("wrong issuer", Some(Signer::rsa().sign(&claims(json!({"iss": "https://evil.test"}))))),
        ("wrong audience", Some(Signer::rsa().sign(&claims(json!({"aud": "someone-else"}))))),
        ("wrong key", Some(stranger.sign(&claims(json!({}))))),
        ("alg none", Some(none)),
        ("algorithm confusion", Some(confused)),
    ];
    for (case, token) in &unauthorized {
        for route in Route::ALL {
            let response = route.send(&app, token.as_deref()).await;
            let challenge =
                response.headers().get("www-authenticate").map(|v| v.to_str().expect("ascii").to_owned());
            let body = json_of(response, StatusCode::UNAUTHORIZED).await;
            assert_eq!(body["error"]["code"], "unauthorized", "{case} on {route:?}: {body}");
            assert!(
                challenge.as_deref().is_some_and(|c| c.starts_with("Bearer realm=\"playmark\"")),
                "{case} on {route:?}: challenge {challenge:?}"
            );
        }
    }

    let forbidden = [
        ("other account", Signer::rsa().sign(&claims(json!({"sub": "other"}))), true),
        ("other profile", Signer::ec().sign(&claims(json!({"profiles": ["B"]}))), true),
        ("read scope", Signer::ed().sign(&claims(json!({"scope": "playback:read"}))), false),
        ("write scope", Signer::hs256().sign(&claims(json!({"scope": "playback:write"}))), false),
    ];
    for (case, token, everywhere) in &forbidden {
        for route in Route::ALL {
            let response = route.send(&app, Some(token)).await;
            let refused = *everywhere || (*case == "read scope") == route.writes();
            match (route, refused) {
                // A batch answers 200; the foreign item fails alone.
                (Route::Batch, true) => {
                    let body = json_of(response, StatusCode::OK).await;
                    assert_eq!(body["results"][0]["error"]["code"], "forbidden", "{case}: {body}");
                    assert!(body["results"][0].get("record").is_none(), "{case}: a refusal shows no record");
                }
                (_, true) => {
                    let body = json_of(response, StatusCode::FORBIDDEN).await;
                    assert_eq!(body["error"]["code"], "forbidden", "{case} on {route:?}: {body}");
                    assert!(body.get("record").is_none(), "{case} on {route:?}: {body}");
                }
                (_, false) => {
                    assert!(response.status().is_success(), "{case} on {route:?}: {}", response.status())
                }
            }
        }
        if *everywhere || *case == "read scope" {
            assert_eq!(standing(&app, &admin).await, before, "{case} changed the store");
        }
    }

    // An admin acts on any account, naming it; without naming it, a 400.
    let response = app
        .client
        .post(app.url("/playback/update"))
        .bearer_auth(&admin)
        .json(&json!({"profile_id": "A", "video_id": "V2", "device_id": "support", "position": 5}))
        .send()
        .await
        .expect("sent");
    crate::helpers::assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some("account_id"))
        .await;
    // (The write-scope token above deleted V1; this checkpoint is newer.)
    let response = app
        .client
        .post(app.url("/playback/update"))
        .bearer_auth(&admin)
        .json(&checkpoint("V1", "support", 999.0, now_ms()))
        .send()
        .await
        .expect("sent");
    assert_eq!(json_of(response, StatusCode::OK).await["outcome"], "applied");
    assert_eq!(standing(&app, &admin).await.0, json!(999), "the admin's write applied");
}

#[tokio::test]
async fn a_player_token_may_leave_the_account_out_and_must_match_it_when_given() {
    let (app, _keys) = secured().await;
    let token = Signer::ec().sign(&claims(json!({"profiles": ["A", "kids"]})));
    let body = json!({"profile_id": "kids", "video_id": "V1", "device_id": "tablet", "position": 30});
    let response = app.client.post(app.url("/playback/update")).bearer_auth(&token).json(&body).send().await;
    let answer = json_of(response.expect("sent"), StatusCode::OK).await;
    assert_eq!(answer["record"]["account_id"], "acct", "the account came from the token");
    let response = app
        .client
        .get(app.url("/playback/resume?profile_id=kids&video_id=V1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(json_of(response, StatusCode::OK).await["position"], 30);
}

#[tokio::test]
async fn the_open_routes_stay_open_and_metrics_need_an_admin() {
    let (app, _keys) = secured().await;
    for path in ["/healthz", "/readyz", "/openapi.json", "/", "/sdk/playmark.js"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(app.get("/metrics").await.status(), StatusCode::UNAUTHORIZED);
    let player = Signer::rsa().sign(&claims(json!({})));
    let response = app.client.get(app.url("/metrics")).bearer_auth(&player).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let admin = Signer::rsa().sign(&claims(json!({"scope": "playback:admin"})));
    let response = app.client.get(app.url("/metrics")).bearer_auth(&admin).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.expect("body").contains("playmark_auth_failures_total 1"));
}

#[tokio::test]
async fn with_auth_the_openapi_document_declares_the_bearer_scheme_and_its_answers() {
    let (app, _keys) = secured().await;
    let doc = json_of(app.get("/openapi.json").await, StatusCode::OK).await;
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let update = &doc["paths"]["/playback/update"]["post"];
    assert!(update["responses"]["401"].is_object() && update["responses"]["403"].is_object(), "{update}");
    assert_eq!(update["security"], json!([{"bearer": []}]));
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        let names_account = schema["properties"]["account_id"].is_object();
        if name.ends_with("Request") && names_account {
            let required = schema["required"].as_array().expect("required");
            assert!(!required.contains(&json!("account_id")), "{name}: account_id comes from the token");
        }
    }
    let record = doc["components"]["schemas"]["Record"]["required"].as_array().expect("required");
    assert!(record.contains(&json!("account_id")), "answers still name the account: {record:?}");
    assert!(doc["paths"]["/healthz"]["get"]["security"].is_null(), "the open routes need no token");

    let open = TestApp::spawn().await;
    let doc = json_of(open.get("/openapi.json").await, StatusCode::OK).await;
    assert!(doc["components"]["securitySchemes"].is_null(), "no auth, no scheme: {}", doc["components"]);
    assert!(doc["paths"]["/playback/update"]["post"]["responses"]["401"].is_null());
}

#[tokio::test]
async fn cors_preflights_are_answered_for_the_configured_origins_only() {
    let app = TestApp::spawn_with(|c| c.cors_origins = vec!["https://app.example.test".into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/playback/update"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let allowed = preflight("https://app.example.test").await.expect("sent");
    assert_eq!(allowed.status(), StatusCode::OK);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers().get(name).map(|v| v.to_str().expect("ascii").to_ascii_lowercase()).unwrap_or_default()
    };
    assert_eq!(header(&allowed, "access-control-allow-origin"), "https://app.example.test");
    assert!(header(&allowed, "access-control-allow-headers").contains("authorization"));
    let refused = preflight("https://evil.example.test").await.expect("sent");
    assert_eq!(header(&refused, "access-control-allow-origin"), "", "another origin gets no allowance");
}

/// A JWKS server the test controls: it serves whatever `keys` holds now.
async fn jwks_server(keys: Arc<std::sync::Mutex<JwkSet>>) -> String {
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let keys = Arc::clone(&keys);
            async move { axum::Json(keys.lock().expect("lock").clone()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_key_added_to_the_jwks_url_is_trusted_without_a_restart() {
    let keys = Arc::new(std::sync::Mutex::new(JwkSet { keys: vec![Signer::rsa().jwk()] }));
    let url = jwks_server(Arc::clone(&keys)).await;
    let app = TestApp::spawn_with(move |c| {
        c.auth = playmark_server::config::AuthMode::Jwt;
        c.jwt_jwks_url = Some(url);
    })
    .await;
    let resume = |token: String| {
        app.client.get(app.url("/playback/resume?profile_id=A&video_id=V1")).bearer_auth(token).send()
    };
    let claims = json!({"sub": "acct", "exp": now_secs() + 600});
    assert_eq!(resume(Signer::rsa().sign(&claims)).await.expect("sent").status(), StatusCode::OK);
    let next = Signer::rsa_named("rsa-next.pem", "rsa-2");
    assert_eq!(
        resume(next.sign(&claims)).await.expect("sent").status(),
        StatusCode::UNAUTHORIZED,
        "not trusted yet"
    );

    keys.lock().expect("lock").keys.push(next.jwk());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = resume(next.sign(&claims)).await.expect("sent").status();
        if status == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the new key was not fetched within 10 s: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_node_that_cannot_get_its_keys_does_not_start() {
    let port = playmark_testkit::free_port();
    let mut config = playmark_server::Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        auth: playmark_server::config::AuthMode::Jwt,
        jwt_jwks_url: Some(format!("http://127.0.0.1:{port}/jwks.json")),
        ..playmark_server::Config::default()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    config.data_dir = dir.path().to_path_buf();
    let err = playmark_server::Application::build(config).await.expect_err("no keys, no start");
    let message = format!("{err:#}");
    assert!(message.contains("--jwt-jwks-url"), "{message}");
}
