//! JSON Web Key Sets: an identity provider's public keys, parsed within bounds and selected by `kid`.
//!
//! Only signature keys of three kinds are kept, each fitting exactly one algorithm: RSA (2048 to
//! 4096 bits) for RS256, EC P-256 for ES256, OKP Ed25519 for EdDSA. Other keys in a set
//! (symmetric `oct` keys, other curves, `use: enc`, a JWK `alg` the key does not fit, bad
//! material) are skipped, as RFC 7517 asks, so that one odd key does not take the set down.

use std::borrow::Cow;
use std::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};
use jwt_compact::alg::{Ed25519, Es256, RsaPublicKey, StrongKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::Algorithm;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Largest JWKS document taken, inline or fetched (providers publish a few KiB).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Most entries a JWKS may list, usable or not.
pub const MAX_JWKS_KEYS: usize = 32;
const MAX_KID_BYTES: usize = 256;

/// A public key and, through its kind, the one algorithm it verifies.
#[derive(Debug, Clone)]
pub enum PublicKey {
    Rs256(StrongKey<RsaPublicKey>),
    Es256(<Es256 as Algorithm>::VerifyingKey),
    EdDsa(<Ed25519 as Algorithm>::VerifyingKey),
}

impl PublicKey {
    /// The JWS `alg` this key verifies.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Rs256(_) => "RS256",
            PublicKey::Es256(_) => "ES256",
            PublicKey::EdDsa(_) => "EdDSA",
        }
    }

    /// Whether a JWK's `alg` member names what this key verifies: its JWS algorithm, or for
    /// an Ed25519 key also `Ed25519`, the fully specified name (RFC 9864) that newer key sets
    /// (WebCrypto's export among them) carry.
    fn fits_jwk_alg(&self, alg: &str) -> bool {
        alg == self.algorithm() || matches!(self, PublicKey::EdDsa(_)) && alg == "Ed25519"
    }

    /// The key in `jwk`, if it is one of the kinds above with valid material.
    fn from_jwk(jwk: &JsonWebKey<'_>) -> Option<Self> {
        match jwk {
            // RFC 7518 asks for at least 2048 bits; the RSA crate refuses more than 4096.
            JsonWebKey::Rsa { .. } => RsaPublicKey::try_from(jwk)
                .ok()
                .and_then(|key| StrongKey::try_from(key).ok())
                .map(PublicKey::Rs256),
            // Each conversion checks the curve (`P-256`, `Ed25519`) and the point.
            JsonWebKey::EllipticCurve { .. } => <Es256 as Algorithm>::VerifyingKey::try_from(jwk)
                .ok()
                .map(PublicKey::Es256),
            JsonWebKey::KeyPair { .. } => <Ed25519 as Algorithm>::VerifyingKey::try_from(jwk)
                .ok()
                .map(PublicKey::EdDsa),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct SetKey {
    kid: Option<String>,
    key: PublicKey,
}

/// The usable keys of one or more JWKS documents, in document order.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<SetKey>,
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksError {
    TooLarge,
    TooManyKeys,
    /// Not JSON, or without a `keys` list.
    Malformed,
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JwksError::TooLarge => "the JWKS is larger than 64 KiB",
            JwksError::TooManyKeys => "the JWKS lists more than 32 keys",
            JwksError::Malformed => "not a JWKS (a JSON object with a \"keys\" list)",
        })
    }
}

/// Why no key fits a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    NoKeys,
    UnknownKid,
    KidRequired,
    /// The key the `kid` names verifies another algorithm than the token's `alg`.
    AlgorithmMismatch,
}

impl KeyRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            KeyRefusal::NoKeys => "no public key is configured",
            KeyRefusal::UnknownKid => "unknown kid",
            KeyRefusal::KidRequired => "kid required: there is more than one public key",
            KeyRefusal::AlgorithmMismatch => "alg does not fit the key",
        }
    }
}

/// The members of a JWK that the relay reads (a flat struct: small code in the wasm).
#[derive(Deserialize)]
struct KeyMembers {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl KeyMembers {
    /// The key material as jwt-compact's JWK, which checks it when converted to a key.
    fn to_jwk(&self) -> Option<JsonWebKey<'static>> {
        let bytes = |member: &Option<String>| -> Option<Cow<'static, [u8]>> {
            Base64UrlUnpadded::decode_vec(member.as_deref()?)
                .ok()
                .map(Cow::Owned)
        };
        let curve = || Some(Cow::Owned(self.crv.clone()?));
        match self.kty.as_str() {
            "RSA" => Some(JsonWebKey::Rsa {
                modulus: bytes(&self.n)?,
                public_exponent: bytes(&self.e)?,
                private_parts: None,
            }),
            "EC" => Some(JsonWebKey::EllipticCurve {
                curve: curve()?,
                x: bytes(&self.x)?,
                y: bytes(&self.y)?,
                secret: None,
            }),
            "OKP" => Some(JsonWebKey::KeyPair {
                curve: curve()?,
                x: bytes(&self.x)?,
                secret: None,
            }),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    keys: Vec<&'a RawValue>,
}

/// Parses a JWKS document (`{"keys":[...]}`), keeping the keys described in the module docs.
pub fn parse(json: &str) -> Result<KeySet, JwksError> {
    if json.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    let document: Document = serde_json::from_str(json).map_err(|_| JwksError::Malformed)?;
    if document.keys.len() > MAX_JWKS_KEYS {
        return Err(JwksError::TooManyKeys);
    }
    let keys = document
        .keys
        .iter()
        .filter_map(|raw| usable_key(raw.get()))
        .collect();
    Ok(KeySet { keys })
}

fn usable_key(json: &str) -> Option<SetKey> {
    let members: KeyMembers = serde_json::from_str(json).ok()?;
    if members.usage.as_deref().is_some_and(|usage| usage != "sig")
        || members
            .kid
            .as_ref()
            .is_some_and(|kid| kid.len() > MAX_KID_BYTES)
    {
        return None;
    }
    let key = PublicKey::from_jwk(&members.to_jwk()?)?;
    if members.alg.is_some_and(|alg| !key.fits_jwk_alg(&alg)) {
        return None;
    }
    Some(SetKey {
        kid: members.kid,
        key,
    })
}

/// Whether the relay fetches keys from `url`: https only, except plain http to a loopback
/// address (a local provider in development and tests), never with credentials in the URL.
pub fn url_allowed(url: &str) -> bool {
    let scheme_end = url.find("://").unwrap_or(0);
    let (scheme, rest) = (&url[..scheme_end], &url[(scheme_end + 3).min(url.len())..]);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return false;
    }
    if scheme.eq_ignore_ascii_case("https") {
        return true;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    scheme.eq_ignore_ascii_case("http")
        && (host == "127.0.0.1" || host == "::1" || host.eq_ignore_ascii_case("localhost"))
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// This set's keys followed by `other`'s.
    pub fn merged(&self, other: &KeySet) -> KeySet {
        KeySet {
            keys: self.keys.iter().chain(&other.keys).cloned().collect(),
        }
    }

    /// Whether the set has a key a token with this `kid` may select: one with that `kid`, or
    /// any key for a token without one. A `false` is what a fresh fetch might change.
    pub fn knows(&self, kid: Option<&str>) -> bool {
        match kid {
            Some(kid) => self.keys.iter().any(|k| k.kid.as_deref() == Some(kid)),
            None => !self.keys.is_empty(),
        }
    }

    /// The key for a token's `kid` and `alg`: `kid` names the key (it may be left out only
    /// when the set has a single key), and that key must verify `alg`.
    pub fn select(&self, kid: Option<&str>, alg: &str) -> Result<&PublicKey, KeyRefusal> {
        let fits = |key: &SetKey| key.key.algorithm() == alg;
        let Some(kid) = kid else {
            return match self.keys.as_slice() {
                [] => Err(KeyRefusal::NoKeys),
                [only] if fits(only) => Ok(&only.key),
                [_] => Err(KeyRefusal::AlgorithmMismatch),
                _ => Err(KeyRefusal::KidRequired),
            };
        };
        let mut named = self
            .keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .peekable();
        if named.peek().is_none() {
            return Err(KeyRefusal::UnknownKid);
        }
        // Kids are unique in practice; RFC 7517 allows one kid for keys of different kinds.
        named
            .find(|k| fits(k))
            .map(|k| &k.key)
            .ok_or(KeyRefusal::AlgorithmMismatch)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// Private JWKs made by `scripts/idp-test-keys` for these tests: `rsa-1` (RSA-2048,
    /// `alg` and `use` given), `es-1` (P-256), `ed-1` and `ed-2` (Ed25519), and the public
    /// half of `rsa-1024`, a key too weak to keep.
    pub(crate) fn fixture_keys() -> Vec<Value> {
        let set: Value = serde_json::from_str(include_str!("testdata/idp_keys.json")).unwrap();
        set["keys"].as_array().unwrap().clone()
    }

    pub(crate) fn fixture_key(kid: &str) -> Value {
        fixture_keys()
            .into_iter()
            .find(|k| k["kid"] == kid)
            .unwrap()
    }

    /// The public half of a private JWK.
    pub(crate) fn public(jwk: &Value) -> Value {
        let mut jwk = jwk.clone();
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            jwk.as_object_mut().unwrap().remove(private);
        }
        jwk
    }

    pub(crate) fn jwks_of(kids: &[&str]) -> String {
        let keys: Vec<Value> = kids.iter().map(|kid| public(&fixture_key(kid))).collect();
        json!({ "keys": keys }).to_string()
    }

    fn kids(set: &KeySet) -> Vec<(Option<&str>, &'static str)> {
        set.keys
            .iter()
            .map(|k| (k.kid.as_deref(), k.key.algorithm()))
            .collect()
    }

    #[test]
    fn keeps_rsa_p256_and_ed25519_keys_with_their_algorithms() {
        let set = parse(&jwks_of(&["rsa-1", "es-1", "ed-1"])).unwrap();
        assert_eq!(
            kids(&set),
            [
                (Some("rsa-1"), "RS256"),
                (Some("es-1"), "ES256"),
                (Some("ed-1"), "EdDSA")
            ]
        );
    }

    #[test]
    fn skips_keys_it_cannot_or_must_not_use() {
        let mut enc = public(&fixture_key("es-1"));
        enc["use"] = json!("enc");
        enc["kid"] = json!("enc");
        let mut wrong_alg = public(&fixture_key("rsa-1"));
        wrong_alg["alg"] = json!("PS256");
        wrong_alg["kid"] = json!("pss");
        let mut p384 = public(&fixture_key("es-1"));
        p384["crv"] = json!("P-384");
        p384["kid"] = json!("p384");
        let mut x25519 = public(&fixture_key("ed-1"));
        x25519["crv"] = json!("X25519");
        x25519["kid"] = json!("x25519");
        let mut bad_point = public(&fixture_key("es-1"));
        bad_point["y"] = bad_point["x"].clone();
        bad_point["kid"] = json!("off-curve");
        let mut numeric_kid = public(&fixture_key("ed-1"));
        numeric_kid["kid"] = json!(7);
        let mut long_kid = public(&fixture_key("ed-1"));
        long_kid["kid"] = json!("k".repeat(MAX_KID_BYTES + 1));
        let set = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "kid": "hmac"},
            {"kty": "RSA", "kid": "no-modulus", "e": "AQAB"},
            {"kty": "PQC", "kid": "unknown-kind"},
            public(&fixture_key("rsa-1024")),
            enc, wrong_alg, p384, x25519, bad_point, numeric_kid, long_kid,
            public(&fixture_key("ed-2")),
        ]});
        let set = parse(&set.to_string()).unwrap();
        assert_eq!(kids(&set), [(Some("ed-2"), "EdDSA")]);
    }

    #[test]
    fn an_ed25519_key_may_name_its_algorithm_ed25519_but_no_other_key_may() {
        let mut ed = public(&fixture_key("ed-1"));
        ed["alg"] = json!("Ed25519");
        let mut es = public(&fixture_key("es-1"));
        es["alg"] = json!("Ed25519");
        let set = parse(&json!({ "keys": [ed, es] }).to_string()).unwrap();
        assert_eq!(kids(&set), [(Some("ed-1"), "EdDSA")]);
    }

    #[test]
    fn refuses_documents_out_of_bounds_or_not_a_jwks() {
        assert_eq!(parse("[]").unwrap_err(), JwksError::Malformed);
        assert_eq!(parse("{\"keys\":{}}").unwrap_err(), JwksError::Malformed);
        assert_eq!(parse("not json").unwrap_err(), JwksError::Malformed);
        let many = json!({ "keys": vec![json!({"kty":"oct"}); MAX_JWKS_KEYS + 1] });
        assert_eq!(
            parse(&many.to_string()).unwrap_err(),
            JwksError::TooManyKeys
        );
        let at_limit = json!({ "keys": vec![json!({"kty":"oct"}); MAX_JWKS_KEYS] });
        assert!(parse(&at_limit.to_string()).unwrap().is_empty());
        let padded = format!("{}{}", " ".repeat(MAX_JWKS_BYTES), jwks_of(&["ed-1"]));
        assert_eq!(parse(&padded).unwrap_err(), JwksError::TooLarge);
    }

    #[test]
    fn selects_by_kid_and_requires_the_algorithm_the_key_fits() {
        let set = parse(&jwks_of(&["rsa-1", "es-1", "ed-1"])).unwrap();
        assert_eq!(
            set.select(Some("es-1"), "ES256").unwrap().algorithm(),
            "ES256"
        );
        assert_eq!(
            set.select(Some("rsa-1"), "ES256").unwrap_err(),
            KeyRefusal::AlgorithmMismatch
        );
        assert_eq!(
            set.select(Some("rsa-1"), "HS256").unwrap_err(),
            KeyRefusal::AlgorithmMismatch
        );
        assert_eq!(
            set.select(Some("nope"), "EdDSA").unwrap_err(),
            KeyRefusal::UnknownKid
        );
        assert_eq!(
            set.select(None, "EdDSA").unwrap_err(),
            KeyRefusal::KidRequired
        );
        assert!(set.knows(Some("ed-1")) && set.knows(None) && !set.knows(Some("ed-2")));
    }

    #[test]
    fn a_single_key_may_be_used_without_kid() {
        let set = parse(&jwks_of(&["ed-1"])).unwrap();
        assert_eq!(set.select(None, "EdDSA").unwrap().algorithm(), "EdDSA");
        assert_eq!(
            set.select(None, "RS256").unwrap_err(),
            KeyRefusal::AlgorithmMismatch
        );
        let empty = KeySet::default();
        assert_eq!(empty.select(None, "EdDSA").unwrap_err(), KeyRefusal::NoKeys);
        assert!(!empty.knows(None));
    }

    #[test]
    fn merged_sets_keep_both_and_need_a_kid() {
        let inline = parse(&jwks_of(&["ed-1"])).unwrap();
        let fetched = parse(&jwks_of(&["ed-2"])).unwrap();
        let both = inline.merged(&fetched);
        assert_eq!(both.len(), 2);
        assert!(both.knows(Some("ed-2")));
        assert_eq!(
            both.select(None, "EdDSA").unwrap_err(),
            KeyRefusal::KidRequired
        );
    }

    #[test]
    fn keys_are_fetched_over_https_or_from_loopback_only() {
        for good in [
            "https://idp.example/.well-known/jwks.json",
            "HTTPS://login.example.com:8443/keys?v=2",
            "http://127.0.0.1:8081/jwks.json",
            "http://localhost/jwks.json",
            "http://[::1]:9000/jwks.json",
        ] {
            assert!(url_allowed(good), "{good}");
        }
        for bad in [
            "http://idp.example/jwks.json",
            "http://127.0.0.1.evil.example/jwks.json",
            "http://127.0.0.1@evil.example/jwks.json",
            "https://user:pass@idp.example/jwks.json",
            "ftp://127.0.0.1/jwks.json",
            "https://",
            "https:///jwks.json",
            "idp.example/jwks.json",
            "",
        ] {
            assert!(!url_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn one_kid_on_keys_of_two_kinds_selects_by_algorithm() {
        let mut rsa = public(&fixture_key("rsa-1"));
        rsa["kid"] = json!("shared");
        let mut ed = public(&fixture_key("ed-1"));
        ed["kid"] = json!("shared");
        let set = parse(&json!({ "keys": [rsa, ed] }).to_string()).unwrap();
        assert_eq!(
            set.select(Some("shared"), "EdDSA").unwrap().algorithm(),
            "EdDSA"
        );
        assert_eq!(
            set.select(Some("shared"), "RS256").unwrap().algorithm(),
            "RS256"
        );
        assert_eq!(
            set.select(Some("shared"), "ES256").unwrap_err(),
            KeyRefusal::AlgorithmMismatch
        );
    }
}
