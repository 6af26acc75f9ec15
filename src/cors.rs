//! Cross-origin policy: which browser origins may call the user routes (`ALLOWED_ORIGINS`),
//! the CORS headers of their answers and preflights, and the `Origin` check of upgrades.
//!
//! The runtime only applies what this returns. Origins are compared as serialised origins
//! (`scheme://host[:port]`, no path), ASCII case-insensitively.

use crate::error::{RelayError, RelayResult};

/// `Access-Control-Allow-Headers` of a preflight: what the browser client sends.
pub const ALLOWED_HEADERS: &str = "authorization, content-type";

/// How long a browser may reuse a preflight answer (`Access-Control-Max-Age`): Chromium's own
/// cap, so that requests with an `Authorization` header do not each cost a preflight.
pub const PREFLIGHT_MAX_AGE_SECS: u32 = 7200;

/// Response headers a script on an allowed origin may read besides the always-safe ones.
pub const EXPOSED_HEADERS: &str = "Retry-After";

/// The message of every refusal for an origin (preflight or upgrade).
pub const ORIGIN_REFUSED: &str = "origin not allowed";

/// One response header: lower-case name and value.
pub type Header = (&'static str, String);

/// The `ALLOWED_ORIGINS` variable, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    /// `*`: every origin.
    any: bool,
    /// Exact origins, lower-cased.
    origins: Vec<String>,
}

impl AllowedOrigins {
    /// Parses the variable: `*` (any origin; also when one entry of a list is `*`), or
    /// comma-separated origins such as `https://app.example,http://localhost:5173`. Unset or
    /// empty: no other origin (same origin only). Also returns the entries that are not an
    /// origin (they allow nothing), so that the runtime can log them.
    pub fn parse(value: Option<&str>) -> (AllowedOrigins, Vec<String>) {
        let mut allowed = AllowedOrigins::default();
        let mut invalid = Vec::new();
        for entry in value.unwrap_or("").split(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                allowed.any = true;
                continue;
            }
            // A trailing slash is a common way of writing an origin that browsers never send.
            let origin = entry
                .strip_suffix('/')
                .unwrap_or(entry)
                .to_ascii_lowercase();
            if is_origin(&origin) {
                if !allowed.origins.contains(&origin) {
                    allowed.origins.push(origin);
                }
            } else {
                invalid.push(entry.to_string());
            }
        }
        (allowed, invalid)
    }

    /// Whether a script on `origin` (an `Origin` header) may call the user routes.
    pub fn allows(&self, origin: &str) -> bool {
        self.any
            || self
                .origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    }

    /// Whether any origin besides the relay's own may be allowed: only then do answers
    /// depend on `Origin` (and say so with `Vary`), so that only then it needs reading.
    pub fn answers_vary_by_origin(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// Headers for an actual answer (errors included) of a route that browsers may call from
    /// other origins: `Vary: Origin` whenever answers can depend on it, and for an allowed
    /// `origin` its `Access-Control-Allow-Origin` and the exposed `Retry-After`.
    pub fn answer_headers(&self, origin: Option<&str>) -> Vec<Header> {
        if !self.answers_vary_by_origin() {
            return Vec::new();
        }
        let mut headers = vec![("vary", "Origin".to_string())];
        if let Some(origin) = origin.filter(|origin| self.allows(origin)) {
            headers.push(("access-control-allow-origin", origin.to_string()));
            headers.push(("access-control-expose-headers", EXPOSED_HEADERS.to_string()));
        }
        headers
    }

    /// The answer to `OPTIONS` on a route that browsers may call from other origins, whose
    /// `methods` are given and whose `Allow` header is `allow`: the headers of a 204, or the
    /// refusal (403, without CORS headers) of a preflight from an origin not allowed. An
    /// `OPTIONS` without `Origin` is no preflight: it learns the route's methods only.
    pub fn preflight(
        &self,
        origin: Option<&str>,
        methods: &[&str],
        allow: &str,
    ) -> RelayResult<Vec<Header>> {
        let Some(origin) = origin else {
            return Ok(vec![("allow", allow.to_string())]);
        };
        if !self.allows(origin) {
            return Err(RelayError::forbidden(ORIGIN_REFUSED));
        }
        Ok(vec![
            ("access-control-allow-origin", origin.to_string()),
            ("access-control-allow-methods", methods.join(", ")),
            ("access-control-allow-headers", ALLOWED_HEADERS.to_string()),
            ("access-control-max-age", PREFLIGHT_MAX_AGE_SECS.to_string()),
            ("vary", "Origin".to_string()),
        ])
    }

    /// Whether a WebSocket upgrade to `request_url` with this `Origin` header may proceed:
    /// without `Origin` (servers, command-line clients) always; a browser only from the
    /// relay's own origin or an allowed one.
    pub fn check_upgrade(&self, origin: Option<&str>, request_url: &str) -> RelayResult<()> {
        match origin {
            None => Ok(()),
            Some(origin)
                if origin.eq_ignore_ascii_case(origin_of_url(request_url))
                    || self.allows(origin) =>
            {
                Ok(())
            }
            Some(_) => Err(RelayError::forbidden(ORIGIN_REFUSED)),
        }
    }
}

/// The origin (`scheme://host[:port]`) of an absolute URL as the runtime hands it to the Worker
/// (already normalised: lower-case scheme and host, no default port).
pub fn origin_of_url(url: &str) -> &str {
    let Some(scheme_end) = url.find("://") else {
        return url;
    };
    let authority_start = scheme_end + 3;
    let end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    &url[..end]
}

/// Whether `text` is a serialised http(s) origin: scheme, `://`, a host and maybe a port,
/// nothing else (no path, user info, query or fragment).
fn is_origin(text: &str) -> bool {
    let Some(authority) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal's own colons sit inside brackets.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn parsed(value: &str) -> AllowedOrigins {
        let (allowed, invalid) = AllowedOrigins::parse(Some(value));
        assert!(invalid.is_empty(), "{value}: {invalid:?}");
        allowed
    }

    fn header<'h>(headers: &'h [Header], name: &str) -> Option<&'h str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn unset_or_empty_allows_no_other_origin() {
        for value in [None, Some(""), Some(" , ")] {
            let (allowed, invalid) = AllowedOrigins::parse(value);
            assert!(invalid.is_empty());
            assert!(!allowed.answers_vary_by_origin());
            assert!(!allowed.allows("https://app.example"), "{value:?}");
            assert!(allowed
                .answer_headers(Some("https://app.example"))
                .is_empty());
        }
    }

    #[test]
    fn a_list_allows_exactly_its_origins() {
        let allowed = parsed(" https://app.example , http://localhost:5173/,HTTPS://Admin.Example");
        assert!(allowed.allows("https://app.example"));
        assert!(allowed.allows("http://localhost:5173"));
        assert!(allowed.allows("https://admin.example"));
        assert!(allowed.allows("https://APP.example"));
        for foreign in [
            "http://app.example",
            "https://app.example:8443",
            "https://evil.app.example",
            "https://app.example.evil",
            "http://localhost:5174",
            "null",
            "",
        ] {
            assert!(!allowed.allows(foreign), "{foreign}");
        }
    }

    #[test]
    fn a_star_allows_every_origin() {
        assert!(parsed("*").allows("https://anything.example"));
        assert!(parsed("https://app.example, *").allows("http://localhost:1"));
    }

    #[test]
    fn entries_that_are_not_origins_allow_nothing_and_are_reported() {
        let (allowed, invalid) = AllowedOrigins::parse(Some(
            "app.example,https://app.example/path,ftp://x.example,https://,https://a.example:port,https://ok.example",
        ));
        assert_eq!(
            invalid,
            [
                "app.example",
                "https://app.example/path",
                "ftp://x.example",
                "https://",
                "https://a.example:port"
            ]
        );
        assert!(!allowed.allows("https://app.example"));
        assert!(allowed.allows("https://ok.example"));
        assert!(parsed("http://[::1]:8080").allows("http://[::1]:8080"));
    }

    #[test]
    fn answers_carry_the_allowed_origin_and_expose_retry_after() {
        let allowed = parsed("https://app.example");
        let headers = allowed.answer_headers(Some("https://app.example"));
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(
            header(&headers, "access-control-expose-headers"),
            Some("Retry-After")
        );
        assert_eq!(header(&headers, "vary"), Some("Origin"));
        // Another origin, or none, gets only the Vary that keeps caches apart.
        for origin in [Some("https://evil.example"), None] {
            let headers = allowed.answer_headers(origin);
            assert_eq!(headers, vec![("vary", "Origin".to_string())], "{origin:?}");
        }
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_gets_the_routes_methods() {
        let allowed = parsed("https://app.example");
        let headers = allowed
            .preflight(
                Some("https://app.example"),
                &["GET", "POST"],
                "GET, POST, OPTIONS",
            )
            .unwrap();
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(
            header(&headers, "access-control-allow-methods"),
            Some("GET, POST")
        );
        assert_eq!(
            header(&headers, "access-control-allow-headers"),
            Some("authorization, content-type")
        );
        assert_eq!(header(&headers, "access-control-max-age"), Some("7200"));
        assert_eq!(header(&headers, "vary"), Some("Origin"));
    }

    #[test]
    fn a_preflight_from_another_origin_is_refused_without_cors_headers() {
        for allowed in [parsed("https://app.example"), AllowedOrigins::default()] {
            let err = allowed
                .preflight(Some("https://evil.example"), &["GET"], "GET, OPTIONS")
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::Forbidden);
            assert_eq!(err.message, "origin not allowed");
        }
    }

    #[test]
    fn options_without_origin_only_lists_the_methods() {
        let headers = AllowedOrigins::default()
            .preflight(None, &["GET"], "GET, HEAD, OPTIONS")
            .unwrap();
        assert_eq!(headers, vec![("allow", "GET, HEAD, OPTIONS".to_string())]);
    }

    #[test]
    fn upgrades_from_the_relays_own_origin_or_without_origin_pass() {
        let none = AllowedOrigins::default();
        let url = "https://relay.example/v1/rooms/a/ws?token=x";
        assert!(none.check_upgrade(None, url).is_ok());
        assert!(none
            .check_upgrade(Some("https://relay.example"), url)
            .is_ok());
        let local = "http://127.0.0.1:8787/v1/rooms/a/ws";
        assert!(none
            .check_upgrade(Some("http://127.0.0.1:8787"), local)
            .is_ok());
        for foreign in [
            "http://relay.example",
            "https://relay.example:444",
            "https://app.example",
            "null",
        ] {
            let err = none.check_upgrade(Some(foreign), url).unwrap_err();
            assert_eq!(err.code, ErrorCode::Forbidden, "{foreign}");
            assert_eq!(err.message, "origin not allowed");
        }
        assert!(parsed("https://app.example")
            .check_upgrade(Some("https://app.example"), url)
            .is_ok());
    }

    #[test]
    fn origin_of_url_keeps_scheme_host_and_port() {
        assert_eq!(
            origin_of_url("http://127.0.0.1:8787/v1/rooms/a/ws?x=1"),
            "http://127.0.0.1:8787"
        );
        assert_eq!(
            origin_of_url("https://relay.example?x"),
            "https://relay.example"
        );
        assert_eq!(
            origin_of_url("https://relay.example"),
            "https://relay.example"
        );
    }
}
