//! edge-relay: a realtime relay at the edge, as a Cloudflare Worker.
//!
//! Layout (pure modules first; they never touch the Workers runtime and are tested natively):
//! - [`error`]: the one error type, mapped to HTTP statuses, error bodies and close codes.
//! - [`router`]: method + path to a [`router::Route`]; [`room_name`]: room name rules.
//! - [`auth`]: token lookup, HS256 JWT verification, room grants, constant-time secret checks.
//! - [`protocol`]: the v1 wire frames and their limits.
//! - [`room`]: the room core (sequencing, idempotency, resume) over a storage trait.
//! - [`presence`]: who is online per user, deferred leaves, typing state.
//! - [`rate_limit`]: token buckets and strikes for publishes and typing.
//! - [`config`]: limits read from the Worker's variables.
//! - [`paging`]: history query parameters and page assembly.
//! - `runtime` (wasm only): the Worker entry, the `Room` Durable Object and the D1 archive.

pub mod auth;
pub mod config;
pub mod error;
pub mod paging;
pub mod presence;
pub mod protocol;
pub mod rate_limit;
pub mod room;
pub mod room_name;
pub mod router;

#[cfg(target_arch = "wasm32")]
mod runtime;
