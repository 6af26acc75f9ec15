//! Runs an entry point's work at once and hands the runtime a Promise only when it must wait.
//!
//! An `async` wasm-bindgen export always answers with a Promise and polls its future from a
//! queued microtask, through closures on both sides of the boundary. Most of a room's work
//! (a connect, a publish, a typing event) never waits for anything, so it is polled here
//! first, inline; only work that is still pending after that first poll goes to the executor.
//!
//! That needs futures that register the waker of every poll, as the contract asks.
//! `worker::Delay` keeps the one of its first poll only, so timers here use [`sleep`].

use std::future::Future;
use std::task::{Context, Poll, Waker};

use js_sys::Promise;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::{future_to_promise, JsFuture};

/// The value of `work` when it finishes without waiting; otherwise a Promise of it.
pub fn settle<F>(work: F) -> JsValue
where
    F: Future<Output = Result<JsValue, JsValue>> + 'static,
{
    let mut work = Box::pin(work);
    // Futures register the waker of every poll; the executor polls again at once with its
    // own, so a wake-up meant for this first one is never needed.
    let mut first = Context::from_waker(Waker::noop());
    match work.as_mut().poll(&mut first) {
        Poll::Ready(Ok(value)) => value,
        Poll::Ready(Err(error)) => Promise::reject(&error).into(),
        Poll::Pending => future_to_promise(work).into(),
    }
}

/// Resolves after `ms` milliseconds (a `setTimeout`).
pub async fn sleep(ms: u32) {
    let timer = Promise::new(&mut |resolve, _reject| {
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let delay = i32::try_from(ms).unwrap_or(i32::MAX);
        let _ = global.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, delay);
    });
    let _ = JsFuture::from(timer).await;
}
