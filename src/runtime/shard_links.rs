//! The room's side of sharded fan-out (see [`crate::shard_fanout`]): placing a connect on a
//! shard once the room holds `SHARD_VIEWERS` sockets, accepting a shard's link, handing the
//! room's frames down every link, handling a viewer's frame that a shard relays as if the
//! viewer were the room's own socket, and answering a shard's pull of a missed range. The
//! links' JavaScript side is `worker/shard_link.mjs`.

use wasm_bindgen::prelude::*;
use web_sys::Response;
use worker::wasm_bindgen_futures::spawn_local;
use worker::worker_sys::ext::WebSocketExt;
use worker::WebSocket;

use super::room_object::{Machine, Room};
use super::settings::verify_token;
use super::{http, internal, now_ms};
use crate::disconnect::Disconnect;
use crate::error::{RelayError, RelayResult};
use crate::header_json;
use crate::paging::{Direction, SeqRange, MAX_PAGE_LIMIT};
use crate::random_ids::random_id;
use crate::room_api::{Connect, SHARD_HEADER};
use crate::room_machine::{Connection, Effect, HookCall};
use crate::shard_fanout::{self, FromShard, Placement, ShardBook};

#[wasm_bindgen(module = "/worker/shard_link.mjs")]
extern "C" {
    /// Whether the room has a link; `recount` after one closed.
    #[wasm_bindgen(js_name = hasLinks)]
    fn has_links(state: &JsValue, recount: bool) -> bool;
    #[wasm_bindgen(js_name = acceptLink, catch)]
    fn accept_link_js(state: &JsValue, attachment: &str, hello: &str) -> Result<Response, JsValue>;
    #[wasm_bindgen(js_name = linkBroadcast)]
    fn link_broadcast(state: &JsValue, seq: f64, frame: &str, except: Option<&str>);
    #[wasm_bindgen(js_name = linkToViewer)]
    fn link_to_viewer(state: &JsValue, link: &JsValue, conn: &str, frame: &str);
    #[wasm_bindgen(js_name = linkRenewViewer)]
    fn link_renew_viewer(state: &JsValue, link: &JsValue, conn: &str, exp: f64);
    #[wasm_bindgen(js_name = linkCloseViewer)]
    fn link_close_viewer(state: &JsValue, link: &JsValue, conn: &str, code: u16, reason: &str);
    #[wasm_bindgen(js_name = linkCloseUsers)]
    fn link_close_users(state: &JsValue, users: Vec<String>, code: u16, reason: &str);
}

/// The tag of links among the room's sockets (as `worker/shard_link.mjs` accepts them).
const LINK_TAG: &str = "link";

/// A link's attachment: which shard is behind it, and its last counts (so that a room woken
/// from hibernation places viewers knowing them).
#[derive(serde::Serialize, serde::Deserialize)]
struct LinkAttachment {
    shard: usize,
    #[serde(default)]
    connections: usize,
    #[serde(default)]
    users: usize,
}

fn link_of(ws: &WebSocket) -> Option<LinkAttachment> {
    let raw: &web_sys::WebSocket = ws.as_ref();
    let text = raw.deserialize_attachment().ok()?.as_string()?;
    serde_json::from_str::<LinkAttachment>(&text).ok()
}

fn attach_link(ws: &WebSocket, attachment: &LinkAttachment) {
    if let Ok(json) = serde_json::to_string(attachment) {
        let raw: &web_sys::WebSocket = ws.as_ref();
        let _ = raw.serialize_attachment(JsValue::from_str(&json));
    }
}

impl Room {
    /// Hands a frame the room broadcasts down every link (nothing when the room has none).
    /// `except`: the viewer on a shard that must not get it (its publisher).
    pub(super) fn forward_to_shards(&self, frame: &str, except: Option<&str>) {
        if !has_links(self.state.as_raw(), false) {
            return;
        }
        let seq = shard_fanout::frame_seq(frame).unwrap_or(0);
        link_broadcast(self.state.as_raw(), seq as f64, frame, except);
    }

    /// Closes these users' sockets on every shard too (a ban, a backend's disconnect).
    pub(super) fn close_users_on_shards(&self, user_ids: &[String], code: u16, reason: &str) {
        if has_links(self.state.as_raw(), false) {
            link_close_users(self.state.as_raw(), user_ids.to_vec(), code, reason);
        }
    }

    /// A connect the room admitted: placed on a shard when the room itself holds
    /// `SHARD_VIEWERS` sockets (the answer tells the Worker which shard, and carries the
    /// welcome the shard sends), else `None` and the room accepts it.
    pub(super) fn place_connection(
        &self,
        connect: &Connect,
        room: &str,
    ) -> RelayResult<Option<Response>> {
        self.restore_presence(Some(room))?;
        let own = self.machine(None, |m| Ok(m.connection_count()))?;
        let per_object = self.limits.shard_viewers.for_room(room);
        let Some(shard) = self.with_shards(|book| book.place(own, per_object)) else {
            return Ok(None);
        };
        let conn = Connection {
            conn_id: random_id(now_ms()),
            user: connect.caller.user.clone(),
            exp: connect.caller.exp,
            counts: false,
        };
        let welcome = self.machine(None, |m| m.welcome(&conn))?;
        let welcome = self.with_reconnect_window(welcome)?;
        let placement = Placement {
            conn_id: conn.conn_id,
            welcome,
        };
        let body = serde_json::to_string(&placement).map_err(|_| RelayError::internal())?;
        let answer =
            http::json(header_json::ascii_only(body), 200).map_err(internal("placement"))?;
        let headers = [(SHARD_HEADER, shard.to_string())];
        Ok(Some(
            http::with_headers(&answer, &headers).map_err(internal("placement"))?,
        ))
    }

    /// A welcome with the reconnect window of the room's size, its shards' viewers and the
    /// newcomer included (see [`shard_fanout::reconnect_window_ms`]).
    pub(super) fn with_reconnect_window(&self, welcome: String) -> RelayResult<String> {
        let own = self.machine(None, |m| Ok(m.connection_count()))?;
        let on_shards = self.with_shards(|book| book.totals()).connections as usize;
        Ok(shard_fanout::with_reconnect_window(
            welcome,
            own + on_shards + 1,
        ))
    }

    /// A shard opens its link: accepted as a hibernatable socket, greeted with the room's
    /// last seq.
    pub(super) fn accept_link(&self, room: &str, shard: usize) -> RelayResult<Response> {
        if shard >= shard_fanout::MAX_SHARDS {
            return Err(RelayError::bad_request("no such shard"));
        }
        let last_seq = self.machine(Some(room), |m| Ok(m.core().last_seq()))?;
        let attachment = serde_json::to_string(&LinkAttachment {
            shard,
            connections: 0,
            users: 0,
        })
        .map_err(|_| RelayError::internal())?;
        accept_link_js(
            self.state.as_raw(),
            &attachment,
            &shard_fanout::hello_frame(last_seq),
        )
        .map_err(|err| internal("accept link")(worker::Error::from(err)))
    }

    /// A message on a socket that is not a viewer's: a shard's link (anything else is ignored).
    pub(super) fn on_link_message(&self, ws: &WebSocket, text: Option<String>) {
        let Some(link) = link_of(ws) else {
            worker::console_error!("a frame on a socket the room never accepted");
            return;
        };
        let shard = link.shard;
        let parsed = text.and_then(|t| serde_json::from_str::<FromShard>(&t).ok());
        match parsed {
            Some(FromShard::Frame { conn, text }) => self.viewer_frame(ws, &conn, text),
            Some(FromShard::Gone { conn_id }) => {
                let _ = self.run(None, None, |m, _| {
                    m.shard_viewer_gone(&conn_id);
                    Ok(())
                });
            }
            Some(FromShard::Counts { connections, users }) => {
                self.with_shards(|book| book.reported(shard, connections, users));
                let attachment = LinkAttachment {
                    shard,
                    connections,
                    users,
                };
                attach_link(ws, &attachment);
                self.count_shards();
            }
            None => worker::console_error!("shard {shard} sent an unreadable link frame"),
        }
    }

    /// A link closed: the shard's viewers are no longer counted (they come back through the
    /// Worker and are placed again).
    pub(super) fn on_link_gone(&self, ws: &WebSocket) {
        if let Some(link) = link_of(ws) {
            self.with_shards(|book| book.unlinked(link.shard));
            has_links(self.state.as_raw(), true);
            self.count_shards();
        }
    }

    /// The room's book of shards, rebuilt from its links' attachments on first use after a
    /// wake.
    pub(super) fn with_shards<T>(&self, f: impl FnOnce(&mut ShardBook) -> T) -> T {
        let mut slot = self.shards.borrow_mut();
        let book = slot.get_or_insert_with(|| {
            let mut book = ShardBook::default();
            for ws in self.state.get_websockets_with_tag(LINK_TAG) {
                if let Some(link) = link_of(&ws) {
                    book.reported(link.shard, link.connections, link.users);
                }
            }
            book
        });
        f(book)
    }

    /// Hands the shards' counts to the machine: occupancy and the directory count them.
    fn count_shards(&self) {
        let totals = self.with_shards(|book| book.totals());
        let counted = self.restore_presence(None).and_then(|()| {
            self.run(None, None, |m, out| {
                m.shards_reported(totals.connections as usize, totals.users as usize, out);
                Ok(())
            })
        });
        if let Err(err) = counted {
            worker::console_error!("shard counts not taken: {err}");
        }
    }

    /// A viewer's frame from a shard, handled by the machine as one of the room's own
    /// sockets' frames.
    fn viewer_frame(&self, link: &WebSocket, conn: &Connection, text: Option<String>) {
        self.run_for_viewer(link, conn, |m, out| {
            m.on_frame(conn, text.as_deref(), out);
            Ok(())
        });
    }

    /// Runs an event of a viewer on a shard through the machine. What the machine says to
    /// that socket goes back down the link (replies, closes, a renewal's new expiry); what it
    /// broadcasts skipping its origin skips the viewer on its shard; a hook call or a token
    /// check is made here and its outcome is the viewer's next event.
    fn run_for_viewer(
        &self,
        link: &WebSocket,
        conn: &Connection,
        event: impl FnOnce(&mut Machine, &mut Vec<Effect>) -> RelayResult<()>,
    ) {
        let mut for_viewer = Vec::new();
        let handled = self.run(None, None, |m, out| {
            let handled = event(m, out);
            let (mine, rest): (Vec<Effect>, Vec<Effect>) =
                out.drain(..).partition(shard_fanout::is_for_viewer);
            for_viewer = mine;
            *out = rest;
            handled
        });
        let state = self.state.as_raw();
        let raw_link: &JsValue = AsRef::<web_sys::WebSocket>::as_ref(link);
        if let Err(err) = handled {
            link_to_viewer(state, raw_link, &conn.conn_id, &err.to_frame(None));
            return;
        }
        for effect in for_viewer {
            match effect {
                Effect::Reply(frame) => link_to_viewer(state, raw_link, &conn.conn_id, &frame),
                Effect::Close(Disconnect { code, reason, .. }) => {
                    link_close_viewer(state, raw_link, &conn.conn_id, code, reason)
                }
                Effect::Broadcast { frame, pace, .. } => {
                    super::fanout::send_to_room(&self.state, &frame, None, pace);
                    self.forward_to_shards(&frame, Some(&conn.conn_id));
                }
                Effect::Reattach(renewed) => {
                    link_renew_viewer(state, raw_link, &conn.conn_id, renewed.exp as f64)
                }
                Effect::CallHook(call) => self.call_hook_for_viewer(link, conn, call),
                Effect::VerifyToken(token) => self.verify_for_viewer(link, conn, token),
                _ => {}
            }
        }
    }

    /// The before-publish hook for a viewer's publish or edit; its answer settles it.
    fn call_hook_for_viewer(&self, link: &WebSocket, conn: &Connection, call: HookCall) {
        let Some(room) = self.me.upgrade() else {
            return;
        };
        let (link, conn) = (link.clone(), conn.clone());
        spawn_local(async move {
            let reply = super::publish_hook::ask(&room.env, &call).await;
            room.run_for_viewer(&link, &conn, |m, out| {
                m.on_hook_answer(call.ticket, reply, out);
                Ok(())
            });
        });
    }

    /// A viewer renews its token in band: verified here, then the machine's renewal.
    fn verify_for_viewer(&self, link: &WebSocket, conn: &Connection, token: String) {
        let Some(room) = self.me.upgrade() else {
            return;
        };
        let (link, conn) = (link.clone(), conn.clone());
        spawn_local(async move {
            let verified = verify_token(&room.env, &token).await;
            room.run_for_viewer(&link, &conn, |m, out| {
                m.on_renewal(&conn, verified, out);
                Ok(())
            });
        });
    }

    /// A shard's pull: the stored messages `after+1..=up_to`, one history page of them.
    pub(super) async fn shard_range(
        &self,
        room: &str,
        after: u64,
        up_to: u64,
    ) -> RelayResult<Response> {
        let range = SeqRange {
            after,
            before: up_to.saturating_add(1),
            direction: Direction::Forward,
            fetch_limit: MAX_PAGE_LIMIT + 1,
        };
        let page = self.page(Some(room), &range).await?;
        http::json(page.to_json(), 200).map_err(internal("shard range"))
    }
}
