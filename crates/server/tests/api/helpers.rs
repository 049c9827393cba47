//! The test harness: start the real app in-process on port 0, talk to it
//! over HTTP, stop it gracefully.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use playmark_server::config::{CacheKind, StoreKind};
use playmark_server::{Application, Config};
use playmark_store::ProgressStore;
use playmark_store::embedded::{EmbeddedOptions, EmbeddedStore};
use playmark_store::faulty::FaultyStore;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where a test app keeps its data: its own embedded data directory, or its
/// own PostgreSQL schema (or DynamoDB table) and Redis key prefix. Chosen for
/// the whole run by `PLAYMARK_TEST_BACKEND`: `embedded` (default),
/// `postgres-redis`, `postgres-redis-cluster` (the shared cluster
/// `scripts/services` starts) or `dynamodb-redis` (the shared moto).
pub struct Backend {
    pub dir: TempDir,
    postgres_url: Option<String>,
    /// A DynamoDB endpoint and the table of this test.
    dynamo: Option<(String, String)>,
    redis_prefix: String,
    /// Seed URLs of a Redis Cluster, when the cache is one.
    cluster: Option<String>,
    redis_url: Option<String>,
}

impl Backend {
    fn fresh() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let kind = std::env::var("PLAYMARK_TEST_BACKEND").unwrap_or_default();
        let (postgres_url, cluster) = match kind.as_str() {
            "" | "embedded" | "dynamodb-redis" => (None, None),
            "postgres-redis" => {
                (Some(playmark_testkit::shared::postgres_url().expect("shared PostgreSQL")), None)
            }
            "postgres-redis-cluster" => (
                Some(playmark_testkit::shared::postgres_url().expect("shared PostgreSQL")),
                Some(playmark_testkit::shared::redis_cluster_urls()),
            ),
            other => panic!("unknown PLAYMARK_TEST_BACKEND {other:?}"),
        };
        let dynamo = (kind == "dynamodb-redis")
            .then(|| (playmark_testkit::shared::moto_url(), playmark_testkit::shared::unique_name("pm")));
        Backend {
            dir,
            postgres_url,
            dynamo,
            redis_prefix: playmark_testkit::shared::unique_name("pm") + ":",
            cluster,
            redis_url: None,
        }
    }

    /// A fresh table on the DynamoDB at `endpoint`, and the Redis at
    /// `redis_url`.
    pub fn dynamodb(endpoint: String, redis_url: String) -> Self {
        Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres_url: None,
            dynamo: Some((endpoint, playmark_testkit::shared::unique_name("pm"))),
            redis_prefix: playmark_testkit::shared::unique_name("pm") + ":",
            cluster: None,
            redis_url: Some(redis_url),
        }
    }

    /// The shared PostgreSQL (a fresh schema) and the shared Redis.
    pub fn shared_postgres_redis() -> Self {
        Self::shared_postgres(playmark_testkit::shared::redis_url())
    }

    /// The shared PostgreSQL (a fresh schema) and the Redis at `redis_url`.
    pub fn shared_postgres(redis_url: String) -> Self {
        Self::private(playmark_testkit::shared::postgres_url().expect("shared PostgreSQL"), redis_url)
    }

    /// The PostgreSQL at `postgres_url` and the Redis at `redis_url`.
    pub fn private(postgres_url: String, redis_url: String) -> Self {
        Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres_url: Some(postgres_url),
            dynamo: None,
            redis_prefix: playmark_testkit::shared::unique_name("pm") + ":",
            cluster: None,
            redis_url: Some(redis_url),
        }
    }

    /// The DynamoDB table, on a DynamoDB backend.
    pub fn dynamodb_table(&self) -> Option<&str> {
        self.dynamo.as_ref().map(|(_, table)| table.as_str())
    }

    /// The store's name in metrics labels.
    pub fn store_label(&self) -> &'static str {
        match (&self.postgres_url, &self.dynamo) {
            (Some(_), _) => "postgres",
            (None, Some(_)) => "dynamodb",
            (None, None) => "embedded",
        }
    }

    fn configure(&self, config: &mut Config) {
        config.data_dir = self.dir.path().to_path_buf();
        if let Some((endpoint, table)) = &self.dynamo {
            config.store = StoreKind::Dynamodb;
            config.dynamodb_endpoint = Some(endpoint.clone());
            config.dynamodb_table = table.clone();
            // An emulator in Python is no DynamoDB: the suite checks what
            // the service does, with budgets the emulator can meet when
            // hundreds of writes arrive at once.
            config.write_timeout = Duration::from_secs(5);
            config.read_timeout = Duration::from_secs(2);
        }
        if self.postgres_url.is_some() || self.dynamo.is_some() {
            if let Some(url) = &self.postgres_url {
                config.store = StoreKind::Postgres;
                config.postgres_url = url.as_str().into();
                config.postgres_pool_size = 4;
            }
            config.redis_key_prefix = self.redis_prefix.clone();
            match &self.cluster {
                Some(seeds) => {
                    config.cache = CacheKind::RedisCluster;
                    config.redis_url = seeds.as_str().into();
                }
                None => {
                    config.cache = CacheKind::Redis;
                    let url = self.redis_url.clone().unwrap_or_else(playmark_testkit::shared::redis_url);
                    config.redis_url = url.as_str().into();
                }
            }
        }
    }
}

/// A running playmark with a backend of its own.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub backend: Backend,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis())
        .expect("fits u64")
}

/// A checkpoint body for account `acct`, profile `A`.
pub fn checkpoint(video: &str, device: &str, position: f64, updated_at: u64) -> Value {
    json!({
        "account_id": "acct", "profile_id": "A", "video_id": video,
        "position": position, "device_id": device, "updated_at": updated_at,
    })
}

impl TestApp {
    /// The app with default settings on a fresh data directory.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// The app with settings adjusted by `tweak`, on a fresh backend.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_in(Backend::fresh(), tweak).await
    }

    /// The app on an existing backend (to test restarts, or several nodes).
    pub async fn spawn_in(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config(backend.dir.path());
        backend.configure(&mut config);
        tweak(&mut config);
        let app = Application::build(config).await.expect("app builds");
        Self::run(app, backend)
    }

    /// The app over an embedded store whose every call first waits `delay`:
    /// a slow disk or an overloaded database, for deadline tests.
    pub async fn spawn_slow(delay: Duration, tweak: impl FnOnce(&mut Config)) -> Self {
        let (app, store) = Self::spawn_faulty(tweak).await;
        store.set_before(delay);
        app
    }

    /// The app over an embedded store wrapped in a [`FaultyStore`], which
    /// the test can slow down or make fail.
    pub async fn spawn_faulty(tweak: impl FnOnce(&mut Config)) -> (Self, Arc<FaultyStore>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let inner = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("store opens");
        let store = Arc::new(FaultyStore::new(Arc::new(inner)));
        (Self::spawn_over(Arc::clone(&store) as Arc<dyn ProgressStore>, dir, tweak).await, store)
    }

    /// The app over `store`, with settings adjusted by `tweak`.
    pub async fn spawn_over(
        store: Arc<dyn ProgressStore>,
        dir: TempDir,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let app = Application::with_store(config, store).await.expect("app builds");
        Self::run(
            app,
            Backend {
                dir,
                postgres_url: None,
                dynamo: None,
                redis_prefix: String::new(),
                cluster: None,
                redis_url: None,
            },
        )
    }

    fn run(app: Application, backend: Backend) -> Self {
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        TestApp { addr, client: reqwest::Client::new(), backend, stop: Some(stop), task: Some(task) }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request sent")
    }

    pub async fn get(&self, path_and_query: &str) -> Response {
        self.client.get(self.url(path_and_query)).send().await.expect("request sent")
    }

    pub async fn update(&self, body: &Value) -> Response {
        self.post_json("/playback/update", body).await
    }

    /// Posts a checkpoint that must succeed; returns the JSON answer.
    pub async fn update_ok(&self, body: &Value) -> Value {
        let response = self.update(body).await;
        json_of(response, StatusCode::OK).await
    }

    /// Resumes `video` for account `acct`, profile `A`.
    pub async fn resume(&self, video: &str) -> Value {
        self.resume_of("acct", "A", video).await
    }

    pub async fn resume_of(&self, account: &str, profile: &str, video: &str) -> Value {
        json_of(self.resume_of_raw(account, profile, video).await, StatusCode::OK).await
    }

    /// The resume answer, whatever its status.
    pub async fn resume_of_raw(&self, account: &str, profile: &str, video: &str) -> Response {
        self.get(&format!("/playback/resume?account_id={account}&profile_id={profile}&video_id={video}"))
            .await
    }

    /// The same app, spoken to by `client` (HTTP/2, say).
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    pub async fn delete(&self, video: &str) -> Response {
        self.client
            .delete(self.url(&format!("/playback/progress?account_id=acct&profile_id=A&video_id={video}")))
            .send()
            .await
            .expect("request sent")
    }

    /// Stops the app gracefully and hands back its backend.
    pub async fn stop(mut self) -> Backend {
        self.shutdown().await;
        let empty = Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres_url: None,
            dynamo: None,
            redis_prefix: String::new(),
            cluster: None,
            redis_url: None,
        };
        std::mem::replace(&mut self.backend, empty)
    }

    /// A second node on the same backend (shared store and cache), as a
    /// load balancer would see it.
    pub async fn sibling(&self) -> TestApp {
        let backend = Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres_url: self.backend.postgres_url.clone(),
            dynamo: self.backend.dynamo.clone(),
            redis_prefix: self.backend.redis_prefix.clone(),
            cluster: self.backend.cluster.clone(),
            redis_url: self.backend.redis_url.clone(),
        };
        TestApp::spawn_in(backend, |_| {}).await
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("app task did not panic").expect("app stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Tests that don't call stop() end with the runtime; the stop signal
        // still lets the server wind down if the runtime lives on.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn test_config(data_dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    }
}

/// Asserts the status and JSON content type, and returns the body.
pub async fn json_of(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let text = response.text().await.expect("body readable");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert!(content_type.starts_with("application/json"), "content-type {content_type:?}, body {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts an error response: status, stable code, a message, and the field.
pub async fn assert_error(response: Response, status: StatusCode, code: &str, field: Option<&str>) -> Value {
    let body = json_of(response, status).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "error without a message: {body}");
    assert_eq!(body["error"]["field"].as_str(), field, "{body}");
    if let Some(field) = field {
        assert!(message.contains(field), "message {message:?} should name {field}");
    }
    body
}
