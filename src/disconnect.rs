//! The catalogue of the ways the relay closes a socket: close code, reason and what the client
//! should do next. The one source of these codes and reasons on the server.

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

/// Every entry, for the documentation test and for clients that mirror the table.
pub const ALL: [Disconnect; 8] = [
    TOKEN_EXPIRED,
    REMOVED_FROM_ROOM,
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
    use crate::error::{ErrorCode, MAX_CLOSE_REASON_BYTES, SLOW_CONSUMER_CLOSE};

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
}
