//! Authentication: where a token is found, JWT verification (HS256 with the shared secret;
//! RS256, ES256, EdDSA with an identity provider's public keys), and room grants.

use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key, Rsa, StrongAlg};
use jwt_compact::{AlgorithmExt, TimeOptions, Token, UntrustedToken};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::{RelayError, RelayResult};
use crate::jwks::{KeySet, PublicKey};

/// Clock leeway for `exp` and `nbf`; the contract allows at most 60 s.
pub const MAX_LEEWAY_SECS: i64 = 60;
pub const DEFAULT_LEEWAY_SECS: i64 = 30;
/// Tokens longer than this are rejected before parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
const MAX_GRANTS: usize = 256;
pub const MAX_CLAIM_TEXT_BYTES: usize = 256;
/// The WebSocket subprotocol of this contract version.
pub const SUBPROTOCOL: &str = "relay.v1";
const BEARER_SUBPROTOCOL_PREFIX: &str = "bearer.";

/// Who a user is, as shown to other users of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct User {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[cfg_attr(test, ts(optional))]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[cfg_attr(test, ts(optional))]
    pub role: Option<String>,
}

/// A verified token: the user, what rooms they may use, and when the token expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: User,
    pub grants: Vec<String>,
    /// The token's `exp` (unix seconds).
    pub expires_at: i64,
    /// Until when the relay accepts the token: `exp` plus the clock leeway. Connections are
    /// closed with 4001 once it has passed.
    pub accepted_until: i64,
}

impl Identity {
    /// Deny unless granted: `*`, an exact name, a `prefix*` pattern, or the user's own room.
    pub fn may_access(&self, room: &str) -> bool {
        if room.strip_prefix("user:") == Some(self.user.id.as_str()) {
            return true;
        }
        self.grants
            .iter()
            .any(|grant| match grant.strip_suffix('*') {
                Some(prefix) => room.starts_with(prefix),
                None => grant == room,
            })
    }

    pub fn check_access(&self, room: &str) -> RelayResult<()> {
        if self.may_access(room) {
            Ok(())
        } else {
            Err(RelayError::forbidden("the token does not grant this room"))
        }
    }
}

/// What verification checks besides the public keys' signatures.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The HS256 secret; empty when `JWT_SECRET` is not set, and HS256 tokens are then refused.
    pub secret: Vec<u8>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_secs: i64,
}

impl AuthConfig {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        AuthConfig {
            secret: secret.into(),
            issuer: None,
            audience: None,
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RelayClaims {
    sub: Option<String>,
    name: Option<String>,
    role: Option<String>,
    rooms: Option<OneOrMany>,
    iss: Option<String>,
    aud: Option<OneOrMany>,
}

fn unauthorized(reason: &str) -> RelayError {
    RelayError::unauthorized(format!("invalid token: {reason}"))
}

/// The algorithms a public key may verify; every other `alg` but HS256 is refused.
const PUBLIC_KEY_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// The key a token asks for, read before anything is verified: `Some` when its `alg` is one
/// that [`verify`] checks with a public key, holding the header's `kid` (if any).
pub fn public_key_wanted(token: &str) -> Option<Option<String>> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let untrusted = UntrustedToken::new(token).ok()?;
    PUBLIC_KEY_ALGORITHMS
        .contains(&untrusted.algorithm())
        .then(|| untrusted.header().key_id.clone())
}

/// Verifies a JWT and returns the identity it carries. HS256 is checked with the secret and
/// RS256/ES256/EdDSA with the key of `keys` that the `kid` names and whose kind fits the
/// `alg`; `none` and every other algorithm are refused before any signature is looked at.
/// A public key is never used as an HMAC secret, nor the secret for a public-key algorithm.
pub fn verify(
    token: &str,
    config: &AuthConfig,
    keys: &KeySet,
    now: DateTime<Utc>,
) -> RelayResult<Identity> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(unauthorized("too long"));
    }
    let untrusted = UntrustedToken::new(token).map_err(|_| unauthorized("malformed"))?;
    let alg = untrusted.algorithm();
    let validated = if alg == "HS256" && !config.secret.is_empty() {
        Hs256
            .validator::<RelayClaims>(&Hs256Key::new(&config.secret))
            .validate(&untrusted)
    } else if PUBLIC_KEY_ALGORITHMS.contains(&alg) {
        let kid = untrusted.header().key_id.as_deref();
        let key = keys
            .select(kid, alg)
            .map_err(|refusal| unauthorized(refusal.reason()))?;
        match key {
            PublicKey::Rs256(key) => StrongAlg(Rsa::rs256()).validator(key).validate(&untrusted),
            PublicKey::Es256(key) => Es256.validator(key).validate(&untrusted),
            PublicKey::EdDsa(key) => Ed25519.validator(key).validate(&untrusted),
        }
    } else {
        return Err(unauthorized("algorithm not accepted"));
    };
    let verified = validated.map_err(|_| unauthorized("bad signature or claims"))?;
    identity_of(verified, config, now)
}

/// The checks after the signature: time, issuer, audience, `sub` and the grants.
fn identity_of(
    verified: Token<RelayClaims>,
    config: &AuthConfig,
    now: DateTime<Utc>,
) -> RelayResult<Identity> {
    let claims = verified.claims();
    let leeway = config.leeway_secs.clamp(0, MAX_LEEWAY_SECS);
    let time = TimeOptions::new(Duration::seconds(leeway), move || now);
    claims
        .validate_expiration(&time)
        .map_err(|_| unauthorized("expired or without exp"))?;
    if claims.not_before.is_some() {
        claims
            .validate_maturity(&time)
            .map_err(|_| unauthorized("not yet valid"))?;
    }
    let expires_at = claims
        .expiration
        .map(|exp| exp.timestamp())
        .ok_or_else(|| unauthorized("expired or without exp"))?;
    let custom = &claims.custom;
    if let Some(issuer) = &config.issuer {
        if custom.iss.as_deref() != Some(issuer.as_str()) {
            return Err(unauthorized("wrong issuer"));
        }
    }
    if let Some(audience) = &config.audience {
        let matches = match &custom.aud {
            Some(OneOrMany::One(aud)) => aud == audience,
            Some(OneOrMany::Many(auds)) => auds.iter().any(|a| a == audience),
            None => false,
        };
        if !matches {
            return Err(unauthorized("wrong audience"));
        }
    }
    let (_, claims) = verified.into_parts();
    let custom = claims.custom;
    let sub = custom
        .sub
        .filter(|s| !s.is_empty() && s.len() <= MAX_CLAIM_TEXT_BYTES)
        .ok_or_else(|| unauthorized("sub missing, empty or too long"))?;
    let grants = custom.rooms.map(OneOrMany::into_vec).unwrap_or_default();
    if grants.len() > MAX_GRANTS {
        return Err(unauthorized("too many room grants"));
    }
    let short = |s: Option<String>| s.filter(|s| s.len() <= MAX_CLAIM_TEXT_BYTES);
    Ok(Identity {
        user: User {
            id: sub,
            name: short(custom.name),
            role: short(custom.role),
        },
        grants,
        expires_at,
        accepted_until: expires_at.saturating_add(leeway),
    })
}

/// Signs an HS256 token for `user` with the given grants, valid for `ttl` from `now`.
pub fn mint(
    user: &User,
    rooms: &[String],
    secret: &[u8],
    now: DateTime<Utc>,
    ttl: Duration,
) -> RelayResult<String> {
    if secret.is_empty() {
        // Only public keys are configured: the relay cannot sign tokens it would accept.
        return Err(RelayError::internal());
    }
    #[derive(Serialize)]
    struct MintClaims<'a> {
        sub: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<&'a str>,
        rooms: &'a [String],
    }
    let mut claims = jwt_compact::Claims::new(MintClaims {
        sub: &user.id,
        name: user.name.as_deref(),
        role: user.role.as_deref(),
        rooms,
    });
    claims.issued_at = Some(now);
    claims.expiration = Some(now + ttl);
    Hs256
        .token(
            &jwt_compact::Header::empty(),
            &claims,
            &Hs256Key::new(secret),
        )
        .map_err(|_| RelayError::internal())
}

/// Finds the token: `Authorization: Bearer`, then the `bearer.<jwt>` subprotocol, then `?token=`.
pub fn find_token<'a>(
    authorization: Option<&'a str>,
    subprotocols: Option<&'a str>,
    query_token: Option<&'a str>,
) -> RelayResult<&'a str> {
    if let Some(header) = authorization {
        return header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RelayError::unauthorized("Authorization must be 'Bearer <token>'"));
    }
    if let Some(token) = subprotocols.and_then(|list| {
        list.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(BEARER_SUBPROTOCOL_PREFIX))
    }) {
        return Ok(token);
    }
    query_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| RelayError::unauthorized("missing token"))
}

/// Whether the client offered the `relay.v1` subprotocol (the server then selects it).
pub fn offers_subprotocol(subprotocols: Option<&str>) -> bool {
    subprotocols.is_some_and(|list| list.split(',').any(|p| p.trim() == SUBPROTOCOL))
}

/// Compares two secrets in time that depends only on their lengths (`subtle`, written so that
/// the optimiser cannot turn it back into an early exit).
pub fn secrets_equal(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_compact::{Claims, Header};
    use serde_json::{json, Value};

    const SECRET: &[u8] = b"test-secret-of-some-length-0123456789";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn sign(claims: Value, secret: &[u8]) -> String {
        let mut claims = Claims::new(claims);
        claims.expiration = Some(now() + Duration::hours(1));
        Hs256
            .token(&Header::empty(), &claims, &Hs256Key::new(secret))
            .unwrap()
    }

    fn sign_raw(claims: Value) -> String {
        Hs256
            .token(
                &Header::empty(),
                &Claims::new(claims),
                &Hs256Key::new(SECRET),
            )
            .unwrap()
    }

    fn config() -> AuthConfig {
        AuthConfig::new(SECRET)
    }

    fn no_keys() -> KeySet {
        KeySet::default()
    }

    #[test]
    fn valid_token_gives_identity() {
        let token = sign(
            json!({"sub":"alice","name":"Alice","role":"manager","rooms":["chat:1"]}),
            SECRET,
        );
        let id = verify(&token, &config(), &no_keys(), now()).unwrap();
        assert_eq!(id.user.id, "alice");
        assert_eq!(id.user.name.as_deref(), Some("Alice"));
        assert_eq!(id.user.role.as_deref(), Some("manager"));
        assert_eq!(id.grants, vec!["chat:1"]);
        assert_eq!(id.expires_at, (now() + Duration::hours(1)).timestamp());
        assert_eq!(id.accepted_until, id.expires_at + DEFAULT_LEEWAY_SECS);
    }

    #[test]
    fn expired_token_is_rejected_beyond_leeway() {
        let exp = now().timestamp() - 31;
        let token = sign_raw(json!({"sub":"a","exp":exp}));
        assert!(verify(&token, &config(), &no_keys(), now()).is_err());
        let exp_in_leeway = now().timestamp() - 10;
        let token = sign_raw(json!({"sub":"a","exp":exp_in_leeway}));
        assert!(verify(&token, &config(), &no_keys(), now()).is_ok());
    }

    #[test]
    fn token_without_exp_is_rejected() {
        let token = sign_raw(json!({"sub":"a"}));
        assert!(verify(&token, &config(), &no_keys(), now()).is_err());
    }

    #[test]
    fn not_yet_valid_token_is_rejected() {
        let exp = now().timestamp() + 3600;
        let token = sign_raw(json!({"sub":"a","exp":exp,"nbf":now().timestamp() + 120}));
        assert!(verify(&token, &config(), &no_keys(), now()).is_err());
        let token = sign_raw(json!({"sub":"a","exp":exp,"nbf":now().timestamp() + 5}));
        assert!(verify(&token, &config(), &no_keys(), now()).is_ok());
    }

    #[test]
    fn bad_signature_is_rejected() {
        let token = sign(json!({"sub":"a"}), b"another-secret");
        let err = verify(&token, &config(), &no_keys(), now()).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::Unauthorized);
    }

    #[test]
    fn alg_none_and_other_algorithms_are_rejected() {
        let payload = base64_url(&json!({"sub":"a","exp":now().timestamp()+60}).to_string());
        for alg in ["none", "HS512", "RS256"] {
            let header = base64_url(&json!({"alg":alg,"typ":"JWT"}).to_string());
            let token = format!("{header}.{payload}.");
            assert!(
                verify(&token, &config(), &no_keys(), now()).is_err(),
                "{alg}"
            );
        }
    }

    fn base64_url(text: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn missing_or_empty_sub_is_rejected() {
        assert!(verify(
            &sign(json!({"name":"x"}), SECRET),
            &config(),
            &no_keys(),
            now()
        )
        .is_err());
        assert!(verify(
            &sign(json!({"sub":""}), SECRET),
            &config(),
            &no_keys(),
            now()
        )
        .is_err());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let mut cfg = config();
        cfg.issuer = Some("relay-auth".into());
        cfg.audience = Some("relay".into());
        let good = sign(
            json!({"sub":"a","iss":"relay-auth","aud":["x","relay"]}),
            SECRET,
        );
        assert!(verify(&good, &cfg, &no_keys(), now()).is_ok());
        let wrong_iss = sign(json!({"sub":"a","iss":"other","aud":"relay"}), SECRET);
        assert!(verify(&wrong_iss, &cfg, &no_keys(), now()).is_err());
        let no_aud = sign(json!({"sub":"a","iss":"relay-auth"}), SECRET);
        assert!(verify(&no_aud, &cfg, &no_keys(), now()).is_err());
    }

    #[test]
    fn malformed_and_oversized_tokens_are_rejected() {
        assert!(verify("not-a-jwt", &config(), &no_keys(), now()).is_err());
        assert!(verify(
            &"a".repeat(MAX_TOKEN_BYTES + 1),
            &config(),
            &no_keys(),
            now()
        )
        .is_err());
    }

    fn identity(grants: &[&str]) -> Identity {
        Identity {
            user: User {
                id: "bob".into(),
                name: None,
                role: None,
            },
            grants: grants.iter().map(|g| g.to_string()).collect(),
            expires_at: 0,
            accepted_until: 0,
        }
    }

    #[test]
    fn grants_exact_prefix_star_and_own_room() {
        assert!(identity(&["chat:1"]).may_access("chat:1"));
        assert!(!identity(&["chat:1"]).may_access("chat:10"));
        assert!(identity(&["city:*"]).may_access("city:Саратов"));
        assert!(!identity(&["city:*"]).may_access("cit"));
        assert!(identity(&["*"]).may_access("anything"));
        assert!(identity(&[]).may_access("user:bob"));
        assert!(!identity(&[]).may_access("user:bobby"));
        assert!(!identity(&[]).may_access("chat:1"));
    }

    #[test]
    fn rooms_claim_may_be_a_single_string() {
        let token = sign(json!({"sub":"a","rooms":"*"}), SECRET);
        assert_eq!(
            verify(&token, &config(), &no_keys(), now()).unwrap().grants,
            vec!["*"]
        );
    }

    #[test]
    fn token_is_found_in_header_subprotocol_or_query() {
        assert_eq!(
            find_token(Some("Bearer abc"), None, Some("q")).unwrap(),
            "abc"
        );
        assert_eq!(
            find_token(None, Some("relay.v1, bearer.xyz"), Some("q")).unwrap(),
            "xyz"
        );
        assert_eq!(find_token(None, Some("relay.v1"), Some("q")).unwrap(), "q");
        assert!(find_token(None, None, None).is_err());
        assert!(find_token(Some("Basic abc"), None, None).is_err());
        assert!(offers_subprotocol(Some("relay.v1, bearer.x")));
        assert!(!offers_subprotocol(Some("bearer.x")));
    }

    #[test]
    fn minted_tokens_verify() {
        let user = User {
            id: "dev".into(),
            name: Some("Dev".into()),
            role: None,
        };
        let token = mint(&user, &["chat:*".into()], SECRET, now(), Duration::hours(1)).unwrap();
        let id = verify(&token, &config(), &no_keys(), now()).unwrap();
        assert_eq!(id.user, user);
        assert!(id.may_access("chat:9"));
        assert!(verify(&token, &config(), &no_keys(), now() + Duration::hours(2)).is_err());
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
    }

    mod public_keys {
        use super::*;
        use crate::jwks::tests::{fixture_key, jwks_of, public};
        use crate::jwks::{self};
        use jwt_compact::alg::RsaPrivateKey;
        use jwt_compact::jwk::JsonWebKey;
        use jwt_compact::Algorithm;

        /// A token for `claims` (with `exp` an hour ahead unless given) signed by the fixture
        /// key `signer`, with header `alg` of that key's kind and `kid`.
        fn signed(signer: &str, kid: Option<&str>, claims: Value) -> String {
            let jwk_json = fixture_key(signer).to_string();
            let jwk: JsonWebKey = serde_json::from_str(&jwk_json).unwrap();
            let mut claims = Claims::new(claims);
            if claims.custom.get("exp").is_none() {
                claims.expiration = Some(now() + Duration::hours(1));
            }
            let header = match kid {
                Some(kid) => Header::empty().with_key_id(kid),
                None => Header::empty(),
            };
            match jwk.key_type() {
                jwt_compact::jwk::KeyType::Rsa => {
                    let key = RsaPrivateKey::try_from(&jwk).unwrap();
                    Rsa::rs256().token(&header, &claims, &key).unwrap()
                }
                jwt_compact::jwk::KeyType::EllipticCurve => {
                    let key = <Es256 as Algorithm>::SigningKey::try_from(&jwk).unwrap();
                    Es256.token(&header, &claims, &key).unwrap()
                }
                _ => {
                    let key = <Ed25519 as Algorithm>::SigningKey::try_from(&jwk).unwrap();
                    Ed25519.token(&header, &claims, &key).unwrap()
                }
            }
        }

        /// `token` with its header replaced by `header` (the signature no longer matches it).
        fn with_header(token: &str, header: Value) -> String {
            let (_, rest) = token.split_once('.').unwrap();
            format!("{}.{rest}", base64_url(&header.to_string()))
        }

        fn keys(kids: &[&str]) -> KeySet {
            jwks::parse(&jwks_of(kids)).unwrap()
        }

        fn all_keys() -> KeySet {
            keys(&["rsa-1", "es-1", "ed-1"])
        }

        fn refusal(token: &str, config: &AuthConfig, keys: &KeySet) -> String {
            let err = verify(token, config, keys, now()).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::Unauthorized, "{err:?}");
            err.message
        }

        #[test]
        fn rs256_es256_and_eddsa_tokens_give_the_identity() {
            for kid in ["rsa-1", "es-1", "ed-1"] {
                let token = signed(
                    kid,
                    Some(kid),
                    json!({"sub":"alice","name":"Alice","rooms":["chat:*"]}),
                );
                let id = verify(&token, &config(), &all_keys(), now()).unwrap();
                assert_eq!(id.user.id, "alice", "{kid}");
                assert_eq!(id.user.name.as_deref(), Some("Alice"));
                assert!(id.may_access("chat:7") && !id.may_access("city:1"));
                assert_eq!(public_key_wanted(&token), Some(Some(kid.to_string())));
            }
        }

        #[test]
        fn only_public_keys_configured_still_verifies_them() {
            let only_keys = AuthConfig::new(Vec::new());
            let token = signed("es-1", Some("es-1"), json!({"sub":"a"}));
            assert!(verify(&token, &only_keys, &all_keys(), now()).is_ok());
            // And HS256 is then refused, whatever it was signed with.
            let hs = sign(json!({"sub":"a"}), SECRET);
            assert_eq!(
                refusal(&hs, &only_keys, &all_keys()),
                "invalid token: algorithm not accepted"
            );
            assert!(mint(
                &User {
                    id: "a".into(),
                    name: None,
                    role: None
                },
                &[],
                b"",
                now(),
                Duration::hours(1)
            )
            .is_err());
        }

        #[test]
        fn the_alg_must_fit_the_key_the_kid_names() {
            // A valid ES256 signature, presented under the RSA key's kid.
            let es_as_rsa = signed("es-1", Some("rsa-1"), json!({"sub":"a"}));
            assert_eq!(
                refusal(&es_as_rsa, &config(), &all_keys()),
                "invalid token: alg does not fit the key"
            );
            // An RS256 header on the Ed25519 key.
            let ed = signed("ed-1", Some("ed-1"), json!({"sub":"a"}));
            let rs_on_ed = with_header(&ed, json!({"alg":"RS256","kid":"ed-1"}));
            assert!(verify(&rs_on_ed, &config(), &all_keys(), now()).is_err());
            // Another key's signature under a known kid of the same kind.
            let forged = signed("ed-2", Some("ed-1"), json!({"sub":"a"}));
            assert_eq!(
                refusal(&forged, &config(), &all_keys()),
                "invalid token: bad signature or claims"
            );
        }

        #[test]
        fn none_and_other_algorithms_stay_refused_with_public_keys() {
            let ed = signed("ed-1", Some("ed-1"), json!({"sub":"a"}));
            for alg in [
                "none", "None", "RS384", "PS256", "ES384", "ES256K", "Ed25519", "HS512",
            ] {
                let token = with_header(&ed, json!({"alg": alg, "kid": "ed-1"}));
                assert_eq!(
                    refusal(&token, &config(), &all_keys()),
                    "invalid token: algorithm not accepted",
                    "{alg}"
                );
                assert_eq!(public_key_wanted(&token), None, "{alg}");
            }
        }

        #[test]
        fn a_public_key_is_never_an_hmac_secret() {
            let rsa = fixture_key("rsa-1");
            let modulus = base64ct_decode(rsa["n"].as_str().unwrap());
            let candidates: Vec<Vec<u8>> = vec![
                public(&rsa).to_string().into_bytes(),
                jwks_of(&["rsa-1"]).into_bytes(),
                modulus,
            ];
            for (only_keys, config) in [(true, AuthConfig::new(Vec::new())), (false, config())] {
                for bytes in &candidates {
                    let mut claims = Claims::new(json!({"sub":"a"}));
                    claims.expiration = Some(now() + Duration::hours(1));
                    let token = Hs256
                        .token(
                            &Header::empty().with_key_id("rsa-1"),
                            &claims,
                            &Hs256Key::new(bytes),
                        )
                        .unwrap();
                    assert!(
                        verify(&token, &config, &all_keys(), now()).is_err(),
                        "only keys: {only_keys}"
                    );
                }
            }
        }

        #[test]
        fn the_hmac_secret_never_verifies_a_public_key_algorithm() {
            // Signed with the shared secret, presented as RS256 / ES256 / EdDSA.
            let hs = sign(json!({"sub":"a"}), SECRET);
            for alg in PUBLIC_KEY_ALGORITHMS {
                let token = with_header(&hs, json!({"alg": alg}));
                assert!(
                    verify(&token, &config(), &no_keys(), now()).is_err(),
                    "{alg}"
                );
                assert!(
                    verify(&token, &config(), &keys(&["ed-1"]), now()).is_err(),
                    "{alg}"
                );
            }
            assert_eq!(
                refusal(
                    &with_header(&hs, json!({"alg":"EdDSA"})),
                    &config(),
                    &no_keys()
                ),
                "invalid token: no public key is configured"
            );
        }

        #[test]
        fn kid_rules() {
            let unknown = signed("ed-1", Some("ed-9"), json!({"sub":"a"}));
            assert_eq!(
                refusal(&unknown, &config(), &all_keys()),
                "invalid token: unknown kid"
            );
            let without_kid = signed("ed-1", None, json!({"sub":"a"}));
            assert_eq!(public_key_wanted(&without_kid), Some(None));
            assert_eq!(
                refusal(&without_kid, &config(), &all_keys()),
                "invalid token: kid required: there is more than one public key"
            );
            assert!(verify(&without_kid, &config(), &keys(&["ed-1"]), now()).is_ok());
        }

        #[test]
        fn time_issuer_audience_and_sub_are_checked_as_for_hs256() {
            let exp = now().timestamp() - 31;
            let expired = signed("rsa-1", Some("rsa-1"), json!({"sub":"a","exp":exp}));
            assert!(verify(&expired, &config(), &all_keys(), now()).is_err());
            let no_sub = signed("es-1", Some("es-1"), json!({"name":"x"}));
            assert!(verify(&no_sub, &config(), &all_keys(), now()).is_err());
            let mut cfg = config();
            cfg.issuer = Some("https://idp.example/".into());
            cfg.audience = Some("relay".into());
            let good = signed(
                "ed-1",
                Some("ed-1"),
                json!({"sub":"a","iss":"https://idp.example/","aud":"relay"}),
            );
            assert!(verify(&good, &cfg, &all_keys(), now()).is_ok());
            let other_aud = signed(
                "ed-1",
                Some("ed-1"),
                json!({"sub":"a","iss":"https://idp.example/","aud":"api"}),
            );
            assert!(verify(&other_aud, &cfg, &all_keys(), now()).is_err());
        }

        fn base64ct_decode(text: &str) -> Vec<u8> {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut bits = 0u32;
            let mut count = 0;
            let mut out = Vec::new();
            for c in text.bytes() {
                bits = (bits << 6) | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
                count += 6;
                if count >= 8 {
                    count -= 8;
                    out.push((bits >> count) as u8);
                }
            }
            out
        }
    }
}
