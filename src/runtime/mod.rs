//! The Workers runtime shells: the fetch entry, the `Room` Durable Object, storage and archive.

mod archive;
mod directory;
mod fanout;
mod http;
mod room_backend;
mod room_object;
mod sql_store;
mod worker_entry;

use serde::{Deserialize, Serialize};
use worker::{Env, Headers, Method, Request, RequestInit, Response, Url};

use crate::auth::User;
use crate::error::{RelayError, RelayResult};

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

pub fn internal(context: &'static str) -> impl Fn(worker::Error) -> RelayError {
    move |err| {
        worker::console_error!("{context}: {err}");
        RelayError::internal()
    }
}

/// Header values must be visible ASCII: room names may be any Unicode, so they travel encoded.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:*@!$&'()+,;=".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Headers naming the room of a Worker-to-room (or room-to-room) request.
pub fn room_headers(room: &str) -> RelayResult<Headers> {
    let headers = Headers::new();
    headers
        .set(ROOM_HEADER, &percent_encode(room))
        .map_err(internal("headers"))?;
    Ok(headers)
}

/// Sends a request to the room's Durable Object.
pub async fn call_room(
    env: &Env,
    room: &str,
    path: &str,
    method: Method,
    headers: Headers,
    body: Option<String>,
) -> RelayResult<Response> {
    let namespace = env.durable_object("ROOMS").map_err(internal("binding"))?;
    let stub = namespace
        .id_from_name(room)
        .and_then(|id| id.get_stub())
        .map_err(internal("stub"))?;
    let url = Url::parse(&format!("https://room{path}")).map_err(|_| RelayError::internal())?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(body) = body {
        init.with_body(Some(body.into()));
    }
    let request = Request::new_with_init(url.as_str(), &init).map_err(internal("request"))?;
    stub.fetch_with_request(request)
        .await
        .map_err(internal("room fetch"))
}

/// The deployment's one `Directory` object, which keeps the rooms' stats reports.
pub fn directory_stub(env: &Env) -> RelayResult<worker::Stub> {
    let namespace = env
        .durable_object("DIRECTORY")
        .map_err(internal("directory binding"))?;
    namespace
        .id_from_name(directory::DIRECTORY_NAME)
        .and_then(|id| id.get_stub())
        .map_err(internal("directory stub"))
}
