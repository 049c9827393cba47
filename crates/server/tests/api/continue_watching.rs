use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, checkpoint, json_of, now_ms};

async fn row(app: &TestApp, query: &str) -> Vec<String> {
    let body = json_of(app.get(&format!("/playback/continue-watching?{query}")).await, StatusCode::OK).await;
    body["items"]
        .as_array()
        .expect("items is an array")
        .iter()
        .map(|r| r["video_id"].as_str().expect("video_id").to_owned())
        .collect()
}

fn with_duration(mut body: Value, duration: f64) -> Value {
    body["duration"] = json!(duration);
    body
}

#[tokio::test]
async fn lists_titles_in_progress_newest_first_without_finished_or_deleted_ones() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 100_000;
    app.update_ok(&with_duration(checkpoint("oldest", "tv", 600.0, t), 3600.0)).await;
    app.update_ok(&with_duration(checkpoint("finished", "tv", 3500.0, t + 1_000), 3600.0)).await;
    app.update_ok(&checkpoint("no-duration", "phone", 30.0, t + 2_000)).await;
    app.update_ok(&with_duration(checkpoint("deleted", "tv", 600.0, t + 3_000), 3600.0)).await;
    app.update_ok(&with_duration(checkpoint("newest", "phone", 900.0, t + 4_000), 3600.0)).await;
    assert_eq!(app.delete("deleted").await.status(), StatusCode::NO_CONTENT);

    assert_eq!(row(&app, "account_id=acct&profile_id=A").await, ["newest", "no-duration", "oldest"]);
}

#[tokio::test]
async fn items_are_full_records() {
    let app = TestApp::spawn().await;
    let at = now_ms() - 1_000;
    app.update_ok(&with_duration(checkpoint("V1", "tv", 1200.5, at), 3600.0)).await;
    let body =
        json_of(app.get("/playback/continue-watching?account_id=acct&profile_id=A").await, StatusCode::OK)
            .await;
    assert_eq!(
        body,
        json!({"items": [{
            "account_id": "acct", "profile_id": "A", "video_id": "V1", "position": 1200.5,
            "duration": 3600, "device_id": "tv", "updated_at": at,
        }]})
    );
}

#[tokio::test]
async fn only_the_asked_profile_is_listed() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 1_000;
    app.update_ok(&checkpoint("mine", "tv", 60.0, t)).await;
    for (account, profile) in [("acct", "AB"), ("acct", "B"), ("acct-2", "A")] {
        app.update_ok(&json!({"account_id": account, "profile_id": profile, "video_id": "theirs",
                              "position": 60, "device_id": "tv", "updated_at": t}))
            .await;
    }
    assert_eq!(row(&app, "account_id=acct&profile_id=A").await, ["mine"]);
    assert!(row(&app, "account_id=nobody&profile_id=A").await.is_empty());
}

#[tokio::test]
async fn limit_defaults_to_twenty_and_cuts_the_oldest() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 100_000;
    for i in 0..25u64 {
        app.update_ok(&checkpoint(&format!("V{i:02}"), "tv", 60.0, t + i)).await;
    }
    let default = row(&app, "account_id=acct&profile_id=A").await;
    assert_eq!(default.len(), 20);
    assert_eq!((default[0].as_str(), default[19].as_str()), ("V24", "V05"));
    assert_eq!(row(&app, "account_id=acct&profile_id=A&limit=3").await, ["V24", "V23", "V22"]);
    assert_eq!(row(&app, "account_id=acct&profile_id=A&limit=100").await.len(), 25);
}

#[tokio::test]
async fn an_out_of_range_limit_is_a_400_naming_limit() {
    let app = TestApp::spawn().await;
    for bad in ["0", "101", "-1", "ten", "2.5", ""] {
        let response =
            app.get(&format!("/playback/continue-watching?account_id=acct&profile_id=A&limit={bad}")).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some("limit")).await;
    }
}

#[tokio::test]
async fn missing_profile_parameters_are_named() {
    let app = TestApp::spawn().await;
    let response = app.get("/playback/continue-watching?account_id=acct").await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some("profile_id")).await;
    let response = app.get("/playback/continue-watching?profile_id=A").await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some("account_id")).await;
}
