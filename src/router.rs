//! Maps a request's method and path to a route of the contract, with 404 and 405 decided here.

use crate::error::{ErrorCode, RelayError, RelayResult};
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
    RoomMembers {
        room: String,
    },
    RoomPresence {
        room: String,
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
}

/// Resolves `method` and the raw (still percent-encoded) `path`.
pub fn route(method: &str, path: &str) -> RelayResult<Route> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let room = |segment: &str| room_name::from_path_segment(segment);
    let (allowed, route): (&[&str], Route) = match segments.as_slice() {
        ["health"] => (&["GET", "HEAD"], Route::Health),
        ["health", "ready"] => (&["GET", "HEAD"], Route::Ready),
        ["v1", "rooms", name, "ws"] => (&["GET"], Route::RoomSocket { room: room(name)? }),
        ["v1", "rooms", name, "messages"] => {
            let room = room(name)?;
            let route = if method == "POST" {
                Route::RoomPublish { room }
            } else {
                Route::RoomHistory { room }
            };
            (&["GET", "POST"], route)
        }
        ["v1", "rooms", name, "members"] => {
            (&["GET", "PUT"], Route::RoomMembers { room: room(name)? })
        }
        ["v1", "rooms", name, "presence"] => (&["GET"], Route::RoomPresence { room: room(name)? }),
        ["v1", "broadcast"] => (&["POST"], Route::Broadcast),
        ["v1", "stats"] => (&["GET"], Route::Stats),
        ["v1", "stats", "rooms"] => (&["GET"], Route::StatsRooms),
        ["api", "v1", "broadcast", kind] if webhook::is_legacy_kind(kind) => (
            &["POST"],
            Route::LegacyBroadcast {
                kind: kind.to_string(),
            },
        ),
        ["api", "v1", "stats", "connections"] => (&["GET"], Route::LegacyStatsConnections),
        ["api", "v1", "stats", "rooms"] => (&["GET"], Route::LegacyStatsRooms),
        ["dev", "token"] => (&["POST"], Route::DevToken),
        _ => match site::page(path) {
            Some(page) => (&["GET", "HEAD"], Route::Page(page)),
            None => return Err(RelayError::not_found("no such route")),
        },
    };
    if allowed.contains(&method) {
        Ok(route)
    } else {
        Err(RelayError::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "method {} is not allowed here; allowed: {}",
                method,
                allowed.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn routes_backend_and_admin_paths() {
        assert_eq!(route("POST", "/v1/broadcast").unwrap(), Route::Broadcast);
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
}
