//! Every error case of docs/api.md#errors: the documented status, a stable code, a
//! message, and the field at fault.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, checkpoint, now_ms};

fn valid() -> Value {
    checkpoint("V1", "tv", 10.0, now_ms() - 1)
}

fn with(field: &str, value: Value) -> Value {
    let mut body = valid();
    body[field] = value;
    body
}

fn without(field: &str) -> Value {
    let mut body = valid();
    body.as_object_mut().expect("object").remove(field);
    body
}

#[tokio::test]
async fn each_missing_required_field_is_named() {
    let app = TestApp::spawn().await;
    for field in ["account_id", "profile_id", "video_id", "position", "device_id"] {
        assert_error(
            app.update(&without(field)).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(field),
        )
        .await;
        assert_error(
            app.update(&with(field, Value::Null)).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(field),
        )
        .await;
    }
}

#[tokio::test]
async fn invalid_identifiers_are_named() {
    let app = TestApp::spawn().await;
    let too_long = "x".repeat(129);
    for field in ["account_id", "profile_id", "video_id", "device_id"] {
        for bad in
            [json!(""), json!(too_long), json!("has space"), json!("slash/y"), json!("ümlaut"), json!(42)]
        {
            let response = app.update(&with(field, bad.clone())).await;
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some(field)).await;
        }
    }
    // The longest legal id is fine.
    assert_eq!(app.update(&with("video_id", json!("v".repeat(128)))).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn invalid_positions_are_named() {
    let app = TestApp::spawn().await;
    for bad in
        [json!(-1), json!(-0.001), json!(2_592_000.5), json!(1e300), json!("12"), json!(true), json!([1])]
    {
        let response = app.update(&with("position", bad.clone())).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some("position")).await;
    }
    assert_eq!(app.update(&with("position", json!(2_592_000))).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_position_well_beyond_the_duration_is_named() {
    let app = TestApp::spawn().await;
    let mut body = with("position", json!(4000));
    body["duration"] = json!(3600);
    assert_error(app.update(&body).await, StatusCode::BAD_REQUEST, "invalid_request", Some("position")).await;
}

#[tokio::test]
async fn invalid_durations_are_named() {
    let app = TestApp::spawn().await;
    for bad in [json!(0), json!(-5), json!(2_592_001), json!("long")] {
        let response = app.update(&with("duration", bad.clone())).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some("duration")).await;
    }
}

#[tokio::test]
async fn invalid_event_times_and_events_are_named() {
    let app = TestApp::spawn().await;
    for bad in [json!(-1), json!(1.5), json!("yesterday")] {
        let response = app.update(&with("updated_at", bad.clone())).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some("updated_at")).await;
    }
    for bad in [json!("rewind"), json!(""), json!(3)] {
        let response = app.update(&with("event", bad.clone())).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some("event")).await;
    }
}

#[tokio::test]
async fn malformed_json_is_a_400_without_a_field() {
    let app = TestApp::spawn().await;
    for raw in ["{", "", "not json", "[]", "42", "\"text\"", "{\"position\": 1,}"] {
        let response = app
            .client
            .post(app.url("/playback/update"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("sent");
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", None).await;
    }
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_a_415() {
    let app = TestApp::spawn().await;
    let body = serde_json::to_string(&valid()).expect("serializes");
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let mut request = app.client.post(app.url("/playback/update")).body(body.clone());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.expect("sent");
        assert_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", None).await;
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413() {
    let app = TestApp::spawn().await;
    let mut body = valid();
    body["padding"] = json!("x".repeat(64 * 1024));
    assert_error(app.update(&body).await, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None).await;
    // Just under the limit is fine (unknown fields are ignored).
    let mut body = valid();
    body["padding"] = json!("x".repeat(60 * 1024));
    assert_eq!(app.update(&body).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let app = TestApp::spawn().await;
    assert_error(app.get("/playback/nope").await, StatusCode::NOT_FOUND, "not_found", None).await;
    assert_error(app.get("/nowhere").await, StatusCode::NOT_FOUND, "not_found", None).await;
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405() {
    let app = TestApp::spawn().await;
    let response = app.get("/playback/update").await;
    assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None).await;
    let response = app.post_json("/playback/resume", &valid()).await;
    assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None).await;
}

#[tokio::test]
async fn resume_names_each_missing_or_invalid_parameter() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("profile_id=A&video_id=V1", "account_id"),
        ("account_id=acct&video_id=V1", "profile_id"),
        ("account_id=acct&profile_id=A", "video_id"),
        ("account_id=a%20b&profile_id=A&video_id=V1", "account_id"),
        ("account_id=acct&profile_id=&video_id=V1", "profile_id"),
    ] {
        let response = app.get(&format!("/playback/resume?{query}")).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some(field)).await;
    }
}

#[tokio::test]
async fn garbage_never_crashes_the_server() {
    let app = TestApp::spawn().await;
    let nasty = [
        json!({"account_id": {"nested": [1, 2]}, "position": null}),
        json!({"position": 1e308, "duration": 1e-308}),
        json!({"account_id": "\u{0000}", "profile_id": "\u{ffff}", "video_id": "V1", "position": 1, "device_id": "d"}),
        json!([[[[[[[[[[[]]]]]]]]]]]),
    ];
    for body in nasty {
        let status = app.update(&body).await.status();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let deep = "[".repeat(10_000);
    let response = app
        .client
        .post(app.url("/playback/update"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Still serving.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_array_body_is_rejected_even_when_serde_could_read_it_as_a_struct() {
    let app = TestApp::spawn().await;
    let response =
        app.post_json("/playback/update", &json!(["acct", "A", "V5", 12, "tv", null, null, null])).await;
    let body = assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", None).await;
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("JSON object")), "{body}");
}

#[tokio::test]
async fn a_repeated_key_or_parameter_is_named() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/playback/update"))
        .header("content-type", "application/json")
        .body(r#"{"account_id":"acct","profile_id":"A","video_id":"V1","position":1,"position":2,"device_id":"tv"}"#)
        .send()
        .await
        .expect("sent");
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some("position")).await;
    let response = app.get("/playback/continue-watching?account_id=acct&profile_id=A&limit=1&limit=2").await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some("limit")).await;
}

#[tokio::test]
async fn a_write_the_store_cannot_confirm_in_time_is_a_503_with_retry_after() {
    let app =
        TestApp::spawn_slow(Duration::from_secs(2), |c| c.write_timeout = Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let response = app.update(&valid()).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the budget was not enforced: {:?}",
        started.elapsed()
    );
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body = assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable", None).await;
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("retrying is safe")), "{body}");
}

#[tokio::test]
async fn a_read_the_store_cannot_answer_in_time_is_a_503() {
    let app =
        TestApp::spawn_slow(Duration::from_secs(2), |c| c.read_timeout = Duration::from_millis(50)).await;
    let response = app.get("/playback/resume?account_id=acct&profile_id=A&video_id=V1").await;
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable", None).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn absurd_times_are_a_400_naming_the_field() {
    let app = TestApp::spawn().await;
    for field in ["resumed_from", "updated_at"] {
        let response = app.update(&with(field, json!(u64::MAX))).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request", Some(field)).await;
    }
}

#[tokio::test]
async fn store_errors_keep_their_kind_on_the_way_to_http() {
    use playmark_store::StoreError;
    let (app, store) = TestApp::spawn_faulty(|_| {}).await;
    type MakeError = fn() -> StoreError;
    let cases: [(MakeError, StatusCode, &str); 4] = [
        (
            || StoreError::Unavailable { backend: "test", reason: "down".into() },
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
        (|| StoreError::Timeout { backend: "test" }, StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (
            || StoreError::Corrupt { backend: "test", detail: "bad bytes".into() },
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
        ),
        (
            || StoreError::Backend { backend: "test", source: "a bug".into() },
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
        ),
    ];
    for (make, status, code) in cases {
        store.set_failure(Some(make));
        for response in [
            app.update(&valid()).await,
            app.get("/playback/resume?account_id=acct&profile_id=A&video_id=V1").await,
        ] {
            let retry_after = response.headers().get("retry-after").cloned();
            let body = assert_error(response, status, code, None).await;
            // Every 503 says when to come back; a 500 is not worth retrying.
            assert_eq!(retry_after.is_some(), status == StatusCode::SERVICE_UNAVAILABLE, "{body}");
            // The cause is logged, never sent.
            let text = body.to_string();
            assert!(!text.contains("bad bytes") && !text.contains("a bug"), "{text}");
        }
    }
    store.set_failure(None);
    app.update_ok(&valid()).await;
}
