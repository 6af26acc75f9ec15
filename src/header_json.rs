//! JSON fit for an HTTP header value: the same JSON with every non-ASCII character escaped.

use std::fmt::Write as _;

/// `json` with each non-ASCII character written as `\uXXXX` (UTF-16, surrogate pairs beyond
/// the BMP): the same value to any JSON parser, in visible ASCII as header values must be.
/// Valid only for serialised JSON, where non-ASCII characters can only stand inside strings.
pub fn ascii_only(json: String) -> String {
    if json.is_ascii() {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for ch in json.chars() {
        if ch.is_ascii() {
            out.push(ch);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in ch.encode_utf16(&mut units) {
            let _ = write!(out, "\\u{unit:04x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn ascii_json_is_passed_through_unchanged() {
        let text = r#"{"user":{"id":"u-1","name":"Ann \"A\" \u00e9"},"exp":1}"#;
        assert_eq!(ascii_only(text.to_string()), text);
    }

    #[test]
    fn non_ascii_becomes_escapes_with_the_same_value() {
        let value = json!({"user": {"id": "ж-1", "name": "Юникод 😀 é", "role": "op"}, "exp": 7});
        let text = serde_json::to_string(&value).unwrap();
        let escaped = ascii_only(text);
        assert!(escaped.is_ascii(), "{escaped}");
        assert!(
            escaped.contains(r"\ud83d\ude00"),
            "surrogate pair: {escaped}"
        );
        assert_eq!(serde_json::from_str::<Value>(&escaped).unwrap(), value);
    }
}
