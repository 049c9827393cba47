use futures::future::join_all;
use reqwest::StatusCode;

use crate::helpers::{TestApp, checkpoint, now_ms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_writers_on_one_key_leave_the_newest_standing() {
    // Far more at once than one household may send: the rate limit is off
    // here (tests/api/overload.rs holds it).
    let app = TestApp::spawn_with(|c| c.account_rate = 0).await;
    let t = now_ms() - 100_000;
    // Writer i reports position i at time t + i; sent all at once, in
    // reverse order of time so arrival order fights the timestamps.
    let writes = (0..200u64).rev().map(|i| {
        let app = &app;
        async move {
            let body = checkpoint("V1", &format!("device-{i}"), i as f64, t + i);
            app.update(&body).await.status()
        }
    });
    let statuses = join_all(writes).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");

    let answer = app.resume("V1").await;
    assert_eq!(answer["record"]["updated_at"], t + 199);
    assert_eq!(answer["record"]["device_id"], "device-199");
    assert_eq!(answer["position"], 199);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_different_titles_all_land() {
    let app = TestApp::spawn_with(|c| c.account_rate = 0).await;
    let t = now_ms() - 1_000;
    let writes = (0..100u64).map(|i| {
        let app = &app;
        async move { app.update(&checkpoint(&format!("V{i}"), "tv", i as f64 + 1.0, t)).await.status() }
    });
    assert!(join_all(writes).await.iter().all(|s| *s == StatusCode::OK));
    for i in 0..100u64 {
        assert_eq!(app.resume(&format!("V{i}")).await["position"], i + 1);
    }
}
