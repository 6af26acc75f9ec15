//! HTTP helpers of the runtime shells: responses (JSON, pages, errors, refusals on a socket)
//! and request bodies, built on the runtime's own `Request`/`Response` objects without
//! intermediate copies.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use web_sys::{Headers, Request, Response, ResponseInit};
use worker::wasm_bindgen_futures::JsFuture;

use crate::cors::Header;
use crate::error::{RelayError, RelayResult};

const JSON_TYPE: &str = "application/json; charset=utf-8";
const NO_STORE: &str = "no-store";

fn respond(body: &str, status: u16, content_type: &str) -> worker::Result<Response> {
    let headers = Headers::new()?;
    headers.set("content-type", content_type)?;
    headers.set("cache-control", NO_STORE)?;
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    Ok(Response::new_with_opt_str_and_init(Some(body), &init)?)
}

pub fn json(body: String, status: u16) -> worker::Result<Response> {
    respond(&body, status, JSON_TYPE)
}

/// An embedded page; it may be cached briefly, as it changes only with a deployment.
pub fn page(body: &str, content_type: &str) -> worker::Result<Response> {
    let response = respond(body, 200, content_type)?;
    response
        .headers()
        .set("cache-control", "public, max-age=300")?;
    Ok(response)
}

pub fn error(err: &RelayError) -> worker::Result<Response> {
    let response = json(err.to_http_body(), err.code.http_status())?;
    if let Some(secs) = err.retry_after_secs() {
        response.headers().set("retry-after", &secs.to_string())?;
    }
    if let Some(allow) = &err.allow {
        response.headers().set("allow", allow)?;
    }
    Ok(response)
}

/// An answer without a body, e.g. the 204 of a preflight.
pub fn empty(status: u16, headers: &[Header]) -> worker::Result<Response> {
    let init = ResponseInit::new();
    init.set_status(status);
    let response = Response::new_with_opt_str_and_init(None, &init)?;
    for (name, value) in headers {
        response.headers().set(name, value)?;
    }
    Ok(response)
}

#[wasm_bindgen(module = "/worker/answer.mjs")]
extern "C" {
    #[wasm_bindgen(js_name = withHeaders, catch)]
    fn with_headers_js(
        response: &Response,
        names: Vec<String>,
        values: Vec<String>,
    ) -> Result<Response, JsValue>;

    #[wasm_bindgen(js_name = refuseOnSocket, catch)]
    fn refuse_on_socket_js(code: u16, reason: &str, protocol: &str) -> Result<Response, JsValue>;

    #[wasm_bindgen(js_name = orInternalError)]
    fn or_internal_error_js(
        answer: &Promise,
        body: &str,
        content_type: &str,
        cache_control: &str,
        protocol: Option<&str>,
        close_code: u16,
        reason: &str,
    ) -> Promise;
}

/// `response` with `headers` set, in one call: a copy around the same body when its headers
/// cannot change (a room's answer); a 101 unchanged.
pub fn with_headers(response: &Response, headers: &[Header]) -> worker::Result<Response> {
    let (names, values) = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .unzip();
    Ok(with_headers_js(response, names, values)?)
}

/// The refusal of a WebSocket upgrade that offered `protocol`, in a form a browser can read: a
/// 101 selecting it, whose socket is closed at once with the error's close code and message.
pub fn refuse_on_socket(err: &RelayError, protocol: &str) -> worker::Result<Response> {
    Ok(refuse_on_socket_js(
        err.code.close_code(),
        err.close_reason(),
        protocol,
    )?)
}

/// The Promise of a room's answer to an upgrade, or, if that call fails, of the relay's own
/// `internal` refusal: an HTTP 500, or a close on the socket when the upgrade offered
/// `socket_protocol` (see [`refuse_on_socket`]).
pub fn or_internal_error(answer: &Promise, socket_protocol: Option<&str>) -> Promise {
    thread_local! {
        static INTERNAL: RelayError = RelayError::internal();
        static INTERNAL_BODY: String = RelayError::internal().to_http_body();
    }
    INTERNAL.with(|internal| {
        INTERNAL_BODY.with(|body| {
            or_internal_error_js(
                answer,
                body,
                JSON_TYPE,
                NO_STORE,
                socket_protocol,
                internal.code.close_code(),
                internal.close_reason(),
            )
        })
    })
}

/// A request header, if present and readable.
pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

#[wasm_bindgen(module = "/worker/body.mjs")]
extern "C" {
    /// What `readBodyText` resolves with: `{ text }` or `{ refused }`.
    type BodyRead;

    #[wasm_bindgen(js_name = readBodyText)]
    fn read_body_text_js(req: &Request, max_bytes: usize) -> Promise;

    #[wasm_bindgen(method, getter)]
    fn text(this: &BodyRead) -> Option<String>;

    #[wasm_bindgen(method, getter)]
    fn refused(this: &BodyRead) -> Option<String>;
}

/// Why a request body was not taken.
#[derive(Debug, Clone, Copy)]
pub enum BodyRefusal {
    /// More than the cap arrived; the rest was not read.
    TooLarge,
    NotUtf8,
    /// The stream failed, e.g. the client went away mid-body.
    Unreadable,
}

/// The request body as text, read as a stream that is cancelled as soon as more than
/// `max_bytes` bytes arrive, so a body without Content-Length is never held whole.
pub async fn body_text_capped(req: &Request, max_bytes: usize) -> Result<String, BodyRefusal> {
    let read: BodyRead = JsFuture::from(read_body_text_js(req, max_bytes))
        .await
        .map_err(|_| BodyRefusal::Unreadable)?
        .unchecked_into();
    if let Some(text) = read.text() {
        return Ok(text);
    }
    match read.refused().as_deref() {
        Some("too_large") => Err(BodyRefusal::TooLarge),
        Some("not_utf8") => Err(BodyRefusal::NotUtf8),
        _ => Err(BodyRefusal::Unreadable),
    }
}

/// The whole response body as text.
pub async fn response_text(response: &Response) -> worker::Result<String> {
    Ok(text_of(response.text()).await?)
}

/// The whole request body as text.
pub async fn body_text(req: &Request) -> RelayResult<String> {
    text_of(req.text())
        .await
        .map_err(|_| RelayError::bad_request("unreadable body"))
}

/// Awaits a body's `text()` promise.
async fn text_of(promise: Result<js_sys::Promise, JsValue>) -> Result<String, JsValue> {
    let text = JsFuture::from(promise?).await?;
    text.as_string()
        .ok_or_else(|| JsValue::from_str("body is not text"))
}
