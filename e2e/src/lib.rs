//! Shared helpers for the edge-relay end-to-end suite (package `relay-e2e`).
//!
//! The suite runs against a relay that is already running (for example `wrangler dev`
//! started by the project's scripts) and checks the public wire contract v1
//! (`PROTOCOL.md`). Layout, one module per concern:
//!
//! - [`config`]: `RELAY_URL`, `JWT_SECRET`, `WEBHOOK_SECRET`, `ADMIN_SECRET` (and
//!   `ALLOWED_ORIGINS` for the CORS tests) from the environment; a missing one fails the
//!   test with a clear message, never skips it.
//! - [`token`]: minting HS256 user tokens and deliberately broken ones.
//! - [`http`]: a small HTTP helper (reqwest) returning status + parsed JSON body.
//! - [`ws`]: a WebSocket [`Client`] with bounded waits and an in-order backlog.
//! - [`shape`]: assertions on the exact shapes of frames, messages and errors.
//!
//! Every test uses its own room ([`unique_room`]) and its own users ([`unique_id`]), so the
//! test binaries can run their tests in parallel against one server. Every wait is bounded.

pub mod backend;
pub mod config;
pub mod http;
pub mod shape;
pub mod signing;
pub mod token;
pub mod ws;

pub use config::{
    admin_secret, allowed_origin, first_prefix_limit, jwt_secret, members_only_prefix, relay_url,
    webhook_secret, ws_url,
};
pub use http::{HttpResponse, ReqAuth};
pub use shape::*;
pub use token::{token, BadToken, TokenBuilder, User};
pub use ws::{Client, ConnectError, Incoming, Via};

use std::time::Duration;

/// Default bound for waiting on one frame or one response.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a test waits to conclude that something did *not* arrive.
pub const SILENCE: Duration = Duration::from_millis(1000);

/// A random lowercase hex suffix (64 bits).
pub fn random_suffix() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// A room name unique to this test run, e.g. `e2e:ws:1f0c...`. Valid per the contract
/// (no whitespace, no `/`, `?`, `#`, well under 128 bytes).
pub fn unique_room(prefix: &str) -> String {
    format!("{prefix}:{}", random_suffix())
}

/// A user id (`sub`) unique to this test run, e.g. `alice-1f0c...`.
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}-{}", random_suffix())
}

/// Percent-encodes one path segment (a room name). Unreserved characters and `:` stay as they
/// are (`:` is legal in a path segment and the usual spelling of `city:x` rooms); everything
/// else, including every non-ASCII byte, is encoded.
pub fn encode_segment(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b':');
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Percent-encodes a query parameter value.
pub fn encode_query(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `/v1/rooms/{room}/{tail}` with the room percent-encoded.
pub fn room_path(room: &str, tail: &str) -> String {
    format!("/v1/rooms/{}/{tail}", encode_segment(room))
}
