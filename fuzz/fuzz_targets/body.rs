//! Fuzz target: the parsers of request bodies and client frames (backend broadcasts, the legacy
//! broadcast bodies, member lists, WebSocket frames, development token requests and the stored
//! message bodies behind `room.update`), checked against what their docs promise.
//!
//! Input: byte 0 picks the parser (a digit, see `PARSERS`), the rest is the text.
#![no_main]

use std::collections::BTreeSet;

use edge_relay::error::{ErrorCode, RelayError};
use edge_relay::protocol::{self, ClientFrame};
use edge_relay::webhook::{self, Broadcast, RoomBroadcast};
use edge_relay::{cid, dev_token, feed, room_name};
use libfuzzer_sys::fuzz_target;

/// The legacy routes and the events they publish (the contract's table).
const LEGACY: [(&str, &str); 5] = [
    ("call-new", "call:new"),
    ("call-updated", "call:updated"),
    ("order-new", "order:new"),
    ("order-updated", "order:updated"),
    ("notification", "notification"),
];

/// What byte 0 selects (the digit `n`, any other byte counting as `(byte - b'0') % 10`):
/// 0 broadcast, 1-5 the legacy kinds in `LEGACY` order, 6 an unknown legacy kind (the text's
/// first line), 7 members, 8 a client frame, 9 a dev token request. A `room.update` is built
/// from every text that is not a dev token request.
const PARSERS: u8 = 10;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match selector.wrapping_sub(b'0') % PARSERS {
        0 => check_broadcast(Broadcast::parse(&text)),
        kind @ 1..=5 => check_legacy(LEGACY[usize::from(kind - 1)], &text),
        6 => check_unknown_kind(&text),
        7 => check_members(&text),
        8 => check_client_frame(&text),
        _ => {
            check_dev_token(&text);
            return;
        }
    }
    check_room_update(&text);
});

/// Parse failures are the client's fault: never an internal error.
fn assert_client_error(error: &RelayError) {
    assert!(
        matches!(error.code, ErrorCode::BadRequest | ErrorCode::TooLarge),
        "{error:?}"
    );
}

/// An accepted broadcast: 1..=100 distinct valid rooms, a valid event, data within 64 KiB,
/// a valid id, and what each room receives serialises and parses back unchanged.
fn check_broadcast(result: Result<Broadcast, RelayError>) {
    let broadcast = match result {
        Ok(broadcast) => broadcast,
        Err(error) => {
            assert_client_error(&error);
            return;
        }
    };
    let rooms = &broadcast.rooms;
    assert!((1..=webhook::MAX_BROADCAST_ROOMS).contains(&rooms.len()));
    assert_eq!(rooms.iter().collect::<BTreeSet<_>>().len(), rooms.len());
    for room in rooms {
        room_name::validate(room).unwrap();
    }
    protocol::validate_event_name(&broadcast.event).unwrap();
    assert!(broadcast.data.get().len() <= webhook::MAX_BROADCAST_DATA_BYTES);
    if let Some(id) = &broadcast.id {
        cid::validate_cid(id).unwrap();
    }
    let sent = serde_json::to_string(&broadcast.for_room()).unwrap();
    let received: RoomBroadcast = serde_json::from_str(&sent).unwrap();
    assert_eq!(received.event, broadcast.event);
    assert_eq!(received.data.get(), broadcast.data.get());
    assert_eq!(received.id, broadcast.id);
}

/// A legacy body maps to its kind's event, and the token returned is the body's `token`.
fn check_legacy((kind, event): (&str, &str), text: &str) {
    assert!(webhook::is_legacy_kind(kind));
    match webhook::parse_legacy(kind, text) {
        Ok((broadcast, token)) => {
            assert_eq!(broadcast.event, event);
            let body: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(token.as_deref(), body["token"].as_str());
            check_broadcast(Ok(broadcast));
        }
        Err(error) => assert_client_error(&error),
    }
}

fn check_unknown_kind(text: &str) {
    let (kind, body) = text.split_once('\n').unwrap_or((text, ""));
    if webhook::is_legacy_kind(kind) {
        return;
    }
    let error = webhook::parse_legacy(kind, body).unwrap_err();
    assert_eq!(error.code, ErrorCode::NotFound);
}

/// At most 1 000 members with distinct ids of 1..=256 bytes and roles of at most 256 bytes.
fn check_members(text: &str) {
    match feed::parse_members(text) {
        Ok(members) => {
            assert!(members.len() <= feed::MAX_MEMBERS);
            let ids: BTreeSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
            assert_eq!(ids.len(), members.len());
            for member in &members {
                assert!((1..=256).contains(&member.id.len()));
                assert!(member.role.as_ref().is_none_or(|role| role.len() <= 256));
            }
        }
        Err(error) => assert_client_error(&error),
    }
}

/// A publish has a valid cid and event, an auth frame a token of 1..=8 KiB, an edit or delete a
/// valid cid, a seq from 1 and (an edit) data that is not null; an error names the frame's cid
/// only when it is valid.
fn check_client_frame(text: &str) {
    match protocol::parse_client_frame(text) {
        Ok(ClientFrame::Publish(publish)) => {
            cid::validate_cid(publish.cid.as_deref().expect("a publish needs a cid")).unwrap();
            protocol::validate_event_name(publish.event_name()).unwrap();
        }
        Ok(ClientFrame::Auth { token }) => {
            assert!((1..=protocol::MAX_TOKEN_BYTES).contains(&token.len()));
        }
        Ok(ClientFrame::Change(change)) => {
            cid::validate_cid(change.cid.as_deref().expect("a change needs a cid")).unwrap();
            assert!(change.seq >= 1);
            assert!(change.data.as_ref().is_none_or(|data| data.get() != "null"));
        }
        Ok(ClientFrame::Typing { .. } | ClientFrame::Read { .. } | ClientFrame::Ping) => {}
        Err(failure) => {
            assert_eq!(failure.error.code, ErrorCode::BadRequest);
            if let Some(cid) = &failure.cid {
                cid::validate_cid(cid).unwrap();
            }
        }
    }
}

/// A user of 1..=64 characters without control characters, name and role of 1..=64, and at
/// most 20 grants, each `*` or a valid room name with an optional trailing `*`.
fn check_dev_token(text: &str) {
    match dev_token::parse_request(text) {
        Ok((user, grants)) => {
            let short = |text: &str| (1..=64).contains(&text.chars().count());
            assert!(short(&user.id) && !user.id.chars().any(char::is_control));
            assert!(user.name.as_deref().is_none_or(short));
            assert!(user.role.as_deref().is_none_or(short));
            assert!(grants.len() <= 20);
            for grant in &grants {
                if grant != "*" {
                    room_name::validate(grant.strip_suffix('*').unwrap_or(grant)).unwrap();
                }
            }
        }
        Err(error) => assert_client_error(&error),
    }
}

/// The update built from a stored body has a preview of at most 100 characters and a key that
/// fits a cid.
fn check_room_update(text: &str) {
    if let Ok(update) = feed::RoomUpdate::from_message("room", 1, text, 0) {
        assert!(update
            .preview
            .as_ref()
            .is_none_or(|preview| preview.chars().count() <= 100));
        cid::validate_cid(&update.key()).unwrap();
    }
}
