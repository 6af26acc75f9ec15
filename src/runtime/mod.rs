//! The Workers runtime shells: the fetch entry, the `Room` Durable Object, storage and archive.

mod archive;
mod http;
mod room_object;
mod sql_store;
mod worker_entry;

use serde::{Deserialize, Serialize};

use crate::auth::User;

/// Who is calling a room, as the Worker verified it. It travels in an internal header of the
/// Worker-to-object request, which only the Worker can make: clients never reach the object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Caller {
    pub user: User,
    /// Token expiry (unix seconds); the socket is closed with 4001 once it has passed.
    pub exp: i64,
}

/// Internal headers of Worker-to-room requests.
pub const ROOM_HEADER: &str = "x-relay-room";
pub const CALLER_HEADER: &str = "x-relay-caller";
pub const SUBPROTOCOL_HEADER: &str = "x-relay-subprotocol";

pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}
