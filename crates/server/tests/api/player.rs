//! The player-side additions: resume guardrails with a local position, the
//! stale-device guard, batch uploads, hiding titles, and marking them
//! watched.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, checkpoint, json_of, now_ms};

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

async fn resume_with(app: &TestApp, video: &str, query: &str) -> Value {
    let response =
        app.get(&format!("/playback/resume?account_id=acct&profile_id=A&video_id={video}&{query}")).await;
    json_of(response, StatusCode::OK).await
}

#[tokio::test]
async fn resume_with_a_local_position_far_ahead_prompts_and_offers_both_positions() {
    let app = TestApp::spawn().await;
    app.update_ok(&with(checkpoint("V1", "phone", 600.0, now_ms() - 1_000), "duration", json!(3600))).await;
    let answer = resume_with(&app, "V1", "device_id=tv&local_position=1200").await;
    assert_eq!(answer["action"], "prompt", "{answer}");
    assert_eq!(answer["position"], 600);
    assert_eq!(answer["alternative"], 1200);
    assert_eq!(answer["device_id"], "phone", "the prompt can say where it was watched");
}

#[tokio::test]
async fn resume_keeps_the_local_position_over_a_small_regression_and_takes_the_server_when_ahead() {
    let app = TestApp::spawn().await;
    app.update_ok(&with(checkpoint("V1", "phone", 1195.0, now_ms() - 1_000), "duration", json!(3600))).await;
    let kept = resume_with(&app, "V1", "local_position=1200").await;
    assert_eq!(
        (kept["action"].clone(), kept["position"].clone(), kept["reason"].clone()),
        (json!("resume"), json!(1200), json!("kept_local"))
    );
    let ahead = resume_with(&app, "V1", "local_position=900.5").await;
    assert_eq!((ahead["action"].clone(), ahead["position"].clone()), (json!("resume"), json!(1195)));
    assert!(ahead.get("alternative").is_none());
}

#[tokio::test]
async fn resume_names_an_invalid_local_position_or_device() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("local_position=soon", "local_position"),
        ("local_position=-3", "local_position"),
        ("device_id=a%20b", "device_id"),
    ] {
        let response =
            app.get(&format!("/playback/resume?account_id=acct&profile_id=A&video_id=V1&{query}")).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some(field)).await;
    }
}

#[tokio::test]
async fn a_stale_tv_far_behind_the_phones_newer_record_gets_409_with_the_standing_record() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 60_000;
    // The TV resumed from the record at t and plays on at minute 10...
    let tv_first = app.update_ok(&checkpoint("V1", "tv", 600.0, t)).await;
    let seen = tv_first["record"]["updated_at"].as_u64().expect("updated_at");
    // ...the viewer moves to the phone and watches to minute 30...
    app.update_ok(&checkpoint("V1", "phone", 1800.0, t + 10_000)).await;
    // ...and the forgotten TV reports minute 11.
    let stale_tv = with(checkpoint("V1", "tv", 660.0, t + 20_000), "resumed_from", json!(seen));
    let body = assert_error(app.update(&stale_tv).await, StatusCode::CONFLICT, "conflict", None).await;
    assert_eq!(body["record"]["device_id"], "phone");
    assert_eq!(body["record"]["position"], 1800);
    assert_eq!(app.resume("V1").await["position"], 1800, "nothing changed");

    // A deliberate seek back always applies.
    let seek = with(stale_tv.clone(), "event", json!("seek"));
    assert_eq!(app.update_ok(&seek).await["outcome"], "applied");
    assert_eq!(app.resume("V1").await["position"], 660);
}

#[tokio::test]
async fn the_guard_does_not_touch_plain_or_informed_updates() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 60_000;
    let phone = app.update_ok(&checkpoint("V1", "phone", 1800.0, t)).await;
    // Without resumed_from: plain last-write-wins (docs/design.md#conflict-rule).
    assert_eq!(app.update_ok(&checkpoint("V1", "tv", 60.0, t + 1_000)).await["outcome"], "applied");
    // A device that saw the newest record chose its position knowingly.
    let newest = app.resume("V1").await["record"]["updated_at"].as_u64().expect("updated_at");
    let informed = with(checkpoint("V1", "laptop", 30.0, t + 2_000), "resumed_from", json!(newest));
    assert_eq!(app.update_ok(&informed).await["outcome"], "applied");
    assert!(phone["record"]["updated_at"].as_u64() < Some(newest));
}

#[tokio::test]
async fn a_batch_merges_each_checkpoint_and_answers_each_in_order() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 60_000;
    app.update_ok(&checkpoint("standing", "phone", 1800.0, t + 5_000)).await;
    let body = json!({"checkpoints": [
        checkpoint("V1", "tv", 10.0, t),
        checkpoint("V1", "tv", 10.0, t),
        checkpoint("standing", "tv", 30.0, t),
        with(checkpoint("V2", "tv", 5.0, t), "position", json!(-1)),
        with(checkpoint("standing", "tv", 60.0, t + 9_000), "resumed_from", json!(t)),
        json!("not an object"),
    ]});
    let answer = json_of(app.post_json("/playback/batch", &body).await, StatusCode::OK).await;
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 6);
    let mut first_two = [results[0]["outcome"].as_str(), results[1]["outcome"].as_str()];
    first_two.sort();
    assert_eq!(first_two, [Some("applied"), Some("duplicate")]);
    assert_eq!(results[2]["outcome"], "stale");
    assert_eq!(results[2]["record"]["device_id"], "phone");
    assert_eq!(
        (results[3]["error"]["code"].as_str(), results[3]["error"]["field"].as_str()),
        (Some("invalid_request"), Some("position"))
    );
    assert_eq!(results[4]["error"]["code"], "conflict");
    assert_eq!(results[4]["record"]["position"], 1800);
    assert_eq!(results[5]["error"]["code"], "invalid_request");
    assert_eq!(app.resume("V1").await["position"], 10);
}

#[tokio::test]
async fn a_batch_must_hold_1_to_500_checkpoints_in_at_most_1_mib() {
    let app = TestApp::spawn().await;
    for body in [json!({}), json!({"checkpoints": []}), json!({"checkpoints": vec![json!({}); 501]})] {
        assert_error(
            app.post_json("/playback/batch", &body).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("checkpoints"),
        )
        .await;
    }
    let t = now_ms() - 60_000;
    // 500 checkpoints with some padding: well over 64 KiB, under 1 MiB.
    let items: Vec<Value> = (0..500u64)
        .map(|i| with(checkpoint(&format!("V{i}"), "tv", i as f64, t), "note", json!("x".repeat(1_000))))
        .collect();
    let answer =
        json_of(app.post_json("/playback/batch", &json!({"checkpoints": items})).await, StatusCode::OK).await;
    let results = answer["results"].as_array().expect("results");
    assert!(results.iter().all(|r| r["outcome"] == "applied"), "{}", results.len());
    assert_eq!(app.resume("V499").await["position"], 499);
    let huge: Vec<Value> = (0..10)
        .map(|i| with(checkpoint(&format!("V{i}"), "tv", 1.0, t), "note", json!("x".repeat(110_000))))
        .collect();
    assert_error(
        app.post_json("/playback/batch", &json!({"checkpoints": huge})).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    )
    .await;
}

#[tokio::test]
async fn hiding_a_title_takes_it_out_of_continue_watching_until_the_next_checkpoint() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 60_000;
    app.update_ok(&checkpoint("V1", "tv", 600.0, t)).await;
    app.update_ok(&checkpoint("V2", "tv", 300.0, t + 1)).await;
    let hide = json!({"account_id": "acct", "profile_id": "A", "video_id": "V1"});
    let response = app.post_json("/playback/hide", &hide).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let row = |body: Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|r| r["video_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let listed =
        json_of(app.get("/playback/continue-watching?account_id=acct&profile_id=A").await, StatusCode::OK)
            .await;
    assert_eq!(row(listed), ["V2"]);
    assert_eq!(app.resume("V1").await["position"], 600, "the progress is kept");

    app.update_ok(&checkpoint("V1", "tv", 660.0, t + 10_000)).await;
    let listed =
        json_of(app.get("/playback/continue-watching?account_id=acct&profile_id=A").await, StatusCode::OK)
            .await;
    assert_eq!(row(listed), ["V1", "V2"]);
    // Unknown titles and bad fields.
    let unknown = json!({"account_id": "acct", "profile_id": "A", "video_id": "never"});
    assert_eq!(app.post_json("/playback/hide", &unknown).await.status(), StatusCode::NO_CONTENT);
    let bad = json!({"account_id": "acct", "profile_id": "A"});
    assert_error(
        app.post_json("/playback/hide", &bad).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("video_id"),
    )
    .await;
}

/// The titles of acct/A's continue-watching row.
async fn row(app: &TestApp) -> Vec<String> {
    let listed =
        json_of(app.get("/playback/continue-watching?account_id=acct&profile_id=A").await, StatusCode::OK)
            .await;
    let items = listed["items"].as_array().expect("items");
    items.iter().map(|r| r["video_id"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Marking watched and unwatched: merged like checkpoints (a late one from
/// an old device cannot undo a newer mark; playing again does), out of
/// continue-watching, and resume starts over.
#[tokio::test]
async fn marking_watched_and_unwatched_merges_like_a_checkpoint() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 60_000;
    let mark = |watched: bool, at: u64| {
        json!({"account_id": "acct", "profile_id": "A", "video_id": "V1", "device_id": "phone",
               "watched": watched, "duration": 3600, "updated_at": at})
    };
    app.update_ok(&with(checkpoint("V1", "tv", 1200.0, t), "duration", json!(3600))).await;
    assert_eq!(row(&app).await, ["V1"]);

    let marked =
        json_of(app.post_json("/playback/watched", &mark(true, t + 10_000)).await, StatusCode::OK).await;
    assert_eq!(marked["outcome"], "applied", "{marked}");
    assert_eq!(
        (marked["record"]["position"].clone(), marked["record"]["device_id"].clone()),
        (json!(3600), json!("phone"))
    );
    assert!(row(&app).await.is_empty(), "a watched title leaves continue-watching");
    let resume = app.resume("V1").await;
    assert_eq!(
        (resume["action"].clone(), resume["reason"].clone()),
        (json!("start_over"), json!("finished"))
    );

    // The TV was offline: its older checkpoint arrives after the mark.
    let late = app
        .post_json(
            "/playback/update",
            &with(checkpoint("V1", "tv", 1260.0, t + 5_000), "duration", json!(3600)),
        )
        .await;
    let late = json_of(late, StatusCode::OK).await;
    assert_eq!((late["outcome"].clone(), late["record"]["position"].clone()), (json!("stale"), json!(3600)));

    let unmarked =
        json_of(app.post_json("/playback/watched", &mark(false, t + 20_000)).await, StatusCode::OK).await;
    assert_eq!(
        (unmarked["outcome"].clone(), unmarked["record"]["position"].clone()),
        (json!("applied"), json!(0))
    );
    assert!(row(&app).await.is_empty(), "an unwatched title waits until it is played again");
    assert_eq!(app.resume("V1").await["action"], "start_over");
    let replay =
        json_of(app.post_json("/playback/watched", &mark(false, t + 20_000)).await, StatusCode::OK).await;
    assert_eq!(replay["outcome"], "duplicate");
    let older =
        json_of(app.post_json("/playback/watched", &mark(true, t + 15_000)).await, StatusCode::OK).await;
    assert_eq!((older["outcome"].clone(), older["record"]["position"].clone()), (json!("stale"), json!(0)));

    app.update_ok(&with(checkpoint("V1", "tv", 60.0, t + 30_000), "duration", json!(3600))).await;
    assert_eq!(row(&app).await, ["V1"], "playing again brings it back");

    for (field, body) in [
        ("watched", with(mark(true, t), "watched", Value::Null)),
        ("watched", with(mark(true, t), "watched", json!("yes"))),
        ("device_id", with(mark(true, t), "device_id", json!("tv 1"))),
        ("duration", with(mark(true, t), "duration", json!(0))),
        ("updated_at", with(mark(true, t), "updated_at", json!(1.5))),
        ("updated_at", with(mark(true, t), "updated_at", json!(-1))),
    ] {
        assert_error(
            app.post_json("/playback/watched", &body).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(field),
        )
        .await;
    }
}

/// JSON Schema's `integer` (what /openapi.json declares for times) allows
/// `8260.0` as well as `8260`: both are the same time.
#[tokio::test]
async fn whole_number_times_may_be_written_with_a_fraction_of_zero() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 60_000;
    let body = with(checkpoint("V1", "tv", 60.0, t), "updated_at", json!(t as f64));
    let answer = app.update_ok(&with(body, "resumed_from", json!((t - 1) as f64))).await;
    assert_eq!(
        (answer["outcome"].clone(), answer["record"]["updated_at"].clone()),
        (json!("applied"), json!(t))
    );
}
