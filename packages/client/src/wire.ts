// The relay's wire types, generated from its Rust protocol types (src/wire_types.rs, ts-rs):
// do not edit. `UPDATE_WIRE_TYPES=1 cargo test -p edge-relay --lib wire_types` rewrites this
// file; that test fails when it differs from what the Rust types generate.

export type User = { id: string, name?: string, role?: string, };

export type ErrorCode = "bad_request" | "unauthorized" | "forbidden" | "not_found" | "method_not_allowed" | "too_large" | "upgrade_required" | "rate_limited" | "rejected" | "internal";

export type MessageFrame = { type: "message", room: string, seq: number, id: string, event: string, data: unknown, from: User | null, cid?: string, ts: string, };

export type ReadMarker = { user: User, seq: number, at: string, };

export type Receipt = { seq: number, id: string, ts: string, duplicate: boolean, };

export type Counts = { connections: number, users: number, };

export type Welcome = { room: string, conn_id: string, user: User, seq: number, presence?: Array<User>, occupancy?: Counts, reads: Array<ReadMarker>, };

export type ServerFrame = { "type": "welcome" } & Welcome | { "type": "ack", cid: string, seq: number, id: string, ts: string, duplicate: boolean, } | { "type": "typing", user: User, active: boolean, } | { "type": "read" } & ReadMarker | { "type": "synced", seq: number, } | { "type": "reset", seq: number, } | { "type": "auth", exp: number, } | { "type": "occupancy" } & Counts;

export type Publish = { cid?: string, event?: string, data: unknown, };

export type ClientFrame = { "type": "publish" } & Publish | { "type": "typing", active: boolean, } | { "type": "read", seq: number, } | { "type": "ping" } | { "type": "auth", token: string, };

export type RoomUpdate = { room: string, seq: number, event: string, from: User | null, preview: string | null, unread: number, };

/** Presence frames: the Serialize impl of `ServerFrame` (Join, Leave) adds a constant `event` field, which ts-rs cannot express. */
export type PresenceFrame = { type: "presence", event: "join", user: User, } | { type: "presence", event: "leave", user: User, last_seen: string, };

/** The error frame: built as JSON by `RelayError::to_frame`, with no Rust struct to derive from. */
export type ErrorFrame = { type: "error", code: ErrorCode, message: string, cid?: string, };

/** The `edit` and `delete` client frames: one Rust variant (`ClientFrame::Change`) parsed from two tags. */
export type ChangeFrame = { type: "edit", cid: string, seq: number, data: unknown, } | { type: "delete", cid: string, seq: number, };

/** Every frame the relay sends on a socket (with `batch=1`, several arrive as one JSON array). */
export type RelayFrame = ServerFrame | PresenceFrame | MessageFrame | ErrorFrame | { type: "pong", };
