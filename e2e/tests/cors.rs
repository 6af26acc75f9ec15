//! Browsers on other origins (`ALLOWED_ORIGINS`): CORS preflights and headers on the user
//! routes (errors included), none on backend and admin routes, `Allow` on every 405, and the
//! `Origin` check of WebSocket upgrades. The relay runs with one allowed origin
//! ([`allowed_origin`]); `https://evil.example` is never allowed.

use relay_e2e::backend::{admin_auth, webhook_auth};
use relay_e2e::http::{self, HttpResponse, ReqAuth};
use relay_e2e::*;
use reqwest::Method;
use serde_json::json;

const FOREIGN: &str = "https://evil.example";

/// Asserts the CORS headers of an actual answer to a script on the allowed `origin`.
fn assert_cors(r: &HttpResponse, origin: &str, ctx: &str) {
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(origin),
        "{ctx}: Access-Control-Allow-Origin ({} {:?})",
        r.status,
        r.headers
    );
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap_or_default();
    assert!(
        exposed
            .split(',')
            .any(|h| h.trim().eq_ignore_ascii_case("retry-after")),
        "{ctx}: Retry-After must be exposed, got {exposed:?}"
    );
    assert_varies_by_origin(r, ctx);
}

fn assert_varies_by_origin(r: &HttpResponse, ctx: &str) {
    let vary = r.header("vary").unwrap_or_default();
    assert!(
        vary.split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("origin")),
        "{ctx}: Vary must name Origin, got {vary:?}"
    );
}

/// Asserts that an answer has no `Access-Control-*` header at all.
fn assert_no_cors(r: &HttpResponse, ctx: &str) {
    let cors: Vec<_> = r
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "{ctx}: unexpected CORS headers {cors:?}");
}

/// Like [`assert_no_cors`], and not even a `Vary: Origin` (backend and admin routes).
fn assert_untouched_by_cors(r: &HttpResponse, ctx: &str) {
    assert_no_cors(r, ctx);
    assert_eq!(r.header("vary"), None, "{ctx}: unexpected Vary");
}

async fn request(
    method: Method,
    path: &str,
    auth: &ReqAuth,
    origin: &str,
    extra: &[(&str, &str)],
) -> HttpResponse {
    let mut headers = vec![("Origin", origin)];
    headers.extend_from_slice(extra);
    http::send(method, path, auth, None, &headers).await
}

async fn preflight(path: &str, origin: &str, method: &str) -> HttpResponse {
    request(
        Method::OPTIONS,
        path,
        &ReqAuth::None,
        origin,
        &[
            ("Access-Control-Request-Method", method),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ],
    )
    .await
}

#[tokio::test]
async fn a_preflight_from_the_allowed_origin_gets_the_routes_methods() {
    let origin = allowed_origin();
    let room = unique_room("e2e:cors");
    for (path, asked, methods) in [
        (room_path(&room, "messages"), "POST", "GET, POST"),
        (room_path(&room, "ws"), "GET", "GET"),
        (room_path(&room, "presence"), "GET", "GET"),
        ("/health".to_string(), "GET", "GET, HEAD"),
        // A bad room name is judged on the actual request, which can read its 400.
        ("/v1/rooms/a%20b/messages".to_string(), "GET", "GET, POST"),
    ] {
        let r = preflight(&path, &origin, asked).await;
        r.assert_status(204);
        assert_eq!(r.body, "", "{path}: a preflight answer has no body");
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some(origin.as_str()),
            "{path}"
        );
        assert_eq!(
            r.header("access-control-allow-methods").as_deref(),
            Some(methods),
            "{path}"
        );
        let allowed_headers = r.header("access-control-allow-headers").unwrap_or_default();
        for needed in ["authorization", "content-type"] {
            assert!(
                allowed_headers
                    .split(',')
                    .any(|h| h.trim().eq_ignore_ascii_case(needed)),
                "{path}: {needed} not in {allowed_headers:?}"
            );
        }
        let max_age: u64 = r
            .header("access-control-max-age")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{path}: no numeric Access-Control-Max-Age"));
        assert!(max_age >= 60, "{path}: max-age {max_age}");
        assert_varies_by_origin(&r, &path);
    }
}

#[tokio::test]
async fn a_preflight_from_a_foreign_origin_is_refused_without_cors_headers() {
    let room = unique_room("e2e:cors");
    for path in [room_path(&room, "messages"), room_path(&room, "ws")] {
        let r = preflight(&path, FOREIGN, "POST").await;
        r.assert_error(403, "forbidden");
        assert_eq!(r.json()["error"]["message"], "origin not allowed", "{path}");
        assert_no_cors(&r, &path);
    }
}

#[tokio::test]
async fn answers_to_the_allowed_origin_carry_cors_headers_errors_included() {
    let origin = allowed_origin();
    let room = unique_room("e2e:cors");
    let user = User::new("cors", "Cors", "x");
    let bearer = ReqAuth::Bearer(user.token(&[room.as_str()]));
    let messages = room_path(&room, "messages");

    let ok = request(Method::GET, &messages, &bearer, &origin, &[]).await;
    ok.assert_status(200);
    assert_cors(&ok, &origin, "history 200");

    let published = http::send(
        Method::POST,
        &messages,
        &bearer,
        Some(&json!({"cid": "c1", "data": {"text": "hi"}})),
        &[("Origin", origin.as_str())],
    )
    .await;
    published.assert_status(200);
    assert_cors(&published, &origin, "publish 200");

    let health = request(Method::GET, "/health", &ReqAuth::None, &origin, &[]).await;
    health.assert_status(200);
    assert_cors(&health, &origin, "health");

    let unauthorized = request(Method::GET, &messages, &ReqAuth::None, &origin, &[]).await;
    unauthorized.assert_error(401, "unauthorized");
    assert_cors(&unauthorized, &origin, "401");

    let other = unique_room("e2e:cors-other");
    let forbidden = request(
        Method::GET,
        &room_path(&other, "messages"),
        &bearer,
        &origin,
        &[],
    )
    .await;
    forbidden.assert_error(403, "forbidden");
    assert_cors(&forbidden, &origin, "403");

    let bad_room = request(
        Method::GET,
        "/v1/rooms/a%20b/messages",
        &bearer,
        &origin,
        &[],
    )
    .await;
    bad_room.assert_error(400, "bad_request");
    assert_cors(&bad_room, &origin, "400 bad room");

    let not_allowed = request(Method::PUT, &messages, &bearer, &origin, &[]).await;
    not_allowed.assert_error(405, "method_not_allowed");
    assert_cors(&not_allowed, &origin, "405");

    let presence = request(
        Method::GET,
        &room_path(&room, "presence"),
        &bearer,
        &origin,
        &[],
    )
    .await;
    presence.assert_status(200);
    assert_cors(&presence, &origin, "presence");

    // A plain GET of the socket route (no upgrade) is refused by the Worker: readable too.
    let upgrade_required =
        request(Method::GET, &room_path(&room, "ws"), &bearer, &origin, &[]).await;
    upgrade_required.assert_error(426, "upgrade_required");
    assert_cors(&upgrade_required, &origin, "426");
}

#[tokio::test]
async fn a_rate_limited_publish_is_readable_with_its_retry_after() {
    let origin = allowed_origin();
    let room = unique_room("e2e:cors-rate");
    let user = User::new("cors-rate", "Rate", "x");
    let bearer = ReqAuth::Bearer(user.token(&[room.as_str()]));
    // The bucket holds 40 and refills 20/s: rounds of 50 concurrent publishes run it dry
    // however slowly the machine answers (one at a time, a loaded machine refilled it).
    for round in 0..4 {
        let path = room_path(&room, "messages");
        let (path, bearer, origin) = (&path, &bearer, &origin);
        let publishes = (0..50).map(|i| async move {
            let body = json!({"data": {"n": round * 50 + i}});
            http::send(
                Method::POST,
                path,
                bearer,
                Some(&body),
                &[("Origin", origin.as_str())],
            )
            .await
        });
        let answers = futures_util::future::join_all(publishes).await;
        for r in &answers {
            assert_cors(r, origin, "publish");
        }
        if let Some(r) = answers.iter().find(|r| r.status == 429) {
            r.assert_error(429, "rate_limited");
            assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
            return;
        }
        for r in &answers {
            r.assert_status(200);
        }
    }
    panic!("200 publishes in rounds of 50 were never limited");
}

#[tokio::test]
async fn a_foreign_origin_gets_answers_without_cors_headers() {
    let room = unique_room("e2e:cors");
    let user = User::new("cors", "Cors", "x");
    let bearer = ReqAuth::Bearer(user.token(&[room.as_str()]));
    let r = request(
        Method::GET,
        &room_path(&room, "messages"),
        &bearer,
        FOREIGN,
        &[],
    )
    .await;
    r.assert_status(200);
    assert_no_cors(&r, "history from a foreign origin");
    // The answer still says that it depends on Origin, so that no cache hands it on.
    assert_varies_by_origin(&r, "history from a foreign origin");
    let r = request(
        Method::GET,
        &room_path(&room, "messages"),
        &ReqAuth::None,
        FOREIGN,
        &[],
    )
    .await;
    r.assert_error(401, "unauthorized");
    assert_no_cors(&r, "401 to a foreign origin");
}

#[tokio::test]
async fn backend_and_admin_routes_never_get_cors_headers() {
    let origin = allowed_origin();
    let room = unique_room("e2e:cors-backend");
    let members = room_path(&room, "members");
    let broadcast = http::send(
        Method::POST,
        "/v1/broadcast",
        &webhook_auth(),
        Some(&json!({"rooms": [room], "event": "e", "data": {}})),
        &[("Origin", origin.as_str())],
    )
    .await;
    broadcast.assert_status(200);
    assert_untouched_by_cors(&broadcast, "broadcast");
    let refused = request(Method::POST, "/v1/broadcast", &ReqAuth::None, &origin, &[]).await;
    refused.assert_error(401, "unauthorized");
    assert_untouched_by_cors(&refused, "broadcast 401");
    let listed = request(Method::GET, &members, &webhook_auth(), &origin, &[]).await;
    listed.assert_status(200);
    assert_untouched_by_cors(&listed, "members");
    for path in ["/v1/stats", "/v1/stats/rooms", "/api/v1/stats/connections"] {
        let r = request(Method::GET, path, &admin_auth(), &origin, &[]).await;
        r.assert_status(200);
        assert_untouched_by_cors(&r, path);
    }
    // OPTIONS there is no preflight: 405 as for any other method they do not take.
    for (path, allow) in [
        ("/v1/broadcast", "POST"),
        (members.as_str(), "GET, PUT"),
        ("/v1/stats", "GET"),
        ("/api/v1/broadcast/order-new", "POST"),
    ] {
        let r = preflight(path, &origin, "POST").await;
        r.assert_error(405, "method_not_allowed");
        assert_eq!(r.header("allow").as_deref(), Some(allow), "{path}");
        assert_untouched_by_cors(&r, path);
    }
}

#[tokio::test]
async fn every_405_carries_allow() {
    let room = unique_room("e2e:cors-405");
    for (method, path, allow) in [
        (
            Method::PUT,
            room_path(&room, "messages"),
            "GET, POST, OPTIONS",
        ),
        (
            Method::DELETE,
            room_path(&room, "messages"),
            "GET, POST, OPTIONS",
        ),
        (Method::POST, room_path(&room, "ws"), "GET, OPTIONS"),
        (Method::POST, room_path(&room, "presence"), "GET, OPTIONS"),
        (Method::DELETE, room_path(&room, "members"), "GET, PUT"),
        (Method::POST, "/health".to_string(), "GET, HEAD, OPTIONS"),
        (Method::GET, "/v1/broadcast".to_string(), "POST"),
        (Method::POST, "/v1/stats".to_string(), "GET"),
        (
            Method::GET,
            "/api/v1/broadcast/order-new".to_string(),
            "POST",
        ),
        (Method::GET, "/dev/token".to_string(), "POST, OPTIONS"),
        (Method::POST, "/".to_string(), "GET, HEAD, OPTIONS"),
    ] {
        let r = http::send(method.clone(), &path, &ReqAuth::None, None, &[]).await;
        r.assert_error(405, "method_not_allowed");
        assert_eq!(r.header("allow").as_deref(), Some(allow), "{method} {path}");
    }
}

/// Connects to `room` with a valid token (in the query) and `headers`; the first frame must be
/// the welcome.
async fn join_with_headers(room: &str, headers: &[(&str, &str)]) -> Result<Client, ConnectError> {
    let user = User::new("origin", "Origin", "x");
    let query = format!("token={}", encode_query(&user.token(&[room])));
    let mut c = Client::connect_with_headers(&encode_segment(room), &query, headers).await?;
    let welcome = c.recv_json().await;
    assert_welcome(&welcome, room, &user);
    Ok(c)
}

#[tokio::test]
async fn an_upgrade_from_a_foreign_origin_is_refused_before_its_token_is_read() {
    let room = unique_room("e2e:origin");
    let refusal = join_with_headers(&room, &[("Origin", FOREIGN)])
        .await
        .expect_err("an upgrade from a foreign origin was accepted");
    refusal
        .assert_error(403, "forbidden", "foreign origin")
        .await;
    let again = http::send(
        Method::GET,
        &room_path(&room, "ws"),
        &ReqAuth::None,
        None,
        &[
            ("Origin", FOREIGN),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    .await;
    // Without any token: the origin decides first.
    again.assert_error(403, "forbidden");
    assert_eq!(again.json()["error"]["message"], "origin not allowed");
}

#[tokio::test]
async fn upgrades_from_the_relays_own_or_an_allowed_origin_or_without_origin_are_accepted() {
    let origin = allowed_origin();
    let own = relay_url();
    for headers in [
        vec![("Origin", own.as_str())],
        vec![("Origin", origin.as_str())],
        vec![],
    ] {
        let room = unique_room("e2e:origin");
        let c = join_with_headers(&room, &headers)
            .await
            .unwrap_or_else(|e| panic!("upgrade with {headers:?} refused: {e:?}"));
        c.close().await;
    }
}
