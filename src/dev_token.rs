//! The development token route (`POST /dev/token`), present only when `DEV_MODE` is set.

use serde::Deserialize;

use crate::auth::{self, User};
use crate::config::Settings;
use crate::error::{RelayError, RelayResult};
use crate::room_name;

const MAX_USER_CHARS: usize = 64;
const MAX_ROOMS: usize = 20;
/// Lifetime of a development token.
pub const DEV_TOKEN_TTL_SECS: i64 = 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevTokenRequest {
    user: String,
    name: Option<String>,
    role: Option<String>,
    #[serde(default)]
    rooms: Vec<String>,
}

/// Parses `{"user","name"?,"role"?,"rooms"?}` into the user and the room grants to sign.
pub fn parse_request(body: &str) -> RelayResult<(User, Vec<String>)> {
    let request: DevTokenRequest = serde_json::from_str(body)
        .map_err(|e| RelayError::bad_request(format!("invalid token request: {e}")))?;
    let short = |text: &str| !text.is_empty() && text.chars().count() <= MAX_USER_CHARS;
    if !short(&request.user) || request.user.chars().any(char::is_control) {
        return Err(RelayError::bad_request("user must be 1..=64 characters"));
    }
    if request.name.as_deref().is_some_and(|n| !short(n))
        || request.role.as_deref().is_some_and(|r| !short(r))
    {
        return Err(RelayError::bad_request(
            "name and role must be 1..=64 characters",
        ));
    }
    if request.rooms.len() > MAX_ROOMS {
        return Err(RelayError::bad_request("at most 20 rooms"));
    }
    for grant in &request.rooms {
        if grant != "*" {
            room_name::validate(grant.strip_suffix('*').unwrap_or(grant))?;
        }
    }
    Ok((
        User {
            id: request.user,
            name: request.name,
            role: request.role,
        },
        request.rooms,
    ))
}

/// The route's answer to `body` at `now_ms`: `{"token","expires_in"}`, a token signed with
/// `JWT_SECRET`. Not found unless `DEV_MODE` is set (production answers 404).
pub fn issue(settings: &Settings, body: &str, now_ms: i64) -> RelayResult<String> {
    if !settings.dev_mode {
        return Err(RelayError::not_found("no such route"));
    }
    let (user, rooms) = parse_request(body)?;
    let secret = &settings
        .jwt
        .as_ref()
        .ok_or_else(RelayError::internal)?
        .secret;
    let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let ttl = chrono::Duration::seconds(DEV_TOKEN_TTL_SECS);
    let token = auth::mint(&user, &rooms, secret, now, ttl)?;
    Ok(serde_json::json!({ "token": token, "expires_in": DEV_TOKEN_TTL_SECS }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        Settings::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn tokens_are_issued_in_dev_mode_only_and_verify() {
        let body = r#"{"user":"ann","rooms":["chat:*"]}"#;
        let now_ms = 1_700_000_000_000;
        let off = settings(&[("JWT_SECRET", "dev-secret")]);
        assert_eq!(
            issue(&off, body, now_ms).unwrap_err().code,
            ErrorCode::NotFound
        );
        let on = settings(&[("JWT_SECRET", "dev-secret"), ("DEV_MODE", "1")]);
        let answer: serde_json::Value =
            serde_json::from_str(&issue(&on, body, now_ms).unwrap()).unwrap();
        assert_eq!(answer["expires_in"], DEV_TOKEN_TTL_SECS);
        let token = answer["token"].as_str().unwrap();
        let config = on.jwt.as_ref().unwrap();
        let now = chrono::DateTime::from_timestamp_millis(now_ms + 1_000).unwrap();
        let identity = auth::verify(token, config, &on.public_keys, now).unwrap();
        assert_eq!(identity.user.id, "ann");
        assert!(identity.may_access("chat:9"));
        assert!(!identity.may_access("other"));
    }

    #[test]
    fn parses_a_request() {
        let (user, rooms) =
            parse_request(r#"{"user":"ann","name":"Ann","rooms":["chat:1","city:*"]}"#).unwrap();
        assert_eq!(user.id, "ann");
        assert_eq!(user.name.as_deref(), Some("Ann"));
        assert_eq!(rooms, vec!["chat:1", "city:*"]);
    }

    #[test]
    fn rejects_bad_requests() {
        for body in [
            "",
            r#"{"name":"x"}"#,
            r#"{"user":""}"#,
            r#"{"user":"a","rooms":["has space"]}"#,
            r#"{"user":"a","admin":true}"#,
            &format!(r#"{{"user":"{}"}}"#, "x".repeat(65)),
        ] {
            assert!(parse_request(body).is_err(), "{body}");
        }
    }
}
