//! The catalogue of the ways the relay closes a socket: close code, reason and what the client
//! should do next. The one source of these codes and reasons on the server.

use serde::Deserialize;

use crate::error::{RelayError, RelayResult, MAX_CLOSE_REASON_BYTES};

/// What a client does after a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// Reconnect with `since` (after a backoff): nothing the client did is wrong.
    Resume,
    /// Reconnect only with a new token.
    WithNewToken,
    /// Do not reconnect: the client must change something first.
    Never,
}

/// One way a socket ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect {
    pub code: u16,
    pub reason: &'static str,
    pub reconnect: Reconnect,
}

pub const TOKEN_EXPIRED: Disconnect = Disconnect {
    code: 4001,
    reason: "token expired",
    reconnect: Reconnect::WithNewToken,
};
pub const PROTOCOL_VIOLATIONS: Disconnect = Disconnect {
    code: 4400,
    reason: "too many protocol violations",
    reconnect: Reconnect::Never,
};
pub const RATE_LIMIT_ABUSE: Disconnect = Disconnect {
    code: 4008,
    reason: "rate limit abuse",
    reconnect: Reconnect::Resume,
};
pub const FRAME_TOO_LARGE: Disconnect = Disconnect {
    code: 4009,
    reason: "frame too large",
    reconnect: Reconnect::Never,
};
pub const SLOW_CONSUMER: Disconnect = Disconnect {
    code: 4010,
    reason: "slow consumer",
    reconnect: Reconnect::Resume,
};
pub const REMOVED_FROM_ROOM: Disconnect = Disconnect {
    code: 4003,
    reason: "removed from the room",
    reconnect: Reconnect::Never,
};
/// A backend banned the user from the room (see [`crate::bans`]).
pub const BANNED: Disconnect = Disconnect {
    code: 4003,
    reason: crate::bans::BANNED,
    reconnect: Reconnect::Never,
};
/// A backend disconnected the user; the reason is the backend's (this is the default).
pub const DISCONNECTED: Disconnect = Disconnect {
    code: 4003,
    reason: "disconnected",
    reconnect: Reconnect::Never,
};
pub const INTERNAL: Disconnect = Disconnect {
    code: 1011,
    reason: "internal error",
    reconnect: Reconnect::Resume,
};

/// The reason of `POST /v1/users/{user}/disconnect`: the body `{"reason"?}` (empty or absent:
/// [`DISCONNECTED`]'s), at most a close frame's 123 bytes.
pub fn parse_reason(body: &str) -> RelayResult<String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        reason: Option<String>,
    }
    let reason = if body.trim().is_empty() {
        None
    } else {
        serde_json::from_str::<Body>(body)
            .map_err(|_| RelayError::bad_request("the body must be {\"reason\"?: string}"))?
            .reason
    };
    match reason.filter(|reason| !reason.is_empty()) {
        None => Ok(DISCONNECTED.reason.to_string()),
        Some(reason) if reason.len() <= MAX_CLOSE_REASON_BYTES => Ok(reason),
        Some(_) => Err(RelayError::bad_request(format!(
            "reason must be at most {MAX_CLOSE_REASON_BYTES} bytes"
        ))),
    }
}

/// Every entry, for the documentation test and for clients that mirror the table.
pub const ALL: [Disconnect; 9] = [
    TOKEN_EXPIRED,
    REMOVED_FROM_ROOM,
    BANNED,
    DISCONNECTED,
    PROTOCOL_VIOLATIONS,
    RATE_LIMIT_ABUSE,
    FRAME_TOO_LARGE,
    SLOW_CONSUMER,
    INTERNAL,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorCode, SLOW_CONSUMER_CLOSE};

    #[test]
    fn codes_match_the_error_codes_and_reasons_fit_a_close_frame() {
        assert_eq!(TOKEN_EXPIRED.code, ErrorCode::Unauthorized.close_code());
        assert_eq!(PROTOCOL_VIOLATIONS.code, ErrorCode::BadRequest.close_code());
        assert_eq!(RATE_LIMIT_ABUSE.code, ErrorCode::RateLimited.close_code());
        assert_eq!(FRAME_TOO_LARGE.code, ErrorCode::TooLarge.close_code());
        assert_eq!(INTERNAL.code, ErrorCode::Internal.close_code());
        assert_eq!(REMOVED_FROM_ROOM.code, ErrorCode::Forbidden.close_code());
        assert_eq!(DISCONNECTED.code, ErrorCode::Forbidden.close_code());
        assert_eq!(
            (SLOW_CONSUMER.code, SLOW_CONSUMER.reason),
            SLOW_CONSUMER_CLOSE
        );
        assert!(ALL.iter().all(|d| d.reason.len() <= MAX_CLOSE_REASON_BYTES));
    }

    #[test]
    fn every_close_code_is_documented_in_the_protocol() {
        let protocol = include_str!("../docs/PROTOCOL.md");
        for disconnect in ALL {
            assert!(
                protocol.contains(&disconnect.code.to_string()),
                "docs/PROTOCOL.md does not mention close code {}",
                disconnect.code
            );
        }
    }

    #[test]
    fn a_disconnect_reason_is_optional_and_bounded() {
        for body in ["", "{}", r#"{"reason":""}"#, r#"{"reason":null}"#] {
            assert_eq!(parse_reason(body).unwrap(), "disconnected", "{body:?}");
        }
        assert_eq!(
            parse_reason(r#"{"reason":"account suspended"}"#).unwrap(),
            "account suspended"
        );
        let long = format!(
            r#"{{"reason":"{}"}}"#,
            "x".repeat(MAX_CLOSE_REASON_BYTES + 1)
        );
        for bad in [
            long.as_str(),
            "[]",
            r#"{"reason":7}"#,
            r#"{"why":"x"}"#,
            "not json",
        ] {
            let err = parse_reason(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{bad}");
        }
    }

    /// The browser client's table of close codes (`CLOSE_CODES` in `client/relay.js`, the
    /// build of packages/client/src/relay.ts) names, for every code the relay closes with, the
    /// error code whose close code it is. 4010 is absent on purpose: the client reconnects
    /// silently.
    #[test]
    fn the_browser_client_knows_every_close_code() {
        let client = include_str!("../client/relay.js");
        let table = client
            .lines()
            .find_map(|line| line.strip_prefix("var CLOSE_CODES = {"))
            .and_then(|rest| rest.split('}').next())
            .expect("client/relay.js defines CLOSE_CODES on one line");
        let entries: Vec<(u16, String)> = table
            .split(',')
            .map(|entry| {
                let (code, name) = entry.split_once(':').expect("code: \"name\"");
                let name = name.trim().trim_matches('"').to_string();
                (code.trim().parse().expect("a numeric close code"), name)
            })
            .collect();
        for (code, name) in &entries {
            if let Some(error) = ErrorCode::ALL.iter().find(|e| e.as_str() == name) {
                assert_eq!(error.close_code(), *code, "client maps {code} to {name}");
            }
        }
        for disconnect in ALL.iter().filter(|d| d.code != SLOW_CONSUMER.code) {
            assert!(
                entries.iter().any(|(code, _)| *code == disconnect.code),
                "client/relay.js does not know close code {}",
                disconnect.code
            );
        }
    }
}
