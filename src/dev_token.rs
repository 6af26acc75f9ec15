//! The development token route (`POST /dev/token`), present only when `DEV_MODE` is set.

use serde::Deserialize;

use crate::auth::User;
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

#[cfg(test)]
mod tests {
    use super::*;

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
