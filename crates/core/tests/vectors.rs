//! The shared player-policy vectors (`vectors/player-policy.json`), which
//! every SDK runs too, so all clients behave identically.

use playmark_core::{
    CheckpointConfig, CheckpointPolicy, DeviceId, Duration, HandoffConfig, PlayerEvent, PlayerInput,
    Position, Progress, ResumePolicy, Timestamp,
};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../../../vectors/player-policy.json")).expect("vectors are JSON")
}

fn u(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or_else(|| panic!("{field} missing in {v}"))
}

fn input(v: &Value) -> PlayerInput {
    let now = u(v, "now");
    match v["type"].as_str().expect("type") {
        "play" => PlayerInput::Play { now, position: u(v, "position") },
        "tick" => PlayerInput::Tick { now, position: u(v, "position") },
        "pause" => PlayerInput::Pause { now, position: u(v, "position") },
        "seek" => PlayerInput::Seek { now, position: u(v, "position") },
        "background" => PlayerInput::Background { now, position: u(v, "position") },
        "foreground" => PlayerInput::Foreground { now },
        "stop" => PlayerInput::Stop { now, position: u(v, "position") },
        "offline" => PlayerInput::Offline { now },
        "online" => PlayerInput::Online { now },
        "sent" => PlayerInput::Sent { now, ok: v["ok"].as_bool().expect("ok") },
        other => panic!("unknown input {other}"),
    }
}

#[test]
fn checkpoint_policy_vectors() {
    let all = vectors();
    let cases = all["checkpoint_policy"].as_array().expect("cases");
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let config = CheckpointConfig {
            delta_ms: u(&case["config"], "delta_ms"),
            max_interval_ms: u(&case["config"], "max_interval_ms"),
        };
        let mut policy = CheckpointPolicy::new(config);
        for (i, step) in case["steps"].as_array().expect("steps").iter().enumerate() {
            let got = policy
                .handle(input(&step["input"]))
                .ok()
                .map(|s| serde_json::json!({"position": s.position, "event": s.event.as_str(), "at": s.at}));
            let want = if step["send"].is_null() { None } else { Some(step["send"].clone()) };
            assert_eq!(got, want, "{name}: step {i} ({})", step["input"]);
        }
    }
}

#[test]
fn handoff_vectors() {
    let all = vectors();
    let rp = &all["resume_policy"];
    let policy = ResumePolicy {
        min_resume_percent: rp["min_resume_percent"].as_f64().expect("number"),
        max_resume_percent: rp["max_resume_percent"].as_f64().expect("number"),
        min_resume_duration_ms: u(rp, "min_resume_duration_ms"),
    };
    let hc = &all["handoff_config"];
    let handoff = HandoffConfig {
        small_regression_ms: u(hc, "small_regression_ms"),
        prompt_backward_ms: u(hc, "prompt_backward_ms"),
    };
    for case in all["handoff"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let record = (!case["record"].is_null()).then(|| {
            let r = &case["record"];
            Progress {
                updated_at: Timestamp::from_millis(u(r, "updated_at")),
                device_id: DeviceId::parse(r["device_id"].as_str().expect("device")).expect("valid"),
                position: Position::from_millis(u(r, "position_ms")).expect("valid"),
                duration: r["duration_ms"].as_u64().map(|d| Duration::from_millis(d).expect("valid")),
                hidden: false,
                finished: false,
                series: None,
                finished_at: None,
            }
        });
        let local = case["local_ms"].as_u64().map(|ms| Position::from_millis(ms).expect("valid"));
        let got = handoff.decide(&policy, record.as_ref(), local);
        let expect = &case["expect"];
        assert_eq!(got.decision.action.as_str(), expect["action"], "{name}");
        assert_eq!(got.decision.position.as_millis(), u(expect, "position_ms"), "{name}");
        assert_eq!(got.decision.reason.as_str(), expect["reason"], "{name}");
        assert_eq!(got.alternative.map(Position::as_millis), expect["alternative_ms"].as_u64(), "{name}");
    }
}

#[test]
fn every_player_event_round_trips_through_its_wire_name() {
    for e in PlayerEvent::ALL {
        assert_eq!(PlayerEvent::parse(e.as_str()), Some(*e));
    }
}
