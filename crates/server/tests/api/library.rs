//! The viewer's library over HTTP: series on checkpoints, history in
//! cursor pages, and continue-watching grouped by series (next up).

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, checkpoint, json_of, now_ms};

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

/// A checkpoint of `video`, episode `n` of `series`, `percent` of the way
/// through a 1000 s episode.
fn episode(video: &str, series: &str, n: u64, percent: f64, at: u64) -> Value {
    let body = with(checkpoint(video, "tv", percent * 10.0, at), "duration", json!(1000));
    with(with(body, "series_id", json!(series)), "episode", json!(n))
}

/// The grouped row of acct/A, each item as `video_id` (a record) or
/// `next <series> <n>` (next up).
async fn grouped(app: &TestApp) -> Vec<String> {
    let row = app.get("/playback/continue-watching?account_id=acct&profile_id=A&group=series").await;
    let row = json_of(row, StatusCode::OK).await;
    row["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| match item["next_episode"].as_u64() {
            Some(n) => format!("next {} {n}", item["series_id"].as_str().unwrap_or_default()),
            None => item["video_id"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

async fn history_page(app: &TestApp, limit: usize, cursor: Option<&str>) -> Value {
    let mut path = format!("/playback/history?account_id=acct&profile_id=A&limit={limit}");
    if let Some(cursor) = cursor {
        path.push_str(&format!("&cursor={cursor}"));
    }
    json_of(app.get(&path).await, StatusCode::OK).await
}

fn videos(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["video_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `series_id` and `episode` come together, persist across checkpoints
/// that leave them out, and come back on records.
#[tokio::test]
async fn a_title_keeps_its_series_until_a_checkpoint_names_another() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 60_000;
    let first = app.update_ok(&episode("S1E4", "show", 4, 10.0, t)).await;
    assert_eq!(
        (first["record"]["series_id"].clone(), first["record"]["episode"].clone()),
        (json!("show"), json!(4))
    );
    let plain =
        app.update_ok(&with(checkpoint("S1E4", "phone", 200.0, t + 1_000), "duration", json!(1000))).await;
    assert_eq!(
        (plain["record"]["series_id"].clone(), plain["record"]["episode"].clone()),
        (json!("show"), json!(4))
    );
    assert!(plain["record"].get("finished_at").is_none(), "{plain}");
    let resumed = app.resume("S1E4").await;
    assert_eq!(resumed["record"]["series_id"], "show");
    let moved = app.update_ok(&episode("S1E4", "box-set", 12, 30.0, t + 2_000)).await;
    assert_eq!(
        (moved["record"]["series_id"].clone(), moved["record"]["episode"].clone()),
        (json!("box-set"), json!(12))
    );

    let body = checkpoint("X", "tv", 1.0, t);
    for (field, bad) in [
        ("series_id", with(body.clone(), "episode", json!(3))),
        ("episode", with(body.clone(), "series_id", json!("show"))),
        ("series_id", with(with(body.clone(), "series_id", json!("a show")), "episode", json!(3))),
        ("episode", with(with(body.clone(), "series_id", json!("show")), "episode", json!(-1))),
        (
            "episode",
            with(with(body.clone(), "series_id", json!("show")), "episode", json!(2_147_483_648_u64)),
        ),
        ("episode", with(with(body.clone(), "series_id", json!("show")), "episode", json!(1.5))),
    ] {
        assert_error(
            app.post_json("/playback/update", &bad).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(field),
        )
        .await;
    }
    let mark = json!({"account_id": "acct", "profile_id": "A", "video_id": "X", "device_id": "tv",
                      "watched": true, "episode": 2});
    assert_error(
        app.post_json("/playback/watched", &mark).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("series_id"),
    )
    .await;
}

/// History: finished titles newest finish first, `finished_at` the first
/// finish, pages through `next_cursor` (null on the last), a mark as
/// unwatched or a rewatch takes a title out, bad parameters are named.
#[tokio::test]
async fn history_lists_finished_titles_in_cursor_pages() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 600_000;
    for (i, video) in ["A", "B", "C", "D", "E"].iter().enumerate() {
        let at = t + i as u64 * 1_000;
        app.update_ok(&with(checkpoint(video, "tv", 995.0, at), "duration", json!(1000))).await;
    }
    app.update_ok(&with(checkpoint("playing", "tv", 10.0, t + 9_000), "duration", json!(1000))).await;
    // Finished again at 97%, later: the finish time stays.
    let again =
        app.update_ok(&with(checkpoint("A", "phone", 970.0, t + 20_000), "duration", json!(1000))).await;
    assert_eq!(again["record"]["finished_at"], json!(t), "{again}");

    let first = history_page(&app, 2, None).await;
    assert_eq!(videos(&first), ["E", "D"]);
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let second = history_page(&app, 2, Some(&cursor)).await;
    assert_eq!(videos(&second), ["C", "B"]);
    let third = history_page(&app, 2, second["next_cursor"].as_str()).await;
    assert_eq!((videos(&third), third["next_cursor"].clone()), (vec!["A".to_owned()], Value::Null));
    let whole = history_page(&app, 5, None).await;
    assert_eq!((videos(&whole).len(), whole["next_cursor"].clone()), (5, Value::Null), "a full last page");
    let default =
        json_of(app.get("/playback/history?account_id=acct&profile_id=A").await, StatusCode::OK).await;
    assert_eq!(videos(&default), ["E", "D", "C", "B", "A"]);

    let unmark = json!({"account_id": "acct", "profile_id": "A", "video_id": "D", "device_id": "tv",
                        "watched": false, "updated_at": t + 30_000});
    json_of(app.post_json("/playback/watched", &unmark).await, StatusCode::OK).await;
    app.update_ok(&with(checkpoint("E", "tv", 100.0, t + 31_000), "duration", json!(1000))).await;
    assert_eq!(videos(&history_page(&app, 10, None).await), ["C", "B", "A"]);
    // Paging on from a cursor whose title has since left history still works.
    assert_eq!(videos(&history_page(&app, 10, Some(&cursor)).await), ["C", "B", "A"]);

    for (query, field) in [
        ("account_id=acct&profile_id=A&cursor=nonsense", "cursor"),
        ("account_id=acct&profile_id=A&cursor=h1.12.a%20b", "cursor"),
        ("account_id=acct&profile_id=A&limit=0", "limit"),
        ("account_id=acct&profile_id=A&limit=101", "limit"),
        ("account_id=acct", "profile_id"),
    ] {
        let answer = app.get(&format!("/playback/history?{query}")).await;
        assert_error(answer, StatusCode::BAD_REQUEST, "invalid_request", Some(field)).await;
    }
}

/// Paging through history while other titles finish: no title twice, and
/// every title finished before paging began and left alone is returned.
#[tokio::test]
async fn history_pages_neither_repeat_nor_skip_while_titles_finish() {
    let app = TestApp::spawn_with(|c| c.account_rate = 0).await;
    let t = now_ms() - 3_600_000;
    let before: Vec<String> = (0..40).map(|i| format!("old-{i:02}")).collect();
    for (i, video) in before.iter().enumerate() {
        let at = t + (i as u64 % 10) * 100;
        app.update_ok(&with(checkpoint(video, "tv", 1000.0, at), "duration", json!(1000))).await;
    }
    let finishing = async {
        for i in 0..40u64 {
            // On both sides of wherever the pager is.
            let at = if i % 2 == 0 { t + 50_000 + i } else { t + 20 + i * 30 };
            let body = with(checkpoint(&format!("new-{i:02}"), "tv", 1000.0, at), "duration", json!(1000));
            json_of(app.post_json("/playback/update", &body).await, StatusCode::OK).await;
        }
    };
    let paging = async {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = history_page(&app, 3, cursor.as_deref()).await;
            seen.extend(videos(&page));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return seen,
            }
        }
    };
    let ((), seen) = tokio::join!(finishing, paging);
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a title came back twice: {seen:?}");
    for video in &before {
        assert!(distinct.contains(video), "{video} was skipped: {seen:?}");
    }
}

/// Next up: a finished episode leads to the next; a rewatch of episode 4
/// leads to 5 whatever else is unwatched; an episode in progress is itself;
/// series and standalone titles follow their most recent activity; a mark
/// as watched from continue-watching puts next up in its place.
#[tokio::test]
async fn continue_watching_grouped_by_series_shows_next_up() {
    let app = TestApp::spawn().await;
    let t = now_ms() - 600_000;
    app.update_ok(&episode("a-1", "a", 1, 99.5, t)).await;
    assert_eq!(grouped(&app).await, ["next a 2"]);

    for n in 1..=9 {
        app.update_ok(&episode(&format!("b-{n}"), "b", n, if n < 5 { 99.5 } else { 0.0 }, t + 100 + n)).await;
    }
    // Episodes 5 to 9 were opened but not watched; 4 is watched again.
    app.update_ok(&episode("b-4", "b", 4, 50.0, t + 1_000)).await;
    assert_eq!(grouped(&app).await, ["b-4", "next a 2"], "an episode in progress is itself");
    let done = app.update_ok(&episode("b-4", "b", 4, 99.9, t + 2_000)).await;
    assert_eq!(done["record"]["finished_at"], json!(t + 2_000), "a rewatch finishes again, with a new time");
    app.update_ok(&with(checkpoint("film", "tv", 300.0, t + 1_500), "duration", json!(6000))).await;
    assert_eq!(grouped(&app).await, ["next b 5", "film", "next a 2"]);

    // Interleaved: series a moves ahead with an episode in progress.
    app.update_ok(&episode("a-2", "a", 2, 20.0, t + 3_000)).await;
    assert_eq!(grouped(&app).await, ["a-2", "next b 5", "film"]);
    let limited =
        app.get("/playback/continue-watching?account_id=acct&profile_id=A&group=series&limit=2").await;
    assert_eq!(json_of(limited, StatusCode::OK).await["items"].as_array().map(Vec::len), Some(2));

    // Marked watched from continue-watching: next up takes its place.
    let mark = json!({"account_id": "acct", "profile_id": "A", "video_id": "a-2", "device_id": "phone",
                      "watched": true, "updated_at": t + 4_000});
    let marked = json_of(app.post_json("/playback/watched", &mark).await, StatusCode::OK).await;
    assert_eq!(
        (marked["record"]["series_id"].clone(), marked["record"]["finished_at"].clone()),
        (json!("a"), json!(t + 4_000))
    );
    assert_eq!(grouped(&app).await, ["next a 3", "next b 5", "film"]);
    let next = json_of(
        app.get("/playback/continue-watching?account_id=acct&profile_id=A&group=series&limit=1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        next["items"][0],
        json!({"series_id": "a", "next_episode": 3, "after": marked["record"].clone()}),
        "next up names what it follows"
    );
    // Hidden from the row: the series leaves it.
    let hide = json!({"account_id": "acct", "profile_id": "A", "video_id": "a-2"});
    assert_eq!(app.post_json("/playback/hide", &hide).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(grouped(&app).await, ["next b 5", "film"]);

    // Without `group` nothing changes: every title in progress, episodes too.
    let plain =
        json_of(app.get("/playback/continue-watching?account_id=acct&profile_id=A").await, StatusCode::OK)
            .await;
    let plain: Vec<&str> =
        plain["items"].as_array().expect("items").iter().filter_map(|r| r["video_id"].as_str()).collect();
    assert_eq!(plain, ["film", "b-9", "b-8", "b-7", "b-6", "b-5"]);

    let bad = app.get("/playback/continue-watching?account_id=acct&profile_id=A&group=season").await;
    assert_error(bad, StatusCode::BAD_REQUEST, "invalid_request", Some("group")).await;
}

/// The cursor pattern /openapi.json declares is the one core parses by.
#[tokio::test]
async fn the_declared_cursor_pattern_is_the_one_the_server_parses() {
    let app = TestApp::spawn().await;
    let doc = json_of(app.get("/openapi.json").await, StatusCode::OK).await;
    let params = doc["paths"]["/playback/history"]["get"]["parameters"].as_array().expect("parameters");
    let cursor = params.iter().find(|p| p["name"] == "cursor").expect("a cursor parameter");
    assert_eq!(cursor["schema"]["pattern"], json!(playmark_core::library::CURSOR_PATTERN));
}
