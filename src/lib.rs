//! edge-relay: a realtime relay at the edge, as a Cloudflare Worker.
//!
//! Layout (pure modules first; they never touch the Workers runtime and are tested natively):
//! - [`error`]: the one error type, mapped to HTTP statuses, error bodies and close codes.
//! - [`router`]: method + path to a [`router::Route`]; [`room_name`]: room name rules;
//!   [`url_parts`]: a request URL's raw path and decoded query; [`request_head`]: what the
//!   Worker decides from a request's head (CORS, refusal form, connect, credentials).
//! - [`cors`]: which browser origins may call the user routes, and their CORS headers.
//! - [`auth`]: token lookup, JWT verification (HS256, RS256, ES256, EdDSA), room grants,
//!   constant-time secret checks; [`jwks`]: identity-provider key sets; [`jwks_refresh`]: when
//!   a fetched key set is fetched again.
//! - [`header_json`]: JSON made ASCII-only for internal header values.
//! - [`protocol`]: the v1 wire frames and their limits; `wire_types` (tests only) generates
//!   the browser client's TypeScript wire types from them (`packages/client/src/wire.ts`).
//! - [`room_api`]: the typed calls between the Worker, the rooms and the directory, and their
//!   one encoding into internal HTTP requests.
//! - [`room`]: the room core (sequencing, idempotency, resume) over a storage trait.
//! - [`room_machine`]: the room's state and policy, events in, effects out; [`room_sql`]: its
//!   SQLite; [`room_archive`], [`room_feeds`], [`room_bans`], [`room_events`]: its archive runs,
//!   members' feeds, bans and outgoing event batches over that SQLite.
//! - [`bans`]: a ban's body, when it holds, the refusal.
//! - [`replay`]: a resume's replay in pages, checked to be gapless.
//! - [`presence`]: who is online per user, deferred leaves, typing state; [`occupancy`]:
//!   presence in big rooms (counts instead of joins and leaves), the paged presence list.
//! - [`rate_limit`]: token buckets and strikes for publishes and typing.
//! - [`dev_token`]: the development token route's request rules.
//! - [`feed`]: room members and the coalesced `room.update` feed of personal rooms.
//! - [`config`]: limits read from the Worker's variables.
//! - [`paging`]: history query parameters and page assembly.
//! - [`archive_rows`]: a batch of messages as JSON rows for one D1 insert per chunk.
//! - [`archive_schedule`]: when a room writes behind to D1 (delay, backoff while D1 fails).
//! - [`random_ids`]: connection and message ids from pooled secure random bytes.
//! - [`stats`]: room reports and the stats answers; [`directory_shards`]: which directory
//!   shard keeps a room's reports, and the shards' answers merged.
//! - [`site`]: the demo page and the browser client, embedded in the Worker.
//! - [`webhook`]: backend broadcast bodies and webhook credentials (bearer, signature).
//! - [`events`]: outgoing events to a backend: settings, event JSON, batches, retries, signature.
//! - [`events_outbox`]: the room's outbox of events in its SQLite.
//! - [`publish_hook`]: the before-publish hook: settings, call body, answers, pending queue.
//! - [`edits`]: editing and deleting messages: requests, who may, records, current versions;
//!   [`room_edits`]: their state in the room's SQLite.
//! - `runtime` (wasm only): the Worker entry, the `Room` Durable Object and the D1 archive.

pub mod archive_rows;
pub mod archive_schedule;
pub mod auth;
pub mod bans;
pub mod cid;
pub mod config;
pub mod cors;
pub mod dev_token;
pub mod directory_shards;
pub mod disconnect;
pub mod edits;
pub mod error;
pub mod events;
pub mod events_outbox;
pub mod feed;
pub mod group_commit;
pub mod header_json;
pub mod jwks;
pub mod jwks_refresh;
pub mod occupancy;
pub mod paging;
pub mod presence;
pub mod protocol;
pub mod publish_hook;
pub mod random_ids;
pub mod rate_limit;
pub mod replay;
pub mod request_head;
pub mod room;
pub mod room_api;
pub mod room_archive;
pub mod room_bans;
pub mod room_edits;
pub mod room_events;
pub mod room_feeds;
pub mod room_machine;
pub mod room_name;
pub mod room_prefixes;
pub mod room_sql;
#[cfg(test)]
mod room_test_support;
pub mod room_unread;
pub mod router;
pub mod shard_fanout;
pub mod signed_target;
pub mod site;
pub mod sql;
pub mod stats;
pub mod url_parts;
pub mod webhook;
#[cfg(test)]
mod wire_types;

#[cfg(target_arch = "wasm32")]
mod runtime;
