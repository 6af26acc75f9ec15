//! Room names: percent-decoding from a URL path segment and the validation rules of the contract.

use crate::error::{RelayError, RelayResult};

pub const MAX_ROOM_NAME_BYTES: usize = 128;

/// Validates a decoded room name: 1..=128 bytes of UTF-8, no whitespace, no control
/// characters, no `/`, `?` or `#`.
pub fn validate(name: &str) -> RelayResult<()> {
    if name.is_empty() {
        return Err(RelayError::bad_request("room name is empty"));
    }
    if name.len() > MAX_ROOM_NAME_BYTES {
        return Err(RelayError::bad_request(
            "room name is longer than 128 bytes",
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#'))
    {
        return Err(RelayError::bad_request(format!(
            "room name contains a forbidden character {:?}",
            bad
        )));
    }
    Ok(())
}

/// Decodes a percent-encoded path segment into a validated room name.
pub fn from_path_segment(segment: &str) -> RelayResult<String> {
    let name = percent_decode(segment)?;
    validate(&name)?;
    Ok(name)
}

/// Strict percent-decoding: a `%` must be followed by two hex digits and the result must be UTF-8.
pub fn percent_decode(input: &str) -> RelayResult<String> {
    let bytes = input.as_bytes();
    if bytes.len() > MAX_ROOM_NAME_BYTES * 3 {
        return Err(RelayError::bad_request(
            "room name is longer than 128 bytes",
        ));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| RelayError::bad_request("room name has a bad percent-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| RelayError::bad_request("room name is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_unicode_names() {
        assert_eq!(from_path_segment("chat:42").unwrap(), "chat:42");
        assert_eq!(
            from_path_segment("city:%D0%A1%D0%B0%D1%80%D0%B0%D1%82%D0%BE%D0%B2").unwrap(),
            "city:Саратов"
        );
        assert_eq!(from_path_segment("city:Саратов").unwrap(), "city:Саратов");
    }

    #[test]
    fn rejects_forbidden_characters() {
        for bad in [
            "a%20b",
            "a%2Fb",
            "a%3Fb",
            "a%23b",
            "a%09b",
            "a%00b",
            "a%E2%80%83b",
        ] {
            assert!(from_path_segment(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn enforces_length_in_bytes() {
        assert!(validate(&"a".repeat(128)).is_ok());
        assert!(validate(&"a".repeat(129)).is_err());
        // 64 two-byte letters are 128 bytes; one more is too long.
        assert!(validate(&"ж".repeat(64)).is_ok());
        assert!(validate(&"ж".repeat(65)).is_err());
        assert!(validate("").is_err());
    }

    #[test]
    fn rejects_bad_escapes_and_invalid_utf8() {
        assert!(percent_decode("a%2").is_err());
        assert!(percent_decode("a%zz").is_err());
        assert!(percent_decode("%FF").is_err());
    }
}
