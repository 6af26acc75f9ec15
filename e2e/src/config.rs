//! Configuration from the environment; a missing variable fails the test loudly.
//!
//! - `RELAY_URL`: base URL of the running relay, e.g. `http://127.0.0.1:8799`. It must be
//!   plain `http` on a loopback address: the suite never talks to anything else.
//! - `JWT_SECRET`: the HS256 secret the relay verifies user tokens with.
//! - `WEBHOOK_SECRET`, `ADMIN_SECRET`: bearer secrets of the backend and admin routes.
//! - `ALLOWED_ORIGINS`: the relay's allowed browser origins; the CORS and refusal tests need
//!   one exact origin in it (the first is used).

use std::net::IpAddr;

fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        Ok(_) => panic!(
            "environment variable {name} is empty. The e2e suite runs against an already \
             running relay and needs RELAY_URL, JWT_SECRET, WEBHOOK_SECRET and ADMIN_SECRET \
             (the same secrets the relay was started with)."
        ),
        Err(_) => panic!(
            "environment variable {name} is not set. The e2e suite runs against an already \
             running relay and needs RELAY_URL (e.g. http://127.0.0.1:8799), JWT_SECRET, \
             WEBHOOK_SECRET and ADMIN_SECRET (the same secrets the relay was started with)."
        ),
    }
}

/// Base HTTP URL of the relay without a trailing slash, checked to be `http://` on loopback.
pub fn relay_url() -> String {
    let raw = required("RELAY_URL");
    let url = reqwest::Url::parse(raw.trim())
        .unwrap_or_else(|e| panic!("RELAY_URL={raw:?} is not a valid URL: {e}"));
    assert_eq!(
        url.scheme(),
        "http",
        "RELAY_URL={raw:?} must be a plain http:// URL of the local relay"
    );
    let host = url.host_str().unwrap_or_default();
    let host_ip = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host_ip
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    assert!(
        loopback,
        "RELAY_URL={raw:?} must point at a loopback address (127.0.0.1, localhost, [::1]): \
         the e2e suite only talks to a relay on this machine"
    );
    raw.trim().trim_end_matches('/').to_string()
}

/// Base WebSocket URL: `RELAY_URL` with `http` replaced by `ws`.
pub fn ws_url() -> String {
    let http = relay_url();
    format!(
        "ws{}",
        http.strip_prefix("http").expect("checked http scheme")
    )
}

/// The HS256 secret for user tokens.
pub fn jwt_secret() -> String {
    required("JWT_SECRET")
}

/// The backend (webhook) bearer secret.
pub fn webhook_secret() -> String {
    required("WEBHOOK_SECRET")
}

/// The admin/stats bearer secret.
pub fn admin_secret() -> String {
    required("ADMIN_SECRET")
}

/// The first exact origin of `ALLOWED_ORIGINS` (the relay must be started with it).
pub fn allowed_origin() -> String {
    let origins = required("ALLOWED_ORIGINS");
    origins
        .split(',')
        .map(str::trim)
        .find(|origin| origin.starts_with("http"))
        .unwrap_or_else(|| {
            panic!(
                "ALLOWED_ORIGINS={origins:?} names no exact origin; the CORS tests need one \
                 (e.g. https://app.example), given to the relay and to the tests"
            )
        })
        .to_string()
}

/// The first prefix of `MEMBERS_ONLY_PREFIXES` (the relay must be started with one).
pub fn members_only_prefix() -> String {
    let prefixes = required("MEMBERS_ONLY_PREFIXES");
    prefixes
        .split(',')
        .map(str::trim)
        .find(|prefix| !prefix.is_empty())
        .unwrap_or_else(|| panic!("MEMBERS_ONLY_PREFIXES={prefixes:?} names no prefix"))
        .to_string()
}

/// The prefix and number of the first entry of a `*_PREFIXES` variable of `prefix=N` entries
/// (e.g. `SHARD_VIEWERS_PREFIXES`, `PRESENCE_FULL_MAX_PREFIXES`), which the relay must be
/// started with too.
pub fn first_prefix_limit(name: &str) -> (String, usize) {
    let var = required(name);
    let entry = var.split(',').next().unwrap_or_default().trim();
    let (prefix, limit) = entry
        .rsplit_once('=')
        .unwrap_or_else(|| panic!("{name}={var:?}: want prefix=N"));
    let limit = limit
        .parse()
        .unwrap_or_else(|_| panic!("{name}={var:?}: N is not a number"));
    (prefix.to_string(), limit)
}
