//! Sharded fan-out's policy, without I/O: where a new viewer goes once the room holds
//! `SHARD_VIEWERS` sockets ([`ShardBook`]), what travels over the one WebSocket link between
//! the room (the sequencer) and each viewer-holding shard ([`FromShard`], [`ToShard`]), and
//! how a shard delivers the room's frames in seq order, finds a gap and keeps a window of
//! recent messages for resumes ([`ShardSequence`]). The room stays the only sequencer: a shard
//! never assigns a seq, it relays its viewers' frames to the room and the room's answers back.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::occupancy::Counts;
use crate::room::{ResumePlan, MAX_REPLAY_MESSAGES};
use crate::room_machine::{Connection, Effect};
use crate::room_prefixes::PrefixNumbers;

/// Most shards of one room; past that many full ones, new viewers go to the least loaded.
pub const MAX_SHARDS: usize = 64;
/// Most messages a shard keeps for resumes from its own memory (older ones come from the room).
pub const WINDOW_MESSAGES: usize = 1_000;
/// Most bytes of message frames in a shard's window.
pub const WINDOW_BYTES: usize = 4 << 20;
/// Most link entries a shard holds behind a gap while it pulls the missing range; past that
/// the link is given up and opened again (the next hello finds the gap anew).
pub const MAX_PENDING_ENTRIES: usize = 20_000;

/// Fewest and most sockets per object a `SHARD_VIEWERS` value may set.
const MIN_SHARD_VIEWERS: usize = 2;
const MAX_SHARD_VIEWERS: usize = 32_000;
/// Entries read from `SHARD_VIEWERS_PREFIXES`.
const MAX_PREFIXES: usize = 32;

/// `SHARD_VIEWERS` and its per-prefix overrides `SHARD_VIEWERS_PREFIXES` (`prefix=N,...`, the
/// longest matching prefix wins): sockets a room holds itself before it places new ones on
/// shards, and each shard's share. Numbers are clamped to 2..=32,000; entries that are not
/// `prefix=N` are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardViewers(PrefixNumbers);

impl ShardViewers {
    pub fn parse(default: usize, prefixes: Option<&str>) -> Self {
        let range = MIN_SHARD_VIEWERS..=MAX_SHARD_VIEWERS;
        let default = default.clamp(MIN_SHARD_VIEWERS, MAX_SHARD_VIEWERS);
        ShardViewers(PrefixNumbers::parse(default, prefixes, range, MAX_PREFIXES).0)
    }

    /// The limit of `room`.
    pub fn for_room(&self, room: &str) -> usize {
        self.0.for_room(room)
    }
}

/// How loaded each shard is, as the room knows it: the last counts the shard reported plus
/// the viewers placed on it since (a report replaces both).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShardBook {
    shards: Vec<ShardLoad>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ShardLoad {
    connections: usize,
    users: usize,
    placed: usize,
}

impl ShardLoad {
    fn load(&self) -> usize {
        self.connections + self.placed
    }
}

impl ShardBook {
    /// Where a new connection goes when the room itself holds `own` sockets: `None` for the
    /// room itself (below `per_object`), else the first shard with room, a new shard when all
    /// are full, or the least loaded once there are [`MAX_SHARDS`]. The placement is counted.
    pub fn place(&mut self, own: usize, per_object: usize) -> Option<usize> {
        if own < per_object {
            return None;
        }
        let shard = match self.shards.iter().position(|s| s.load() < per_object) {
            Some(free) => free,
            None if self.shards.len() < MAX_SHARDS => {
                self.shards.push(ShardLoad::default());
                self.shards.len() - 1
            }
            None => (0..self.shards.len()).min_by_key(|&i| self.shards[i].load())?,
        };
        self.shards[shard].placed += 1;
        Some(shard)
    }

    /// A shard's own counts, which replace what the book guessed.
    pub fn reported(&mut self, shard: usize, connections: usize, users: usize) {
        if shard >= MAX_SHARDS {
            return;
        }
        if self.shards.len() <= shard {
            self.shards.resize(shard + 1, ShardLoad::default());
        }
        self.shards[shard] = ShardLoad {
            connections,
            users,
            placed: 0,
        };
    }

    /// A shard's link closed: its viewers are gone with it (they reconnect and are placed
    /// again).
    pub fn unlinked(&mut self, shard: usize) {
        if let Some(load) = self.shards.get_mut(shard) {
            *load = ShardLoad::default();
        }
    }

    /// What the shards reported, added up. A user with sockets on two shards counts twice.
    pub fn totals(&self) -> Counts {
        let connections = self.shards.iter().map(|s| s.connections).sum();
        let users = self.shards.iter().map(|s| s.users).sum();
        Counts::new(connections, users)
    }
}

/// What a shard sends the room over its link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromShard {
    /// A viewer's frame, for the room to handle as if the viewer were its own socket
    /// (`None`: a binary frame).
    Frame {
        conn: Connection,
        text: Option<String>,
    },
    /// The shard's viewers now.
    Counts { connections: usize, users: usize },
    /// A viewer closed (what the room keeps for its frames can go).
    Gone { conn_id: String },
}

/// What the room sends a shard over its link: a hello with its last seq when the link opens,
/// then one batch per turn of the room's event loop (built by `worker/shard_link.mjs`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToShard {
    Hello { seq: u64 },
    Batch { e: Vec<LinkEntry> },
}

/// The hello a new link starts with.
pub fn hello_frame(seq: u64) -> String {
    format!(r#"{{"t":"hello","seq":{seq}}}"#)
}

/// One frame of a batch: `s` its seq (0 for frames outside the sequence: presence, typing,
/// acks), `f` the frame; `x` a viewer it skips (the publisher), `o` the one viewer it is for
/// (an ack, an error), `c` a close of `o` (code, reason) or of every socket of the users `u`,
/// `a` the new token expiry of `o` after a renewal (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LinkEntry {
    #[serde(default)]
    pub s: u64,
    #[serde(default)]
    pub f: String,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub o: Option<String>,
    #[serde(default)]
    pub c: Option<(u16, String)>,
    #[serde(default)]
    pub u: Option<Vec<String>>,
    #[serde(default)]
    pub a: Option<i64>,
}

/// The seq of a frame the room broadcasts, when it is a message (a seq of the room's
/// sequence); presence, typing, read and occupancy frames have none. Read from the frame's
/// head without parsing the rest (a message's data may be large): a message frame starts with
/// its type and room, and the room's name, a JSON string, cannot hold an unescaped `"seq":`.
pub fn frame_seq(frame: &str) -> Option<u64> {
    const MESSAGE: &str = r#"{"type":"message","#;
    const KEY: &str = r#""seq":"#;
    let rest = frame.strip_prefix(MESSAGE)?;
    let start = rest.find(KEY)? + KEY.len();
    let digits = rest[start..].bytes().take_while(u8::is_ascii_digit).count();
    rest[start..start + digits].parse().ok()
}

/// The room's welcome for a viewer, made for shard `shard` at `seq` (the last message the
/// shard delivered, after which the viewer's live traffic starts), with the shard's number
/// added (`"shard":N`, an extension). The first `"seq":` of a welcome is its own (the keys
/// before it, `type`, `room`, `conn_id` and `user`, cannot hold one unescaped).
pub fn welcome_at(template: &str, seq: u64, shard: usize) -> Option<String> {
    const KEY: &str = r#""seq":"#;
    let start = template.find(KEY)? + KEY.len();
    let digits = template[start..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let body = template.strip_suffix('}')?;
    if digits == 0 {
        return None;
    }
    Some(format!(
        r#"{}{seq}{},"shard":{shard}}}"#,
        &template[..start],
        &body[start + digits..]
    ))
}

/// Sockets in a room up to which a welcome carries no reconnect window.
const QUIET_RECONNECT_SOCKETS: usize = 1_000;
/// Longest reconnect window.
const MAX_RECONNECT_WINDOW_MS: usize = 120_000;

/// The window a client of a room with `connections` sockets spreads its reconnect over after
/// an unexpected close (a deploy closes every socket at once): 1 ms per socket, so that the
/// room and its shards see about 1,000 reconnects a second; none for rooms up to 1,000 sockets.
pub fn reconnect_window_ms(connections: usize) -> usize {
    match connections {
        n if n <= QUIET_RECONNECT_SOCKETS => 0,
        n => n.min(MAX_RECONNECT_WINDOW_MS),
    }
}

/// A welcome with `"reconnect_window_ms"` added when the room is big enough to need one.
pub fn with_reconnect_window(welcome: String, connections: usize) -> String {
    let window = reconnect_window_ms(connections);
    match welcome.strip_suffix('}') {
        Some(body) if window > 0 => format!(r#"{body},"reconnect_window_ms":{window}}}"#),
        _ => welcome,
    }
}

/// Whether an effect of a viewer's event (a viewer on a shard, handled by the room) is meant
/// for that viewer and goes back down its shard's link: replies, its close, a renewal's new
/// expiry, a hook call or token check made for it, and a broadcast that skips it (which the
/// room then sends to everyone else). The rest the room applies as for any event.
pub fn is_for_viewer(effect: &Effect) -> bool {
    match effect {
        Effect::Reply(_)
        | Effect::Close(_)
        | Effect::VerifyToken(_)
        | Effect::CallHook(_)
        | Effect::Reattach(_) => true,
        Effect::Broadcast { skip_origin, .. } => *skip_origin,
        _ => false,
    }
}

/// What the room hands the Worker for a connection it places on a shard, for the shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub conn_id: String,
    /// The welcome as the room would send it; its seq is the shard's to set.
    pub welcome: String,
}

/// What a shard should do next with the entries from its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Hand this entry to the viewers.
    Deliver(LinkEntry),
    /// Fetch the messages `after+1..=up_to` from the room and give them to
    /// [`ShardSequence::filled`]; nothing else is delivered meanwhile.
    Pull { after: u64, up_to: u64 },
    /// Nothing to do until more comes (or a pull ends).
    Idle,
}

/// A shard's view of the room's sequence: the last seq it delivered, what waits behind a gap,
/// and a window of recent messages.
#[derive(Debug, Default)]
pub struct ShardSequence {
    /// The last seq delivered to the viewers; `None` before the first hello.
    last: Option<u64>,
    /// The room's last seq at the latest hello: everything up to it must be delivered first.
    expected: u64,
    pending: VecDeque<LinkEntry>,
    pulling: bool,
    window: VecDeque<(u64, String)>,
    window_bytes: usize,
}

impl ShardSequence {
    /// The last seq delivered, once the link said hello.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// A link opened: the room's last seq is `seq`. A new shard starts there; one that was
    /// linked before pulls what it missed while it was not.
    pub fn hello(&mut self, seq: u64) {
        match self.last {
            None => self.last = Some(seq),
            Some(_) => self.expected = self.expected.max(seq),
        }
    }

    /// Entries of a batch, in the order the room sent them. `false` when too many wait behind
    /// a gap (they are dropped: the caller reopens the link).
    pub fn push(&mut self, entries: Vec<LinkEntry>) -> bool {
        if self.pending.len() + entries.len() > MAX_PENDING_ENTRIES {
            self.pending.clear();
            return false;
        }
        self.pending.extend(entries);
        true
    }

    /// The next step; call until it is [`Next::Idle`] or a pull.
    pub fn next_step(&mut self) -> Next {
        let Some(last) = self.last.filter(|_| !self.pulling) else {
            return Next::Idle;
        };
        if self.expected > last {
            return self.pull(last, self.expected);
        }
        while let Some(entry) = self.pending.front() {
            match entry.s {
                0 => {}
                seq if seq <= last => {
                    self.pending.pop_front();
                    continue;
                }
                seq if seq == last + 1 => {}
                seq => return self.pull(last, seq - 1),
            }
            let entry = self.pending.pop_front().expect("front was just seen");
            if entry.s != 0 {
                self.delivered(entry.s, &entry.f);
            }
            return Next::Deliver(entry);
        }
        Next::Idle
    }

    fn pull(&mut self, after: u64, up_to: u64) -> Next {
        self.pulling = true;
        Next::Pull { after, up_to }
    }

    /// The rows a pull fetched (ascending): those that continue the sequence are delivered
    /// (returned, to go to every viewer). A pull that failed or found nothing gives up on the
    /// range it asked for rather than wait for ever: its messages stay in history, and the
    /// window starts over after them.
    pub fn filled(&mut self, up_to: u64, rows: Vec<(u64, String)>) -> Vec<String> {
        self.pulling = false;
        let mut frames = Vec::new();
        for (seq, frame) in rows {
            if self.last.is_some_and(|last| seq == last + 1) {
                self.delivered(seq, &frame);
                frames.push(frame);
            }
        }
        if frames.is_empty() {
            if let Some(last) = self.last.as_mut() {
                *last = (*last).max(up_to);
            }
            // The window must stay gapless: resumes across the skipped range ask the room.
            self.window.clear();
            self.window_bytes = 0;
        }
        frames
    }

    fn delivered(&mut self, seq: u64, frame: &str) {
        self.last = Some(seq);
        self.window.push_back((seq, frame.to_string()));
        self.window_bytes += frame.len();
        while self.window.len() > WINDOW_MESSAGES || self.window_bytes > WINDOW_BYTES {
            let Some((_, old)) = self.window.pop_front() else {
                break;
            };
            self.window_bytes -= old.len();
        }
    }

    /// How a viewer resuming after `since` catches up here (as the room decides it, against
    /// the shard's last delivered seq).
    pub fn resume_plan(&self, since: u64) -> ResumePlan {
        let last = self.last.unwrap_or(0);
        if since > last || last - since > MAX_REPLAY_MESSAGES {
            return ResumePlan::Reset { seq: last };
        }
        ResumePlan::Replay { since, up_to: last }
    }

    /// The messages `after+1..` up to `before-1` from the window, at most `limit`, when the
    /// window holds the first of them (`None`: ask the room).
    pub fn window_rows(&self, after: u64, before: u64, limit: usize) -> Option<Vec<(u64, String)>> {
        let first = self.window.front()?.0;
        if first > after + 1 {
            return None;
        }
        Some(
            self.window
                .iter()
                .filter(|(seq, _)| *seq > after && *seq < before)
                .take(limit)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(s: u64) -> LinkEntry {
        LinkEntry {
            s,
            f: format!(r#"{{"type":"message","seq":{s}}}"#),
            x: None,
            o: None,
            c: None,
            u: None,
            a: None,
        }
    }

    fn ack(conn: &str) -> LinkEntry {
        LinkEntry {
            s: 0,
            f: r#"{"type":"ack"}"#.into(),
            o: Some(conn.into()),
            ..entry(0)
        }
    }

    fn drain(seq: &mut ShardSequence) -> (Vec<u64>, Option<(u64, u64)>) {
        let mut delivered = Vec::new();
        for _ in 0..100_000 {
            match seq.next_step() {
                Next::Deliver(e) => delivered.push(e.s),
                Next::Pull { after, up_to } => return (delivered, Some((after, up_to))),
                Next::Idle => break,
            }
        }
        (delivered, None)
    }

    #[test]
    fn the_room_holds_its_limit_then_fills_shards_one_after_another() {
        let mut book = ShardBook::default();
        assert_eq!(book.place(24, 25), None);
        let placed: Vec<_> = (0..60).map(|_| book.place(25, 25)).collect();
        assert!(placed[..25].iter().all(|p| *p == Some(0)));
        assert!(placed[25..50].iter().all(|p| *p == Some(1)));
        assert!(placed[50..].iter().all(|p| *p == Some(2)));
        // Viewers left shard 0: it takes the next ones again.
        book.reported(0, 20, 18);
        assert_eq!(book.place(30, 25), Some(0));
        assert_eq!(book.totals(), Counts::new(20, 18));
        book.unlinked(0);
        assert_eq!(book.totals(), Counts::new(0, 0));
    }

    #[test]
    fn past_the_most_shards_viewers_go_to_the_least_loaded() {
        let mut book = ShardBook::default();
        for _ in 0..MAX_SHARDS * 2 {
            book.place(2, 2);
        }
        assert_eq!(book.shards.len(), MAX_SHARDS);
        book.reported(7, 1, 1);
        assert_eq!(book.place(2, 2), Some(7));
        // A report from a shard the room never heard of is bounded.
        book.reported(MAX_SHARDS + 5, 1, 1);
        assert_eq!(book.shards.len(), MAX_SHARDS);
    }

    #[test]
    fn shard_limits_come_from_the_variables_with_the_longest_prefix_winning() {
        let limits = ShardViewers::parse(10_000, Some("live:=500, live:big:=40000,bad,=3,x:=1"));
        assert_eq!(limits.for_room("chat:1"), 10_000);
        assert_eq!(limits.for_room("live:1"), 500);
        assert_eq!(limits.for_room("live:big:1"), MAX_SHARD_VIEWERS);
        assert_eq!(limits.for_room("x:1"), MIN_SHARD_VIEWERS);
        assert_eq!(
            ShardViewers::parse(1, None).for_room("r"),
            MIN_SHARD_VIEWERS
        );
        let many: Vec<String> = (0..40).map(|i| format!("p{i}:=5")).collect();
        let limits = ShardViewers::parse(100, Some(&many.join(",")));
        assert_eq!(limits.0.prefix_count(), MAX_PREFIXES);
    }

    #[test]
    fn a_shard_delivers_in_seq_order_and_drops_repeats() {
        let mut seq = ShardSequence::default();
        assert!(seq.push(vec![entry(6)]));
        assert_eq!(drain(&mut seq), (vec![], None), "nothing before the hello");
        seq.hello(5);
        seq.push(vec![entry(7), ack("c1"), entry(7), entry(8)]);
        assert_eq!(drain(&mut seq), (vec![6, 7, 0, 8], None));
        assert_eq!(seq.last(), Some(8));
    }

    #[test]
    fn a_gap_is_pulled_and_what_follows_waits_for_it() {
        let mut seq = ShardSequence::default();
        seq.hello(2);
        seq.push(vec![entry(3), entry(6), ack("c1"), entry(7)]);
        assert_eq!(drain(&mut seq), (vec![3], Some((3, 5))));
        assert_eq!(
            drain(&mut seq),
            (vec![], None),
            "nothing while the pull runs"
        );
        let rows = vec![
            (4, "m4".to_string()),
            (5, "m5".to_string()),
            (9, "too far".to_string()),
        ];
        assert_eq!(seq.filled(5, rows), vec!["m4", "m5"]);
        assert_eq!(drain(&mut seq), (vec![6, 0, 7], None));
    }

    #[test]
    fn a_hello_after_a_broken_link_pulls_what_the_shard_missed() {
        let mut seq = ShardSequence::default();
        seq.hello(10);
        seq.hello(14);
        assert_eq!(drain(&mut seq), (vec![], Some((10, 14))));
        // The room's history had only part of it: the rest is pulled next.
        assert_eq!(seq.filled(14, vec![(11, "m11".into())]), vec!["m11"]);
        assert_eq!(drain(&mut seq), (vec![], Some((11, 14))));
        // A pull that finds nothing gives the range up instead of asking for ever, and the
        // window, which would have a hole, starts over.
        assert!(seq.filled(14, vec![]).is_empty());
        assert_eq!(seq.last(), Some(14));
        assert_eq!(seq.window_rows(10, 15, 200), None);
        assert_eq!(drain(&mut seq), (vec![], None));
    }

    #[test]
    fn too_much_behind_a_gap_is_dropped() {
        let mut seq = ShardSequence::default();
        seq.hello(0);
        assert!(!seq.push((2..MAX_PENDING_ENTRIES as u64 + 3).map(entry).collect()));
        assert_eq!(drain(&mut seq), (vec![], None));
    }

    #[test]
    fn the_window_serves_recent_resumes_and_stays_bounded() {
        let mut seq = ShardSequence::default();
        seq.hello(0);
        seq.push((1..=WINDOW_MESSAGES as u64 + 10).map(entry).collect());
        drain(&mut seq);
        let last = WINDOW_MESSAGES as u64 + 10;
        assert_eq!(seq.window.len(), WINDOW_MESSAGES);
        let rows = seq.window_rows(last - 3, last + 1, 200).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            [last - 2, last - 1, last]
        );
        assert_eq!(
            seq.window_rows(1, last + 1, 200),
            None,
            "older than the window"
        );
        assert_eq!(seq.window_rows(10, last + 1, 5).unwrap().len(), 5);
        assert_eq!(
            seq.resume_plan(last - 3),
            ResumePlan::Replay {
                since: last - 3,
                up_to: last
            }
        );
        assert_eq!(seq.resume_plan(last + 1), ResumePlan::Reset { seq: last });
    }

    #[test]
    fn big_rooms_spread_reconnects_over_a_window_that_grows_with_them() {
        assert_eq!(reconnect_window_ms(1_000), 0);
        assert_eq!(reconnect_window_ms(1_001), 1_001);
        assert_eq!(reconnect_window_ms(100_000), 100_000);
        assert_eq!(reconnect_window_ms(1_000_000), MAX_RECONNECT_WINDOW_MS);
        let welcome = r#"{"type":"welcome","seq":3}"#.to_string();
        assert_eq!(with_reconnect_window(welcome.clone(), 10), welcome);
        assert_eq!(
            with_reconnect_window(welcome, 5_000),
            r#"{"type":"welcome","seq":3,"reconnect_window_ms":5000}"#
        );
    }

    #[test]
    fn a_viewers_own_effects_go_back_to_its_shard_and_the_rest_stay_with_the_room() {
        use crate::room_machine::Pace;
        let broadcast = |skip_origin| Effect::Broadcast {
            frame: "f".into(),
            skip_origin,
            pace: Pace::Now,
        };
        assert!(is_for_viewer(&Effect::Reply("ack".into())));
        assert!(is_for_viewer(&Effect::Close(
            crate::disconnect::TOKEN_EXPIRED
        )));
        assert!(is_for_viewer(&Effect::VerifyToken("t".into())));
        assert!(
            is_for_viewer(&broadcast(true)),
            "a publish skips its publisher"
        );
        assert!(
            !is_for_viewer(&broadcast(false)),
            "occupancy goes to everyone"
        );
        assert!(!is_for_viewer(&Effect::SetAlarm(1)));
        assert!(!is_for_viewer(&Effect::LogError("x".into())));
    }

    #[test]
    fn only_messages_carry_a_seq_on_the_link() {
        assert_eq!(
            frame_seq(r#"{"type":"message","room":"r","seq":42,"data":{"seq":1}}"#),
            Some(42)
        );
        let data = serde_json::value::RawValue::from_string(r#"{"seq":7}"#.into()).unwrap();
        let tricky_room = r#"r"seq":5"#;
        let frame =
            crate::room::message_body(tricky_room, 9, "id", "message", &data, None, None, "t")
                .unwrap();
        assert_eq!(frame_seq(&frame), Some(9), "{frame}");
        assert_eq!(frame_seq(r#"{"type":"read","user":{},"seq":3}"#), None);
        assert_eq!(frame_seq(r#"{"type":"typing","active":true}"#), None);
        assert_eq!(frame_seq("not json"), None);
    }

    #[test]
    fn a_welcome_is_made_for_the_shards_seq() {
        let template = r#"{"type":"welcome","room":"r","conn_id":"c","user":{"id":"\"seq\":9"},"seq":17,"reads":[{"seq":3}]}"#;
        assert_eq!(
            welcome_at(template, 15, 3).unwrap(),
            r#"{"type":"welcome","room":"r","conn_id":"c","user":{"id":"\"seq\":9"},"seq":15,"reads":[{"seq":3}],"shard":3}"#
        );
        assert_eq!(welcome_at(r#"{"type":"welcome"}"#, 1, 0), None);
    }

    #[test]
    fn link_frames_round_trip() {
        let up = FromShard::Counts {
            connections: 3,
            users: 2,
        };
        let text = serde_json::to_string(&up).unwrap();
        assert_eq!(text, r#"{"t":"counts","connections":3,"users":2}"#);
        assert_eq!(serde_json::from_str::<FromShard>(&text).unwrap(), up);
        let gone = FromShard::Gone {
            conn_id: "c1".into(),
        };
        let text = serde_json::to_string(&gone).unwrap();
        assert_eq!(text, r#"{"t":"gone","conn_id":"c1"}"#);
        let down: ToShard = serde_json::from_str(&hello_frame(9)).unwrap();
        assert_eq!(down, ToShard::Hello { seq: 9 });
        let batch: ToShard = serde_json::from_str(
            r#"{"t":"batch","e":[{"s":4,"f":"m"},{"f":"a","o":"c1","a":1900000000},{"c":[4003,"banned"],"u":["bob"]}]}"#,
        )
        .unwrap();
        let ToShard::Batch { e } = batch else {
            panic!("a batch");
        };
        assert_eq!(e[0].s, 4);
        assert_eq!(e[1].o.as_deref(), Some("c1"));
        assert_eq!(e[1].a, Some(1_900_000_000));
        assert_eq!(e[2].c, Some((4003, "banned".into())));
        assert_eq!(e[2].u.as_deref(), Some(&["bob".to_string()][..]));
    }
}
