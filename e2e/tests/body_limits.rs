//! Request body limits: a body over 256 KiB is refused with 413 `too_large` whether or not it
//! declares a Content-Length, and a chunked one is refused as soon as the relay has read past
//! the limit, before the client has sent the rest (the relay does not read it whole first).

use futures_util::{stream, StreamExt};
use relay_e2e::backend::*;
use relay_e2e::http::ReqAuth;
use relay_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::timeout;

const KIB: usize = 1024;
/// The documented limit of a request body.
const BODY_LIMIT: usize = 256 * KIB;
/// The body of the oversized requests.
const HUGE_BODY: usize = 10 * KIB * KIB;
/// What the client sends before it stops and waits: twice the limit, so the relay has enough
/// to refuse and nothing more.
const SENT_BEFORE_HOLD: usize = 2 * BODY_LIMIT;
/// How long the client holds back the rest of the body waiting for the answer. A relay that
/// reads bodies whole cannot answer within it; one that stops at the limit answers at once.
const HOLD: Duration = Duration::from_secs(5);
/// Bound on the whole exchange, long enough for a relay that answers only after the hold.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
const CHUNK: usize = 16 * KIB;

/// `len` bytes of spaces in chunks of `CHUNK` bytes.
fn chunks_of(len: usize) -> impl Iterator<Item = Vec<u8>> {
    (0..len)
        .step_by(CHUNK)
        .map(move |start| vec![b' '; CHUNK.min(len - start)])
}

/// A chunked (no Content-Length) body of `HUGE_BODY` bytes that sends `SENT_BEFORE_HOLD`
/// bytes, then holds the rest back until `release` is dropped or `HOLD` passes. `resumed` turns
/// true when it goes on with the rest.
fn held_back_body(release: oneshot::Receiver<()>, resumed: Arc<AtomicBool>) -> reqwest::Body {
    let head = stream::iter(chunks_of(SENT_BEFORE_HOLD));
    let rest = stream::once(async move {
        // Either way the wait ends: released by the test, or HOLD passed.
        let _ = timeout(HOLD, release).await;
        resumed.store(true, Ordering::SeqCst);
        stream::iter(chunks_of(HUGE_BODY - SENT_BEFORE_HOLD))
    })
    .flatten();
    reqwest::Body::wrap_stream(head.chain(rest).map(Ok::<_, std::io::Error>))
}

/// A client for one exchange, bounded in time.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(EXCHANGE_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("building the HTTP client")
}

/// POSTs a 10 MiB chunked body to `path` (with `headers`) and checks the refusal
/// `status`/`code`; with `while_held`, that it arrives while the client still holds back
/// most of the body.
async fn refused_before_fully_sent(
    path: &str,
    auth: &ReqAuth,
    headers: &[(&str, &str)],
    (expected, code): (u16, &str),
    while_held: bool,
) {
    let (release, held) = oneshot::channel();
    let resumed = Arc::new(AtomicBool::new(false));
    let url = format!("{}{path}", relay_url());
    let mut request = client()
        .post(&url)
        .header("Content-Type", "application/json")
        .body(held_back_body(held, resumed.clone()));
    if let ReqAuth::Bearer(token) = auth {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} with a chunked body: {e}"));
    let answered_while_held = !resumed.load(Ordering::SeqCst);
    let status = response.status().as_u16();
    // Read while the rest is still held back: sending it into a connection the relay has
    // answered on may reset that connection.
    let body = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: reading the answer: {e}"));
    drop(release);
    assert_eq!(
        status, expected,
        "POST {url}: expected {expected}, got {status} {body}"
    );
    let json: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("POST {url}: answer is not JSON ({e}): {body}"));
    assert_error_body(&json, code, &format!("POST {url}"));
    assert!(
        answered_while_held || !while_held,
        "POST {url}: the {expected} came only after the client had sent the whole \
         {HUGE_BODY}-byte body (the relay read it all before refusing it)"
    );
}

#[tokio::test]
async fn chunked_broadcast_without_credentials_is_refused() {
    // Nothing that could authorise it: refused before a byte of the body is read.
    // The runtime drains an unread body before it answers (cancelling it instead made wrangler
    // dev's proxy turn the answer into a 500 now and then), so the 401 may come after it.
    refused_before_fully_sent(
        "/v1/broadcast",
        &ReqAuth::None,
        &[],
        (401, "unauthorized"),
        false,
    )
    .await;
}

#[tokio::test]
async fn chunked_signed_broadcast_over_the_limit_is_refused_before_it_is_sent() {
    // A signature needs the body, which is read only up to the limit.
    let signature = [("X-Relay-Signature", "t=1,v2=00")];
    refused_before_fully_sent(
        "/v1/broadcast",
        &ReqAuth::None,
        &signature,
        (413, "too_large"),
        true,
    )
    .await;
}

#[tokio::test]
async fn chunked_publish_over_the_limit_is_refused_before_it_is_sent() {
    let room = unique_room("e2e:body-limit");
    let who = User::new("alice", "Alice", "customer");
    let token = who.token(&[room.as_str()]);
    refused_before_fully_sent(
        &room_path(&room, "messages"),
        &ReqAuth::Bearer(token),
        &[],
        (413, "too_large"),
        true,
    )
    .await;
}

/// A valid broadcast body of exactly `len` bytes: the JSON padded with whitespace.
fn padded_broadcast(room: &str, len: usize) -> Vec<u8> {
    let mut bytes = broadcast_body(&[room], "e2e:padded", &json!({"n": 1}), None)
        .to_string()
        .into_bytes();
    assert!(bytes.len() < len);
    let closing = bytes.pop().expect("a JSON object ends with }");
    bytes.resize(len - 1, b' ');
    bytes.push(closing);
    bytes
}

/// POSTs `body` to `/v1/broadcast` with the webhook bearer, chunked (no Content-Length).
async fn chunked_broadcast(body: Vec<u8>) -> HttpResponse {
    let chunks: Vec<Vec<u8>> = body.chunks(CHUNK).map(<[u8]>::to_vec).collect();
    let url = format!("{}/v1/broadcast", relay_url());
    let response = client()
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {}", webhook_secret()))
        .body(reqwest::Body::wrap_stream(
            stream::iter(chunks).map(Ok::<_, std::io::Error>),
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} with a chunked body: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: reading the answer: {e}"));
    let json = serde_json::from_str(&body).ok();
    HttpResponse {
        method: Method::POST,
        url,
        status,
        headers,
        body,
        json,
    }
}

#[tokio::test]
async fn chunked_broadcast_of_exactly_the_limit_is_delivered() {
    let room = unique_room("e2e:body-limit");
    let r = chunked_broadcast(padded_broadcast(&room, BODY_LIMIT)).await;
    r.assert_status(200);
    let results = r.json()["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {}", r.body));
    assert_eq!(results.len(), 1, "{}", r.body);
    assert_eq!(str_field(&results[0], "room"), room);
    assert_eq!(u64_field(&results[0], "seq"), 1, "{}", r.body);
}

#[tokio::test]
async fn chunked_broadcast_one_byte_over_the_limit_is_refused() {
    let room = unique_room("e2e:body-limit");
    let r = chunked_broadcast(padded_broadcast(&room, BODY_LIMIT + 1)).await;
    r.assert_error(413, "too_large");
}

#[tokio::test]
async fn declared_length_over_the_limit_is_refused() {
    let room = unique_room("e2e:body-limit");
    let auth = format!("Bearer {}", webhook_secret());
    let r = send_bytes(
        Method::POST,
        "/v1/broadcast",
        Some(padded_broadcast(&room, BODY_LIMIT + 1)),
        &[("Authorization", &auth)],
    )
    .await;
    r.assert_error(413, "too_large");
}
