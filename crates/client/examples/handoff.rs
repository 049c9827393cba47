//! A TV-to-phone handoff with the Rust SDK. Run against a playmark:
//!
//!     cargo run -p playmark-client --example handoff -- http://127.0.0.1:8080

use playmark_client::{Client, Player, TitleKey};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), playmark_client::Error> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let client = Client::new(url)?;
    let key = TitleKey::new("acct-123", "A", "sintel");

    let mut tv = Player::new(client.clone(), key.clone(), "tv-livingroom").with_duration(888.0);
    let start = tv.resume(None).await?;
    println!("tv: {} at {} s ({})", start.action, start.position, start.reason);
    tv.play(start.position.as_secs()).await?;
    for second in 1..=95 {
        let report = tv.tick(f64::from(second)).await?;
        for (position, event, outcome) in report.sent {
            println!("tv: sent {event} at {position} s -> {outcome}");
        }
    }
    let paused = tv.pause(95.5).await?;
    println!("tv: sent {:?}", paused.sent);

    let mut phone = Player::new(client, key, "phone-anna").with_duration(888.0);
    let here = phone.resume(None).await?;
    println!(
        "phone: {} at {} s, watched on {}",
        here.action,
        here.position,
        here.device_id.unwrap_or_default()
    );
    Ok(())
}
