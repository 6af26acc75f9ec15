//! Room names: percent-decoding from a URL path segment, the encoding that carries them in a
//! header, and the validation rules of the contract.

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

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
/// The `percent-encoding` crate decodes; it keeps a malformed escape as written, so those are
/// refused here first.
pub fn percent_decode(input: &str) -> RelayResult<String> {
    if input.len() > MAX_ROOM_NAME_BYTES * 3 {
        return Err(RelayError::bad_request(
            "room name is longer than 128 bytes",
        ));
    }
    let well_formed = input.split('%').skip(1).all(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return Err(RelayError::bad_request(
            "room name has a bad percent-escape",
        ));
    }
    percent_decode_str(input)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| RelayError::bad_request("room name is not valid UTF-8"))
}

/// What [`percent_encode`] escapes: everything but ASCII letters, digits and
/// `-._~:*@!$&'()+,;=`, so the result is a valid header value and a valid path segment.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'*')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=');

/// Percent-encodes a room name (escapes as `%XX`, upper case) so that it can travel in a
/// header, which must be visible ASCII; [`percent_decode`] reverses it.
pub fn percent_encode(name: &str) -> String {
    utf8_percent_encode(name, ESCAPED).to_string()
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
        assert!(percent_decode("%").is_err());
        assert!(percent_decode("a%%41").is_err());
        // A sign is not a hex digit: "%+1" is not the byte 0x01 (it was, through
        // `u8::from_str_radix`, which accepts a leading `+`).
        assert!(percent_decode("%+1").is_err());
        assert!(percent_decode("%-1").is_err());
        assert_eq!(percent_decode("%41%c3%a9+").unwrap(), "Aé+");
        assert_eq!(percent_decode("").unwrap(), "");
    }

    #[test]
    fn bounds_the_encoded_length() {
        assert_eq!(percent_decode(&"%41".repeat(128)).unwrap(), "A".repeat(128));
        assert!(percent_decode(&format!("{}a", "%41".repeat(128))).is_err());
    }

    #[test]
    fn header_encoding_is_visible_ascii_and_round_trips() {
        assert_eq!(
            percent_encode("city:Саратов 1/2?#%"),
            "city:%D0%A1%D0%B0%D1%80%D0%B0%D1%82%D0%BE%D0%B2%201%2F2%3F%23%25"
        );
        assert_eq!(
            percent_encode("a-._~:*@!$&'()+,;=z09"),
            "a-._~:*@!$&'()+,;=z09"
        );
        assert_eq!(percent_encode("\"\t\u{7f}<>"), "%22%09%7F%3C%3E");
        for name in ["chat:42", "city:Саратов", "a%20b", "x+y", "😀"] {
            let encoded = percent_encode(name);
            assert!(encoded.bytes().all(|b| b.is_ascii_graphic()), "{encoded}");
            assert_eq!(percent_decode(&encoded).unwrap(), name);
        }
    }
}
