//! Properties of the checkpoint policy, and its write reduction
//! (docs/design.md#scale).

use playmark_core::{CheckpointConfig, CheckpointPolicy, PlayerInput, Skip};
use proptest::prelude::*;

fn input() -> impl Strategy<Value = (u8, u64, bool)> {
    (0u8..10, 0u64..400_000, any::<bool>())
}

fn to_input(kind: u8, now: u64, position: u64, ok: bool) -> PlayerInput {
    match kind {
        0 => PlayerInput::Play { now, position },
        1..=3 => PlayerInput::Tick { now, position },
        4 => PlayerInput::Pause { now, position },
        5 => PlayerInput::Seek { now, position },
        6 => PlayerInput::Background { now, position },
        7 => PlayerInput::Stop { now, position },
        8 => {
            if ok {
                PlayerInput::Online { now }
            } else {
                PlayerInput::Offline { now }
            }
        }
        _ => PlayerInput::Sent { now, ok },
    }
}

proptest! {
    /// Whatever happens, at most one send is in flight, and nothing is sent
    /// while offline.
    #[test]
    fn never_two_in_flight_and_nothing_sent_offline(steps in prop::collection::vec(input(), 1..200)) {
        let mut policy = CheckpointPolicy::new(CheckpointConfig::default());
        let (mut in_flight, mut online) = (0u32, true);
        for (i, (kind, position, ok)) in steps.into_iter().enumerate() {
            let now = i as u64 * 1_000;
            let input = to_input(kind, now, position, ok);
            match input {
                PlayerInput::Sent { .. } => in_flight = in_flight.saturating_sub(1),
                PlayerInput::Offline { .. } => online = false,
                PlayerInput::Online { .. } => online = true,
                _ => {}
            }
            if let Ok(send) = policy.handle(input) {
                prop_assert!(online, "sent while offline");
                prop_assert!(send.at <= now, "a checkpoint from the future");
                in_flight += 1;
            }
            prop_assert!(in_flight <= 1, "two sends in flight");
        }
    }

    /// While playing and connected, with every send acknowledged, the last
    /// position sent is never more than the delta behind the player.
    #[test]
    fn the_resume_point_is_never_more_than_the_delta_behind(
        delta_s in 15u64..=30,
        seconds in 60u64..3_600,
    ) {
        let config = CheckpointConfig { delta_ms: delta_s * 1_000, max_interval_ms: 60_000 };
        let mut policy = CheckpointPolicy::new(config);
        let _ = policy.handle(PlayerInput::Play { now: 0, position: 0 });
        let mut last_sent = 0;
        for s in 1..=seconds {
            let position = s * 1_000;
            if let Ok(send) = policy.handle(PlayerInput::Tick { now: position, position }) {
                last_sent = send.position;
                let _ = policy.handle(PlayerInput::Sent { now: position, ok: true });
            }
            prop_assert!(position - last_sent < config.delta_ms, "{} ms behind at {position}", position - last_sent);
        }
    }
}

/// A 30-minute session as docs/design.md#scale counts it: the naive client sends
/// every 10 s for the whole session (180 writes); the policy sends on moves
/// of 30 s, pauses, the seek and the stop.
#[test]
fn smart_checkpointing_sends_at_least_3x_fewer_writes_than_every_10_seconds() {
    let config = CheckpointConfig::default();
    let mut policy = CheckpointPolicy::new(config);
    let (mut sent, mut position, mut playing) = (0u32, 600_000u64, false);
    let mut last_sent = position;
    let send = |policy: &mut CheckpointPolicy, input, now: u64, sent: &mut u32, last_sent: &mut u64| {
        if let Ok(s) = policy.handle(input) {
            *sent += 1;
            *last_sent = s.position;
            let _ = policy.handle(PlayerInput::Sent { now, ok: true });
        }
    };
    for second in 0..=1_800u64 {
        let now = second * 1_000;
        match second {
            0 => {
                playing = true;
                send(&mut policy, PlayerInput::Play { now, position }, now, &mut sent, &mut last_sent);
            }
            600 => {
                playing = false;
                send(&mut policy, PlayerInput::Pause { now, position }, now, &mut sent, &mut last_sent);
            }
            780 => {
                playing = true;
                send(&mut policy, PlayerInput::Play { now, position }, now, &mut sent, &mut last_sent);
            }
            1_200 => {
                position += 120_000;
                send(&mut policy, PlayerInput::Seek { now, position }, now, &mut sent, &mut last_sent);
            }
            1_680 => {
                playing = false;
                send(&mut policy, PlayerInput::Stop { now, position }, now, &mut sent, &mut last_sent);
            }
            _ if playing => {
                position += 1_000;
                send(&mut policy, PlayerInput::Tick { now, position }, now, &mut sent, &mut last_sent);
                assert!(
                    position - last_sent < config.delta_ms,
                    "resume point {} ms behind",
                    position - last_sent
                );
            }
            _ => assert_eq!(policy.handle(PlayerInput::Tick { now, position }), Err(Skip::NotPlaying)),
        }
    }
    let naive = 1_800 / 10;
    eprintln!(
        "30-minute session: smart {sent} writes, every-10-s {naive} writes, {:.1}x fewer",
        f64::from(naive) / f64::from(sent)
    );
    assert!(sent * 3 <= naive, "smart sent {sent}, naive {naive}: less than 3x fewer");
}
