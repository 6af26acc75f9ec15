//! Maps a request's method and path to a route of the contract, with 404 and 405 decided here.

use crate::auth::MAX_CLAIM_TEXT_BYTES as MAX_USER_ID_BYTES;
use crate::error::{RelayError, RelayResult};
use crate::room_name;
use crate::site::{self, Page};
use crate::webhook;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Ready,
    RoomSocket {
        room: String,
    },
    RoomHistory {
        room: String,
    },
    RoomPublish {
        room: String,
    },
    /// `PATCH` (edit) or `DELETE` `/v1/rooms/{room}/messages/{seq}`.
    RoomMessage {
        room: String,
        seq: u64,
    },
    RoomMembers {
        room: String,
    },
    RoomPresence {
        room: String,
    },
    /// `POST /v1/users/{user}/disconnect`.
    UserDisconnect {
        user: String,
    },
    /// `GET /v1/rooms/{room}/bans`.
    RoomBans {
        room: String,
    },
    /// `PUT` or `DELETE /v1/rooms/{room}/bans/{user}`.
    RoomBan {
        room: String,
        user: String,
    },
    Broadcast,
    Stats,
    StatsRooms,
    LegacyBroadcast {
        kind: String,
    },
    LegacyStatsConnections,
    LegacyStatsRooms,
    DevToken,
    /// The demo page and the browser client.
    Page(&'static Page),
    /// `OPTIONS` on a route that browsers may call from other origins (a CORS preflight).
    Preflight(Shape),
}

/// What a path accepts, whatever the method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub methods: &'static [&'static str],
    /// Whether scripts on other origins may call it (see [`crate::cors`]): the routes of users
    /// and of the browser client. Backend and admin routes never are.
    pub cross_origin: bool,
    /// Whether it is the WebSocket route, whose refusals may be sent on the socket.
    pub websocket: bool,
}

impl Shape {
    const fn browser(methods: &'static [&'static str]) -> Shape {
        Shape {
            methods,
            cross_origin: true,
            websocket: false,
        }
    }

    const fn server(methods: &'static [&'static str]) -> Shape {
        Shape {
            methods,
            cross_origin: false,
            websocket: false,
        }
    }

    const SOCKET: Shape = Shape {
        methods: &["GET"],
        cross_origin: true,
        websocket: true,
    };

    /// The `Allow` header: the methods, and `OPTIONS` where browsers may preflight.
    pub fn allow(&self) -> String {
        let mut allow = self.methods.join(", ");
        if self.cross_origin {
            allow.push_str(", OPTIONS");
        }
        allow
    }
}

/// A known path, before its room name is judged.
enum Target<'p> {
    Health,
    Ready,
    Socket(&'p str),
    Messages(&'p str),
    Message(&'p str, &'p str),
    Members(&'p str),
    Presence(&'p str),
    UserDisconnect(&'p str),
    Bans(&'p str),
    Ban(&'p str, &'p str),
    Broadcast,
    Stats,
    StatsRooms,
    LegacyBroadcast(&'p str),
    LegacyStatsConnections,
    LegacyStatsRooms,
    DevToken,
    Page(&'static Page),
}

/// The route's shape at `path` (raw, still percent-encoded); `None` for an unknown path.
fn resolve(path: &str) -> Option<(Shape, Target<'_>)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let resolved = match segments.as_slice() {
        ["health"] => (Shape::browser(&["GET", "HEAD"]), Target::Health),
        ["health", "ready"] => (Shape::browser(&["GET", "HEAD"]), Target::Ready),
        ["v1", "rooms", name, "ws"] => (Shape::SOCKET, Target::Socket(name)),
        ["v1", "rooms", name, "messages"] => {
            (Shape::browser(&["GET", "POST"]), Target::Messages(name))
        }
        ["v1", "rooms", name, "messages", seq] => (
            Shape::browser(&["PATCH", "DELETE"]),
            Target::Message(name, seq),
        ),
        ["v1", "rooms", name, "members"] => (Shape::server(&["GET", "PUT"]), Target::Members(name)),
        ["v1", "rooms", name, "presence"] => (Shape::browser(&["GET"]), Target::Presence(name)),
        ["v1", "rooms", name, "bans"] => (Shape::server(&["GET"]), Target::Bans(name)),
        ["v1", "rooms", name, "bans", user] => {
            (Shape::server(&["PUT", "DELETE"]), Target::Ban(name, user))
        }
        ["v1", "users", user, "disconnect"] => {
            (Shape::server(&["POST"]), Target::UserDisconnect(user))
        }
        ["v1", "broadcast"] => (Shape::server(&["POST"]), Target::Broadcast),
        ["v1", "stats"] => (Shape::server(&["GET"]), Target::Stats),
        ["v1", "stats", "rooms"] => (Shape::server(&["GET"]), Target::StatsRooms),
        ["api", "v1", "broadcast", kind] if webhook::is_legacy_kind(kind) => {
            (Shape::server(&["POST"]), Target::LegacyBroadcast(kind))
        }
        ["api", "v1", "stats", "connections"] => {
            (Shape::server(&["GET"]), Target::LegacyStatsConnections)
        }
        ["api", "v1", "stats", "rooms"] => (Shape::server(&["GET"]), Target::LegacyStatsRooms),
        // The demo page calls it, also when served from another origin in development.
        ["dev", "token"] => (Shape::browser(&["POST"]), Target::DevToken),
        // Pages are public; a page on another origin may import the client as a module script,
        // which needs CORS.
        _ => (
            Shape::browser(&["GET", "HEAD"]),
            Target::Page(site::page(path)?),
        ),
    };
    Some(resolved)
}

/// The shape of the route at `path`; `None` for an unknown path.
pub fn shape(path: &str) -> Option<Shape> {
    resolve(path).map(|(shape, _)| shape)
}

/// Resolves `method` and the raw (still percent-encoded) `path`.
pub fn route(method: &str, path: &str) -> RelayResult<Route> {
    let (shape, target) = resolve(path).ok_or_else(|| RelayError::not_found("no such route"))?;
    // A preflight is answered whatever the room name: the actual request then gets the 400.
    if method == "OPTIONS" && shape.cross_origin {
        return Ok(Route::Preflight(shape));
    }
    let room = |segment: &str| room_name::from_path_segment(segment);
    let route = match target {
        Target::Health => Route::Health,
        Target::Ready => Route::Ready,
        Target::Socket(name) => Route::RoomSocket { room: room(name)? },
        Target::Messages(name) => {
            let room = room(name)?;
            if method == "POST" {
                Route::RoomPublish { room }
            } else {
                Route::RoomHistory { room }
            }
        }
        Target::Message(name, seq) => Route::RoomMessage {
            room: room(name)?,
            seq: match crate::paging::parse_number("seq", seq)? {
                0 => return Err(RelayError::bad_request("seq must be at least 1")),
                seq => seq,
            },
        },
        Target::Members(name) => Route::RoomMembers { room: room(name)? },
        Target::Presence(name) => Route::RoomPresence { room: room(name)? },
        Target::UserDisconnect(user) => Route::UserDisconnect {
            user: user_id(user)?,
        },
        Target::Bans(name) => Route::RoomBans { room: room(name)? },
        Target::Ban(name, user) => Route::RoomBan {
            room: room(name)?,
            user: user_id(user)?,
        },
        Target::Broadcast => Route::Broadcast,
        Target::Stats => Route::Stats,
        Target::StatsRooms => Route::StatsRooms,
        Target::LegacyBroadcast(kind) => Route::LegacyBroadcast {
            kind: kind.to_string(),
        },
        Target::LegacyStatsConnections => Route::LegacyStatsConnections,
        Target::LegacyStatsRooms => Route::LegacyStatsRooms,
        Target::DevToken => Route::DevToken,
        Target::Page(page) => Route::Page(page),
    };
    if shape.methods.contains(&method) {
        Ok(route)
    } else {
        Err(RelayError::method_not_allowed(method, shape.allow()))
    }
}

/// A user id from a path segment: percent-decoded, 1..=256 bytes (the limit of `sub`).
fn user_id(segment: &str) -> RelayResult<String> {
    let user = room_name::percent_decode(segment)?;
    if user.is_empty() || user.len() > MAX_USER_ID_BYTES {
        return Err(RelayError::bad_request("user ids are 1..=256 bytes"));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn routes_known_paths() {
        assert_eq!(route("GET", "/health").unwrap(), Route::Health);
        assert_eq!(
            route("GET", "/v1/rooms/chat:1/ws").unwrap(),
            Route::RoomSocket {
                room: "chat:1".into()
            }
        );
        assert_eq!(
            route("GET", "/v1/rooms/city:%D0%A1/messages").unwrap(),
            Route::RoomHistory {
                room: "city:С".into()
            }
        );
        assert_eq!(
            route("POST", "/v1/rooms/a/messages").unwrap(),
            Route::RoomPublish { room: "a".into() }
        );
        for method in ["PATCH", "DELETE"] {
            assert_eq!(
                route(method, "/v1/rooms/a/messages/7").unwrap(),
                Route::RoomMessage {
                    room: "a".into(),
                    seq: 7
                }
            );
        }
        assert_eq!(
            route("POST", "/v1/rooms/a/messages/7").unwrap_err().code,
            ErrorCode::MethodNotAllowed
        );
        for bad in ["0", "x", "-1", ""] {
            let path = format!("/v1/rooms/a/messages/{bad}");
            assert_eq!(
                route("PATCH", &path).unwrap_err().code,
                ErrorCode::BadRequest,
                "{bad}"
            );
        }
    }

    #[test]
    fn routes_backend_and_admin_paths() {
        assert_eq!(route("POST", "/v1/broadcast").unwrap(), Route::Broadcast);
        assert_eq!(
            route("GET", "/v1/rooms/a/bans").unwrap(),
            Route::RoomBans { room: "a".into() }
        );
        for method in ["PUT", "DELETE"] {
            assert_eq!(
                route(method, "/v1/rooms/a/bans/%D0%B1%20b").unwrap(),
                Route::RoomBan {
                    room: "a".into(),
                    user: "б b".into()
                }
            );
        }
        assert_eq!(
            route("POST", "/v1/rooms/a/bans/b").unwrap_err().code,
            ErrorCode::MethodNotAllowed
        );
        assert_eq!(
            route("PUT", "/v1/rooms/a/bans/").unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            route("PUT", "/v1/rooms/a/members").unwrap(),
            Route::RoomMembers { room: "a".into() }
        );
        assert_eq!(
            route("GET", "/v1/rooms/a/presence").unwrap(),
            Route::RoomPresence { room: "a".into() }
        );
        assert_eq!(route("GET", "/v1/stats/rooms").unwrap(), Route::StatsRooms);
        assert_eq!(
            route("POST", "/api/v1/broadcast/order-new").unwrap(),
            Route::LegacyBroadcast {
                kind: "order-new".into()
            }
        );
        assert_eq!(
            route("GET", "/api/v1/stats/connections").unwrap(),
            Route::LegacyStatsConnections
        );
        assert_eq!(
            route("POST", "/api/v1/broadcast/other").unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            route("GET", "/v1/broadcast").unwrap_err().code,
            ErrorCode::MethodNotAllowed
        );
        assert_eq!(route("POST", "/dev/token").unwrap(), Route::DevToken);
        assert!(matches!(route("GET", "/").unwrap(), Route::Page(_)));
        assert!(matches!(
            route("HEAD", "/client/relay.js").unwrap(),
            Route::Page(_)
        ));
        assert_eq!(
            route("POST", "/").unwrap_err().code,
            ErrorCode::MethodNotAllowed
        );
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "",
            "/nope",
            "/v1/rooms",
            "/v1/rooms/a",
            "/v1/rooms/a/ws/extra",
            "/health/",
        ] {
            assert_eq!(
                route("GET", path).unwrap_err().code,
                ErrorCode::NotFound,
                "{path}"
            );
        }
    }

    #[test]
    fn wrong_methods_are_405() {
        assert_eq!(
            route("DELETE", "/health").unwrap_err().code,
            ErrorCode::MethodNotAllowed
        );
        assert_eq!(
            route("POST", "/v1/rooms/a/ws").unwrap_err().code,
            ErrorCode::MethodNotAllowed
        );
        assert_eq!(
            route("PUT", "/v1/rooms/a/messages").unwrap_err().code,
            ErrorCode::MethodNotAllowed
        );
    }

    #[test]
    fn every_405_says_what_is_allowed() {
        let allow = |method: &str, path: &str| route(method, path).unwrap_err().allow;
        assert_eq!(
            allow("PUT", "/v1/rooms/a/messages").as_deref(),
            Some("GET, POST, OPTIONS")
        );
        assert_eq!(
            allow("DELETE", "/health").as_deref(),
            Some("GET, HEAD, OPTIONS")
        );
        assert_eq!(
            allow("POST", "/v1/rooms/a/ws").as_deref(),
            Some("GET, OPTIONS")
        );
        assert_eq!(allow("GET", "/v1/broadcast").as_deref(), Some("POST"));
        assert_eq!(allow("POST", "/v1/stats").as_deref(), Some("GET"));
        assert_eq!(
            allow("DELETE", "/v1/rooms/a/members").as_deref(),
            Some("GET, PUT")
        );
        assert_eq!(allow("PUT", "/").as_deref(), Some("GET, HEAD, OPTIONS"));
    }

    #[test]
    fn options_is_a_preflight_only_on_routes_browsers_call() {
        for path in [
            "/health",
            "/health/ready",
            "/v1/rooms/a/ws",
            "/v1/rooms/a/messages",
            "/v1/rooms/a/presence",
            "/dev/token",
            "/client/relay.js",
            // The room name is judged on the actual request, which can then read the 400.
            "/v1/rooms/a%20b/messages",
        ] {
            let Ok(Route::Preflight(shape)) = route("OPTIONS", path) else {
                panic!("{path}: not a preflight");
            };
            assert!(shape.cross_origin, "{path}");
        }
        let Ok(Route::Preflight(shape)) = route("OPTIONS", "/v1/rooms/a/messages") else {
            panic!("messages: not a preflight");
        };
        assert_eq!(shape.methods, ["GET", "POST"]);
        for path in [
            "/v1/broadcast",
            "/v1/rooms/a/members",
            "/v1/stats",
            "/v1/stats/rooms",
            "/api/v1/broadcast/order-new",
            "/api/v1/stats/connections",
            "/api/v1/stats/rooms",
        ] {
            let err = route("OPTIONS", path).unwrap_err();
            assert_eq!(err.code, ErrorCode::MethodNotAllowed, "{path}");
            assert!(!shape_of(path).cross_origin, "{path}");
        }
        assert_eq!(
            route("OPTIONS", "/nope").unwrap_err().code,
            ErrorCode::NotFound
        );
    }

    fn shape_of(path: &str) -> Shape {
        shape(path).unwrap_or_else(|| panic!("{path}: unknown"))
    }

    #[test]
    fn shapes_are_known_without_judging_room_names() {
        assert!(shape_of("/v1/rooms/a%20b/ws").cross_origin);
        assert!(shape_of("/v1/rooms/a%20b/ws").websocket);
        assert!(!shape_of("/v1/rooms/a/messages").websocket);
        assert_eq!(shape_of("/v1/rooms/x/members").methods, ["GET", "PUT"]);
        assert_eq!(shape("/nope"), None);
    }

    #[test]
    fn bad_room_names_are_400() {
        assert_eq!(
            route("GET", "/v1/rooms/a%20b/ws").unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            route("GET", "/v1/rooms//ws").unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn user_disconnect_names_the_user_in_the_path() {
        assert_eq!(
            route("POST", "/v1/users/%D0%B1%D0%BE%D0%B1/disconnect").unwrap(),
            Route::UserDisconnect {
                user: "боб".into()
            }
        );
        let err = route("GET", "/v1/users/ann/disconnect").unwrap_err();
        assert_eq!(err.code, ErrorCode::MethodNotAllowed);
        let long = "x".repeat(257);
        for bad in [
            "/v1/users//disconnect",
            &format!("/v1/users/{long}/disconnect"),
        ] {
            assert_eq!(
                route("POST", bad).unwrap_err().code,
                ErrorCode::BadRequest,
                "{bad}"
            );
        }
        assert!(!shape("/v1/users/ann/disconnect").unwrap().cross_origin);
    }
}
