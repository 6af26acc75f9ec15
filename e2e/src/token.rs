//! Minting user JWTs: valid HS256 tokens, tokens signed with an identity provider's keys
//! (RS256, ES256, EdDSA), and deliberately broken ones.
//!
//! ```text
//! let t = token("alice").name("Alice").role("customer").rooms(["chat:*"]).mint();
//! let expired = token("alice").rooms(["*"]).exp_in(-3600).mint();
//! let forged = BadToken::AlgNone.mint("alice", &["*"]);
//! let idp = token("alice").rooms(["*"]).signed_by(&IdpKey::inline("rsa")).mint();
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{Duration, Utc};
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key, Rsa, RsaPrivateKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmExt as _, Claims, Header};
use serde::Serialize;
use serde_json::{Map, Value};

/// The custom (non-time) claims of a user token.
#[derive(Debug, Clone, Serialize)]
struct UserClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rooms: Option<Vec<String>>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// How the token is signed.
#[derive(Debug, Clone)]
enum Signing {
    /// HS256 with `JWT_SECRET` (or the secret given with [`TokenBuilder::secret`]).
    Hs256,
    /// `{"alg":"none"}` header and an empty signature.
    None,
    /// With an identity provider's private key, in the algorithm its kind fits.
    Idp(IdpKey),
}

/// The private half of an identity provider's key.
#[derive(Debug, Clone)]
enum IdpSigningKey {
    Rsa(Box<RsaPrivateKey>),
    P256(<Es256 as Algorithm>::SigningKey),
    Ed25519(<Ed25519 as Algorithm>::SigningKey),
}

/// An identity provider's signing key, read from a private JWK that `scripts/idp-test-keys`
/// made for this run: the relay knows its public half inline (`JWT_PUBLIC_KEYS`), from the
/// served JWKS (`JWT_JWKS_URL`), or, for the rotation key, once a test publishes it.
#[derive(Debug, Clone)]
pub struct IdpKey {
    kid: String,
    jwk: Value,
    key: IdpSigningKey,
}

/// A variable of the identity-provider fixture, which `scripts/test` exports for the suite.
fn idp_env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
            "environment variable {name} is not set. The identity-provider tests need the keys \
             that scripts/idp-test-keys writes (IDP_INLINE_KEYS, IDP_URL_KEYS, IDP_ROTATION_KEY, \
             IDP_JWKS_DIR) and a relay started with the matching JWT_PUBLIC_KEYS and JWT_JWKS_URL."
        )
        })
}

impl IdpKey {
    /// The key from a private JWK (with `kid`).
    pub fn from_jwk(jwk: &Value) -> IdpKey {
        let parsed: JsonWebKey = serde_json::from_value(jwk.clone()).expect("a private JWK");
        let key = match jwk["kty"].as_str() {
            Some("RSA") => IdpSigningKey::Rsa(Box::new(
                RsaPrivateKey::try_from(&parsed).expect("an RSA private JWK"),
            )),
            Some("EC") => IdpSigningKey::P256(
                <Es256 as Algorithm>::SigningKey::try_from(&parsed).expect("a P-256 private JWK"),
            ),
            Some("OKP") => IdpSigningKey::Ed25519(
                <Ed25519 as Algorithm>::SigningKey::try_from(&parsed)
                    .expect("an Ed25519 private JWK"),
            ),
            other => panic!("unexpected key type {other:?}"),
        };
        IdpKey {
            kid: jwk["kid"].as_str().expect("a kid").to_string(),
            jwk: jwk.clone(),
            key,
        }
    }

    fn set_from_env(name: &str) -> Vec<IdpKey> {
        let keys: Vec<Value> = serde_json::from_str(&idp_env(name)).expect("a JSON list of JWKs");
        keys.iter().map(IdpKey::from_jwk).collect()
    }

    /// The key of kind `kind` (`rsa`, `es` or `ed`) that the relay has in `JWT_PUBLIC_KEYS`.
    pub fn inline(kind: &str) -> IdpKey {
        Self::of_kind(Self::set_from_env("IDP_INLINE_KEYS"), kind)
    }

    /// The key of kind `kind` that the relay fetches from `JWT_JWKS_URL`.
    pub fn served(kind: &str) -> IdpKey {
        Self::of_kind(Self::set_from_env("IDP_URL_KEYS"), kind)
    }

    /// Every key of the served JWKS.
    pub fn served_all() -> Vec<IdpKey> {
        Self::set_from_env("IDP_URL_KEYS")
    }

    /// A key that is in no key set until a test publishes it.
    pub fn rotation() -> IdpKey {
        IdpKey::from_jwk(&serde_json::from_str(&idp_env("IDP_ROTATION_KEY")).expect("a JWK"))
    }

    fn of_kind(keys: Vec<IdpKey>, kind: &str) -> IdpKey {
        keys.into_iter()
            .find(|k| k.kid.contains(&format!("-{kind}-")))
            .unwrap_or_else(|| panic!("no {kind} key in the fixture"))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> &'static str {
        match self.key {
            IdpSigningKey::Rsa(_) => "RS256",
            IdpSigningKey::P256(_) => "ES256",
            IdpSigningKey::Ed25519(_) => "EdDSA",
        }
    }

    /// The public JWK, as a key set publishes it.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.jwk.clone();
        let members = jwk.as_object_mut().expect("a JWK object");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            members.remove(private);
        }
        jwk
    }
}

/// The directory the test JWKS server serves `jwks.json` from (`JWT_JWKS_URL`).
pub fn idp_jwks_dir() -> std::path::PathBuf {
    idp_env("IDP_JWKS_DIR").into()
}

/// Builder of a user token. Defaults: `exp` one hour ahead, `iat` now, no `nbf`, no `rooms`
/// claim, signed HS256 with `JWT_SECRET`.
#[derive(Debug, Clone)]
pub struct TokenBuilder {
    claims: UserClaims,
    exp_offset: Option<i64>,
    nbf_offset: Option<i64>,
    secret: Option<Vec<u8>>,
    signing: Signing,
    /// The `kid` header: `None` for the signing key's own (IdP keys) or none (HS256).
    kid: Option<Option<String>>,
}

/// Starts a token for the user `sub`.
pub fn token(sub: &str) -> TokenBuilder {
    TokenBuilder {
        claims: UserClaims {
            sub: Some(sub.to_string()),
            name: None,
            role: None,
            rooms: None,
            extra: Map::new(),
        },
        exp_offset: Some(3600),
        nbf_offset: None,
        secret: None,
        signing: Signing::Hs256,
        kid: None,
    }
}

impl TokenBuilder {
    /// Sets the `name` claim.
    pub fn name(mut self, name: &str) -> Self {
        self.claims.name = Some(name.to_string());
        self
    }

    /// Sets the `role` claim.
    pub fn role(mut self, role: &str) -> Self {
        self.claims.role = Some(role.to_string());
        self
    }

    /// Sets the `rooms` claim (exact names, `prefix*` patterns or `"*"`).
    pub fn rooms<I, S>(mut self, rooms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.claims.rooms = Some(rooms.into_iter().map(Into::into).collect());
        self
    }

    /// `exp` = now + `secs` (negative for an already expired token).
    pub fn exp_in(mut self, secs: i64) -> Self {
        self.exp_offset = Some(secs);
        self
    }

    /// Leaves the `exp` claim out.
    pub fn without_exp(mut self) -> Self {
        self.exp_offset = None;
        self
    }

    /// `nbf` = now + `secs`.
    pub fn nbf_in(mut self, secs: i64) -> Self {
        self.nbf_offset = Some(secs);
        self
    }

    /// Leaves the `sub` claim out.
    pub fn without_sub(mut self) -> Self {
        self.claims.sub = None;
        self
    }

    /// Signs with another HS256 secret instead of `JWT_SECRET`.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// Produces an unsigned token with header `{"alg":"none","typ":"JWT"}`.
    pub fn alg_none(mut self) -> Self {
        self.signing = Signing::None;
        self
    }

    /// Signs with an identity provider's key (RS256, ES256 or EdDSA by its kind), with its
    /// `kid` in the header unless [`TokenBuilder::kid`] says otherwise.
    pub fn signed_by(mut self, key: &IdpKey) -> Self {
        self.signing = Signing::Idp(key.clone());
        self
    }

    /// Sets the `kid` header to `kid`, or leaves it out with `None`.
    pub fn kid(mut self, kid: Option<&str>) -> Self {
        self.kid = Some(kid.map(str::to_string));
        self
    }

    /// Adds any other claim.
    pub fn claim(mut self, key: &str, value: Value) -> Self {
        self.claims.extra.insert(key.to_string(), value);
        self
    }

    /// The compact JWT.
    pub fn mint(self) -> String {
        let now = Utc::now();
        let mut claims = Claims::new(self.claims);
        claims.expiration = self.exp_offset.map(|s| now + Duration::seconds(s));
        claims.not_before = self.nbf_offset.map(|s| now + Duration::seconds(s));
        claims.issued_at = Some(now);
        let own_kid = match &self.signing {
            Signing::Idp(key) => Some(key.kid.clone()),
            _ => None,
        };
        let mut header = Header::empty().with_token_type("JWT");
        if let Some(kid) = self.kid.unwrap_or(own_kid) {
            header = header.with_key_id(kid);
        }
        match self.signing {
            Signing::Hs256 => {
                let secret = self
                    .secret
                    .unwrap_or_else(|| crate::config::jwt_secret().into_bytes());
                let key = Hs256Key::new(secret);
                Hs256
                    .token(&header, &claims, &key)
                    .expect("minting an HS256 token")
            }
            Signing::Idp(IdpKey { key, .. }) => match key {
                IdpSigningKey::Rsa(key) => Rsa::rs256().token(&header, &claims, &key),
                IdpSigningKey::P256(key) => Es256.token(&header, &claims, &key),
                IdpSigningKey::Ed25519(key) => Ed25519.token(&header, &claims, &key),
            }
            .expect("minting an identity-provider token"),
            Signing::None => {
                let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
                let payload = URL_SAFE_NO_PAD
                    .encode(serde_json::to_vec(&claims).expect("serializing claims"));
                format!("{header}.{payload}.")
            }
        }
    }
}

/// Tokens that must be rejected with 401 wherever a JWT is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadToken {
    /// `exp` an hour ago (far beyond the at most 60 s leeway).
    Expired,
    /// `nbf` an hour ahead.
    NotYetValid,
    /// HS256 signed with a different secret.
    WrongSecret,
    /// `alg: none`, no signature.
    AlgNone,
    /// Correctly signed but without `sub`.
    MissingSub,
    /// Correctly signed but without `exp` (a required claim).
    MissingExp,
    /// Valid token with its signature's last characters altered.
    TamperedSignature,
    /// Not a JWT at all.
    Garbage,
}

impl BadToken {
    /// Every kind of bad token.
    pub const ALL: [BadToken; 8] = [
        BadToken::Expired,
        BadToken::NotYetValid,
        BadToken::WrongSecret,
        BadToken::AlgNone,
        BadToken::MissingSub,
        BadToken::MissingExp,
        BadToken::TamperedSignature,
        BadToken::Garbage,
    ];

    /// Mints this bad token for `sub`, granting `rooms` (so that only the defect itself can
    /// be the reason for a rejection).
    pub fn mint(self, sub: &str, rooms: &[&str]) -> String {
        let base = token(sub).name("Bad").rooms(rooms.iter().copied());
        match self {
            BadToken::Expired => base.exp_in(-3600).mint(),
            BadToken::NotYetValid => base.nbf_in(3600).exp_in(7200).mint(),
            BadToken::WrongSecret => base.secret("definitely-not-the-relay-secret").mint(),
            BadToken::AlgNone => base.alg_none().mint(),
            BadToken::MissingSub => base.without_sub().mint(),
            BadToken::MissingExp => base.without_exp().mint(),
            BadToken::TamperedSignature => {
                let good = base.mint();
                let (head, sig) = good.rsplit_once('.').expect("a compact JWT");
                let mut sig: Vec<u8> = URL_SAFE_NO_PAD.decode(sig).expect("base64url signature");
                sig[0] ^= 0x55;
                format!("{head}.{}", URL_SAFE_NO_PAD.encode(sig))
            }
            BadToken::Garbage => "not-a-jwt".to_string(),
        }
    }
}

/// A test user: a unique `sub` with a display name and role, and tokens for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: Option<String>,
    pub role: Option<String>,
}

impl User {
    /// A user with a unique id `<prefix>-<random>`, the given name and role.
    pub fn new(prefix: &str, name: &str, role: &str) -> Self {
        User {
            id: crate::unique_id(prefix),
            name: Some(name.to_string()),
            role: Some(role.to_string()),
        }
    }

    /// A user with a unique id and neither name nor role.
    pub fn anonymous(prefix: &str) -> Self {
        User {
            id: crate::unique_id(prefix),
            name: None,
            role: None,
        }
    }

    /// A token builder for this user with its name and role claims.
    pub fn builder(&self) -> TokenBuilder {
        let mut b = token(&self.id);
        if let Some(n) = &self.name {
            b = b.name(n);
        }
        if let Some(r) = &self.role {
            b = b.role(r);
        }
        b
    }

    /// A valid token for this user granting `rooms`.
    pub fn token(&self, rooms: &[&str]) -> String {
        self.builder().rooms(rooms.iter().copied()).mint()
    }
}
