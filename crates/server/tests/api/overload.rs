//! One bad client must not hurt anyone else: per-account rate limits,
//! shedding beyond `--max-in-flight`, and the batch's bounded concurrency.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, checkpoint, json_of, now_ms};

fn body_of(account: &str, video: &str, device: &str, position: f64) -> Value {
    json!({"account_id": account, "profile_id": "A", "video_id": video, "position": position,
           "device_id": device, "updated_at": now_ms()})
}

/// The `Retry-After` of a response, in seconds.
fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{} without a Retry-After in seconds", response.status()))
}

/// The value of one sample line of /metrics, e.g.
/// `playmark_shed_requests_total`.
async fn metric(app: &TestApp, sample: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_household_flooding_is_refused_while_another_is_served() {
    // The defaults: 20/s per account, bursts of 100.
    let app = &TestApp::spawn().await;
    let started = std::time::Instant::now();
    let flood = async {
        let mut answers = Vec::new();
        // 16 players' worth of requests at once, for one account, 640 in all.
        for round in 0..40 {
            let sent = (0..16).map(|i| {
                let body = body_of("flood", &format!("V{i}"), &format!("dev-{i}"), f64::from(round));
                async move { app.update(&body).await }
            });
            answers.extend(join_all(sent).await);
        }
        answers
    };
    let calm = async {
        let mut statuses = Vec::new();
        // Another household, as a player does: a checkpoint, a resume.
        for i in 0..20 {
            statuses.push(app.update(&body_of("calm", "V1", "tv", f64::from(i) + 1.0)).await.status());
            statuses.push(app.resume_of_raw("calm", "A", "V1").await.status());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        statuses
    };
    let (flooded, calm) = tokio::join!(flood, calm);
    // The bucket refills while the flood runs, for as long as the store
    // takes to write it (seconds on an emulator): the burst, the refill of
    // the elapsed time, and one round in flight is all it may admit.
    let allowed = 100 + (20.0 * started.elapsed().as_secs_f64()).ceil() as usize + 16;

    assert!(calm.iter().all(|s| *s == StatusCode::OK), "the other account was hurt: {calm:?}");
    let admitted = flooded.iter().filter(|r| r.status() == StatusCode::OK).count();
    let refused: Vec<_> =
        flooded.into_iter().filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(admitted + refused.len(), 640, "every flood request is admitted or refused 429");
    assert!(admitted >= 100, "the burst is admitted: {admitted}");
    assert!(
        admitted <= allowed,
        "the flood got past its rate: {admitted} admitted, at most {allowed} allowed"
    );
    let (refusals, first) = (refused.len(), refused.into_iter().next().expect("refusals"));
    assert!(retry_after(&first) >= 1);
    assert_error(first, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None).await;
    assert!(metric(app, "playmark_rate_limited_requests_total").await >= refusals as f64);
    // Health checks are never limited.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_cannot_spend_its_whole_household_allowance() {
    let app = TestApp::spawn_with(|c| (c.account_rate, c.account_burst) = (1, 10)).await;
    // The TV gets half of the account's burst.
    for i in 0..5 {
        app.update_ok(&body_of("acct", "V1", "tv", f64::from(i) + 1.0)).await;
    }
    let refused = app.update(&body_of("acct", "V1", "tv", 9.0)).await;
    assert!(retry_after(&refused) >= 1);
    let body = assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None).await;
    assert!(body["error"]["message"].as_str().expect("message").contains("device"), "{body}");
    // The phone of the same household still gets through.
    app.update_ok(&body_of("acct", "V2", "phone", 10.0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_counts_once_against_each_account_it_names() {
    // On the embedded store whatever the run's backend: the accounting is
    // the node's, and on a slow emulator the bucket would refill while the
    // 500-item batches are written.
    let (app, _) = TestApp::spawn_faulty(|c| (c.account_rate, c.account_burst) = (1, 2)).await;
    let batch = |account: &'static str, n: usize| {
        let items: Vec<Value> =
            (0..n).map(|i| body_of(account, &format!("V{i}"), "tv", 1.0 + i as f64)).collect();
        json!({ "checkpoints": items })
    };
    // 500 checkpoints of one account cost one request of its rate.
    for _ in 0..2 {
        let answer = json_of(app.post_json("/playback/batch", &batch("a", 500)).await, StatusCode::OK).await;
        assert!(answer["results"].as_array().expect("results").iter().all(|r| r.get("error").is_none()));
    }
    // The third: every item's account is over its rate, so the batch as a
    // whole is refused, to be retried whole.
    let refused = app.post_json("/playback/batch", &batch("a", 3)).await;
    assert!(retry_after(&refused) >= 1);
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None).await;
    // A batch naming that account and another: only the limited account's
    // items fail, each with its own error.
    let mixed = json!({ "checkpoints": [body_of("a", "V9", "tv", 5.0), body_of("b", "V9", "tv", 5.0)] });
    let answer = json_of(app.post_json("/playback/batch", &mixed).await, StatusCode::OK).await;
    assert_eq!(answer["results"][0]["error"]["code"], "rate_limited", "{answer}");
    assert_eq!(answer["results"][1]["outcome"], "applied", "{answer}");
    assert_eq!(app.resume_of("b", "A", "V9").await["position"], 5);
    assert_eq!(app.resume_of_raw("a", "A", "V9").await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_turns_the_rate_limit_off() {
    let app = TestApp::spawn_with(|c| c.account_rate = 0).await;
    let app = &app;
    let sent =
        (0..300).map(|i| async move { app.update(&body_of("acct", "V1", "tv", f64::from(i) + 1.0)).await });
    assert!(join_all(sent).await.iter().all(|r| r.status() == StatusCode::OK));
}

/// Requests over HTTP/1.1 (one connection each) or HTTP/2 (streams of one
/// connection).
async fn shedding_beyond_max_in_flight(client: reqwest::Client) {
    const MAX: usize = 4;
    const SENT: usize = 20;
    let (app, store) = TestApp::spawn_faulty(|c| {
        c.max_in_flight = MAX;
        c.account_rate = 0;
    })
    .await;
    let app = app.with_client(client);
    // Warm connections, so every request below starts at once.
    join_all((0..SENT).map(|_| app.get("/healthz"))).await;
    // A slow store, within the write budget (--write-timeout 450 ms).
    store.set_before(Duration::from_millis(300));
    let start = Instant::now();
    let sent = (0..SENT).map(|i| {
        let app = &app;
        async move {
            let response = app.update(&checkpoint(&format!("V{i}"), "tv", 60.0, now_ms())).await;
            (i, response.status(), start.elapsed(), response)
        }
    });
    let health = async {
        // While the node is full, health checks still answer.
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.get("/healthz").await.status()
    };
    let (answers, health) = tokio::join!(join_all(sent), health);
    assert_eq!(health, StatusCode::OK);

    let (admitted, shed): (Vec<_>, Vec<_>) = answers.into_iter().partition(|a| a.1 == StatusCode::OK);
    assert_eq!(admitted.len(), MAX, "exactly --max-in-flight admitted: {:?}", admitted);
    let slowest_shed = shed.iter().map(|a| a.2).max().expect("shed requests");
    let fastest_admitted = admitted.iter().map(|a| a.2).min().expect("admitted requests");
    assert!(
        slowest_shed < fastest_admitted,
        "shed at once ({slowest_shed:?}), not after the store ({fastest_admitted:?})"
    );
    println!("shed within {slowest_shed:?}; admitted answered in {fastest_admitted:?} and up");
    let shed_videos: Vec<usize> = shed.iter().map(|a| a.0).collect();
    for (_, status, _, response) in shed {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry_after(&response) >= 1);
        assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "overloaded", None).await;
    }
    assert_eq!(metric(&app, "playmark_shed_requests_total").await, (SENT - MAX) as f64);

    // Nothing acknowledged is lost, and nothing shed was written.
    store.set_before(Duration::ZERO);
    for (i, ..) in admitted {
        assert_eq!(app.resume(&format!("V{i}")).await["position"], 60, "acknowledged V{i}");
    }
    for i in shed_videos {
        assert_eq!(app.resume(&format!("V{i}")).await["found"], false, "shed V{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_in_flight_are_shed_at_once_over_http1() {
    shedding_beyond_max_in_flight(reqwest::Client::builder().http1_only().build().expect("client")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_count_against_max_in_flight() {
    shedding_beyond_max_in_flight(
        reqwest::Client::builder().http2_prior_knowledge().build().expect("client"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_item_batch_holds_a_bounded_share_of_the_store() {
    let (app, store) = TestApp::spawn_faulty(|_| {}).await;
    // Slow enough that the batch's items overlap.
    store.set_before(Duration::from_millis(2));

    let items: Vec<Value> = (0..500).map(|i| body_of("uploader", &format!("V{i}"), "laptop", 10.0)).collect();
    let body = json!({ "checkpoints": items });
    let batch = app.post_json("/playback/batch", &body);
    let others = async {
        let mut statuses = Vec::new();
        for i in 0..40 {
            statuses.push(app.update(&body_of("viewer", "V1", "tv", f64::from(i) + 1.0)).await.status());
        }
        statuses
    };
    let (batch, others) = tokio::join!(batch, others);
    let answer = json_of(batch, StatusCode::OK).await;
    assert_eq!(answer["results"].as_array().expect("results").len(), 500);
    // Another client's writes met the write budget (--write-timeout turns a
    // late one into a 503).
    assert!(others.iter().all(|s| *s == StatusCode::OK), "{others:?}");
    let most = store.most_writes_at_once();
    // 16 of the batch, and the one other client's write.
    assert!(most <= 17, "the batch held {most} store writes at once");
    assert!(most >= 8, "the batch's items overlap ({most} at most at once)");
}
