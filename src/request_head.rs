//! What the Worker decides about a request from its head alone (method, path, query and the
//! few headers it reads): how its answers leave (CORS, refusals on the socket), a connect's
//! parameters, and the credentials of backends and admins. The runtime reads the head once,
//! then only waits: for a token's keys, a body, a room.

use crate::auth::{self, Identity};
use crate::config::{Settings, MAX_HTTP_BODY_BYTES};
use crate::cors;
use crate::error::{ErrorCode, RelayError, RelayResult};
use crate::paging;
use crate::protocol;
use crate::room_api::{Caller, Connect};
use crate::router::{self, Shape};
use crate::url_parts;
use crate::webhook::{self, BackendCredentials, BackendProof, SignedRequest, SIGNATURE_HEADER};

/// The request headers the Worker reads; no other is copied out of the runtime.
const READ_HEADERS: [&str; 6] = [
    "authorization",
    "sec-websocket-protocol",
    "origin",
    "upgrade",
    "content-length",
    SIGNATURE_HEADER,
];

/// A request's method, path, query and the headers the Worker reads.
pub struct RequestHead {
    pub method: String,
    pub url: String,
    /// The URL path as received (still percent-encoded): what a backend signature covers.
    pub path: String,
    query: Vec<(String, String)>,
    /// The values of [`READ_HEADERS`], in that order.
    headers: [Option<String>; READ_HEADERS.len()],
}

/// What every answer to a request gets on its way out, decided before the request is handled.
#[derive(Debug, Default, PartialEq)]
pub struct Finish {
    /// CORS headers of an actual answer of a route browsers call (see [`crate::cors`]); none
    /// for `OPTIONS`, whose preflight answer is complete by itself.
    pub cors: Vec<cors::Header>,
    /// For an upgrade that offered `relay.v1`: refusals are sent on the socket (a browser
    /// cannot read an HTTP refusal of an upgrade).
    pub refuse_on_socket: bool,
}

impl RequestHead {
    /// `header` looks a header up by its lower-case name.
    pub fn new(method: String, url: String, header: impl Fn(&str) -> Option<String>) -> Self {
        RequestHead {
            path: url_parts::path(&url).to_string(),
            query: url_parts::query_pairs(&url),
            headers: READ_HEADERS.map(header),
            method,
            url,
        }
    }

    /// One of the headers the Worker reads (`READ_HEADERS`); any other name is a programming
    /// error and reads as absent.
    pub fn header(&self, name: &str) -> Option<&str> {
        let index = READ_HEADERS.iter().position(|h| *h == name);
        debug_assert!(index.is_some(), "{name} is not read");
        self.headers[index?].as_deref()
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_upgrade(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
    }

    fn offers_subprotocol(&self) -> bool {
        auth::offers_subprotocol(self.header("sec-websocket-protocol"))
    }

    pub fn finish(&self, settings: &Settings) -> Finish {
        let Some(shape) = router::shape(&self.path) else {
            return Finish::default();
        };
        let origins = &settings.allowed_origins;
        let cors =
            if shape.cross_origin && self.method != "OPTIONS" && origins.answers_vary_by_origin() {
                origins.answer_headers(self.header("origin"))
            } else {
                Vec::new()
            };
        Finish {
            cors,
            refuse_on_socket: shape.websocket && self.is_upgrade() && self.offers_subprotocol(),
        }
    }

    /// The answer headers of a CORS preflight of a route of `shape`.
    pub fn preflight(&self, settings: &Settings, shape: Shape) -> RelayResult<Vec<cors::Header>> {
        settings
            .allowed_origins
            .preflight(self.header("origin"), shape.methods, &shape.allow())
    }

    /// The user token the request carries (header, subprotocol or query).
    pub fn user_token(&self) -> RelayResult<&str> {
        auth::find_token(
            self.header("authorization"),
            self.header("sec-websocket-protocol"),
            self.query("token"),
        )
    }

    /// A browser's `Origin` is checked before anything else of a connect: it needs no token.
    pub fn check_upgrade_origin(&self, settings: &Settings) -> RelayResult<()> {
        settings
            .allowed_origins
            .check_upgrade(self.header("origin"), &self.url)
    }

    /// What the room needs to accept the connect of an authenticated user.
    pub fn connect(&self, identity: &Identity) -> RelayResult<Connect> {
        if !self.is_upgrade() {
            return Err(RelayError::new(
                ErrorCode::UpgradeRequired,
                "this route needs a WebSocket upgrade",
            ));
        }
        let since = self
            .query("since")
            .map(|since| paging::parse_number("since", since))
            .transpose()?;
        let batched = match self.query("batch") {
            Some(batch) => protocol::parse_batch_flag(batch)?,
            None => false,
        };
        Ok(Connect {
            caller: Caller::from(identity),
            since,
            batched,
            subprotocol: self
                .offers_subprotocol()
                .then(|| auth::SUBPROTOCOL.to_string()),
        })
    }

    /// A body declared larger than the relay takes is refused before any of it is read.
    pub fn check_declared_length(&self) -> RelayResult<()> {
        let declared = self
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > MAX_HTTP_BODY_BYTES) {
            return Err(body_too_large());
        }
        Ok(())
    }

    /// Whether the request carries a backend signature (its body must be read to check it).
    pub fn is_signed(&self) -> bool {
        self.header(SIGNATURE_HEADER).is_some()
    }

    /// Checks a backend's credentials (see [`webhook::authenticate_backend`]) against `body`
    /// (empty when the request is not signed) at `now_s`.
    pub fn backend_proof(
        &self,
        settings: &Settings,
        body: &[u8],
        body_names_rooms: bool,
        body_token: Option<&str>,
        now_s: i64,
    ) -> RelayResult<BackendProof> {
        // Unset is the deployment's mistake, which the runtime logs.
        let Some(webhook_secret) = settings.webhook_secret.as_deref() else {
            return Err(RelayError::internal());
        };
        let credentials = BackendCredentials {
            authorization: self.header("authorization"),
            signature: self.header(SIGNATURE_HEADER),
            body_token,
        };
        let request = SignedRequest {
            method: &self.method,
            path: &self.path,
            body,
            body_names_rooms,
        };
        webhook::authenticate_backend(&credentials, &request, webhook_secret.as_bytes(), now_s)
    }

    /// Whether the request carries the admin secret (compared in constant time).
    pub fn is_admin(&self, settings: &Settings) -> bool {
        let Some(admin_secret) = settings.admin_secret.as_deref() else {
            return false;
        };
        self.header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|given| {
                auth::secrets_equal(given.trim().as_bytes(), admin_secret.as_bytes())
            })
    }

    pub fn require_admin(&self, settings: &Settings) -> RelayResult<()> {
        if self.is_admin(settings) {
            Ok(())
        } else {
            Err(RelayError::unauthorized("missing or wrong admin secret"))
        }
    }
}

pub fn body_too_large() -> RelayError {
    RelayError::too_large("request body is larger than 256 KiB")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::User;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        Settings::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn head(method: &str, url: &str, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead::new(method.into(), url.into(), |name| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn identity() -> Identity {
        Identity {
            user: User {
                id: "ann".into(),
                name: None,
                role: None,
            },
            grants: vec!["chat:*".into()],
            expires_at: 1_899_999_940,
            accepted_until: 1_900_000_000,
        }
    }

    const WS: &str = "https://relay.test/v1/rooms/chat:1/ws";

    #[test]
    fn cross_origin_answers_carry_cors_and_socket_refusals_need_the_subprotocol() {
        let allowed = settings(&[("ALLOWED_ORIGINS", "https://app.test")]);
        let get = head(
            "GET",
            "https://relay.test/v1/rooms/a/messages",
            &[("origin", "https://app.test")],
        );
        let finish = get.finish(&allowed);
        assert!(finish
            .cors
            .contains(&("access-control-allow-origin", "https://app.test".into())));
        assert!(!finish.refuse_on_socket);
        let options = head(
            "OPTIONS",
            "https://relay.test/v1/rooms/a/messages",
            &[("origin", "https://app.test")],
        );
        assert_eq!(options.finish(&allowed), Finish::default());
        let backend = head(
            "POST",
            "https://relay.test/v1/broadcast",
            &[("origin", "https://app.test")],
        );
        assert_eq!(backend.finish(&allowed), Finish::default());

        let upgrade = [
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "relay.v1, bearer.x"),
        ];
        assert!(head("GET", WS, &upgrade).finish(&allowed).refuse_on_socket);
        assert!(
            !head("GET", WS, &upgrade[..1])
                .finish(&allowed)
                .refuse_on_socket
        );
    }

    #[test]
    fn a_connect_needs_an_upgrade_and_reads_since_batch_and_subprotocol() {
        let plain = head("GET", WS, &[]);
        assert_eq!(
            plain.connect(&identity()).unwrap_err().code,
            ErrorCode::UpgradeRequired
        );
        let url = format!("{WS}?since=41&batch=1");
        let upgrade = [
            ("upgrade", "WebSocket"),
            ("sec-websocket-protocol", "relay.v1"),
        ];
        let connect = head("GET", &url, &upgrade).connect(&identity()).unwrap();
        assert_eq!(connect.since, Some(41));
        assert!(connect.batched);
        assert_eq!(connect.subprotocol.as_deref(), Some(auth::SUBPROTOCOL));
        assert_eq!(connect.caller.user.id, "ann");
        assert_eq!(connect.caller.exp, 1_900_000_000);
        let bad_since = format!("{WS}?since=-1");
        let refused = head("GET", &bad_since, &upgrade[..1]).connect(&identity());
        assert_eq!(refused.unwrap_err().code, ErrorCode::BadRequest);
        let bad_batch = format!("{WS}?batch=yes");
        let refused = head("GET", &bad_batch, &upgrade[..1]).connect(&identity());
        assert_eq!(refused.unwrap_err().code, ErrorCode::BadRequest);
    }

    #[test]
    fn a_declared_body_over_the_limit_is_refused_before_reading() {
        let over = (MAX_HTTP_BODY_BYTES + 1).to_string();
        let at = MAX_HTTP_BODY_BYTES.to_string();
        let url = "https://relay.test/v1/broadcast";
        let refused = head("POST", url, &[("content-length", &over)]).check_declared_length();
        assert_eq!(refused.unwrap_err().code, ErrorCode::TooLarge);
        assert!(head("POST", url, &[("content-length", &at)])
            .check_declared_length()
            .is_ok());
        assert!(head("POST", url, &[]).check_declared_length().is_ok());
    }

    #[test]
    fn backends_and_admins_are_denied_unless_their_secret_matches() {
        let url = "https://relay.test/v1/broadcast";
        let unset = settings(&[]);
        let bearer = [("authorization", "Bearer hook-secret")];
        let proof = head("POST", url, &bearer).backend_proof(&unset, b"", true, None, 0);
        assert_eq!(proof.unwrap_err().code, ErrorCode::Internal);
        let set = settings(&[("WEBHOOK_SECRET", "hook-secret"), ("ADMIN_SECRET", "admin")]);
        assert!(head("POST", url, &bearer)
            .backend_proof(&set, b"", true, None, 0)
            .is_ok());
        let wrong = [("authorization", "Bearer hook-secreT")];
        let denied = head("POST", url, &wrong).backend_proof(&set, b"", true, None, 0);
        assert_eq!(denied.unwrap_err().code, ErrorCode::Unauthorized);

        let stats = "https://relay.test/v1/stats";
        assert!(head("GET", stats, &[("authorization", "Bearer admin ")]).is_admin(&set));
        assert!(!head("GET", stats, &[("authorization", "Bearer admin2")]).is_admin(&set));
        assert!(!head("GET", stats, &bearer).is_admin(&set));
        assert!(!head("GET", stats, &[("authorization", "Bearer admin")]).is_admin(&unset));
        let refused = head("GET", stats, &[]).require_admin(&set);
        assert_eq!(refused.unwrap_err().code, ErrorCode::Unauthorized);
    }
}
