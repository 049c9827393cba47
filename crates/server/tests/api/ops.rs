use reqwest::StatusCode;

use crate::helpers::{TestApp, checkpoint, json_of, now_ms};

#[tokio::test]
async fn healthz_and_readyz_answer_ok() {
    let app = TestApp::spawn().await;
    assert_eq!(json_of(app.get("/healthz").await, StatusCode::OK).await["status"], "ok");
    let ready = json_of(app.get("/readyz").await, StatusCode::OK).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["store"], "ok");
    if app.backend.store_label() != "embedded" {
        assert_eq!(ready["checks"]["cache"], "ok", "{ready}");
    }
}

#[tokio::test]
async fn metrics_count_requests_outcomes_store_latency_and_clamped_clocks() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 10_000;
    app.update_ok(&checkpoint("V1", "tv", 10.0, t)).await;
    app.update_ok(&checkpoint("V1", "tv", 10.0, t)).await;
    app.update_ok(&checkpoint("V1", "tv", 5.0, t - 1)).await;
    app.update_ok(&checkpoint("V2", "tv", 5.0, now_ms() + 600_000)).await;
    app.resume("V1").await;
    app.get("/nowhere").await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    let store_latency = format!(
        r#"playmark_store_operation_duration_seconds_count{{backend="{}",op="upsert",result="ok"}} 4"#,
        app.backend.store_label()
    );
    for expected in [
        store_latency.as_str(),
        r#"playmark_http_requests_total{route="/playback/update",method="POST",status="200"} 4"#,
        r#"playmark_http_requests_total{route="/playback/resume",method="GET",status="200"} 1"#,
        r#"playmark_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        r#"playmark_checkpoints_total{outcome="applied"} 2"#,
        r#"playmark_checkpoints_total{outcome="duplicate"} 1"#,
        r#"playmark_checkpoints_total{outcome="stale"} 1"#,
        "playmark_clock_clamped_total 1",
        r#"playmark_http_request_duration_seconds_count{route="/playback/resume",method="GET"} 1"#,
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[tokio::test]
async fn openapi_describes_every_endpoint() {
    let app = TestApp::spawn().await;
    let doc = json_of(app.get("/openapi.json").await, StatusCode::OK).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    for (path, method) in [
        ("/playback/update", "post"),
        ("/playback/resume", "get"),
        ("/playback/continue-watching", "get"),
        ("/playback/history", "get"),
        ("/playback/progress", "delete"),
        ("/playback/hide", "post"),
        ("/playback/watched", "post"),
        ("/playback/batch", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} missing");
    }
    let required = &doc["components"]["schemas"]["UpdateRequest"]["required"];
    for field in ["account_id", "profile_id", "video_id", "position", "device_id"] {
        assert!(
            required.as_array().is_some_and(|r| r.iter().any(|f| f == field)),
            "{field} not required: {required}"
        );
    }
}

#[tokio::test]
async fn docs_openapi_json_is_the_document_the_server_serves() {
    let app = TestApp::spawn().await;
    let served = json_of(app.get("/openapi.json").await, StatusCode::OK).await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json exists"))
            .expect("JSON");
    assert!(
        served == committed,
        "docs/openapi.json is out of date (the JS SDK's types are checked against it): \
         regenerate it with `cargo run -q -- openapi > docs/openapi.json`"
    );
}

#[tokio::test]
async fn the_demo_page_and_the_js_sdk_are_served_from_the_binary() {
    let app = TestApp::spawn().await;
    for (path, content_type, needle) in [
        ("/", "text/html", "/sdk/playmark.js"),
        ("/demo.js", "text/javascript", "import"),
        ("/demo.css", "text/css", "{"),
        ("/sdk/playmark.js", "text/javascript", "CheckpointPolicy"),
        ("/sdk/playmark.d.ts", "application/typescript", "CheckpointPolicy"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let ct = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        assert!(response.text().await.expect("body").contains(needle), "{path} lacks {needle:?}");
    }
}
