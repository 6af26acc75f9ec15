//! Splits a request URL into its raw path and its decoded query pairs, without a URL parser:
//! the runtime hands the Worker an already normalised absolute URL. The query is decoded by
//! `form_urlencoded`, the WHATWG form decoding that the `url` crate itself uses.

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
/// an invalid escape kept as it is, invalid UTF-8 replaced); a key without `=` has an empty
/// value and empty pairs are skipped.
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    let Some(start) = url.find('?') else {
        return Vec::new();
    };
    let query = &url[start + 1..];
    let query = &query[..query.find('#').unwrap_or(query.len())];
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
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

    #[test]
    fn form_decoding_edge_cases() {
        let pairs = |url: &str| query_pairs(url);
        let owned = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // `+` is a space in keys and values alike; `%2B` is the plus sign itself.
        assert_eq!(
            pairs("http://h/?a+b=c+d&e=%2B+%2b"),
            owned(&[("a b", "c d"), ("e", "+ +")])
        );
        // Only the first `=` splits; empty pairs are skipped; an empty key is kept.
        assert_eq!(
            pairs("http://h/?a=b=c&&=x&"),
            owned(&[("a", "b=c"), ("", "x")])
        );
        // A `%` without two hex digits after it stays as written, even at the end.
        assert_eq!(
            pairs("http://h/?a=%&b=%2&c=%%41&d=%+1"),
            owned(&[("a", "%"), ("b", "%2"), ("c", "%A"), ("d", "% 1")])
        );
        // `#` ends the query, a second `?` belongs to it.
        assert_eq!(pairs("http://h/?a=?b#c=d"), owned(&[("a", "?b")]));
    }
}
