//! The typed internal API: every call the Worker makes to a room (and a room to another room or
//! to the directory), with its one encoding into an internal HTTP request (method, path with
//! query, headers, body) and its decoding on the other side. No other module spells a route.
//!
//! The room's name is the call's address, not part of the request: the transport picks the
//! object by it and carries it in [`ROOM_HEADER`], percent-encoded (header values must be
//! visible ASCII, room names may be any Unicode).

use serde::{Deserialize, Serialize};

use crate::auth::{Identity, User};
use crate::bans::Ban;
use crate::error::{RelayError, RelayResult};
use crate::events::BatchSettled;
use crate::feed::Member;
use crate::header_json;
use crate::occupancy::PresencePage;
use crate::paging::HistoryQuery;
use crate::protocol::Receipt;
use crate::stats::RoomReport;
use crate::url_parts;
use crate::webhook::RoomBroadcast;

/// Internal headers of requests to a room. Only the Worker (and rooms) can make these
/// requests: clients never reach an object directly.
pub const ROOM_HEADER: &str = "x-relay-room";
pub const CALLER_HEADER: &str = "x-relay-caller";
pub const SUBPROTOCOL_HEADER: &str = "x-relay-subprotocol";
/// On a room's answer to a connect it places on a shard: the shard's number (the Worker
/// forwards the upgrade to the object `<room>#<n>`, see `worker/upgrade.mjs`); on that
/// forwarded upgrade, the same number for the shard.
pub const SHARD_HEADER: &str = "x-relay-shard";
/// On the forwarded upgrade: the room's [`crate::shard_fanout::Placement`], as ASCII JSON.
pub const PLACEMENT_HEADER: &str = "x-relay-placement";

const CONNECT: &str = "/connect";
const HISTORY: &str = "/history";
const PUBLISH: &str = "/publish";
const EDIT: &str = "/edit";
const DELETE: &str = "/delete";
const BROADCAST: &str = "/broadcast";
const MEMBERS: &str = "/members";
const PRESENCE: &str = "/presence";
const DISCONNECT: &str = "/disconnect";
const BANS: &str = "/bans";
const UNBAN: &str = "/unban";
const EVENTS_SETTLED: &str = "/events/settled";
const SHARD_LINK: &str = "/shard-link";
const SHARD_RANGE: &str = "/shard-range";

const REPORTS: &str = "/reports";
const TOTALS: &str = "/stats";
const ROOMS: &str = "/rooms";

/// Who is calling a room, as the Worker verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub user: User,
    /// Until when the token is accepted (its `exp` plus the clock leeway, unix seconds); the
    /// socket is closed with 4001 once it has passed.
    pub exp: i64,
}

impl From<&Identity> for Caller {
    /// Who the Worker verified, as the room learns it.
    fn from(identity: &Identity) -> Self {
        Caller {
            user: identity.user.clone(),
            exp: identity.accepted_until,
        }
    }
}

impl Caller {
    /// JSON made ASCII-only: names may be any Unicode, and the runtime logs a whole header
    /// value, name included, when it is not ASCII.
    fn to_header(&self) -> RelayResult<String> {
        let json = serde_json::to_string(self).map_err(|_| RelayError::internal())?;
        Ok(header_json::ascii_only(json))
    }

    fn from_header(value: Option<String>) -> RelayResult<Caller> {
        value
            .and_then(|v| serde_json::from_str(&v).ok())
            .ok_or_else(|| RelayError::unauthorized("missing caller"))
    }
}

/// An internal request as the transport sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub method: &'static str,
    /// The path with its query, e.g. `/connect?since=4&batch=1`.
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

impl Wire {
    fn new(method: &'static str, path: impl Into<String>) -> Wire {
        Wire {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    fn header(mut self, name: &'static str, value: String) -> Wire {
        self.headers.push((name, value));
        self
    }

    fn json_body<T: Serialize>(mut self, body: &T) -> RelayResult<Wire> {
        self.body = Some(serde_json::to_string(body).map_err(|_| RelayError::internal())?);
        Ok(self)
    }
}

/// Whether a request of `method` carries a body the receiver must read before decoding.
pub fn has_body(method: &str) -> bool {
    matches!(method, "POST" | "PUT")
}

/// A WebSocket connection to a room, resumed after `since` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub caller: Caller,
    pub since: Option<u64>,
    /// Frames to this socket go out in bursts, as JSON arrays.
    pub batched: bool,
    /// The subprotocol the client offered: refusals then go on the socket, where a browser can
    /// read them.
    pub subprotocol: Option<String>,
}

/// Every request a room answers.
#[derive(Debug)]
pub enum RoomRequest {
    Connect(Connect),
    History {
        caller: Caller,
        query: HistoryQuery,
    },
    /// A user's publish over HTTP; `body` is the client's JSON as it came, judged by the room
    /// (whose frame limit applies).
    Publish {
        caller: Caller,
        body: String,
    },
    /// A user's edit (or `delete`) of message `seq` over HTTP; `body` as it came, judged by
    /// the room.
    Change {
        caller: Caller,
        seq: u64,
        delete: bool,
        body: String,
    },
    /// A backend's event, or a feed update from another room.
    Broadcast(RoomBroadcast),
    Members,
    SetMembers(Vec<Member>),
    /// Who is online, one page of them; `caller` is the user asking (`None`: an admin).
    Presence {
        caller: Option<Caller>,
        page: PresencePage,
    },
    /// A backend disconnects a user: their sockets in the room close (4003, `reason`).
    Disconnect(UserDisconnect),
    /// A backend bans a user from the room (see [`crate::bans`]).
    Ban(Ban),
    /// A backend lifts a user's ban.
    Unban {
        user: String,
    },
    /// The room's bans that hold now.
    Bans,
    /// The events queue's consumer is done with one of the room's batches: the next may go.
    EventsSettled(BatchSettled),
    /// A shard opens its link to the room: a WebSocket upgrade (see [`crate::shard_fanout`]).
    ShardLink {
        shard: usize,
    },
    /// A shard pulls the messages `after+1..=up_to` it missed or a resume needs (one page:
    /// the answer is a history page).
    ShardRange {
        after: u64,
        up_to: u64,
    },
}

/// The body of [`RoomRequest::Unban`].
#[derive(Serialize, Deserialize)]
struct UnbanBody {
    user: String,
}

/// Whose sockets to close, and the close reason they get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDisconnect {
    pub user: String,
    pub reason: String,
}

impl RoomRequest {
    pub fn encode(&self) -> RelayResult<Wire> {
        Ok(match self {
            RoomRequest::Connect(connect) => {
                let mut query = Query::default();
                if let Some(since) = connect.since {
                    query.push("since", since);
                }
                if connect.batched {
                    query.push("batch", 1);
                }
                let wire = Wire::new("GET", query.after(CONNECT))
                    .header(CALLER_HEADER, connect.caller.to_header()?);
                match &connect.subprotocol {
                    Some(protocol) => wire.header(SUBPROTOCOL_HEADER, protocol.clone()),
                    None => wire,
                }
            }
            RoomRequest::History { caller, query } => {
                let mut params = Query::default();
                params.push("limit", query.limit);
                if let Some(after) = query.after {
                    params.push("after", after);
                }
                if let Some(before) = query.before {
                    params.push("before", before);
                }
                Wire::new("GET", params.after(HISTORY)).header(CALLER_HEADER, caller.to_header()?)
            }
            RoomRequest::Publish { caller, body } => {
                let mut wire =
                    Wire::new("POST", PUBLISH).header(CALLER_HEADER, caller.to_header()?);
                wire.body = Some(body.clone());
                wire
            }
            RoomRequest::Change {
                caller,
                seq,
                delete,
                body,
            } => {
                let mut query = Query::default();
                query.push("seq", seq);
                let path = query.after(if *delete { DELETE } else { EDIT });
                let mut wire = Wire::new("POST", path).header(CALLER_HEADER, caller.to_header()?);
                wire.body = Some(body.clone());
                wire
            }
            RoomRequest::Broadcast(broadcast) => {
                Wire::new("POST", BROADCAST).json_body(broadcast)?
            }
            RoomRequest::Members => Wire::new("GET", MEMBERS),
            RoomRequest::SetMembers(members) => Wire::new("PUT", MEMBERS).json_body(members)?,
            RoomRequest::Presence { caller, page } => {
                let mut params = Query::default();
                params.push("limit", page.limit);
                if let Some(after) = &page.after {
                    let after: String = form_urlencoded::byte_serialize(after.as_bytes()).collect();
                    params.push("after", after);
                }
                let wire = Wire::new("GET", params.after(PRESENCE));
                match caller {
                    Some(caller) => wire.header(CALLER_HEADER, caller.to_header()?),
                    None => wire,
                }
            }
            RoomRequest::Disconnect(disconnect) => {
                Wire::new("POST", DISCONNECT).json_body(disconnect)?
            }
            RoomRequest::Ban(ban) => Wire::new("PUT", BANS).json_body(ban)?,
            RoomRequest::Unban { user } => {
                Wire::new("POST", UNBAN).json_body(&UnbanBody { user: user.clone() })?
            }
            RoomRequest::Bans => Wire::new("GET", BANS),
            RoomRequest::EventsSettled(settled) => {
                Wire::new("POST", EVENTS_SETTLED).json_body(settled)?
            }
            RoomRequest::ShardLink { shard } => {
                let mut query = Query::default();
                query.push("shard", shard);
                Wire::new("GET", query.after(SHARD_LINK))
            }
            RoomRequest::ShardRange { after, up_to } => {
                let mut query = Query::default();
                query.push("after", after);
                query.push("up_to", up_to);
                Wire::new("GET", query.after(SHARD_RANGE))
            }
        })
    }

    /// The request a room received: its method, URL, headers (by name) and, when
    /// [`has_body`], its body.
    pub fn decode(
        method: &str,
        url: &str,
        header: impl Fn(&str) -> Option<String>,
        body: Option<String>,
    ) -> RelayResult<RoomRequest> {
        let query = url_parts::query_pairs(url);
        let caller = || Caller::from_header(header(CALLER_HEADER));
        Ok(match (method, url_parts::path(url)) {
            ("GET", CONNECT) => RoomRequest::Connect(Connect {
                caller: caller()?,
                since: number(&query, "since")?,
                batched: match find(&query, "batch") {
                    None | Some("0") => false,
                    Some("1") => true,
                    Some(_) => return Err(malformed("batch")),
                },
                subprotocol: header(SUBPROTOCOL_HEADER),
            }),
            ("GET", HISTORY) => RoomRequest::History {
                caller: caller()?,
                query: HistoryQuery {
                    after: number(&query, "after")?,
                    before: number(&query, "before")?,
                    limit: number(&query, "limit")?.ok_or_else(|| malformed("limit"))?,
                },
            },
            ("POST", PUBLISH) => RoomRequest::Publish {
                caller: caller()?,
                body: body.ok_or_else(|| malformed("body"))?,
            },
            ("POST", path @ (EDIT | DELETE)) => RoomRequest::Change {
                caller: caller()?,
                seq: number(&query, "seq")?.ok_or_else(|| malformed("seq"))?,
                delete: path == DELETE,
                body: body.ok_or_else(|| malformed("body"))?,
            },
            ("POST", BROADCAST) => RoomRequest::Broadcast(
                json_body(body).map_err(|_| RelayError::bad_request("invalid broadcast"))?,
            ),
            ("GET", MEMBERS) => RoomRequest::Members,
            ("PUT", MEMBERS) => RoomRequest::SetMembers(json_body(body)?),
            ("GET", PRESENCE) => RoomRequest::Presence {
                caller: match header(CALLER_HEADER) {
                    Some(_) => Some(caller()?),
                    None => None,
                },
                page: PresencePage::from_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .map_err(|_| malformed("presence page"))?,
            },
            ("POST", DISCONNECT) => RoomRequest::Disconnect(json_body(body)?),
            ("PUT", BANS) => RoomRequest::Ban(json_body(body)?),
            ("POST", UNBAN) => RoomRequest::Unban {
                user: json_body::<UnbanBody>(body)?.user,
            },
            ("GET", BANS) => RoomRequest::Bans,
            ("POST", EVENTS_SETTLED) => RoomRequest::EventsSettled(json_body(body)?),
            ("GET", SHARD_LINK) => RoomRequest::ShardLink {
                shard: number(&query, "shard")?.ok_or_else(|| malformed("shard"))?,
            },
            ("GET", SHARD_RANGE) => RoomRequest::ShardRange {
                after: number(&query, "after")?.ok_or_else(|| malformed("after"))?,
                up_to: number(&query, "up_to")?.ok_or_else(|| malformed("up_to"))?,
            },
            _ => return Err(RelayError::not_found("no such room route")),
        })
    }
}

/// A room's answer to [`RoomRequest::Broadcast`]: the message's seq, or the room's error with
/// its code and message as the room gave them.
pub fn broadcast_outcome(status: u16, body: &str) -> RelayResult<u64> {
    if status == 200 {
        let receipt: Receipt = serde_json::from_str(body).map_err(|_| RelayError::internal())?;
        return Ok(receipt.seq);
    }
    Err(RelayError::from_http_body(body).unwrap_or_else(RelayError::internal))
}

/// Every request the deployment's one directory answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryRequest {
    /// A batch of rooms' reports, from the rooms of one isolate.
    Reports(Vec<RoomReport>),
    /// `{"connections","rooms"}`.
    Totals,
    /// The rooms with connections, busiest first.
    Rooms,
}

impl DirectoryRequest {
    pub fn encode(&self) -> RelayResult<Wire> {
        Ok(match self {
            DirectoryRequest::Reports(reports) => Wire::new("POST", REPORTS).json_body(reports)?,
            DirectoryRequest::Totals => Wire::new("GET", TOTALS),
            DirectoryRequest::Rooms => Wire::new("GET", ROOMS),
        })
    }

    /// The request the directory received; `body` when [`has_body`].
    pub fn decode(method: &str, url: &str, body: Option<String>) -> RelayResult<DirectoryRequest> {
        Ok(match (method, url_parts::path(url)) {
            ("POST", REPORTS) => DirectoryRequest::Reports(
                json_body(body).map_err(|_| RelayError::bad_request("bad reports"))?,
            ),
            ("GET", TOTALS) => DirectoryRequest::Totals,
            ("GET", ROOMS) => DirectoryRequest::Rooms,
            _ => return Err(RelayError::not_found("no such directory route")),
        })
    }
}

/// Query parameters of an internal request: numbers only, so nothing needs escaping.
#[derive(Default)]
struct Query(Vec<String>);

impl Query {
    fn push(&mut self, name: &str, value: impl std::fmt::Display) {
        self.0.push(format!("{name}={value}"));
    }

    fn after(self, path: &str) -> String {
        if self.0.is_empty() {
            return path.to_string();
        }
        format!("{path}?{}", self.0.join("&"))
    }
}

fn find<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A number the encoder wrote: digits only (no sign, no saturation, no default).
fn number<T: std::str::FromStr>(query: &[(String, String)], name: &str) -> RelayResult<Option<T>> {
    find(query, name)
        .map(|v| {
            if !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed(name));
            }
            v.parse().map_err(|_| malformed(name))
        })
        .transpose()
}

fn json_body<T: for<'de> Deserialize<'de>>(body: Option<String>) -> RelayResult<T> {
    let body = body.ok_or_else(|| malformed("body"))?;
    serde_json::from_str(&body).map_err(|_| malformed("body"))
}

fn malformed(part: &str) -> RelayError {
    RelayError::bad_request(format!("malformed internal request: {part}"))
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::error::ErrorCode;

    /// Decodes what `request` encodes to and checks that it is `request` again (compared by
    /// `Debug`: a broadcast's raw JSON data has no `PartialEq`).
    fn assert_round_trip(request: &RoomRequest) {
        let back = room_round_trip(request);
        assert_eq!(format!("{back:?}"), format!("{request:?}"));
    }

    /// What the receiving side sees of a [`Wire`]: the URL the transport builds, the headers
    /// by name, the body for methods that carry one.
    fn room_round_trip(request: &RoomRequest) -> RoomRequest {
        let wire = request.encode().unwrap();
        assert!(wire.headers.iter().all(|(_, v)| v.is_ascii()), "{wire:?}");
        let url = format!("https://room{}", wire.path);
        let body = has_body(wire.method).then(|| wire.body.clone().unwrap_or_default());
        if !has_body(wire.method) {
            assert_eq!(wire.body, None);
        }
        RoomRequest::decode(wire.method, &url, |name| header(&wire, name), body).unwrap()
    }

    fn header(wire: &Wire, name: &str) -> Option<String> {
        wire.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    fn caller() -> Caller {
        Caller {
            user: User {
                id: "ж-1".into(),
                name: Some("Анна \"A\" 😀".into()),
                role: None,
            },
            exp: 1_900_000_000,
        }
    }

    fn decode(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> RelayResult<RoomRequest> {
        RoomRequest::decode(
            method,
            &format!("https://room{path}"),
            |name| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            },
            body.map(str::to_string),
        )
    }

    #[test]
    fn connects_round_trip_with_and_without_their_options() {
        for since in [None, Some(0), Some(41), Some(i64::MAX as u64)] {
            for batched in [false, true] {
                for subprotocol in [None, Some("relay.v1".to_string())] {
                    let request = RoomRequest::Connect(Connect {
                        caller: caller(),
                        since,
                        batched,
                        subprotocol,
                    });
                    assert_round_trip(&request);
                }
            }
        }
        let plain = RoomRequest::Connect(Connect {
            caller: caller(),
            since: None,
            batched: false,
            subprotocol: None,
        });
        assert_eq!(plain.encode().unwrap().path, "/connect");
    }

    #[test]
    fn history_round_trips_every_bound() {
        for (after, before) in [
            (None, None),
            (Some(3), None),
            (None, Some(9)),
            (Some(0), Some(u64::MAX)),
        ] {
            for limit in [1, 50, 200] {
                let request = RoomRequest::History {
                    caller: caller(),
                    query: HistoryQuery {
                        after,
                        before,
                        limit,
                    },
                };
                assert_round_trip(&request);
            }
        }
    }

    #[test]
    fn publish_keeps_the_clients_body_byte_for_byte() {
        for body in [
            "",
            "{\"cid\":\"c1\",\"data\":{\"text\":\"привет\"}}",
            "not json",
        ] {
            let request = RoomRequest::Publish {
                caller: caller(),
                body: body.to_string(),
            };
            assert_round_trip(&request);
            for delete in [false, true] {
                assert_round_trip(&RoomRequest::Change {
                    caller: caller(),
                    seq: 42,
                    delete,
                    body: body.to_string(),
                });
            }
        }
    }

    #[test]
    fn shard_links_and_ranges_round_trip() {
        assert_round_trip(&RoomRequest::ShardLink { shard: 12 });
        assert_round_trip(&RoomRequest::ShardRange {
            after: 7,
            up_to: 4_000,
        });
        let wire = RoomRequest::ShardRange { after: 7, up_to: 9 }
            .encode()
            .unwrap();
        assert_eq!(wire.path, "/shard-range?after=7&up_to=9");
    }

    #[test]
    fn broadcasts_round_trip_with_and_without_an_id() {
        for id in [None, Some("order-42".to_string())] {
            let request = RoomRequest::Broadcast(RoomBroadcast {
                event: "order:new".into(),
                data: RawValue::from_string("{\"id\":42,\"t\":\"é\"}".into()).unwrap(),
                id: id.clone(),
            });
            assert_round_trip(&request);
            let wire = request.encode().unwrap();
            let expected = match &id {
                Some(id) => {
                    format!(r#"{{"event":"order:new","data":{{"id":42,"t":"é"}},"id":"{id}"}}"#)
                }
                None => r#"{"event":"order:new","data":{"id":42,"t":"é"}}"#.to_string(),
            };
            assert_eq!(wire.body.as_deref(), Some(expected.as_str()));
        }
    }

    #[test]
    fn members_presence_round_trip() {
        let members = vec![
            Member {
                id: "alice".into(),
                role: Some("customer".into()),
            },
            Member {
                id: "боб".into(),
                role: None,
            },
        ];
        for request in [
            RoomRequest::Members,
            RoomRequest::SetMembers(members),
            RoomRequest::SetMembers(Vec::new()),
            RoomRequest::Presence {
                caller: None,
                page: PresencePage::default(),
            },
            RoomRequest::Presence {
                caller: Some(caller()),
                page: PresencePage {
                    after: Some("боб &+=%#".into()),
                    limit: 7,
                },
            },
            RoomRequest::Disconnect(UserDisconnect {
                user: "боб \"b\"".into(),
                reason: "account suspended".into(),
            }),
            RoomRequest::Ban(Ban {
                user: "боб".into(),
                until: Some(1_800_000_000),
            }),
            RoomRequest::Ban(Ban {
                user: "eve".into(),
                until: None,
            }),
            RoomRequest::Unban {
                user: "боб".into()
            },
            RoomRequest::Bans,
            RoomRequest::EventsSettled(BatchSettled {
                batch: "b1".into(),
                dropped: true,
            }),
        ] {
            assert_round_trip(&request);
        }
    }

    #[test]
    fn a_request_without_its_caller_is_unauthorized() {
        let caller = caller().to_header().unwrap();
        for (method, path, body) in [
            ("GET", "/connect", None),
            ("GET", "/history?limit=5", None),
            ("POST", "/publish", Some("{}")),
        ] {
            for headers in [vec![], vec![(CALLER_HEADER, "{not json")]] {
                let err = decode(method, path, &headers, body).unwrap_err();
                assert_eq!(err.code, ErrorCode::Unauthorized, "{method} {path}");
            }
            assert!(decode(method, path, &[(CALLER_HEADER, &caller)], body).is_ok());
        }
    }

    #[test]
    fn malformed_room_requests_are_refused() {
        let caller = caller().to_header().unwrap();
        let with_caller = [(CALLER_HEADER, caller.as_str())];
        let bad = [
            ("GET", "/connect?since=-1"),
            ("GET", "/connect?since=+1"),
            ("GET", "/connect?since=18446744073709551616"),
            ("GET", "/connect?since="),
            ("GET", "/connect?batch=true"),
            ("GET", "/connect?batch=2"),
            ("GET", "/history"),
            ("GET", "/history?limit=4294967296"),
            ("GET", "/history?limit=5&after=x"),
            ("GET", "/history?limit=5&before=1.5"),
            ("GET", "/shard-link"),
            ("GET", "/shard-link?shard=x"),
            ("GET", "/shard-range?after=1"),
            ("GET", "/shard-range?after=1&up_to=-2"),
        ];
        for (method, path) in bad {
            let err = decode(method, path, &with_caller, None).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{path}");
        }
        let bodies = [
            ("POST", "/publish", None),
            ("POST", "/broadcast", None),
            ("POST", "/broadcast", Some("{\"event\":\"e\"}")),
            ("PUT", "/members", Some("[{\"role\":\"x\"}]")),
            ("PUT", "/members", None),
        ];
        for (method, path, body) in bodies {
            let err = decode(method, path, &with_caller, body).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{method} {path} {body:?}");
        }
        for (method, path) in [
            ("POST", "/connect"),
            ("GET", "/publish"),
            ("DELETE", "/members"),
            ("GET", "/nope"),
            ("GET", "/"),
        ] {
            let err = decode(method, path, &with_caller, Some("{}")).unwrap_err();
            assert_eq!(err.code, ErrorCode::NotFound, "{method} {path}");
        }
    }

    #[test]
    fn directory_requests_round_trip() {
        let reports = vec![RoomReport {
            room: "city:Саратов".into(),
            connections: 3,
            users: 2,
            last_seq: 17,
        }];
        for request in [
            DirectoryRequest::Reports(reports),
            DirectoryRequest::Reports(Vec::new()),
            DirectoryRequest::Totals,
            DirectoryRequest::Rooms,
        ] {
            let wire = request.encode().unwrap();
            let body = has_body(wire.method).then(|| wire.body.clone().unwrap());
            let url = format!("https://directory{}", wire.path);
            assert_eq!(
                DirectoryRequest::decode(wire.method, &url, body).unwrap(),
                request
            );
        }
    }

    #[test]
    fn malformed_directory_requests_are_refused() {
        let decode = |method, path: &str, body: Option<&str>| {
            DirectoryRequest::decode(
                method,
                &format!("https://directory{path}"),
                body.map(str::to_string),
            )
            .unwrap_err()
            .code
        };
        assert_eq!(
            decode("POST", "/reports", Some("{}")),
            ErrorCode::BadRequest
        );
        assert_eq!(decode("POST", "/reports", None), ErrorCode::BadRequest);
        assert_eq!(decode("GET", "/reports", None), ErrorCode::NotFound);
        assert_eq!(decode("POST", "/stats", Some("[]")), ErrorCode::NotFound);
        assert_eq!(decode("GET", "/other", None), ErrorCode::NotFound);
    }

    #[test]
    fn a_broadcast_answer_gives_the_seq_or_the_rooms_error_exactly() {
        let receipt = r#"{"duplicate":false,"id":"m1","seq":7,"ts":"2026-01-01T00:00:00.000Z"}"#;
        assert_eq!(broadcast_outcome(200, receipt), Ok(7));
        assert_eq!(
            broadcast_outcome(200, "{}").unwrap_err().code,
            ErrorCode::Internal
        );
        for code in ErrorCode::ALL {
            let err = RelayError::new(code, format!("why {}", code.as_str()));
            assert_eq!(
                broadcast_outcome(code.http_status(), &err.to_http_body()),
                Err(err)
            );
        }
        // Not an answer of ours (a proxy's page): internal, with the generic text.
        assert_eq!(
            broadcast_outcome(502, "<html>"),
            Err(RelayError::internal())
        );
    }
}
