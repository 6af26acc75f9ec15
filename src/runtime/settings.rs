//! The relay's settings ([`Settings`]), read from the environment once per isolate, and the
//! verification of user tokens with them: shared by the Worker's routes and the rooms (which
//! verify the tokens that renew a connection in band).

use std::cell::OnceCell;
use std::rc::Rc;

use wasm_bindgen::JsValue;
use worker::Env;

use super::{jwks_fetch, now_ms};
use crate::auth::{self, Identity};
use crate::config::Settings;
use crate::error::{RelayError, RelayResult};

thread_local! {
    static SETTINGS: OnceCell<Rc<Settings>> = const { OnceCell::new() };
}

/// The settings of this isolate: variables and secrets change only with a new deployment,
/// which starts new isolates. What was set but cannot be used is logged once.
pub fn settings(env: &Env) -> Rc<Settings> {
    SETTINGS.with(|cell| {
        cell.get_or_init(|| {
            let settings = Settings::from_vars(|name| text(env, name));
            for warning in &settings.warnings {
                worker::console_error!("{warning}");
            }
            Rc::new(settings)
        })
        .clone()
    })
}

/// A variable or secret (both are strings in the environment); `None` when unset or empty.
fn text(env: &Env, name: &str) -> Option<String> {
    let env: &JsValue = env.as_ref();
    js_sys::Reflect::get(env, &JsValue::from_str(name))
        .ok()
        .and_then(|value| value.as_string())
        .filter(|value| !value.is_empty())
}

/// The identity of a user token. Waits only when the token needs a key from `JWT_JWKS_URL`
/// that must be fetched first.
pub async fn verify_token(env: &Env, token: &str) -> RelayResult<Identity> {
    let settings = settings(env);
    let Some(config) = settings.jwt.as_ref() else {
        worker::console_error!("none of JWT_SECRET, JWT_PUBLIC_KEYS, JWT_JWKS_URL is configured");
        return Err(RelayError::internal());
    };
    // Only a public-key token may need the fetched set (read lazily: HS256 tokens skip this).
    let wanted = settings
        .jwks_url
        .as_deref()
        .and_then(|url| Some((url, auth::public_key_wanted(token)?)));
    let keys = match wanted {
        Some((url, kid)) => {
            jwks_fetch::keys_for(url, &settings.public_keys, kid.as_deref()).await?
        }
        None => settings.public_keys.clone(),
    };
    let now = chrono::DateTime::from_timestamp_millis(now_ms()).unwrap_or_default();
    auth::verify(token, config, &keys, now)
}
