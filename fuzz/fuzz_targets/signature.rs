//! Fuzz target: how a backend proves it holds the webhook secret (`webhook::authenticate_backend`
//! and `webhook::verify_signature`), with any header text, body, secret and clock, extremes
//! included, for a route whose body names its rooms (`v1` or `v2`) and one whose path does
//! (`v2` only).
//!
//! Input: byte 0 picks the check and the route, bytes 1..9 are `now` and 9..17 a signing time
//! (i64, little endian), 17..19 a small clock offset (i16), then header text up to the first
//! `\n`, then the body.
#![no_main]

use edge_relay::error::ErrorCode;
use edge_relay::webhook::{
    authenticate_backend, sign, sign_request, verify_signature, BackendCredentials, SignedRequest,
    SIGNATURE_TOLERANCE_SECS,
};
use libfuzzer_sys::fuzz_target;

/// The relay's secret for the checks where the fuzzer must not know it: neither the HMAC nor
/// the constant-time comparison gives it away byte by byte, so no input can be built to match.
const SECRET: &[u8] = b"TOkSvD9qpVPvFET0lgJV/16QQ1hBGu+W";

const FIXED_LEN: usize = 19;

const METHOD: &str = "PUT";
const PATH: &str = "/v1/rooms/r/members";

/// The request checked: a broadcast-like route (the body names the rooms) or a path-scoped one.
fn request(body: &[u8], body_names_rooms: bool) -> SignedRequest<'_> {
    SignedRequest {
        method: METHOD,
        path: PATH,
        body,
        body_names_rooms,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < FIXED_LEN {
        return;
    }
    let now = i64::from_le_bytes(data[1..9].try_into().unwrap());
    let signed_at = i64::from_le_bytes(data[9..17].try_into().unwrap());
    let offset = i16::from_le_bytes(data[17..19].try_into().unwrap());
    let rest = &data[FIXED_LEN..];
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let header = String::from_utf8_lossy(&rest[..split]);
    let body = rest.get(split + 1..).unwrap_or_default();
    let names_rooms = data[0] & 0x80 != 0;
    let request = request(body, names_rooms);
    match (data[0] & 0x7f) % 3 {
        0 => check_unknown_secret(&header, &request, now),
        1 => check_signed(&request, signed_at, now, offset),
        _ => check_credentials(&header, &request, now, (data[0] & 0x7f) / 3),
    }
});

/// Whether `header` carries, as hex text, a MAC of `request` under `secret` for one of its `t=`
/// values (the `v2` one always, the `v1` one where the body names the rooms): the only way a
/// header may verify.
fn carries_mac(header: &str, request: &SignedRequest<'_>, secret: &[u8]) -> bool {
    let lower = header.to_ascii_lowercase();
    let mac_of = |signed: String, element: &str| {
        let (_, mac) = signed.split_once(element).expect("the element is written");
        mac.to_string()
    };
    header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("t=")?.parse::<i64>().ok())
        .any(|t| {
            let v2 = sign_request(request.method, request.path, request.body, secret, t);
            lower.contains(&mac_of(v2, "v2="))
                || (request.body_names_rooms
                    && lower.contains(&mac_of(sign(request.body, secret, t), "v1=")))
        })
}

/// Any header against a secret the fuzzer cannot know never verifies, whatever the clock.
fn check_unknown_secret(header: &str, request: &SignedRequest<'_>, now: i64) {
    let verified = verify_signature(header, request, SECRET, now).is_ok();
    assert!(
        !verified || carries_mac(header, request, SECRET),
        "a header without the MAC verified: {header:?} at {now}"
    );
    let credentials = BackendCredentials {
        signature: Some(header),
        ..Default::default()
    };
    assert_eq!(
        authenticate_backend(&credentials, request, SECRET, now).is_ok(),
        verified
    );
}

/// A header from `sign_request` (and from `sign`, where the body names the rooms) verifies
/// exactly while `|now - t| <= 300`; it binds the body, `t`, and for `v2` the method and path.
/// A `v1` header never authorises a path-scoped route, and no other spelling of a MAC counts.
fn check_signed(request: &SignedRequest<'_>, signed_at: i64, now: i64, offset: i16) {
    let body = request.body;
    let v2 = sign_request(request.method, request.path, body, SECRET, signed_at);
    let v1 = sign(body, SECRET, signed_at);
    // An arbitrary clock, and one near the signing time so that both window edges are reached.
    for now in [now, signed_at.saturating_add(i64::from(offset % 400))] {
        let fresh = now.abs_diff(signed_at) <= SIGNATURE_TOLERANCE_SECS as u64;
        let check = |header: &str| verify_signature(header, request, SECRET, now).is_ok();
        assert_eq!(
            check(&v2),
            fresh,
            "v2 signed at {signed_at}, checked at {now}"
        );
        assert_eq!(
            check(&v1),
            fresh && request.body_names_rooms,
            "v1 signed at {signed_at}, checked at {now}"
        );
    }
    let mut tampered = body.to_vec();
    match tampered.last_mut() {
        Some(last) => *last ^= 1,
        None => tampered.push(b'x'),
    }
    let tampered_request = SignedRequest {
        body: &tampered,
        ..*request
    };
    for header in [&v1, &v2] {
        assert!(verify_signature(header, &tampered_request, SECRET, signed_at).is_err());
        let moved = header.replacen(
            &format!("t={signed_at},"),
            &format!("t={},", signed_at.wrapping_add(1)),
            1,
        );
        assert!(verify_signature(&moved, request, SECRET, signed_at).is_err());
        // A digit pair spelled with a sign ("+b" for "0b") is not the same MAC.
        let (prefix, mac) = header.rsplit_once('=').expect("an element with a MAC");
        if let Some(rest) = mac.strip_prefix('0') {
            let respelled = format!("{prefix}=+{rest}");
            assert!(verify_signature(&respelled, request, SECRET, signed_at).is_err());
        }
    }
    for (method, path) in [("GET", PATH), (METHOD, "/v1/rooms/other/members")] {
        let elsewhere = SignedRequest {
            method,
            path,
            ..*request
        };
        assert!(verify_signature(&v2, &elsewhere, SECRET, signed_at).is_err());
    }
}

/// Bearer, signature and body token, each present or not (bits of `flags`), against a secret
/// the fuzzer chose (the body): the first credential present decides, and only a match passes.
fn check_credentials(fields: &str, request: &SignedRequest<'_>, now: i64, flags: u8) {
    let body = request.body;
    let mut parts = fields.splitn(3, '\t');
    let (bearer, signature, token) = (parts.next(), parts.next(), parts.next());
    let own_signature = sign_request(request.method, request.path, body, body, now);
    let credentials = BackendCredentials {
        authorization: bearer.filter(|_| flags & 1 != 0),
        signature: if flags & 8 != 0 {
            Some(own_signature.as_str())
        } else {
            signature.filter(|_| flags & 2 != 0)
        },
        body_token: token.filter(|_| flags & 4 != 0),
    };
    let result = authenticate_backend(&credentials, request, body, now);
    if body.is_empty() {
        assert_eq!(result.unwrap_err().code, ErrorCode::Internal);
        return;
    }
    if let Err(error) = &result {
        assert_eq!(error.code, ErrorCode::Unauthorized);
    }
    let passed = result.is_ok();
    if let Some(header) = credentials.authorization {
        let matches = header
            .strip_prefix("Bearer ")
            .is_some_and(|given| given.trim().as_bytes() == body);
        assert_eq!(passed, matches, "bearer {header:?}");
    } else if let Some(header) = credentials.signature {
        if flags & 8 != 0 {
            assert!(passed, "a fresh own signature was refused: {header:?}");
        } else {
            assert!(!passed || carries_mac(header, request, body), "{header:?}");
        }
    } else if let Some(token) = credentials.body_token {
        assert_eq!(passed, token.as_bytes() == body, "token {token:?}");
    } else {
        assert!(!passed);
    }
}
