//! Client ids (`cid`): the key that makes a publish, an edit or a delete idempotent per
//! sender, and a backend broadcast's `id`; their rules, shared by every frame and body that
//! carries one.

use crate::error::{RelayError, RelayResult};

pub const MAX_CID_CHARS: usize = 64;

/// 1..=64 characters, none of them a control character.
pub fn validate_cid(cid: &str) -> RelayResult<()> {
    let chars = cid.chars().count();
    if chars == 0 || chars > MAX_CID_CHARS {
        return Err(RelayError::bad_request("cid must be 1..=64 characters"));
    }
    if cid.chars().any(char::is_control) {
        return Err(RelayError::bad_request(
            "cid must not contain control characters",
        ));
    }
    Ok(())
}
