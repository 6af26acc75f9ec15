//! Plain HTTP surface: configuration sanity, `/health`, 404 and 405 error bodies.

use relay_e2e::http::{self, ReqAuth};
use relay_e2e::*;
use reqwest::Method;

/// The suite's own configuration: every variable is present and RELAY_URL is a local relay.
/// (Fails, rather than skips, when the environment is incomplete.)
#[test]
fn environment_is_complete() {
    let url = relay_url();
    assert!(ws_url().starts_with("ws://"), "derived ws URL from {url}");
    assert!(!jwt_secret().is_empty());
    assert!(!webhook_secret().is_empty());
    assert!(!admin_secret().is_empty());
}

#[tokio::test]
async fn health_is_ok_with_version() {
    let r = http::get("/health", &ReqAuth::None).await;
    r.assert_status(200);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.contains("application/json"),
        "content-type of /health: {ct:?}"
    );
    let v = r.json();
    assert_eq!(v["status"], "ok", "health body {v}");
    let version = v["version"]
        .as_str()
        .unwrap_or_else(|| panic!("health.version must be a string: {v}"));
    // "<semver>": MAJOR.MINOR.PATCH, optionally followed by -pre/+build.
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    assert!(
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
        "health.version {version:?} is not semver"
    );
}

#[tokio::test]
async fn health_needs_no_auth_and_ignores_a_bad_token() {
    // /health takes no auth; a junk bearer must not turn it into a 401.
    let r = http::get("/health", &ReqAuth::Bearer("junk".into())).await;
    r.assert_status(200);
}

#[tokio::test]
async fn unknown_paths_are_404_json() {
    // Not "/": the project may serve a demo page there.
    for path in [
        "/nope",
        "/v1",
        "/v1/nope",
        "/v1/rooms",
        "/v1/rooms/x/nope",
        "/health/x",
    ] {
        let r = http::get(path, &ReqAuth::None).await;
        r.assert_error(404, "not_found");
        let ct = r.header("content-type").unwrap_or_default();
        assert!(
            ct.contains("application/json"),
            "content-type of 404 for {path}: {ct:?}"
        );
    }
}

#[tokio::test]
async fn wrong_methods_are_405() {
    let cases = [
        (Method::DELETE, "/health"),
        (Method::POST, "/health"),
        (Method::POST, "/v1/rooms/x/ws"),
        (Method::PUT, "/v1/rooms/x/ws"),
        (Method::DELETE, "/v1/rooms/x/messages"),
    ];
    for (method, path) in cases {
        let r = http::send(method, path, &ReqAuth::None, None, &[]).await;
        r.assert_error(405, "method_not_allowed");
    }
}

#[tokio::test]
async fn dev_token_route_is_absent_without_dev_mode() {
    // The suite runs against the production configuration: DEV_MODE is not set there.
    let body = serde_json::json!({"user": "mallory", "rooms": ["*"]});
    let r = http::send(Method::POST, "/dev/token", &ReqAuth::None, Some(&body), &[]).await;
    r.assert_error(404, "not_found");
}

#[tokio::test]
async fn demo_page_and_client_are_served() {
    let page = http::get("/", &ReqAuth::None).await;
    page.assert_status(200);
    assert!(
        page.header("content-type")
            .unwrap_or_default()
            .contains("text/html"),
        "the demo page is HTML"
    );
    let client = http::get("/client/relay.js", &ReqAuth::None).await;
    client.assert_status(200);
    assert!(
        client
            .header("content-type")
            .unwrap_or_default()
            .contains("javascript"),
        "the client is served as JavaScript"
    );
}
