//! The isolate's copy of the key set at `JWT_JWKS_URL`: fetched when [`JwksCache`] says so,
//! with a deadline and a size cap, and kept between requests.
//!
//! A request that needs a fetch runs it and awaits it itself; a concurrent request never
//! awaits another request's promise (the runtime ties I/O to the request that started it), it
//! polls the shared state with its own timers until the fetch has reported.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::JsFuture;

use super::now_ms;
use super::settle::sleep;
use crate::error::{RelayError, RelayResult};
use crate::jwks::{self, KeySet, MAX_JWKS_BYTES};
use crate::jwks_refresh::{Decision, JwksCache, FETCH_LOST_MS, FETCH_TIMEOUT_MS};

/// How often a request waiting for another request's fetch looks at its outcome.
const WAIT_POLL_MS: u32 = 25;

#[wasm_bindgen(module = "/worker/jwks_fetch.mjs")]
extern "C" {
    /// What `fetchJwks` resolves with: `{ text, cacheControl }` or `{ failed }`.
    type JwksAnswer;

    #[wasm_bindgen(js_name = fetchJwks)]
    fn fetch_jwks_js(url: &str, timeout_ms: u32, max_bytes: usize) -> Promise;

    #[wasm_bindgen(method, getter)]
    fn text(this: &JwksAnswer) -> Option<String>;

    #[wasm_bindgen(method, getter, js_name = cacheControl)]
    fn cache_control(this: &JwksAnswer) -> Option<String>;

    #[wasm_bindgen(method, getter)]
    fn failed(this: &JwksAnswer) -> Option<String>;
}

thread_local! {
    static CACHE: RefCell<Option<JwksCache>> = const { RefCell::new(None) };
}

/// Runs `f` on this isolate's cache, made with the inline keys on first use.
fn with_cache<T>(inline: &Rc<KeySet>, f: impl FnOnce(&mut JwksCache) -> T) -> T {
    CACHE.with(|cell| {
        let mut cache = cell.borrow_mut();
        f(cache.get_or_insert_with(|| JwksCache::new(inline.clone())))
    })
}

/// The keys to verify a public-key token with (`kid` from its header): the inline keys and the
/// last good set from `url`, fetched first when the refresh rules call for it. An error only
/// when no set was ever fetched and the token's key is not inline: the relay cannot tell
/// whether the token is good, which is its own failure.
pub async fn keys_for(
    url: &str,
    inline: &Rc<KeySet>,
    kid: Option<&str>,
) -> RelayResult<Rc<KeySet>> {
    if kid.is_some() && inline.knows(kid) {
        return Ok(with_cache(inline, |cache| cache.keys()));
    }
    let now = now_ms();
    match with_cache(inline, |cache| cache.decide(now, kid)) {
        Decision::UseCurrent => {}
        Decision::Fetch(reason) => {
            with_cache(inline, |cache| cache.fetch_started(now, reason));
            refresh(url, inline).await;
        }
        Decision::WaitForFetch => {
            for _ in 0..FETCH_LOST_MS / i64::from(WAIT_POLL_MS) {
                sleep(WAIT_POLL_MS).await;
                if !with_cache(inline, |cache| cache.fetch_in_flight(now_ms())) {
                    break;
                }
            }
        }
    }
    let (keys, has_fetched) = with_cache(inline, |cache| (cache.keys(), cache.has_fetched()));
    if !has_fetched && !keys.knows(kid) {
        return Err(RelayError::internal());
    }
    Ok(keys)
}

/// Fetches and parses the set, and records the outcome; failures are logged, never fatal.
async fn refresh(url: &str, inline: &Rc<KeySet>) {
    let outcome = fetch(url).await.and_then(|(text, cache_control)| {
        let set = jwks::parse(&text).map_err(|err| err.to_string())?;
        Ok((set, cache_control))
    });
    let now = now_ms();
    match outcome {
        Ok((set, cache_control)) => {
            if set.is_empty() {
                worker::console_error!(
                    "JWT_JWKS_URL: the key set has no RS256, ES256 or EdDSA signature key"
                );
            }
            with_cache(inline, |cache| {
                cache.fetch_succeeded(now, &set, cache_control.as_deref())
            });
        }
        Err(reason) => {
            worker::console_error!(
                "JWT_JWKS_URL: fetch failed ({reason}); keeping the last good key set"
            );
            with_cache(inline, JwksCache::fetch_failed);
        }
    }
}

/// The body and `Cache-Control` of a good answer, or why there is none.
async fn fetch(url: &str) -> Result<(String, Option<String>), String> {
    let answer: JwksAnswer = JsFuture::from(fetch_jwks_js(url, FETCH_TIMEOUT_MS, MAX_JWKS_BYTES))
        .await
        .map_err(|_| "fetch threw".to_string())?
        .unchecked_into();
    match answer.text() {
        Some(text) => Ok((text, answer.cache_control())),
        None => Err(answer.failed().unwrap_or_else(|| "no answer".to_string())),
    }
}
