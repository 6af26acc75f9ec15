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
use super::{call_directory, call_room, http, internal, room_upgrade, send_to_room};
use crate::auth::{self, Identity};
use crate::config::MAX_HTTP_BODY_BYTES;
use crate::cors;
use crate::dev_token::{self, DEV_TOKEN_TTL_SECS};
use crate::disconnect;
use crate::error::{ErrorCode, RelayError, RelayResult};
use crate::feed;
use crate::paging::{self, HistoryQuery};
use crate::protocol;
use crate::room_api::{self, Caller, Connect, DirectoryRequest, RoomRequest, UserDisconnect, Wire};
use crate::router::{self, Route, Shape};
use crate::stats::{self, REPORT_INTERVAL_MS};
use crate::url_parts;
use crate::webhook::{
    self, BackendCredentials, BackendProof, Broadcast, SignedRequest, SIGNATURE_HEADER,
};

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
    let finish = Finish::of(&req, &env);
    settle(async move {
        match answer(req, &env).await {
            Ok(answer) => Ok(finish.answer(answer)?),
            Err(err) => Ok(finish.refusal(&err)?.into()),
        }
    })
}

/// What every answer to a request gets on its way out, decided before the request is handled.
struct Finish {
    /// CORS headers of an actual answer of a route browsers call (see [`crate::cors`]); none
    /// for `OPTIONS`, whose preflight answer is complete by itself.
    cors: Vec<cors::Header>,
    /// For an upgrade that offered `relay.v1`: refusals are sent on the socket (a browser
    /// cannot read an HTTP refusal of an upgrade).
    refuse_on_socket: bool,
}

impl Finish {
    fn of(req: &Request, env: &Env) -> Finish {
        let method = req.method();
        let Some(shape) = router::shape(url_parts::path(&req.url())) else {
            return Finish {
                cors: Vec::new(),
                refuse_on_socket: false,
            };
        };
        let settings = settings(env);
        let origins = &settings.allowed_origins;
        let cors = if shape.cross_origin && method != "OPTIONS" && origins.answers_vary_by_origin()
        {
            origins.answer_headers(http::header(req, "origin").as_deref())
        } else {
            Vec::new()
        };
        let refuse_on_socket = shape.websocket
            && is_upgrade(req)
            && auth::offers_subprotocol(http::header(req, "sec-websocket-protocol").as_deref());
        Finish {
            cors,
            refuse_on_socket,
        }
    }

    /// A handler's answer. The Promise of a room's answer to an upgrade is passed on as it
    /// is: CORS does not apply to WebSocket handshakes.
    fn answer(&self, answer: JsValue) -> Result<JsValue, JsValue> {
        match answer.dyn_into::<Response>() {
            Ok(response) if !self.cors.is_empty() => {
                Ok(http::with_headers(&response, &self.cors)?.into())
            }
            Ok(response) => Ok(response.into()),
            Err(pending) => Ok(pending),
        }
    }

    /// The answer to a request the Worker refuses by itself, without waking the room.
    fn refusal(&self, err: &RelayError) -> worker::Result<Response> {
        if self.refuse_on_socket {
            return http::refuse_on_socket(err, auth::SUBPROTOCOL);
        }
        let response = http::error(err)?;
        if self.cors.is_empty() {
            return Ok(response);
        }
        http::with_headers(&response, &self.cors)
    }
}

fn is_upgrade(req: &Request) -> bool {
    http::header(req, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
}

/// A request's parts that the handlers read.
struct Incoming {
    req: Request,
    method: String,
    /// The URL path as received (still percent-encoded): what a backend signature covers.
    path: String,
    query: Vec<(String, String)>,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<String> {
        http::header(&self.req, name)
    }

    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A `Response`, or the Promise of one.
async fn answer(req: Request, env: &Env) -> RelayResult<JsValue> {
    let url = req.url();
    let method = req.method();
    let path = url_parts::path(&url).to_string();
    let route = router::route(&method, &path)?;
    let query = url_parts::query_pairs(&url);
    let incoming = Incoming {
        req,
        method,
        path,
        query,
    };
    let response = match route {
        Route::RoomSocket { room } => {
            return connect(&incoming, env, &room).await.map(JsValue::from)
        }
        Route::Preflight(shape) => preflight(&incoming, env, shape),
        Route::Health => ok_json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})),
        Route::Ready => ready(env).await,
        Route::DevToken => dev_token(&incoming, env).await,
        Route::Page(page) => http::page(page.body, page.content_type).map_err(internal("page")),
        Route::RoomHistory { .. } | Route::RoomPublish { .. } | Route::RoomPresence { .. } => {
            user_route(&incoming, env, route).await
        }
        backend_or_admin => backend_route(&incoming, env, backend_or_admin).await,
    };
    response.map(JsValue::from)
}

/// The routes users call with their token: history, HTTP publish, presence (also admin).
async fn user_route(incoming: &Incoming, env: &Env, route: Route) -> RelayResult<Response> {
    match route {
        Route::RoomHistory { room } => {
            let identity = authenticate(incoming, env).await?;
            identity.check_access(&room)?;
            let query = HistoryQuery::from_pairs(
                incoming.query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )?;
            let caller = caller(&identity);
            call_room(env, &room, &RoomRequest::History { caller, query }).await
        }
        Route::RoomPublish { room } => {
            let identity = authenticate(incoming, env).await?;
            identity.check_access(&room)?;
            let body = read_body(&incoming.req).await?;
            let caller = caller(&identity);
            call_room(env, &room, &RoomRequest::Publish { caller, body }).await
        }
        Route::RoomPresence { room } => {
            // Admins list any room; a user needs the grant (and, where asked, membership).
            let caller = if is_admin(incoming, env) {
                None
            } else {
                let identity = authenticate(incoming, env).await?;
                identity.check_access(&room)?;
                Some(caller(&identity))
            };
            call_room(env, &room, &RoomRequest::Presence { caller }).await
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
            let request = if incoming.method == "PUT" {
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
        Route::Broadcast => {
            let (body, proof) = backend_request(incoming, env, true).await?;
            broadcast(env, Broadcast::parse(&body)?, &proof).await
        }
        Route::LegacyBroadcast { kind } => legacy_broadcast(incoming, env, &kind).await,
        Route::Stats | Route::LegacyStatsConnections => {
            require_admin(incoming, env)?;
            call_directory(env, &DirectoryRequest::Totals).await
        }
        Route::StatsRooms | Route::LegacyStatsRooms => {
            require_admin(incoming, env)?;
            call_directory(env, &DirectoryRequest::Rooms).await
        }
        _ => Err(RelayError::not_found("no such route")),
    }
}

/// `POST /api/v1/broadcast/{kind}`: the existing service's broadcast, whose body may carry
/// its own token.
async fn legacy_broadcast(incoming: &Incoming, env: &Env, kind: &str) -> RelayResult<Response> {
    let body = read_body(&incoming.req).await?;
    let (broadcast_request, body_token) = match webhook::parse_legacy(kind, &body) {
        Ok(parsed) => parsed,
        // Credentials are checked before the body is judged, as on every backend route.
        Err(err) => {
            authenticate_backend(incoming, env, body.as_bytes(), true, None)?;
            return Err(err);
        }
    };
    let proof = authenticate_backend(incoming, env, body.as_bytes(), true, body_token.as_deref())?;
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
fn preflight(incoming: &Incoming, env: &Env, shape: Shape) -> RelayResult<Response> {
    let headers = settings(env).allowed_origins.preflight(
        incoming.header("origin").as_deref(),
        shape.methods,
        &shape.allow(),
    )?;
    http::empty(204, &headers).map_err(internal("response"))
}

/// Hands the upgrade to the room; the answer is the room's own Promise of its 101 response.
/// The browser's `Origin` is checked first: it needs no token.
async fn connect(incoming: &Incoming, env: &Env, room: &str) -> RelayResult<Promise> {
    settings(env)
        .allowed_origins
        .check_upgrade(incoming.header("origin").as_deref(), &incoming.req.url())?;
    let identity = authenticate(incoming, env).await?;
    identity.check_access(room)?;
    if !is_upgrade(&incoming.req) {
        return Err(RelayError::new(
            ErrorCode::UpgradeRequired,
            "this route needs a WebSocket upgrade",
        ));
    }
    let since = incoming
        .query("since")
        .map(|since| paging::parse_number("since", since))
        .transpose()?;
    let batched = match incoming.query("batch") {
        Some(batch) => protocol::parse_batch_flag(batch)?,
        None => false,
    };
    let socket_protocol =
        auth::offers_subprotocol(incoming.header("sec-websocket-protocol").as_deref())
            .then_some(auth::SUBPROTOCOL);
    let connect = Connect {
        caller: caller(&identity),
        since,
        batched,
        subprotocol: socket_protocol.map(str::to_string),
    };
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
        let listing = call_directory(env, &DirectoryRequest::Rooms).await?;
        let text = http::response_text(&listing)
            .await
            .map_err(internal("directory answer"))?;
        let rooms = stats::active_rooms(&text)?;
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
    // Exists only where DEV_MODE is set (local development); production answers 404.
    let settings = settings(env);
    if !settings.dev_mode {
        return Err(RelayError::not_found("no such route"));
    }
    let body = read_body(&incoming.req).await?;
    let (user, rooms) = dev_token::parse_request(&body)?;
    let secret = &settings
        .jwt
        .as_ref()
        .ok_or_else(RelayError::internal)?
        .secret;
    let now = chrono::DateTime::from_timestamp_millis(super::now_ms()).unwrap_or_default();
    let token = auth::mint(
        &user,
        &rooms,
        secret,
        now,
        chrono::Duration::seconds(DEV_TOKEN_TTL_SECS),
    )?;
    ok_json(json!({ "token": token, "expires_in": DEV_TOKEN_TTL_SECS }))
}

/// The identity of the user token the request carries. Waits only when the token needs a key
/// from `JWT_JWKS_URL` that must be fetched first.
async fn authenticate(incoming: &Incoming, env: &Env) -> RelayResult<Identity> {
    let authorization = incoming.header("authorization");
    let subprotocols = incoming.header("sec-websocket-protocol");
    let token = auth::find_token(
        authorization.as_deref(),
        subprotocols.as_deref(),
        incoming.query("token"),
    )?;
    verify_token(env, token).await
}

/// Reads a backend request's body and checks its credentials. A request that carries no
/// signature is judged before its body is read: a bearer needs no body, and a request without
/// any credential costs nothing more. `body_names_rooms`: see [`SignedRequest`].
async fn backend_request(
    incoming: &Incoming,
    env: &Env,
    body_names_rooms: bool,
) -> RelayResult<(String, BackendProof)> {
    if incoming.header(SIGNATURE_HEADER).is_none() {
        let proof = authenticate_backend(incoming, env, b"", body_names_rooms, None)?;
        return Ok((read_body(&incoming.req).await?, proof));
    }
    let body = read_body(&incoming.req).await?;
    let proof = authenticate_backend(incoming, env, body.as_bytes(), body_names_rooms, None)?;
    Ok((body, proof))
}

fn authenticate_backend(
    incoming: &Incoming,
    env: &Env,
    body: &[u8],
    body_names_rooms: bool,
    body_token: Option<&str>,
) -> RelayResult<BackendProof> {
    let settings = settings(env);
    let Some(webhook_secret) = settings.webhook_secret.as_deref() else {
        worker::console_error!("WEBHOOK_SECRET is not configured");
        return Err(RelayError::internal());
    };
    let authorization = incoming.header("authorization");
    let signature = incoming.header(SIGNATURE_HEADER);
    let credentials = BackendCredentials {
        authorization: authorization.as_deref(),
        signature: signature.as_deref(),
        body_token,
    };
    let request = SignedRequest {
        method: &incoming.method,
        path: &incoming.path,
        body,
        body_names_rooms,
    };
    webhook::authenticate_backend(
        &credentials,
        &request,
        webhook_secret.as_bytes(),
        super::now_ms() / 1000,
    )
}

fn is_admin(incoming: &Incoming, env: &Env) -> bool {
    let settings = settings(env);
    let Some(admin_secret) = settings.admin_secret.as_deref() else {
        return false;
    };
    incoming
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
        .is_some_and(|given| auth::secrets_equal(given.as_bytes(), admin_secret.as_bytes()))
}

fn require_admin(incoming: &Incoming, env: &Env) -> RelayResult<()> {
    if is_admin(incoming, env) {
        Ok(())
    } else {
        Err(RelayError::unauthorized("missing or wrong admin secret"))
    }
}

/// Who the Worker verified, as the room learns it.
fn caller(identity: &Identity) -> Caller {
    Caller {
        user: identity.user.clone(),
        exp: identity.accepted_until,
    }
}

/// The request body as text, at most `MAX_HTTP_BODY_BYTES`: a larger declared Content-Length is
/// refused without reading anything, and a body without one is read only up to the limit.
async fn read_body(req: &Request) -> RelayResult<String> {
    use http::BodyRefusal;
    let declared = http::header(req, "content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_HTTP_BODY_BYTES) {
        return Err(RelayError::too_large("request body is larger than 256 KiB"));
    }
    http::body_text_capped(req, MAX_HTTP_BODY_BYTES)
        .await
        .map_err(|refusal| match refusal {
            BodyRefusal::TooLarge => RelayError::too_large("request body is larger than 256 KiB"),
            BodyRefusal::NotUtf8 => RelayError::bad_request("request body is not UTF-8"),
            BodyRefusal::Unreadable => RelayError::bad_request("could not read the request body"),
        })
}
