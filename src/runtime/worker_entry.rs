//! The Worker's fetch entry: routes, authenticates at the edge, and hands rooms their requests.

use std::collections::BTreeSet;

use futures::future::join_all;
use js_sys::Promise;
use serde_json::json;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Request, Response};
use worker::Env;

use super::settings::{settings, verify_token};
use super::settle::{settle, sleep};
use super::{call_room, directory_fanout, http, internal, room_upgrade, send_to_room};
use crate::auth;
use crate::bans::{self, Ban};
use crate::config::MAX_HTTP_BODY_BYTES;
use crate::dev_token;
use crate::disconnect;
use crate::error::{RelayError, RelayResult};
use crate::feed;
use crate::occupancy::PresencePage;
use crate::paging::HistoryQuery;
use crate::request_head::{self, Finish, RequestHead};
use crate::room_api::{self, Caller, RoomRequest, UserDisconnect, Wire};
use crate::router::{self, Route, Shape};
use crate::stats::{self, REPORT_INTERVAL_MS};
use crate::webhook::{self, BackendProof, Broadcast};

/// Rooms asked at a time by a user-wide disconnect.
const DISCONNECT_PARALLEL: usize = 50;
/// Added to the report interval before a disconnect's second pass.
const DISCONNECT_SLACK_MS: u32 = 200;

/// The Worker's fetch handler, bound by hand rather than through `#[event(fetch)]`: a connect
/// answers with the room's own Promise, and no route that can answer at once waits for a turn
/// of the executor first.
#[wasm_bindgen]
pub fn fetch(req: Request, env: Env, _ctx: JsValue) -> JsValue {
    console_error_panic_hook::set_once();
    let headers = req.headers();
    let head = RequestHead::new(req.method(), req.url(), |name| {
        headers.get(name).ok().flatten()
    });
    let finish = head.finish(&settings(&env));
    let incoming = Incoming { req, head };
    settle(async move {
        match answer(&incoming, &env).await {
            Ok(answer) => Ok(finished(&finish, answer)?),
            Err(err) => Ok(refusal(&finish, &err)?.into()),
        }
    })
}

/// A handler's answer. The Promise of a room's answer to an upgrade is passed on as it is:
/// CORS does not apply to WebSocket handshakes.
fn finished(finish: &Finish, answer: JsValue) -> Result<JsValue, JsValue> {
    match answer.dyn_into::<Response>() {
        Ok(response) if !finish.cors.is_empty() => {
            Ok(http::with_headers(&response, &finish.cors)?.into())
        }
        Ok(response) => Ok(response.into()),
        Err(pending) => Ok(pending),
    }
}

/// The answer to a request the Worker refuses by itself, without waking the room.
fn refusal(finish: &Finish, err: &RelayError) -> worker::Result<Response> {
    if finish.refuse_on_socket {
        return http::refuse_on_socket(err, auth::SUBPROTOCOL);
    }
    let response = http::error(err)?;
    if finish.cors.is_empty() {
        return Ok(response);
    }
    http::with_headers(&response, &finish.cors)
}

/// A request: its head, read once, and the runtime's object for its body.
struct Incoming {
    req: Request,
    head: RequestHead,
}

/// A `Response`, or the Promise of one.
async fn answer(incoming: &Incoming, env: &Env) -> RelayResult<JsValue> {
    let head = &incoming.head;
    let route = router::route(&head.method, &head.path)?;
    let response = match route {
        Route::RoomSocket { room } => {
            return connect(incoming, env, &room).await.map(JsValue::from)
        }
        Route::Preflight(shape) => preflight(head, env, shape),
        Route::Health => ok_json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})),
        Route::Ready => ready(env).await,
        Route::DevToken => dev_token(incoming, env).await,
        Route::Page(page) => http::page(page.body, page.content_type).map_err(internal("page")),
        Route::RoomHistory { .. }
        | Route::RoomPublish { .. }
        | Route::RoomMessage { .. }
        | Route::RoomPresence { .. } => user_route(incoming, env, route).await,
        backend_or_admin => backend_route(incoming, env, backend_or_admin).await,
    };
    response.map(JsValue::from)
}

/// The routes users call with their token: history, HTTP publish, presence (also admin).
async fn user_route(incoming: &Incoming, env: &Env, route: Route) -> RelayResult<Response> {
    let head = &incoming.head;
    match route {
        Route::RoomHistory { room } => {
            let caller = authenticate(head, env, &room).await?;
            let query = HistoryQuery::from_pairs(head.query_pairs())?;
            call_room(env, &room, &RoomRequest::History { caller, query }).await
        }
        Route::RoomPublish { room } => {
            let caller = authenticate(head, env, &room).await?;
            let body = read_body(incoming).await?;
            call_room(env, &room, &RoomRequest::Publish { caller, body }).await
        }
        Route::RoomMessage { room, seq } => {
            let caller = authenticate(head, env, &room).await?;
            let body = read_body(incoming).await?;
            let delete = head.method == "DELETE";
            let request = RoomRequest::Change {
                caller,
                seq,
                delete,
                body,
            };
            call_room(env, &room, &request).await
        }
        Route::RoomPresence { room } => {
            // Admins list any room; a user needs the grant (and, where asked, membership).
            let caller = match head.is_admin(&settings(env)) {
                true => None,
                false => Some(authenticate(head, env, &room).await?),
            };
            let page = PresencePage::from_pairs(head.query_pairs())?;
            call_room(env, &room, &RoomRequest::Presence { caller, page }).await
        }
        _ => Err(RelayError::not_found("no such route")),
    }
}

/// The routes of backends (webhook secret or signature) and of admins (stats).
async fn backend_route(incoming: &Incoming, env: &Env, route: Route) -> RelayResult<Response> {
    match route {
        Route::RoomMembers { room } => {
            // The path names the room: only a signature bound to it (v2) may authorise this.
            let (body, _) = backend_request(incoming, env, false).await?;
            let request = if incoming.head.method == "PUT" {
                RoomRequest::SetMembers(feed::parse_members(&body)?)
            } else {
                RoomRequest::Members
            };
            call_room(env, &room, &request).await
        }
        Route::UserDisconnect { user } => {
            // The path names the user: only a signature bound to it (v2) may authorise this.
            let (body, _) = backend_request(incoming, env, false).await?;
            let reason = disconnect::parse_reason(&body)?;
            disconnect_user(env, UserDisconnect { user, reason }).await
        }
        Route::RoomBans { room } => {
            backend_request(incoming, env, false).await?;
            call_room(env, &room, &RoomRequest::Bans).await
        }
        Route::RoomBan { room, user } => {
            // The path names the room and the user: only a signature bound to it (v2) may.
            let (body, _) = backend_request(incoming, env, false).await?;
            let request = if incoming.head.method == "PUT" {
                let until = bans::parse_until(&body, super::now_ms() / 1000)?;
                RoomRequest::Ban(Ban { user, until })
            } else {
                RoomRequest::Unban { user }
            };
            call_room(env, &room, &request).await
        }
        Route::Broadcast => {
            let (body, proof) = backend_request(incoming, env, true).await?;
            broadcast(env, Broadcast::parse(&body)?, &proof).await
        }
        Route::LegacyBroadcast { kind } => legacy_broadcast(incoming, env, &kind).await,
        Route::Stats | Route::LegacyStatsConnections => {
            incoming.head.require_admin(&settings(env))?;
            directory_fanout::answer(directory_fanout::totals(env).await?)
        }
        Route::StatsRooms | Route::LegacyStatsRooms => {
            incoming.head.require_admin(&settings(env))?;
            directory_fanout::answer(directory_fanout::rooms(env).await?)
        }
        _ => Err(RelayError::not_found("no such route")),
    }
}

/// `POST /api/v1/broadcast/{kind}`: the existing service's broadcast, whose body may carry
/// its own token.
async fn legacy_broadcast(incoming: &Incoming, env: &Env, kind: &str) -> RelayResult<Response> {
    let body = read_body(incoming).await?;
    let (broadcast_request, body_token) = match webhook::parse_legacy(kind, &body) {
        Ok(parsed) => parsed,
        // Credentials are checked before the body is judged, as on every backend route.
        Err(err) => {
            backend_proof(&incoming.head, env, body.as_bytes(), true, None)?;
            return Err(err);
        }
    };
    let proof = backend_proof(
        &incoming.head,
        env,
        body.as_bytes(),
        true,
        body_token.as_deref(),
    )?;
    broadcast(env, broadcast_request, &proof).await
}

fn ok_json(value: serde_json::Value) -> RelayResult<Response> {
    http::json(value.to_string(), 200).map_err(internal("response"))
}

/// Readiness for load balancers: the archive database answers.
async fn ready(env: &Env) -> RelayResult<Response> {
    let d1_ok = match env.d1("DB") {
        Ok(db) => db.prepare("SELECT 1").all().await.is_ok(),
        Err(_) => false,
    };
    let status = if d1_ok { 200 } else { 503 };
    let body = json!({
        "status": if d1_ok { "ok" } else { "unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
        "checks": {"d1": if d1_ok { "ok" } else { "failing" }},
    });
    http::json(body.to_string(), status).map_err(internal("response"))
}

/// The answer to `OPTIONS` on a route browsers call: a CORS preflight (see [`crate::cors`]).
fn preflight(head: &RequestHead, env: &Env, shape: Shape) -> RelayResult<Response> {
    let headers = head.preflight(&settings(env), shape)?;
    http::empty(204, &headers).map_err(internal("response"))
}

/// Hands the upgrade to the room; the answer is the room's own Promise of its 101 response.
async fn connect(incoming: &Incoming, env: &Env, room: &str) -> RelayResult<Promise> {
    let head = &incoming.head;
    head.check_upgrade_origin(&settings(env))?;
    let identity = verify_token(env, head.user_token()?).await?;
    identity.check_access(room)?;
    let connect = head.connect(&identity)?;
    let socket_protocol = connect.subprotocol.is_some().then_some(auth::SUBPROTOCOL);
    let answer = room_upgrade(env, room, connect)?;
    Ok(http::or_internal_error(&answer, socket_protocol))
}
/// Delivers one event to every listed room at once; a room that fails does not stop the others.
/// A signed broadcast without an `id` is keyed by its signature, so that a replay of the same
/// signed request delivers nothing again.
/// Closes every socket of a user in every room with connections. Rooms report to the
/// directory in batches (at most [`REPORT_INTERVAL_MS`] late), so a second pass after one
/// interval reaches a room the user joined just before the first; each pass asks at most
/// [`DISCONNECT_PARALLEL`] rooms at a time.
async fn disconnect_user(env: &Env, request: UserDisconnect) -> RelayResult<Response> {
    let wire = RoomRequest::Disconnect(request.clone()).encode()?;
    let mut asked = BTreeSet::new();
    for pass in 0..2 {
        if pass > 0 {
            sleep(REPORT_INTERVAL_MS as u32 + DISCONNECT_SLACK_MS).await;
        }
        let rooms = stats::active_rooms(&directory_fanout::rooms(env).await?)?;
        let new: Vec<String> = rooms
            .into_iter()
            .filter(|r| asked.insert(r.clone()))
            .collect();
        for chunk in new.chunks(DISCONNECT_PARALLEL) {
            let calls = chunk.iter().map(|room| send_to_room(env, room, &wire));
            for (room, answer) in chunk.iter().zip(join_all(calls).await) {
                if let Err(err) = answer {
                    worker::console_error!("disconnect in {room} failed: {err}");
                }
            }
        }
    }
    ok_json(json!({"user": request.user, "rooms": asked.len()}))
}

async fn broadcast(
    env: &Env,
    mut request: Broadcast,
    proof: &BackendProof,
) -> RelayResult<Response> {
    if request.id.is_none() {
        request.id = proof.idempotency_key();
    }
    // Encoded once for every room.
    let wire = RoomRequest::Broadcast(request.for_room()).encode()?;
    let deliveries = request.rooms.iter().map(|room| {
        let wire = &wire;
        async move {
            let outcome = deliver(env, room, wire).await;
            match outcome {
                Ok(seq) => json!({"room": room, "seq": seq}),
                Err(error) => json!({"room": room, "error": {"code": error.code.as_str(), "message": error.message}}),
            }
        }
    });
    let results = join_all(deliveries).await;
    ok_json(json!({ "results": results }))
}

/// Publishes a backend event in one room; its seq, or why that room failed.
async fn deliver(env: &Env, room: &str, broadcast: &Wire) -> RelayResult<u64> {
    let response = send_to_room(env, room, broadcast).await?;
    let text = http::response_text(&response)
        .await
        .map_err(internal("room answer"))?;
    room_api::broadcast_outcome(response.status(), &text)
}

async fn dev_token(incoming: &Incoming, env: &Env) -> RelayResult<Response> {
    let settings = settings(env);
    if !settings.dev_mode {
        return Err(RelayError::not_found("no such route"));
    }
    let answer = dev_token::issue(&settings, &read_body(incoming).await?, super::now_ms())?;
    http::json(answer, 200).map_err(internal("response"))
}

/// The room's caller for the user token the request carries, which must grant `room`. Waits
/// only when the token needs a key from `JWT_JWKS_URL` that must be fetched first.
async fn authenticate(head: &RequestHead, env: &Env, room: &str) -> RelayResult<Caller> {
    let identity = verify_token(env, head.user_token()?).await?;
    identity.check_access(room)?;
    Ok(Caller::from(&identity))
}

/// Reads a backend request's body and checks its credentials. A request that carries no
/// signature is judged before its body is read: a bearer needs no body, and a request without
/// any credential costs nothing more. `body_names_rooms`: see [`webhook::SignedRequest`].
async fn backend_request(
    incoming: &Incoming,
    env: &Env,
    body_names_rooms: bool,
) -> RelayResult<(String, BackendProof)> {
    if !incoming.head.is_signed() {
        let proof = backend_proof(&incoming.head, env, b"", body_names_rooms, None)?;
        return Ok((read_body(incoming).await?, proof));
    }
    let body = read_body(incoming).await?;
    let proof = backend_proof(&incoming.head, env, body.as_bytes(), body_names_rooms, None)?;
    Ok((body, proof))
}

fn backend_proof(
    head: &RequestHead,
    env: &Env,
    body: &[u8],
    body_names_rooms: bool,
    body_token: Option<&str>,
) -> RelayResult<BackendProof> {
    let settings = settings(env);
    if settings.webhook_secret.is_none() {
        worker::console_error!("WEBHOOK_SECRET is not configured");
    }
    let now_s = super::now_ms() / 1000;
    head.backend_proof(&settings, body, body_names_rooms, body_token, now_s)
}

/// The request body as text, at most `MAX_HTTP_BODY_BYTES`: a larger declared Content-Length is
/// refused without reading anything, and a body without one is read only up to the limit.
async fn read_body(incoming: &Incoming) -> RelayResult<String> {
    use http::BodyRefusal;
    incoming.head.check_declared_length()?;
    http::body_text_capped(&incoming.req, MAX_HTTP_BODY_BYTES)
        .await
        .map_err(|refusal| match refusal {
            BodyRefusal::TooLarge => request_head::body_too_large(),
            BodyRefusal::NotUtf8 => RelayError::bad_request("request body is not UTF-8"),
            BodyRefusal::Unreadable => RelayError::bad_request("could not read the request body"),
        })
}
