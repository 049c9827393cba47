//! The demo page and the JavaScript SDK, compiled into the binary: no CDN,
//! no files to ship next to it.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

const INDEX: &str = include_str!("../../assets/index.html");
const DEMO_JS: &str = include_str!("../../assets/demo.js");
const DEMO_CSS: &str = include_str!("../../assets/demo.css");
const SDK_JS: &str = include_str!("../../../../sdk/js/playmark.js");
const SDK_TYPES: &str = include_str!("../../../../sdk/js/playmark.d.ts");

const JS: &str = "text/javascript; charset=utf-8";

/// The static routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { serve("text/html; charset=utf-8", INDEX) }))
        .route("/demo.js", get(|| async { serve(JS, DEMO_JS) }))
        .route("/demo.css", get(|| async { serve("text/css; charset=utf-8", DEMO_CSS) }))
        .route("/sdk/playmark.js", get(|| async { serve(JS, SDK_JS) }))
        .route(
            "/sdk/playmark.d.ts",
            get(|| async { serve("application/typescript; charset=utf-8", SDK_TYPES) }),
        )
}

fn serve(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}
