//! The one error type of the relay, and how it maps to HTTP statuses, error bodies and close codes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Error categories of the wire contract; each has one HTTP status and one close code. Its
/// serde name is [`ErrorCode::as_str`], so that an error crosses the boundary between the
/// Worker and a room exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    TooLarge,
    UpgradeRequired,
    RateLimited,
    /// The before-publish hook refused a publish (see [`crate::publish_hook`]).
    Rejected,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::TooLarge,
        ErrorCode::UpgradeRequired,
        ErrorCode::RateLimited,
        ErrorCode::Rejected,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UpgradeRequired => "upgrade_required",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Rejected => "rejected",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::TooLarge => 413,
            ErrorCode::UpgradeRequired => 426,
            ErrorCode::RateLimited => 429,
            // Well-formed, but refused for what it says.
            ErrorCode::Rejected => 422,
            ErrorCode::Internal => 500,
        }
    }

    /// The WebSocket close code used when this error ends a connection.
    pub fn close_code(self) -> u16 {
        match self {
            ErrorCode::Unauthorized => 4001,
            ErrorCode::Forbidden => 4003,
            ErrorCode::RateLimited => 4008,
            ErrorCode::TooLarge => 4009,
            ErrorCode::Internal => 1011,
            _ => 4400,
        }
    }
}

/// How the room closes a socket it cuts off as a slow consumer: its unsent output passed
/// `MAX_SOCKET_BUFFER_BYTES`, or a resume's replay could not be delivered. Not an error of the
/// client's making and nothing is lost: the client reconnects with `since` and resumes.
pub const SLOW_CONSUMER_CLOSE: (u16, &str) = (4010, "slow consumer");

/// The longest reason a close frame can carry: its 125-byte payload less the 2-byte code.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// An error with a message that is safe to show to the client (never internals or secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayError {
    pub code: ErrorCode,
    pub message: String,
    /// For `rate_limited`: when to try again (the HTTP `Retry-After`).
    pub retry_after_ms: Option<u64>,
    /// For `method_not_allowed`: the route's methods (the HTTP `Allow`).
    pub allow: Option<String>,
}

pub type RelayResult<T> = Result<T, RelayError>;

impl RelayError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RelayError {
            code,
            message: message.into(),
            retry_after_ms: None,
            allow: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }

    pub fn rate_limited(retry_after_ms: u64) -> Self {
        RelayError {
            retry_after_ms: Some(retry_after_ms),
            ..Self::new(ErrorCode::RateLimited, "too many publishes; slow down")
        }
    }

    /// `method` is not one of the route's; `allow` lists those (the `Allow` header's value).
    pub fn method_not_allowed(method: &str, allow: String) -> Self {
        RelayError {
            allow: Some(allow.clone()),
            ..Self::new(
                ErrorCode::MethodNotAllowed,
                format!("method {method} is not allowed here; allowed: {allow}"),
            )
        }
    }

    /// Whole seconds for a `Retry-After` header (at least 1).
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_ms.map(|ms| ms.div_ceil(1000).max(1))
    }

    /// An internal failure: the detail goes to the log only, the client sees a generic text.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// `{"error":{"code","message"}}`, the body of every failed HTTP response.
    pub fn to_http_body(&self) -> String {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// The error whose [`RelayError::to_http_body`] `body` is, e.g. a room's answer read by
    /// the Worker; `None` when `body` is not one.
    pub fn from_http_body(body: &str) -> Option<RelayError> {
        let body: ErrorBody = serde_json::from_str(body).ok()?;
        Some(RelayError::new(body.error.code, body.error.message))
    }

    /// The close frame's reason when this error ends (or refuses) a connection: the message,
    /// cut on a character boundary to the 123 bytes a close frame has room for.
    pub fn close_reason(&self) -> &str {
        let mut end = self.message.len().min(MAX_CLOSE_REASON_BYTES);
        while !self.message.is_char_boundary(end) {
            end -= 1;
        }
        &self.message[..end]
    }

    /// `{"type":"error","code","message","cid"?}`, the frame sent over a WebSocket.
    pub fn to_frame(&self, cid: Option<&str>) -> String {
        let mut frame = serde_json::json!({
            "type": "error",
            "code": self.code.as_str(),
            "message": self.message,
        });
        if let Some(cid) = cid {
            frame["cid"] = cid.into();
        }
        frame.to_string()
    }
}

/// The body of a failed HTTP response.
#[derive(Serialize, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, Deserialize)]
struct ErrorDetail {
    code: ErrorCode,
    message: String,
}

impl fmt::Display for RelayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for RelayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_body_has_code_and_message() {
        let body = RelayError::forbidden("room not granted").to_http_body();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "forbidden");
        assert_eq!(v["error"]["message"], "room not granted");
    }

    #[test]
    fn every_code_round_trips_through_an_http_body() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
            let err = RelayError::new(code, "détail \"quoted\"");
            let body = err.to_http_body();
            assert_eq!(
                body,
                serde_json::json!({"error": {"code": code.as_str(), "message": err.message}})
                    .to_string()
            );
            assert_eq!(RelayError::from_http_body(&body), Some(err));
        }
        for not_ours in [
            "",
            "{}",
            r#"{"error":{"code":"teapot","message":"x"}}"#,
            "<html>",
        ] {
            assert_eq!(RelayError::from_http_body(not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn frame_carries_cid_only_when_given() {
        let e = RelayError::bad_request("x");
        let with: serde_json::Value = serde_json::from_str(&e.to_frame(Some("c1"))).unwrap();
        assert_eq!(with["type"], "error");
        assert_eq!(with["cid"], "c1");
        let without: serde_json::Value = serde_json::from_str(&e.to_frame(None)).unwrap();
        assert!(without.get("cid").is_none());
    }

    #[test]
    fn slow_consumer_close_is_an_application_code_of_its_own() {
        let (code, reason) = SLOW_CONSUMER_CLOSE;
        assert_eq!((code, reason), (4010, "slow consumer"));
        assert!(ErrorCode::ALL.iter().all(|c| c.close_code() != code));
    }

    #[test]
    fn rate_limited_rounds_retry_after_up_to_seconds() {
        assert_eq!(RelayError::rate_limited(1).retry_after_secs(), Some(1));
        assert_eq!(RelayError::rate_limited(1_001).retry_after_secs(), Some(2));
        assert_eq!(RelayError::bad_request("x").retry_after_secs(), None);
    }

    #[test]
    fn method_not_allowed_carries_the_allow_header() {
        let err = RelayError::method_not_allowed("PUT", "GET, POST, OPTIONS".into());
        assert_eq!(err.code.http_status(), 405);
        assert_eq!(err.allow.as_deref(), Some("GET, POST, OPTIONS"));
        assert_eq!(
            err.message,
            "method PUT is not allowed here; allowed: GET, POST, OPTIONS"
        );
        assert_eq!(RelayError::bad_request("x").allow, None);
    }

    #[test]
    fn close_reasons_fit_a_close_frame_on_a_character_boundary() {
        assert_eq!(
            RelayError::forbidden("origin not allowed").close_reason(),
            "origin not allowed"
        );
        let ascii = RelayError::bad_request("x".repeat(200));
        assert_eq!(ascii.close_reason().len(), 123);
        // 'й' is 2 bytes: 61 of them are 122 bytes, the 62nd would end at byte 124.
        let cyrillic = RelayError::bad_request("й".repeat(100));
        assert_eq!(cyrillic.close_reason(), "й".repeat(61));
        let exact = RelayError::bad_request("y".repeat(123));
        assert_eq!(exact.close_reason(), "y".repeat(123));
    }

    #[test]
    fn statuses_and_close_codes_follow_the_contract() {
        assert_eq!(ErrorCode::UpgradeRequired.http_status(), 426);
        assert_eq!(ErrorCode::TooLarge.http_status(), 413);
        assert_eq!(ErrorCode::TooLarge.close_code(), 4009);
        assert_eq!(ErrorCode::Unauthorized.close_code(), 4001);
        assert_eq!(ErrorCode::RateLimited.close_code(), 4008);
        assert_eq!(ErrorCode::BadRequest.close_code(), 4400);
        assert_eq!(ErrorCode::Forbidden.close_code(), 4003);
        assert_eq!(ErrorCode::Internal.close_code(), 1011);
    }
}
