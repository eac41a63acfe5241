//! Wire compatibility: frames written by protocol v1 must keep decoding (see the
//! evolution rules in `proto.rs`). Never edit the fixtures; add new ones.

use shared::proto::{ToControl, ToGateway};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/v1/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn v1_control_frames_decode() {
    for line in fixture("to_gateway.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let msg: ToGateway = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let again: ToGateway =
            serde_json::from_str(&serde_json::to_string(&msg).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(msg, again);
    }
}

#[test]
fn v1_gateway_frames_decode() {
    for line in fixture("to_control.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let msg: ToControl = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let again: ToControl =
            serde_json::from_str(&serde_json::to_string(&msg).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(msg, again);
    }
}

#[test]
fn frames_with_unknown_fields_from_a_newer_peer_still_decode() {
    let newer = r#"{"type":"ack","epoch":1,"version":2,"table_hash":3,"added_in_v1_1":"x"}"#;
    assert!(serde_json::from_str::<ToControl>(newer).is_ok());
}

#[test]
fn unknown_message_types_from_a_newer_peer_decode_as_unknown() {
    let to_control = r#"{"type":"stats_v2","requests":5}"#;
    assert_eq!(
        serde_json::from_str::<ToControl>(to_control).ok(),
        Some(ToControl::Unknown)
    );
    let to_gateway = r#"{"type":"drain","deadline_ms":100}"#;
    assert_eq!(
        serde_json::from_str::<ToGateway>(to_gateway).ok(),
        Some(ToGateway::Unknown)
    );
}
