//! A small HTTP helper over reqwest: one request, bounded in time, giving back the status,
//! headers, raw body and the body parsed as JSON when it is JSON.

use crate::config::relay_url;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

/// How a request carries the user token.
#[derive(Debug, Clone)]
pub enum ReqAuth {
    /// No credentials at all.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `?token=<token>` appended to the query.
    Query(String),
}

/// The outcome of one request.
#[derive(Debug)]
pub struct HttpResponse {
    pub method: Method,
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    /// The body parsed as JSON, if it parses.
    pub json: Option<Value>,
}

impl HttpResponse {
    /// The JSON body; panics with the raw body if it is not JSON.
    pub fn json(&self) -> &Value {
        self.json.as_ref().unwrap_or_else(|| {
            panic!(
                "{} {} -> {}: body is not JSON: {:?}",
                self.method, self.url, self.status, self.body
            )
        })
    }

    /// Asserts the status code, showing the body on failure.
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "{} {}: expected status {status}, got {} with body {:?}",
            self.method, self.url, self.status, self.body
        );
        self
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts `status` and the error body `{"error":{"code":<code>,"message":<string>}}`.
    pub fn assert_error(&self, status: u16, code: &str) {
        self.assert_status(status);
        let ctx = format!("{} {} -> {}", self.method, self.url, self.status);
        crate::shape::assert_error_body(self.json(), code, &ctx);
    }
}

fn client() -> reqwest::Client {
    // One client per request: a reqwest connection pool is bound to the tokio runtime that
    // created it, and every #[tokio::test] has its own runtime.
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("building the HTTP client")
}

/// Sends `method path_and_query` to the relay, with optional JSON body and extra headers.
pub async fn send(
    method: Method,
    path_and_query: &str,
    auth: &ReqAuth,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let body = body.map(|b| serde_json::to_vec(b).expect("serializing the body"));
    send_bytes(method, path_and_query, auth, body, headers).await
}

/// Sends `method path_and_query` with a raw body (sent as is, with `Content-Type:
/// application/json`), for bodies that are deliberately not valid JSON.
pub async fn send_raw(
    method: Method,
    path_and_query: &str,
    auth: &ReqAuth,
    body: impl Into<Vec<u8>>,
) -> HttpResponse {
    send_bytes(method, path_and_query, auth, Some(body.into()), &[]).await
}

/// Sends `method path_and_query` with `body` exactly as given and any extra headers
/// (`Content-Type: application/json` is added when there is a body).
pub async fn send_bytes(
    method: Method,
    path_and_query: &str,
    auth: &ReqAuth,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut url = format!("{}{}", relay_url(), path_and_query);
    if let ReqAuth::Query(t) = auth {
        let sep = if url.contains('?') { '&' } else { '?' };
        url = format!("{url}{sep}token={}", crate::encode_query(t));
    }
    let mut req = client().request(method.clone(), &url);
    if let ReqAuth::Bearer(t) = auth {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(b);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: request failed (is the relay running?): {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .text()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: reading the body failed: {e}"));
    let json = serde_json::from_str(&body).ok();
    HttpResponse {
        method,
        url,
        status,
        headers,
        body,
        json,
    }
}

/// `POST /v1/rooms/{room}/messages` with the JSON `body` (`{"cid"?,"event"?,"data"}`).
pub async fn publish(room: &str, auth: &ReqAuth, body: &Value) -> HttpResponse {
    send(
        Method::POST,
        &crate::room_path(room, "messages"),
        auth,
        Some(body),
        &[],
    )
    .await
}

/// `POST /v1/rooms/{room}/messages` that must succeed with `duplicate: false`; a `429` is
/// answered by waiting its `Retry-After` (bounded: 30 attempts). Returns the receipt's stamp.
pub async fn publish_ok(room: &str, auth: &ReqAuth, body: &Value) -> crate::Stamp {
    for _attempt in 0..30 {
        let r = publish(room, auth, body).await;
        if r.status == 429 {
            let secs: u64 = r
                .header("retry-after")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_millis(secs.clamp(1, 5) * 1000 + 50)).await;
            continue;
        }
        r.assert_status(200);
        return crate::shape::assert_receipt(r.json(), false);
    }
    panic!("POST messages to {room:?} stayed rate limited for 30 attempts");
}

/// `GET path_and_query`.
pub async fn get(path_and_query: &str, auth: &ReqAuth) -> HttpResponse {
    send(Method::GET, path_and_query, auth, None, &[]).await
}

/// `GET /v1/rooms/{room}/messages?{query}` (query without the leading `?`, may be empty).
pub async fn history(room: &str, query: &str, auth: &ReqAuth) -> HttpResponse {
    let mut path = crate::room_path(room, "messages");
    if !query.is_empty() {
        path = format!("{path}?{query}");
    }
    get(&path, auth).await
}

/// A plain `GET /v1/rooms/{room}/ws` without any upgrade headers.
pub async fn plain_get_ws(room: &str, auth: &ReqAuth) -> HttpResponse {
    get(&crate::room_path(room, "ws"), auth).await
}

/// Repeats a WebSocket upgrade request (`ws://` URL and its headers, including `Upgrade`,
/// `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`) with the HTTP client, to read
/// the complete body of a rejection. Only meaningful for requests the server rejects.
pub async fn replay_upgrade(
    ws_url: &str,
    headers: &tokio_tungstenite::tungstenite::http::HeaderMap,
) -> HttpResponse {
    let http_url = format!("http{}", ws_url.strip_prefix("ws").unwrap_or(ws_url));
    let mut req = client().get(&http_url);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_bytes());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {http_url} (upgrade replay) failed: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    let json = serde_json::from_str(&body).ok();
    HttpResponse {
        method: Method::GET,
        url: http_url,
        status,
        headers,
        body,
        json,
    }
}
