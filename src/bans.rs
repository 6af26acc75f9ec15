//! Bans: users a backend shut out of one room, for good or until a time
//! (`PUT`/`DELETE /v1/rooms/{room}/bans/{user}`, `GET /v1/rooms/{room}/bans`).

use serde::{Deserialize, Serialize};

use crate::error::{RelayError, RelayResult};

/// Most bans one room keeps (expired ones do not count): a backend that needs more wants a
/// members-only room instead.
pub const MAX_BANS: u64 = 10_000;
/// The furthest `until` accepted: ten years ahead (longer is what no `until` means).
const MAX_BAN_SECS: i64 = 10 * 366 * 24 * 3600;
/// What a banned user is told: the error message, and the reason of the 4003 close.
pub const BANNED: &str = "banned";

/// One ban: until when (unix seconds), or for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub user: String,
    pub until: Option<i64>,
}

/// The body of a ban, `{"until"?: <unix seconds>}` (empty or absent: for good), judged at
/// `now_s`: a ban that would already be over is refused, not stored.
pub fn parse_until(body: &str, now_s: i64) -> RelayResult<Option<i64>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        until: Option<i64>,
    }
    if body.trim().is_empty() {
        return Ok(None);
    }
    let until = serde_json::from_str::<Body>(body)
        .map_err(|_| RelayError::bad_request("the body must be {\"until\"?: unix seconds}"))?
        .until;
    match until {
        Some(until) if until <= now_s => {
            Err(RelayError::bad_request("until must be in the future"))
        }
        Some(until) if until > now_s.saturating_add(MAX_BAN_SECS) => Err(RelayError::bad_request(
            "until must be within ten years; leave it out for a ban for good",
        )),
        until => Ok(until),
    }
}

/// Whether a ban that ends at `until` still holds at `now_s`.
pub fn holds(until: Option<i64>, now_s: i64) -> bool {
    until.is_none_or(|until| until > now_s)
}

/// The refusal a banned user gets on every route of the room (403, or close 4003).
pub fn refusal() -> RelayError {
    RelayError::forbidden(BANNED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_ban_is_for_good_or_until_a_future_time_within_ten_years() {
        assert_eq!(parse_until("", NOW).unwrap(), None);
        assert_eq!(parse_until("{}", NOW).unwrap(), None);
        assert_eq!(parse_until(r#"{"until":null}"#, NOW).unwrap(), None);
        let later = NOW + 3600;
        assert_eq!(
            parse_until(&format!(r#"{{"until":{later}}}"#), NOW).unwrap(),
            Some(later)
        );
        for bad in [
            format!(r#"{{"until":{NOW}}}"#),
            format!(r#"{{"until":{}}}"#, NOW + MAX_BAN_SECS + 1),
            r#"{"until":"tomorrow"}"#.to_string(),
            r#"{"until":1.5}"#.to_string(),
            r#"{"reason":"spam"}"#.to_string(),
            "[]".to_string(),
        ] {
            assert_eq!(
                parse_until(&bad, NOW).unwrap_err().code,
                ErrorCode::BadRequest,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_ban_holds_until_its_time() {
        assert!(holds(None, NOW));
        assert!(holds(Some(NOW + 1), NOW));
        assert!(!holds(Some(NOW), NOW));
        assert_eq!(refusal().code, ErrorCode::Forbidden);
        assert_eq!(refusal().close_reason(), BANNED);
    }
}
