//! The Workers runtime shells: the fetch entry, the `Room` Durable Object, storage and archive.

mod archive;
mod directory;
mod directory_fanout;
mod events_delivery;
mod fanout;
mod http;
mod jwks_fetch;
mod publish_hook;
mod replay_pump;
mod reports;
mod room_backend;
mod room_events;
mod room_object;
mod settings;
mod settle;
mod shard_links;
mod shard_object;
mod sql;
mod worker_entry;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Headers, RequestInit, Response};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::{DurableObject as Stub, DurableObjectNamespace};
use worker::Env;

use crate::directory_shards;
use crate::error::{RelayError, RelayResult};
use crate::room_api::{Connect, DirectoryRequest, RoomRequest, Wire, ROOM_HEADER};

pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

pub fn internal<E: Into<worker::Error>>(context: &'static str) -> impl Fn(E) -> RelayError {
    move |err| {
        worker::console_error!("{context}: {}", err.into());
        RelayError::internal()
    }
}

/// Header values must be visible ASCII: room names may be any Unicode, so they travel encoded.
pub fn percent_encode(text: &str) -> String {
    crate::room_name::percent_encode(text)
}

/// Headers naming the room of a Worker-to-room (or room-to-room) request, plus the request's.
fn room_headers(room: &str, wire: &Wire) -> RelayResult<Headers> {
    let headers = Headers::new().map_err(internal("headers"))?;
    headers
        .set(ROOM_HEADER, &percent_encode(room))
        .map_err(internal("headers"))?;
    for (name, value) in &wire.headers {
        headers.set(name, value).map_err(internal("headers"))?;
    }
    Ok(headers)
}

fn namespace(env: &Env, binding: &str) -> RelayResult<DurableObjectNamespace> {
    let namespace: JsValue = env
        .durable_object(binding)
        .map_err(internal("binding"))?
        .into();
    Ok(namespace.unchecked_into())
}

/// Sends a request to a Durable Object; its response comes back untouched (a WebSocket
/// upgrade included).
pub async fn call_object(stub: &Stub, url: &str, init: &RequestInit) -> RelayResult<Response> {
    let answer = stub
        .unchecked_ref::<Fetcher>()
        .fetch(url, init)
        .map_err(internal("object fetch"))?;
    let response = JsFuture::from(answer)
        .await
        .map_err(internal("object fetch"))?;
    Ok(response.unchecked_into())
}

#[wasm_bindgen]
extern "C" {
    /// A Durable Object stub, seen through the one method used here.
    type Fetcher;

    /// `stub.fetch(url, init)`: the runtime builds the request itself, with no `Request`
    /// object of ours in between.
    #[wasm_bindgen(method, catch)]
    fn fetch(this: &Fetcher, url: &str, init: &RequestInit) -> Result<Promise, JsValue>;
}

#[wasm_bindgen(module = "/worker/upgrade.mjs")]
extern "C" {
    /// The whole upgrade call to the room's object in one crossing: its stub, a header object
    /// literal and the request (a connect storm makes one per connection), then on to the
    /// shard the room places it on, if it does.
    #[wasm_bindgen(js_name = upgradeViaRoom, catch)]
    fn upgrade_via_room(
        env: &Env,
        name: &str,
        url: &str,
        names: Vec<String>,
        values: Vec<String>,
    ) -> Result<Promise, JsValue>;
}

/// Starts a WebSocket connect to the room's Durable Object: the Promise of its 101 (or error)
/// response, or of the shard's the room placed it on.
pub fn room_upgrade(env: &Env, room: &str, connect: Connect) -> RelayResult<Promise> {
    let wire = RoomRequest::Connect(connect).encode()?;
    let (mut names, mut values): (Vec<String>, Vec<String>) = wire
        .headers
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .unzip();
    names.push(ROOM_HEADER.to_string());
    values.push(percent_encode(room));
    upgrade_via_room(
        env,
        room,
        &format!("https://room{}", wire.path),
        names,
        values,
    )
    .map_err(internal("object upgrade"))
}

/// Sends a request to the room's Durable Object.
pub async fn call_room(env: &Env, room: &str, request: &RoomRequest) -> RelayResult<Response> {
    send_to_room(env, room, &request.encode()?).await
}

/// Sends an encoded request to the room's Durable Object (one encoding may go to many rooms).
pub async fn send_to_room(env: &Env, room: &str, wire: &Wire) -> RelayResult<Response> {
    let stub = namespace(env, "ROOMS")?
        .get_by_name(room)
        .map_err(internal("stub"))?;
    let init = RequestInit::new();
    init.set_method(wire.method);
    let headers = room_headers(room, wire)?;
    init.set_headers(&headers);
    if let Some(body) = &wire.body {
        init.set_body(&JsValue::from_str(body));
    }
    call_object(&stub, &format!("https://room{}", wire.path), &init).await
}

/// Sends a request to one shard of the `Directory` objects, which keep the rooms' stats
/// reports (see [`crate::directory_shards`]).
pub async fn call_directory(
    env: &Env,
    shard: usize,
    request: &DirectoryRequest,
) -> RelayResult<Response> {
    let wire = request.encode()?;
    let stub = namespace(env, "DIRECTORY")?
        .get_by_name(&directory_shards::shard_name(shard))
        .map_err(internal("directory stub"))?;
    let init = RequestInit::new();
    init.set_method(wire.method);
    if let Some(body) = &wire.body {
        init.set_body(&JsValue::from_str(body));
    }
    call_object(&stub, &format!("https://directory{}", wire.path), &init).await
}
