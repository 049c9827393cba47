use reqwest::StatusCode;

use crate::helpers::{TestApp, assert_error, checkpoint, now_ms};

#[tokio::test]
async fn delete_answers_204_and_the_title_is_forgotten() {
    let app = TestApp::spawn().await;
    app.update_ok(&checkpoint("V1", "tv", 600.0, now_ms() - 1_000)).await;
    let response = app.delete("V1").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.text().await.expect("body").is_empty());
    let answer = app.resume("V1").await;
    assert_eq!((answer["found"].as_bool(), answer["position"].as_u64()), (Some(false), Some(0)));
}

#[tokio::test]
async fn a_checkpoint_older_than_the_deletion_cannot_bring_the_title_back() {
    let app = TestApp::spawn().await;
    let watched_at = now_ms() - 60_000;
    app.update_ok(&checkpoint("V1", "tv", 600.0, watched_at)).await;
    app.delete("V1").await;
    // A phone that was offline uploads what it saw before the deletion.
    let late = app.update_ok(&checkpoint("V1", "phone", 700.0, watched_at + 1_000)).await;
    assert_eq!(late["outcome"], "stale");
    assert!(late["record"].is_null(), "a deleted title has no standing record: {late}");
    assert_eq!(app.resume("V1").await["found"], false);
}

#[tokio::test]
async fn a_checkpoint_newer_than_the_deletion_restores_the_title() {
    let app = TestApp::spawn().await;
    app.update_ok(&checkpoint("V1", "tv", 600.0, now_ms() - 60_000)).await;
    app.delete("V1").await;
    // Watched again after the deletion; a moment later so the clocks differ.
    let again = app.update_ok(&checkpoint("V1", "tv", 5.0, now_ms() + 1_000)).await;
    assert_eq!(again["outcome"], "applied");
    assert_eq!(app.resume("V1").await["position"], 5);
}

#[tokio::test]
async fn deleting_a_title_ahead_of_the_server_clock_still_removes_it() {
    let app = TestApp::spawn().await;
    // Stamped 4 s ahead: inside the skew bound, so kept as sent.
    app.update_ok(&checkpoint("V1", "tv", 600.0, now_ms() + 4_000)).await;
    assert_eq!(app.delete("V1").await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.resume("V1").await["found"], false);
}

#[tokio::test]
async fn deleting_twice_or_deleting_the_unknown_is_fine() {
    let app = TestApp::spawn().await;
    assert_eq!(app.delete("never").await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.delete("never").await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn delete_names_a_missing_parameter() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .delete(app.url("/playback/progress?account_id=acct&profile_id=A"))
        .send()
        .await
        .expect("sent");
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some("video_id")).await;
}
