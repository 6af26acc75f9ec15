//! HTTP helpers of the runtime shells: JSON responses and errors as responses.

use worker::{Headers, Response};

use crate::error::RelayError;

pub fn json(body: String, status: u16) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=utf-8")?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

pub fn error(err: &RelayError) -> worker::Result<Response> {
    let response = json(err.to_http_body(), err.code.http_status())?;
    if let Some(secs) = err.retry_after_secs() {
        response.headers().set("retry-after", &secs.to_string())?;
    }
    Ok(response)
}
