//! Minting user JWTs: valid HS256 tokens and deliberately broken ones.
//!
//! ```text
//! let t = token("alice").name("Alice").role("customer").rooms(["chat:*"]).mint();
//! let expired = token("alice").rooms(["*"]).exp_in(-3600).mint();
//! let forged = BadToken::AlgNone.mint("alice", &["*"]);
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{Duration, Utc};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt as _, Claims, Header};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signing {
    /// HS256 with `JWT_SECRET` (or the secret given with [`TokenBuilder::secret`]).
    Hs256,
    /// `{"alg":"none"}` header and an empty signature.
    None,
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
        match self.signing {
            Signing::Hs256 => {
                let secret = self
                    .secret
                    .unwrap_or_else(|| crate::config::jwt_secret().into_bytes());
                let key = Hs256Key::new(secret);
                Hs256
                    .token(&Header::empty().with_token_type("JWT"), &claims, &key)
                    .expect("minting an HS256 token")
            }
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
