//! The Rust SDK against the real server (in-process, port 0), and its retry
//! and timeout behaviour against deliberately broken local servers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use playmark_client::Player;
use playmark_client::{
    BatchItem, Checkpoint, Client, Error, ErrorCode, Mark, PlayerEvent, ProfileKey, ResumeAction,
    ResumeReason, Seconds, ShelfItem, TitleKey, UpdateOutcome,
};
use playmark_server::{Application, Config};

struct Server {
    url: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn server() -> Server {
    server_with(|_| {}).await
}

/// The real server, with settings adjusted by `tweak`.
async fn server_with(tweak: impl FnOnce(&mut Config)) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    tweak(&mut config);
    let app = Application::build(config).await.expect("app builds");
    let url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Server { url, _dir: dir, _stop: stop }
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis(),
    )
    .expect("fits")
}

fn checkpoint(video: &str, device: &str, position: f64, at: u64) -> Checkpoint {
    Checkpoint {
        key: TitleKey::new("acct", "A", video),
        position,
        device_id: device.into(),
        duration: Some(3600.0),
        updated_at: Some(at),
        event: None,
        resumed_from: None,
        series_id: None,
        episode: None,
    }
}

#[tokio::test]
async fn every_endpoint_round_trips() {
    let s = server().await;
    let client = Client::new(&s.url).expect("client");
    let t = now_ms() - 10_000;
    let answer = client.update(&checkpoint("V1", "tv", 1200.5, t)).await.expect("update");
    assert_eq!(answer.outcome, UpdateOutcome::Applied);
    assert_eq!(answer.record.as_ref().map(|r| r.position), Some(Seconds(1_200_500)));

    let key = TitleKey::new("acct", "A", "V1");
    let resume = client.resume(&key, Some("phone"), None).await.expect("resume");
    assert_eq!(
        (resume.action, resume.position, resume.device_id.as_deref()),
        (ResumeAction::Resume, Seconds(1_200_500), Some("tv"))
    );
    let prompt = client.resume(&key, Some("phone"), Some(2000.0)).await.expect("resume");
    assert_eq!((prompt.action, prompt.alternative), (ResumeAction::Prompt, Some(Seconds(2_000_000))));

    let profile = ProfileKey { account_id: "acct".into(), profile_id: "A".into() };
    assert_eq!(client.continue_watching(&profile, Some(5)).await.expect("row").len(), 1);
    client.hide(&key).await.expect("hide");
    assert!(client.continue_watching(&profile, None).await.expect("row").is_empty());
    let mark = Mark {
        key: key.clone(),
        device_id: "phone".into(),
        watched: true,
        duration: Some(3600.0),
        updated_at: Some(t + 1),
        series_id: Some("show".into()),
        episode: Some(4),
    };
    let marked = client.mark_watched(&mark).await.expect("mark watched");
    assert_eq!(
        (marked.outcome, marked.record.as_ref().map(|r| r.position)),
        (UpdateOutcome::Applied, Some(Seconds(3_600_000)))
    );
    assert_eq!(client.resume(&key, None, None).await.expect("resume").reason, ResumeReason::Finished);
    let history = client.history(&profile, Some(10), None).await.expect("history");
    let finished: Vec<_> = history.items.iter().map(|r| (r.video_id.as_str(), r.finished_at)).collect();
    assert_eq!((finished, history.next_cursor), (vec![(key.video_id.as_str(), Some(t + 1))], None));
    let shelf = client.continue_watching_by_series(&profile, None).await.expect("grouped row");
    assert!(
        matches!(shelf.as_slice(), [ShelfItem::NextUp(n)] if n.series_id == "show" && n.next_episode == 5),
        "{shelf:?}"
    );
    let older = Mark { watched: false, updated_at: Some(t), ..mark };
    assert_eq!(client.mark_watched(&older).await.expect("mark").outcome, UpdateOutcome::Stale);

    let results = client
        .batch(&[
            checkpoint("V2", "tv", 60.0, t),
            checkpoint("V2", "tv", 60.0, t),
            Checkpoint { position: -1.0, ..checkpoint("V3", "tv", 1.0, t) },
        ])
        .await
        .expect("batch");
    assert_eq!(results.len(), 3);
    assert!(
        matches!(&results[1], BatchItem::Done(d) if d.outcome == UpdateOutcome::Duplicate),
        "{results:?}"
    );
    assert!(
        matches!(&results[2], BatchItem::Failed(f) if f.error.field.as_deref() == Some("position")),
        "{results:?}"
    );

    client.forget(&key).await.expect("forget");
    assert!(!client.resume(&key, None, None).await.expect("resume").found);
}

#[tokio::test]
async fn invalid_input_is_a_typed_api_error_naming_the_field() {
    let s = server().await;
    let client = Client::new(&s.url).expect("client");
    let err = client
        .update(&Checkpoint { position: -5.0, ..checkpoint("V1", "tv", 1.0, now_ms()) })
        .await
        .expect_err("rejected");
    match err {
        Error::Api { status, code, field, .. } => {
            assert_eq!((status, code, field.as_deref()), (400, ErrorCode::InvalidRequest, Some("position")))
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(matches!(Client::new("ftp://x"), Err(Error::BaseUrl(_))));
}

#[tokio::test]
async fn a_player_sends_what_the_policy_says_and_a_stale_tv_gets_a_conflict() {
    let s = server().await;
    let client = Client::new(&s.url).expect("client");
    // A simulated clock: one second per tick.
    let clock = Arc::new(AtomicU64::new(now_ms() - 3_600_000));
    let key = TitleKey::new("acct", "A", "movie");
    let tick_clock = Arc::clone(&clock);
    let mut tv = Player::new(client.clone(), key.clone(), "tv")
        .with_duration(3600.0)
        .with_series("show", 1)
        .with_clock(move || tick_clock.load(Ordering::SeqCst));
    let start = tv.resume(None).await.expect("resume");
    assert_eq!(start.action, ResumeAction::StartOver);
    tv.play(0.0).await.expect("play");
    let mut sent = 0;
    for second in 1..=600u64 {
        clock.fetch_add(1_000, Ordering::SeqCst);
        sent += tv.tick(second as f64).await.expect("tick").sent.len();
    }
    assert_eq!(sent, 20, "one checkpoint per 30 s of play over 10 minutes");
    clock.fetch_add(500, Ordering::SeqCst);
    let paused = tv.pause(600.5).await.expect("pause");
    assert_eq!(paused.sent.first(), Some(&(600.5, PlayerEvent::Pause, UpdateOutcome::Applied)));

    // The viewer continues on the phone to minute 40...
    let phone_clock = Arc::clone(&clock);
    let mut phone = Player::new(client.clone(), key.clone(), "phone")
        .with_duration(3600.0)
        .with_clock(move || phone_clock.load(Ordering::SeqCst));
    let handoff = phone.resume(None).await.expect("resume");
    assert_eq!(handoff.position, Seconds(600_500), "the phone resumes where the TV paused");
    phone.play(handoff.position.as_secs()).await.expect("play");
    clock.fetch_add(1_000, Ordering::SeqCst);
    phone.seek(2400.0).await.expect("seek");
    // ...and the forgotten TV, still playing, reports minute 11.
    clock.fetch_add(60_000, Ordering::SeqCst);
    tv.play(600.5).await.expect("play");
    clock.fetch_add(60_000, Ordering::SeqCst);
    let report = tv.tick(660.5).await.expect("tick");
    assert!(report.conflict.as_ref().is_some_and(Error::is_conflict), "{report:?}");
    let standing = client.resume(&key, None, None).await.expect("resume");
    assert_eq!(standing.position, Seconds(2_400_000), "the stale TV did not drag progress back");
    let record = standing.record.expect("a record");
    assert_eq!(
        (record.series_id.as_deref(), record.episode),
        (Some("show"), Some(1)),
        "the TV's series is kept through the phone's checkpoints, which named none"
    );
}

#[tokio::test]
async fn a_503_is_retried_and_honours_retry_after() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = axum::Router::new().route(
        "/playback/resume",
        axum::routing::get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")], "{}".to_owned())
                } else {
                    (
                        axum::http::StatusCode::OK,
                        [("retry-after", "0")],
                        r#"{"found":false,"position":0,"action":"start_over","reason":"no_record"}"#
                            .to_owned(),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::builder(&url).retries(2).build().expect("client");
    let answer =
        client.resume(&TitleKey::new("a", "A", "V"), None, None).await.expect("third attempt succeeds");
    assert_eq!((answer.found, calls.load(Ordering::SeqCst)), (false, 3));
}

#[tokio::test]
async fn a_rate_limited_write_waits_for_retry_after_then_lands() {
    // One checkpoint a second, bursts of 2 (the device gets half: 1).
    let s = server_with(|c| (c.account_rate, c.account_burst) = (1, 2)).await;
    let client = Client::builder(&s.url).retries(2).build().expect("client");
    let t = now_ms() - 10_000;
    client.update(&checkpoint("V1", "tv", 10.0, t)).await.expect("within the burst");
    // The device's bucket is empty: the server answers 429 with
    // Retry-After: 1, and the client waits that long and sends it again.
    let started = Instant::now();
    let answer = client.update(&checkpoint("V1", "tv", 20.0, t + 1)).await.expect("lands after the wait");
    assert_eq!(answer.outcome, UpdateOutcome::Applied);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "retried before Retry-After: {:?}",
        started.elapsed()
    );
    // With no retries left, the 429 reaches the caller with its code.
    let impatient = Client::builder(&s.url).retries(0).build().expect("client");
    let err = impatient.update(&checkpoint("V1", "tv", 30.0, t + 2)).await.expect_err("refused");
    assert!(matches!(err, Error::Api { status: 429, code: ErrorCode::RateLimited, .. }), "{err:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_after_the_retries() {
    // Accepts connections, never responds.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client =
        Client::builder(&url).timeout(Duration::from_millis(200)).retries(1).build().expect("client");
    let started = Instant::now();
    let err = client.resume(&TitleKey::new("a", "A", "V"), None, None).await.expect_err("times out");
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

/// A node with `--auth jwt` and an HS256 secret, and a way to mint tokens.
async fn secured_server() -> (Server, impl Fn(i64) -> String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "client-test-secret").expect("write");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.path().to_path_buf(),
        auth: playmark_server::config::AuthMode::Jwt,
        jwt_secret_file: Some(secret),
        ..Config::default()
    };
    let app = Application::build(config).await.expect("app builds");
    let url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    // A token for account `acct` that expires `ttl` seconds from now.
    let mint = |ttl: i64| {
        let exp = i64::try_from(now_ms() / 1000).expect("fits") + ttl;
        let key = jsonwebtoken::EncodingKey::from_secret(b"client-test-secret").expect("secret");
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "acct", "exp": exp}),
            &key,
        )
        .expect("signed")
    };
    (Server { url, _dir: dir, _stop: stop }, mint)
}

#[tokio::test]
async fn a_token_provider_is_asked_again_after_a_401_and_the_request_is_retried_once() {
    let (s, mint) = secured_server().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let (expired, fresh) = (mint(-3_600), mint(600));
    let counter = Arc::clone(&calls);
    let tokens = playmark_client::Tokens::provider(move || {
        // The first token handed out has expired (a cached one, say).
        let token = if counter.fetch_add(1, Ordering::SeqCst) == 0 { expired.clone() } else { fresh.clone() };
        async move { Ok(token) }
    });
    let client = Client::builder(&s.url).tokens(tokens).build().expect("client");
    let answer = client
        .update(&checkpoint("V1", "tv", 60.0, now_ms() - 1_000))
        .await
        .expect("retried with a fresh token");
    assert_eq!(answer.outcome, UpdateOutcome::Applied);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "asked once, and once more after the 401");
    client.resume(&TitleKey::new("acct", "A", "V1"), None, None).await.expect("the fresh token is kept");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_fixed_token_that_is_refused_is_an_unauthorized_error() {
    let (s, mint) = secured_server().await;
    let client = Client::builder(&s.url).token(mint(-3_600)).build().expect("client");
    let err = client.resume(&TitleKey::new("acct", "A", "V1"), None, None).await.expect_err("expired");
    assert!(matches!(err, Error::Api { status: 401, code: ErrorCode::Unauthorized, .. }), "{err:?}");
    let anonymous = Client::new(&s.url).expect("client");
    let err = anonymous.resume(&TitleKey::new("acct", "A", "V1"), None, None).await.expect_err("no token");
    assert!(matches!(err, Error::Api { code: ErrorCode::Unauthorized, .. }), "{err:?}");
}
