//! Maps a request's method and path to a route of the contract, with 404 and 405 decided here.

use crate::error::{ErrorCode, RelayError, RelayResult};
use crate::room_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    RoomSocket { room: String },
    RoomHistory { room: String },
    RoomPublish { room: String },
}

/// Resolves `method` and the raw (still percent-encoded) `path`.
pub fn route(method: &str, path: &str) -> RelayResult<Route> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (allowed, route): (&[&str], Option<Route>) = match segments.as_slice() {
        ["health"] => (&["GET", "HEAD"], Some(Route::Health)),
        ["v1", "rooms", room, "ws"] => {
            let room = room_name::from_path_segment(room)?;
            (&["GET"], Some(Route::RoomSocket { room }))
        }
        ["v1", "rooms", room, "messages"] => {
            let room = room_name::from_path_segment(room)?;
            match method {
                "POST" => (&["POST"], Some(Route::RoomPublish { room })),
                _ => (&["GET", "POST"], Some(Route::RoomHistory { room })),
            }
        }
        _ => return Err(RelayError::not_found("no such route")),
    };
    match route {
        Some(route) if allowed.contains(&method) => Ok(route),
        _ => Err(RelayError::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "method {} is not allowed here; allowed: {}",
                method,
                allowed.join(", ")
            ),
        )),
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
    fn unknown_paths_are_404() {
        for path in [
            "/",
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
