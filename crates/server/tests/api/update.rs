use serde_json::json;

use crate::helpers::{TestApp, checkpoint, now_ms};

#[tokio::test]
async fn update_returns_the_applied_record() {
    let app = TestApp::spawn().await;
    let at = now_ms() - 1_000;
    let body = json!({
        "account_id": "acct-123", "profile_id": "A", "video_id": "V1",
        "position": 1200.5, "device_id": "tv-livingroom", "duration": 3600,
        "updated_at": at, "event": "progress",
    });
    let answer = app.update_ok(&body).await;
    assert_eq!(
        answer,
        json!({
            "outcome": "applied",
            "record": {
                "account_id": "acct-123", "profile_id": "A", "video_id": "V1",
                "position": 1200.5, "duration": 3600, "device_id": "tv-livingroom",
                "updated_at": at,
            }
        })
    );
}

#[tokio::test]
async fn update_without_updated_at_is_stamped_with_the_server_clock() {
    let app = TestApp::spawn().await;
    let before = now_ms();
    let answer = app
        .update_ok(&json!({"account_id": "acct", "profile_id": "A", "video_id": "V1", "position": 10, "device_id": "tv"}))
        .await;
    let after = now_ms();
    let stamped = answer["record"]["updated_at"].as_u64().expect("updated_at is an integer");
    assert!((before..=after).contains(&stamped), "{before} <= {stamped} <= {after}");
    assert!(answer["record"].get("duration").is_none(), "unknown duration is omitted: {answer}");
}

#[tokio::test]
async fn client_time_far_ahead_of_the_server_is_replaced_by_the_server_clock() {
    let app = TestApp::spawn().await;
    let before = now_ms();
    let answer = app.update_ok(&checkpoint("V1", "tv", 10.0, before + 3_600_000)).await;
    let stamped = answer["record"]["updated_at"].as_u64().expect("integer");
    assert!((before..=now_ms()).contains(&stamped), "clamped to the server clock, got {stamped}");

    // A device whose clock runs an hour fast cannot beat an honest newer write.
    let honest = app.update_ok(&checkpoint("V1", "phone", 20.0, now_ms() + 1)).await;
    assert_eq!(honest["outcome"], "applied");
}

#[tokio::test]
async fn client_time_within_the_skew_is_kept() {
    let app = TestApp::spawn().await;
    let ahead = now_ms() + 2_000;
    let answer = app.update_ok(&checkpoint("V1", "tv", 10.0, ahead)).await;
    assert_eq!(answer["record"]["updated_at"], ahead);
}

#[tokio::test]
async fn the_skew_bound_is_configurable() {
    let app = TestApp::spawn_with(|c| c.max_clock_skew = std::time::Duration::from_secs(120)).await;
    let ahead = now_ms() + 60_000;
    let answer = app.update_ok(&checkpoint("V1", "tv", 10.0, ahead)).await;
    assert_eq!(answer["record"]["updated_at"], ahead);
}

#[tokio::test]
async fn an_older_checkpoint_is_stale_and_returns_the_newer_record() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 10_000;
    app.update_ok(&checkpoint("V1", "phone", 600.0, t)).await;
    let late = app.update_ok(&checkpoint("V1", "tv", 900.0, t - 5_000)).await;
    assert_eq!(late["outcome"], "stale");
    assert_eq!(late["record"]["device_id"], "phone");
    assert_eq!(late["record"]["position"], 600);
    assert_eq!(app.resume("V1").await["position"], 600);
}

#[tokio::test]
async fn a_replayed_checkpoint_is_a_duplicate() {
    let app = TestApp::spawn().await;
    let body = checkpoint("V1", "tv", 42.25, now_ms() - 1_000);
    assert_eq!(app.update_ok(&body).await["outcome"], "applied");
    let again = app.update_ok(&body).await;
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(again["record"]["position"], 42.25);
}

#[tokio::test]
async fn the_latest_write_wins_across_devices() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 60_000;
    app.update_ok(&checkpoint("V1", "tv", 1200.0, t)).await;
    // The viewer picks up the phone: it resumes where the TV was...
    let on_phone = app.resume("V1").await;
    assert_eq!((on_phone["found"].clone(), on_phone["position"].clone()), (json!(true), json!(1200)));
    assert_eq!(on_phone["record"]["device_id"], "tv");
    // ...watches on, and the TV later resumes from the phone's position.
    app.update_ok(&checkpoint("V1", "phone", 1500.0, t + 30_000)).await;
    let on_tv = app.resume("V1").await;
    assert_eq!(on_tv["position"], 1500);
    assert_eq!(on_tv["record"]["device_id"], "phone");
}

#[tokio::test]
async fn profiles_of_one_account_are_independent() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 1_000;
    let for_profile = |profile: &str, position: f64| {
        json!({"account_id": "acct-123", "profile_id": profile, "video_id": "V1",
               "position": position, "device_id": "tv", "updated_at": t})
    };
    app.update_ok(&for_profile("A", 1200.0)).await;
    app.update_ok(&for_profile("B", 300.0)).await;
    assert_eq!(app.resume_of("acct-123", "A", "V1").await["position"], 1200);
    assert_eq!(app.resume_of("acct-123", "B", "V1").await["position"], 300);
    assert_eq!(app.resume_of("acct-999", "A", "V1").await["found"], false);
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let app = TestApp::spawn().await;
    let mut body = checkpoint("V1", "tv", 5.0, now_ms() - 1);
    body["bitrate"] = json!(4_500_000);
    body["player"] = json!({"name": "shaka"});
    assert_eq!(app.update_ok(&body).await["outcome"], "applied");
}

#[tokio::test]
async fn positions_are_kept_to_the_millisecond() {
    let app = TestApp::spawn().await;
    let answer = app.update_ok(&checkpoint("V1", "tv", 61.2344, now_ms() - 1)).await;
    assert_eq!(answer["record"]["position"], 61.234);
}

#[tokio::test]
async fn a_small_overshoot_past_the_duration_is_clamped_to_it() {
    let app = TestApp::spawn().await;
    let mut body = checkpoint("V1", "tv", 3603.0, now_ms() - 1);
    body["duration"] = json!(3600);
    assert_eq!(app.update_ok(&body).await["record"]["position"], 3600);
}

#[tokio::test]
async fn every_player_event_is_accepted() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 10_000;
    for (i, event) in ["progress", "pause", "stop", "background", "seek"].iter().enumerate() {
        let mut body = checkpoint("V1", "tv", 10.0 * i as f64, t + i as u64);
        body["event"] = json!(event);
        assert_eq!(app.update_ok(&body).await["outcome"], "applied", "event {event}");
    }
}

#[tokio::test]
async fn an_unknown_field_is_ignored_named_in_a_warning_and_counted() {
    let app = TestApp::spawn().await;
    let at = now_ms() - 1_000;
    let mut body = checkpoint("V1", "tv", 60.0, at);
    body["updatedAt"] = json!(at + 500);
    let response = app.update(&body).await;
    let warnings: Vec<String> =
        response.headers().get_all("warning").iter().map(|v| v.to_str().expect("ascii").to_owned()).collect();
    assert_eq!(warnings, [r#"299 playmark "unknown field \"updatedAt\"""#]);
    let answer = crate::helpers::json_of(response, reqwest::StatusCode::OK).await;
    assert_eq!(answer["record"]["updated_at"], at, "the misspelt time was not used");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains("playmark_unknown_fields_total 1"), "{metrics}");
}

#[tokio::test]
async fn with_reject_unknown_fields_an_unknown_field_is_a_400_naming_it() {
    let app = TestApp::spawn_with(|c| c.reject_unknown_fields = true).await;
    let mut body = checkpoint("V1", "tv", 60.0, now_ms());
    body["updatedAt"] = json!(1);
    let response = app.update(&body).await;
    crate::helpers::assert_error(
        response,
        reqwest::StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("updatedAt"),
    )
    .await;
    assert_eq!(app.resume("V1").await["found"], false, "nothing was written");
}

#[tokio::test]
async fn a_batch_item_is_parsed_exactly_like_an_update() {
    let app = TestApp::spawn().await;
    let at = now_ms() - 1_000;
    let good = checkpoint("V1", "tv", 60.0, at).to_string();
    let mut typo = checkpoint("V2", "tv", 60.0, at);
    typo["note"] = json!("x");
    // A repeated key in an item is a 400 for that item, as for an update.
    let repeated = r#"{"account_id":"acct","profile_id":"A","video_id":"V3","device_id":"tv","position":1,"position":2}"#;
    let body = format!(r#"{{"checkpoints":[{good},{typo},{repeated}]}}"#);
    let response = app
        .client
        .post(app.url("/playback/batch"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("sent");
    let warnings: Vec<_> = response.headers().get_all("warning").iter().cloned().collect();
    assert_eq!(warnings, [r#"299 playmark "unknown field \"checkpoints[].note\"""#]);
    let answer = crate::helpers::json_of(response, reqwest::StatusCode::OK).await;
    let results = answer["results"].as_array().expect("results");
    assert_eq!(
        (results[0]["outcome"].as_str(), results[1]["outcome"].as_str()),
        (Some("applied"), Some("applied"))
    );
    assert_eq!(results[2]["error"]["code"], "invalid_request", "{answer}");
    assert_eq!(results[2]["error"]["field"], "position", "{answer}");
}
