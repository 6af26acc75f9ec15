//! The demo chat page and the browser client, embedded in the Worker and served by it.
//!
//! Served from the Worker rather than as static assets: with an assets directory, every
//! request (each WebSocket connect, publish and broadcast) first takes a detour through the
//! asset router, which costs more than the relay's own work on a connect.

/// One embedded file.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    pub content_type: &'static str,
    pub body: &'static str,
}

const INDEX: Page = Page {
    content_type: "text/html; charset=utf-8",
    body: include_str!("../public/index.html"),
};
const APP: Page = Page {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../public/app.js"),
};
const STYLE: Page = Page {
    content_type: "text/css; charset=utf-8",
    body: include_str!("../public/style.css"),
};
const CLIENT: Page = Page {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../client/relay.js"),
};

/// The embedded file at `path`, if any.
pub fn page(path: &str) -> Option<&'static Page> {
    match path {
        "/" | "/index.html" => Some(&INDEX),
        "/app.js" => Some(&APP),
        "/style.css" => Some(&STYLE),
        "/client/relay.js" => Some(&CLIENT),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_demo_and_the_client() {
        let index = page("/").expect("index");
        assert!(index.content_type.starts_with("text/html"));
        assert!(index.body.contains("/app.js"), "the page loads its script");
        assert_eq!(page("/index.html"), Some(index));
        // The client is the ES module built from packages/client: its exports come last.
        let client = page("/client/relay.js").expect("client").body;
        let exports = &client[client.rfind("export {").expect("an ES module")..];
        assert!(
            exports.contains("  RelayClient,\n"),
            "it exports RelayClient"
        );
        assert!(page("/app.js").is_some() && page("/style.css").is_some());
    }

    #[test]
    fn nothing_else_is_a_page() {
        for path in [
            "/nope",
            "/client/",
            "/public/app.js",
            "/../Cargo.toml",
            "/v1/rooms/a/ws",
        ] {
            assert_eq!(page(path), None, "{path}");
        }
    }
}
