//! The client's wire types, generated from the protocol types here with ts-rs (a
//! dev-dependency: the wasm build never sees it) into `packages/client/src/wire.ts`. The test
//! fails when the committed file differs from what the types generate;
//! `UPDATE_WIRE_TYPES=1 cargo test -p edge-relay --lib wire_types` rewrites it.

use std::path::PathBuf;

use ts_rs::{Config, TS};

use crate::auth::User;
use crate::error::ErrorCode;
use crate::feed::RoomUpdate;
use crate::occupancy::Counts;
use crate::protocol::{
    ClientFrame, MessageFrame, Publish, ReadMarker, Receipt, ServerFrame, Welcome,
};

const HEADER: &str = "\
// The relay's wire types, generated from its Rust protocol types (src/wire_types.rs, ts-rs):
// do not edit. `UPDATE_WIRE_TYPES=1 cargo test -p edge-relay --lib wire_types` rewrites this
// file; that test fails when it differs from what the Rust types generate.
";

/// Frames whose shape ts-rs cannot derive from the Rust side, mapped by hand (the reasons are
/// in the comments written with them).
const HAND_MAPPED: &str = r#"
/** Presence frames: the Serialize impl of `ServerFrame` (Join, Leave) adds a constant `event` field, which ts-rs cannot express. */
export type PresenceFrame = { type: "presence", event: "join", user: User, } | { type: "presence", event: "leave", user: User, last_seen: string, };

/** The error frame: built as JSON by `RelayError::to_frame`, with no Rust struct to derive from. */
export type ErrorFrame = { type: "error", code: ErrorCode, message: string, cid?: string, };

/** The `edit` and `delete` client frames: one Rust variant (`ClientFrame::Change`) parsed from two tags. */
export type ChangeFrame = { type: "edit", cid: string, seq: number, data: unknown, } | { type: "delete", cid: string, seq: number, };

/** Every frame the relay sends on a socket (with `batch=1`, several arrive as one JSON array). */
export type RelayFrame = ServerFrame | PresenceFrame | MessageFrame | ErrorFrame | { type: "pong", };
"#;

/// The file's contents: each type's declaration, exported, then the hand-mapped frames.
fn generate() -> String {
    // Seqs and unix seconds are JSON numbers, which JavaScript reads as numbers (all below 2^53).
    let cfg = Config::new().with_large_int("number");
    let declarations = [
        User::decl(&cfg),
        ErrorCode::decl(&cfg),
        MessageFrame::decl(&cfg),
        ReadMarker::decl(&cfg),
        Receipt::decl(&cfg),
        Counts::decl(&cfg),
        Welcome::decl(&cfg),
        ServerFrame::decl(&cfg),
        Publish::decl(&cfg),
        ClientFrame::decl(&cfg),
        RoomUpdate::decl(&cfg),
    ];
    let mut out = String::from(HEADER);
    for declaration in declarations {
        out.push_str("\nexport ");
        out.push_str(&declaration);
        out.push('\n');
    }
    out.push_str(HAND_MAPPED);
    out
}

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packages/client/src/wire.ts")
}

#[test]
fn the_committed_wire_types_are_the_generated_ones() {
    let generated = generate();
    let path = committed_path();
    if std::env::var("UPDATE_WIRE_TYPES").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).expect("packages/client/src/wire.ts is writable");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "packages/client/src/wire.ts differs from the Rust protocol types: run \
         UPDATE_WIRE_TYPES=1 cargo test -p edge-relay --lib wire_types and commit it.\n\
         generated:\n{generated}"
    );
}

/// A frame as the relay writes it, checked against the generated file: its `type` (and a
/// presence frame's `event`) appear as tags there, and each of its keys as a field.
fn assert_described(wire: &str, frame: &str) {
    let value: serde_json::Value = serde_json::from_str(frame).expect(frame);
    let object = value.as_object().expect(frame);
    let tag = object["type"].as_str().expect(frame);
    assert!(
        wire.contains(&format!("type: \"{tag}\""))
            || wire.contains(&format!("\"type\": \"{tag}\"")),
        "no type {tag:?} in wire.ts for {frame}"
    );
    if let Some(event) = object
        .get("event")
        .and_then(|e| e.as_str())
        .filter(|_| tag == "presence")
    {
        assert!(wire.contains(&format!("event: \"{event}\"")), "{frame}");
    }
    for key in object.keys() {
        assert!(
            wire.contains(&format!(" {key}: "))
                || wire.contains(&format!(" {key}?: "))
                || wire.contains(&format!("\"{key}\": ")),
            "no field {key:?} in wire.ts for {frame}"
        );
    }
}

#[test]
fn every_frame_the_relay_writes_is_described() {
    use crate::error::RelayError;
    use crate::protocol::{self, PONG_FRAME};
    let wire = generate();
    let user = User {
        id: "ann".into(),
        name: Some("Ann".into()),
        role: Some("admin".into()),
    };
    let marker = ReadMarker {
        user: user.clone(),
        seq: 3,
        at: "2026-12-04T10:00:00.000Z".into(),
    };
    let receipt = Receipt {
        seq: 3,
        id: "m3".into(),
        ts: "2026-12-04T10:00:00.000Z".into(),
        duplicate: false,
    };
    let presence = [&user];
    let reads = [marker.clone()];
    let welcome = Welcome {
        room: "chat:1",
        conn_id: "c1",
        user: &user,
        seq: 3,
        presence: &presence,
        occupancy: None,
        reads: &reads,
    };
    let counts_welcome = Welcome {
        room: "chat:1",
        conn_id: "c2",
        user: &user,
        seq: 3,
        presence: &[],
        occupancy: Some(Counts::new(120, 101)),
        reads: &reads,
    };
    let data = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    let message = MessageFrame {
        kind: "message",
        room: "chat:1",
        seq: 3,
        id: "m3",
        event: "message",
        data: &data,
        from: Some(&user),
        cid: Some("c1"),
        ts: "2026-12-04T10:00:00.000Z",
    };
    let frames = [
        protocol::welcome_frame(&welcome),
        protocol::welcome_frame(&counts_welcome),
        protocol::occupancy_frame(Counts::new(120, 101)),
        protocol::ack_frame("c1", &receipt),
        protocol::typing_frame(&user, true),
        protocol::read_frame(&marker),
        protocol::join_frame(&user),
        protocol::leave_frame(&user, "2026-12-04T10:00:00.000Z"),
        protocol::synced_frame(3),
        protocol::reset_frame(3),
        protocol::auth_frame(1_800_000_000),
        serde_json::to_string(&message).unwrap(),
        RelayError::bad_request("no").to_frame(Some("c1")),
        PONG_FRAME.to_string(),
    ];
    for frame in &frames {
        assert_described(&wire, frame);
    }
    // The client frames `parse_client_frame` accepts are described too.
    for frame in [
        r#"{"type":"publish","cid":"c1","event":"note","data":{}}"#,
        r#"{"type":"typing","active":true}"#,
        r#"{"type":"read","seq":3}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"auth","token":"a.b.c"}"#,
        r#"{"type":"edit","cid":"e1","seq":3,"data":{}}"#,
        r#"{"type":"delete","cid":"d1","seq":3}"#,
    ] {
        protocol::parse_client_frame(frame).expect(frame);
        assert_described(&wire, frame);
    }
}
