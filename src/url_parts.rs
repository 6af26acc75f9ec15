//! Splits a request URL into its raw path and its decoded query pairs, without a URL parser:
//! the runtime hands the Worker an already normalised absolute URL.

/// The raw (still percent-encoded) path of an absolute URL; `/` when it has none.
pub fn path(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let Some(start) = rest.find('/') else {
        return "/";
    };
    let path = &rest[start..];
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// The query pairs of an absolute URL, decoded as form data (`+` is a space, `%XX` a byte,
/// invalid UTF-8 replaced); a key without `=` has an empty value.
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    let Some(start) = url.find('?') else {
        return Vec::new();
    };
    let query = &url[start + 1..];
    let query = &query[..query.find('#').unwrap_or(query.len())];
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key), form_decode(value))
        })
        .collect()
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_raw_and_stops_at_query_or_fragment() {
        assert_eq!(
            path("http://127.0.0.1:8787/v1/rooms/a%3Ab/ws?token=x#f"),
            "/v1/rooms/a%3Ab/ws"
        );
        assert_eq!(path("https://room/connect"), "/connect");
        assert_eq!(path("https://example.com"), "/");
        assert_eq!(path("https://example.com?x=1"), "/");
        assert_eq!(path("https://example.com/#top"), "/");
    }

    #[test]
    fn query_pairs_are_form_decoded() {
        assert_eq!(
            query_pairs("http://h/p?token=a.b-c&since=5&batch&q=x+y%20z%2B#frag"),
            vec![
                ("token".to_string(), "a.b-c".to_string()),
                ("since".to_string(), "5".to_string()),
                ("batch".to_string(), String::new()),
                ("q".to_string(), "x y z+".to_string()),
            ]
        );
        assert!(query_pairs("http://h/p").is_empty());
        assert!(query_pairs("http://h/p?").is_empty());
    }

    #[test]
    fn bad_escapes_are_kept_and_bad_utf8_replaced() {
        assert_eq!(
            query_pairs("http://h/?a=%zz%4&b=%C3%A9&c=%FF"),
            vec![
                ("a".to_string(), "%zz%4".to_string()),
                ("b".to_string(), "é".to_string()),
                ("c".to_string(), "\u{FFFD}".to_string()),
            ]
        );
    }
}
