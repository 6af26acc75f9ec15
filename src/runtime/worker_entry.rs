//! The Worker's fetch entry: routes, authenticates at the edge, and hands rooms their requests.

use worker::{event, Context, Env, Headers, Method, Request, RequestInit, Response, Url};

use super::{http, Caller, CALLER_HEADER, ROOM_HEADER, SUBPROTOCOL_HEADER};
use crate::auth::{self, AuthConfig, Identity};
use crate::config::MAX_HTTP_BODY_BYTES;
use crate::error::{ErrorCode, RelayError, RelayResult};
use crate::paging::HistoryQuery;
use crate::router::{self, Route};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    console_error_panic_hook::set_once();
    match handle(req, &env).await {
        Ok(response) => Ok(response),
        Err(err) => http::error(&err),
    }
}

fn internal(context: &'static str) -> impl Fn(worker::Error) -> RelayError {
    move |err| {
        worker::console_error!("{context}: {err}");
        RelayError::internal()
    }
}

async fn handle(req: Request, env: &Env) -> RelayResult<Response> {
    let url = req.url().map_err(internal("url"))?;
    let method = req.method().to_string();
    let route = router::route(&method, url.path())?;
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    match route {
        Route::Health => http::json(
            serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}).to_string(),
            200,
        )
        .map_err(internal("health")),
        Route::RoomSocket { room } => {
            let identity = authenticate(&req, &query, env)?;
            identity.check_access(&room)?;
            let upgrade = req.headers().get("upgrade").ok().flatten();
            if !upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
                return Err(RelayError::new(
                    ErrorCode::UpgradeRequired,
                    "this route needs a WebSocket upgrade",
                ));
            }
            let since = query_value(&query, "since")
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        RelayError::bad_request("since must be a non-negative integer")
                    })
                })
                .transpose()?;
            let subprotocols = req.headers().get("sec-websocket-protocol").ok().flatten();
            let mut path = "/connect".to_string();
            if let Some(since) = since {
                path.push_str(&format!("?since={since}"));
            }
            let headers = room_headers(&room, &identity)?;
            headers
                .set("upgrade", "websocket")
                .map_err(internal("headers"))?;
            if auth::offers_subprotocol(subprotocols.as_deref()) {
                headers
                    .set(SUBPROTOCOL_HEADER, auth::SUBPROTOCOL)
                    .map_err(internal("headers"))?;
            }
            call_room(env, &room, &path, Method::Get, headers, None).await
        }
        Route::RoomHistory { room } => {
            let identity = authenticate(&req, &query, env)?;
            identity.check_access(&room)?;
            let history =
                HistoryQuery::from_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            let path = format!("/history?{}", history.to_query_string());
            call_room(
                env,
                &room,
                &path,
                Method::Get,
                room_headers(&room, &identity)?,
                None,
            )
            .await
        }
        Route::RoomPublish { room } => {
            let identity = authenticate(&req, &query, env)?;
            identity.check_access(&room)?;
            let body = read_body(req).await?;
            call_room(
                env,
                &room,
                "/publish",
                Method::Post,
                room_headers(&room, &identity)?,
                Some(body),
            )
            .await
        }
    }
}

fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|s| !s.is_empty())
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|s| !s.is_empty())
}

fn authenticate(req: &Request, query: &[(String, String)], env: &Env) -> RelayResult<Identity> {
    let headers = req.headers();
    let authorization = headers.get("authorization").ok().flatten();
    let subprotocols = headers.get("sec-websocket-protocol").ok().flatten();
    let token = auth::find_token(
        authorization.as_deref(),
        subprotocols.as_deref(),
        query_value(query, "token"),
    )?;
    let Some(jwt_secret) = secret(env, "JWT_SECRET") else {
        worker::console_error!("JWT_SECRET is not configured");
        return Err(RelayError::internal());
    };
    let mut config = AuthConfig::new(jwt_secret.into_bytes());
    config.issuer = var(env, "JWT_ISSUER");
    config.audience = var(env, "JWT_AUDIENCE");
    if let Some(leeway) = var(env, "JWT_LEEWAY_SECS").and_then(|v| v.parse().ok()) {
        config.leeway_secs = leeway;
    }
    let now = chrono::DateTime::from_timestamp_millis(super::now_ms()).unwrap_or_default();
    auth::verify(token, &config, now)
}

fn room_headers(room: &str, identity: &Identity) -> RelayResult<Headers> {
    let caller = Caller {
        user: identity.user.clone(),
        exp: identity.expires_at,
    };
    let headers = Headers::new();
    let caller = serde_json::to_string(&caller).map_err(|_| RelayError::internal())?;
    headers
        .set(CALLER_HEADER, &caller)
        .map_err(internal("headers"))?;
    headers
        .set(ROOM_HEADER, &percent_encode(room))
        .map_err(internal("headers"))?;
    Ok(headers)
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

async fn read_body(mut req: Request) -> RelayResult<String> {
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_HTTP_BODY_BYTES) {
        return Err(RelayError::too_large("request body is larger than 256 KiB"));
    }
    let bytes = req
        .bytes()
        .await
        .map_err(|_| RelayError::bad_request("could not read the request body"))?;
    if bytes.len() > MAX_HTTP_BODY_BYTES {
        return Err(RelayError::too_large("request body is larger than 256 KiB"));
    }
    String::from_utf8(bytes).map_err(|_| RelayError::bad_request("request body is not UTF-8"))
}

async fn call_room(
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
