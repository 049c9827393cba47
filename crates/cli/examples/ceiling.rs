//! The ceiling for `scripts/bench`: the smallest axum server that answers a
//! fixed small JSON body on every route. Whatever it serves per second is
//! the most any HTTP service can serve on this machine with this client.
//!
//!     cargo run --release -p playmark --example ceiling -- 127.0.0.1:18500

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;

/// The same allocator as `playmark`, so the comparison is like for like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BODY: &str = r#"{"found":true,"position":1200.5,"action":"resume","reason":"in_progress"}"#;

async fn answer() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], BODY)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18500".into());
    let app = Router::new().fallback(answer);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
