//! Identity-provider tokens on the JWT routes: RS256, ES256 and EdDSA tokens verified with the
//! relay's inline `JWT_PUBLIC_KEYS` and with the JWKS it fetches from `JWT_JWKS_URL` (a static
//! server that `scripts/test` runs on 127.0.0.1), rotation to a new `kid`, the same grants as
//! HS256, and the refusals: an `alg` that does not fit the key, `none`, HS256 made with a
//! public key's bytes, an unknown `kid`, no `kid` among several keys, expired tokens.
//!
//! The relay fetches the JWKS again for an unknown `kid` at most once a minute. So that the
//! rotated key is picked up at once, only `rotation_to_a_new_kid_then_unknown_kids` sends kids
//! the relay does not know, and it rotates first; every other test here uses known kids.

use std::time::{Duration, Instant};

use relay_e2e::http::{self, ReqAuth};
use relay_e2e::token::{idp_jwks_dir, IdpKey};
use relay_e2e::*;
use serde_json::{json, Value};

const KINDS: [&str; 3] = ["rsa", "es", "ed"];

/// Asserts `room` is reachable with `token` as `who`: WebSocket welcome (token in the query
/// and in the subprotocol) and history 200.
async fn assert_granted(room: &str, token: &str, who: &User, ctx: &str) {
    for via in [Via::Query, Via::Subprotocol] {
        let mut c = Client::connect(room, Some(token), via, None)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: joining {room} via {via:?} failed: {e:?}"));
        let welcome = c.recv_json().await;
        assert_welcome(&welcome, room, who);
        c.close().await;
    }
    let r = http::history(room, "", &ReqAuth::Bearer(token.to_string())).await;
    assert_eq!(r.status, 200, "{ctx}: history -> {} {}", r.status, r.body);
}

/// Asserts `token` is refused with 401 on the WebSocket upgrade and on history.
async fn assert_unauthorized(room: &str, token: &str, ctx: &str) {
    match Client::connect(room, Some(token), Via::Query, None).await {
        Ok(_) => panic!("{ctx}: the upgrade succeeded"),
        Err(e) => e.assert_error(401, "unauthorized", ctx).await,
    }
    let r = http::history(room, "", &ReqAuth::Bearer(token.to_string())).await;
    assert_eq!(r.status, 401, "{ctx}: history -> {} {}", r.status, r.body);
    r.assert_error(401, "unauthorized");
}

/// Asserts `room` is forbidden (403) for `token` on both routes.
async fn assert_forbidden(room: &str, token: &str) {
    match Client::connect(room, Some(token), Via::Query, None).await {
        Ok(_) => panic!("upgrade to {room} succeeded, expected 403"),
        Err(e) => e.assert_error(403, "forbidden", room).await,
    }
    http::history(room, "", &ReqAuth::Bearer(token.to_string()))
        .await
        .assert_error(403, "forbidden");
}

#[tokio::test]
async fn inline_keys_sign_tokens_for_http_and_websocket() {
    for kind in KINDS {
        let key = IdpKey::inline(kind);
        let room = unique_room("e2e:idp");
        let who = User::new("idp", "Idp Inline", "member");
        let token = who.builder().rooms([room.as_str()]).signed_by(&key).mint();
        assert_granted(&room, &token, &who, key.alg()).await;
    }
}

#[tokio::test]
async fn keys_from_the_jwks_url_sign_tokens_for_http_and_websocket() {
    for kind in KINDS {
        let key = IdpKey::served(kind);
        let room = unique_room("e2e:idp");
        let who = User::new("idp", "Idp Served", "member");
        let token = who.builder().rooms([room.as_str()]).signed_by(&key).mint();
        assert_granted(&room, &token, &who, key.alg()).await;
    }
}

#[tokio::test]
async fn grants_are_those_of_hs256_tokens() {
    let suffix = random_suffix();
    for key in [IdpKey::inline("rsa"), IdpKey::served("ed")] {
        let who = User::new("idp-grants", "Grants", "operator");
        let token = who
            .builder()
            .rooms([format!("e2e:idp-{suffix}:*")])
            .signed_by(&key)
            .mint();
        let granted = format!("e2e:idp-{suffix}:{}", random_suffix());
        assert_granted(&granted, &token, &who, key.alg()).await;
        assert_granted(&format!("user:{}", who.id), &token, &who, "own room").await;
        assert_forbidden(&unique_room("e2e:idp-other"), &token).await;
        assert_forbidden(&format!("user:{}", unique_id("someone")), &token).await;
    }
}

#[tokio::test]
async fn an_alg_that_does_not_fit_the_key_is_401() {
    let room = unique_room("e2e:idp");
    let sub = unique_id("mallory");
    let cases = [
        // A valid ES256 signature presented under the RSA key's kid.
        (IdpKey::inline("es"), IdpKey::inline("rsa")),
        // EdDSA under the P-256 key's kid, RS256 under the Ed25519 key's kid.
        (IdpKey::inline("ed"), IdpKey::inline("es")),
        (IdpKey::served("rsa"), IdpKey::served("ed")),
    ];
    for (signer, named) in cases {
        let token = token(&sub)
            .rooms(["*"])
            .signed_by(&signer)
            .kid(Some(named.kid()))
            .mint();
        let ctx = format!("{} under {}", signer.alg(), named.kid());
        assert_unauthorized(&room, &token, &ctx).await;
    }
}

#[tokio::test]
async fn alg_none_and_hs256_made_with_public_key_bytes_are_401() {
    let room = unique_room("e2e:idp");
    let sub = unique_id("mallory");
    let rsa = IdpKey::inline("rsa");
    let none = token(&sub)
        .rooms(["*"])
        .kid(Some(rsa.kid()))
        .alg_none()
        .mint();
    assert_unauthorized(&room, &none, "alg none").await;
    let public = rsa.public_jwk();
    let modulus = base64_url_decode(public["n"].as_str().expect("n"));
    let set = json!({ "keys": [public.clone()] }).to_string();
    let ed_x = base64_url_decode(IdpKey::inline("ed").public_jwk()["x"].as_str().expect("x"));
    for (what, bytes) in [
        ("the public JWK", public.to_string().into_bytes()),
        ("the key set", set.into_bytes()),
        ("the RSA modulus", modulus),
        ("the Ed25519 public key", ed_x),
    ] {
        let forged = token(&sub)
            .rooms(["*"])
            .kid(Some(rsa.kid()))
            .secret(&bytes)
            .mint();
        assert_unauthorized(&room, &forged, &format!("HS256 keyed with {what}")).await;
    }
}

#[tokio::test]
async fn no_kid_among_several_keys_is_401() {
    let room = unique_room("e2e:idp");
    let sub = unique_id("nokid");
    for key in [IdpKey::inline("ed"), IdpKey::served("es")] {
        let token = token(&sub).rooms(["*"]).signed_by(&key).kid(None).mint();
        assert_unauthorized(&room, &token, &format!("{} without kid", key.alg())).await;
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_idp_tokens_are_401() {
    let room = unique_room("e2e:idp");
    let sub = unique_id("late");
    for key in [
        IdpKey::inline("rsa"),
        IdpKey::served("es"),
        IdpKey::inline("ed"),
    ] {
        let expired = token(&sub)
            .rooms(["*"])
            .signed_by(&key)
            .exp_in(-3600)
            .mint();
        assert_unauthorized(&room, &expired, &format!("expired {}", key.alg())).await;
        let early = token(&sub)
            .rooms(["*"])
            .signed_by(&key)
            .nbf_in(3600)
            .exp_in(7200)
            .mint();
        assert_unauthorized(&room, &early, &format!("early {}", key.alg())).await;
    }
}

/// Publishes `keys` as the served JWKS, replacing the file at once (never half written).
fn publish_jwks(keys: &[Value]) {
    let dir = idp_jwks_dir();
    let staged = dir.join("jwks.json.new");
    std::fs::write(&staged, json!({ "keys": keys }).to_string()).expect("writing the JWKS");
    std::fs::rename(&staged, dir.join("jwks.json")).expect("publishing the JWKS");
}

#[tokio::test]
async fn rotation_to_a_new_kid_then_unknown_kids() {
    let room = unique_room("e2e:idp-rotation");
    let who = User::new("rot", "Rotation", "member");
    // The relay has the served set (this fetches it if no test did yet).
    let before = who
        .builder()
        .rooms([room.as_str()])
        .signed_by(&IdpKey::served("ed"))
        .mint();
    assert_granted(&room, &before, &who, "before rotation").await;

    // The provider publishes a new key next to the old ones and signs with it.
    let rotated = IdpKey::rotation();
    let mut keys: Vec<Value> = IdpKey::served_all()
        .iter()
        .map(IdpKey::public_jwk)
        .collect();
    keys.push(rotated.public_jwk());
    publish_jwks(&keys);
    let after = who
        .builder()
        .rooms([room.as_str()])
        .signed_by(&rotated)
        .mint();
    // The first unknown kid fetches the set again at once. Were the relay to have fetched for
    // an unknown kid in the last minute (a run just before this one), it waits out the minute.
    let start = Instant::now();
    let deadline = start + Duration::from_secs(75);
    loop {
        let r = http::history(&room, "", &ReqAuth::Bearer(after.clone())).await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 401, "history with the rotated key: {}", r.body);
        assert!(
            Instant::now() < deadline,
            "the rotated key was not accepted within 75 s: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("rotated key accepted after {:?}", start.elapsed());
    assert_granted(&room, &after, &who, "after rotation").await;
    // The old keys still work.
    assert_granted(&room, &before, &who, "old key after rotation").await;

    // Kids that no set has: refused, whether the signature is good for some key or not.
    let made_up = format!("never-published-{}", random_suffix());
    for signer in [IdpKey::inline("ed"), rotated] {
        let unknown = who
            .builder()
            .rooms([room.as_str()])
            .signed_by(&signer)
            .kid(Some(&made_up))
            .mint();
        assert_unauthorized(&room, &unknown, "unknown kid").await;
    }
}

fn base64_url_decode(text: &str) -> Vec<u8> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}
