use serde_json::json;

use crate::helpers::{TestApp, checkpoint, now_ms};

/// Records one checkpoint for a title of its own, then resumes it.
async fn resume_after(app: &TestApp, position: f64, duration: Option<f64>) -> serde_json::Value {
    let video = format!("V-{position}-{duration:?}").replace(['(', ')', ' '], "");
    let mut body = checkpoint(&video, "tv", position, now_ms() - 1);
    if let Some(d) = duration {
        body["duration"] = json!(d);
    }
    app.update_ok(&body).await;
    app.resume(&video).await
}

#[tokio::test]
async fn an_unknown_title_starts_over() {
    let app = TestApp::spawn().await;
    let answer = app.resume("never-watched").await;
    assert_eq!(answer["found"], false);
    assert_eq!(answer["position"], 0);
    assert_eq!(answer["action"], "start_over");
    assert!(answer.get("record").is_none(), "{answer}");
}

#[tokio::test]
async fn a_title_part_way_through_resumes_at_its_position() {
    let app = TestApp::spawn().await;
    let answer = resume_after(&app, 1200.5, Some(3600.0)).await;
    assert_eq!(answer["found"], true);
    assert_eq!(answer["action"], "resume");
    assert_eq!(answer["position"], 1200.5);
    assert_eq!(answer["reason"], "in_progress");
    assert_eq!(answer["record"]["duration"], 3600);
}

#[tokio::test]
async fn under_five_percent_watched_starts_over() {
    let app = TestApp::spawn().await;
    let answer = resume_after(&app, 100.0, Some(3600.0)).await;
    assert_eq!(
        (answer["found"].clone(), answer["action"].clone(), answer["position"].clone()),
        (json!(true), json!("start_over"), json!(0))
    );
    assert_eq!(answer["reason"], "not_started");
    assert_eq!(answer["record"]["position"], 100, "the record itself is still returned");
}

#[tokio::test]
async fn over_ninety_percent_watched_is_finished_and_starts_over() {
    let app = TestApp::spawn().await;
    let answer = resume_after(&app, 3300.0, Some(3600.0)).await;
    assert_eq!((answer["action"].clone(), answer["position"].clone()), (json!("start_over"), json!(0)));
    assert_eq!(answer["reason"], "finished");
}

#[tokio::test]
async fn a_video_shorter_than_the_minimum_resume_length_starts_over() {
    let app = TestApp::spawn().await;
    let answer = resume_after(&app, 120.0, Some(240.0)).await;
    assert_eq!(
        (answer["action"].clone(), answer["reason"].clone()),
        (json!("start_over"), json!("too_short"))
    );
}

#[tokio::test]
async fn without_a_duration_the_position_is_resumed_as_is() {
    let app = TestApp::spawn().await;
    let answer = resume_after(&app, 15.0, None).await;
    assert_eq!((answer["action"].clone(), answer["position"].clone()), (json!("resume"), json!(15)));
}

#[tokio::test]
async fn the_thresholds_are_configurable() {
    let app = TestApp::spawn_with(|c| {
        c.min_resume_percent = 1.0;
        c.max_resume_percent = 99.0;
        c.min_resume_duration = std::time::Duration::from_secs(60);
    })
    .await;
    // 2.7 % watched, 95 % watched and a 2-minute clip: all resume now.
    assert_eq!(resume_after(&app, 100.0, Some(3600.0)).await["action"], "resume");
    assert_eq!(resume_after(&app, 3420.0, Some(3600.0)).await["action"], "resume");
    assert_eq!(resume_after(&app, 60.0, Some(120.0)).await["action"], "resume");
}
