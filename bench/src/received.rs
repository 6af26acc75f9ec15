//! What connections received, counted by kind of frame (welcome, presence join and leave,
//! occupancy, anything else) in frames and bytes, without keeping any frame: the cost of
//! presence in a connection storm (a join to every member per new user is O(N²) frames in a
//! room of N) made visible, in a bounded amount of memory per connection.

use crate::common::frame_texts;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The kinds of server frames a storm tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Welcome,
    Join,
    Leave,
    Occupancy,
    Other,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Welcome,
        Kind::Join,
        Kind::Leave,
        Kind::Occupancy,
        Kind::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Welcome => "welcome",
            Kind::Join => "presence join",
            Kind::Leave => "presence leave",
            Kind::Occupancy => "occupancy",
            Kind::Other => "other",
        }
    }

    /// The kind of one frame (one JSON object); anything unreadable is `Other`.
    pub fn of(frame: &str) -> Kind {
        #[derive(Deserialize)]
        struct Head<'a> {
            #[serde(rename = "type", borrow)]
            ty: std::borrow::Cow<'a, str>,
            #[serde(default, borrow)]
            event: Option<std::borrow::Cow<'a, str>>,
        }
        match serde_json::from_str::<Head>(frame) {
            Ok(h) => match (h.ty.as_ref(), h.event.as_deref()) {
                ("welcome", _) => Kind::Welcome,
                ("presence", Some("join")) => Kind::Join,
                ("presence", Some("leave")) => Kind::Leave,
                ("occupancy", _) => Kind::Occupancy,
                _ => Kind::Other,
            },
            Err(_) => Kind::Other,
        }
    }
}

/// Frames and bytes (of each frame's JSON text) by kind, and the WebSocket messages that
/// carried them (a batched message holds several frames).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    frames: [u64; 5],
    bytes: [u64; 5],
    messages: u64,
}

impl Received {
    /// Counts one WebSocket text message: a frame, or a batch (JSON array) of frames.
    pub fn count_message(&mut self, text: &str) {
        self.messages += 1;
        for frame in frame_texts(text) {
            let k = Kind::of(frame) as usize;
            self.frames[k] += 1;
            self.bytes[k] += frame.len() as u64;
        }
    }

    /// Counts a non-text WebSocket message (binary, ping, pong) as one `Other` frame.
    pub fn count_other(&mut self, len: usize) {
        self.messages += 1;
        self.frames[Kind::Other as usize] += 1;
        self.bytes[Kind::Other as usize] += len as u64;
    }

    pub fn frames(&self) -> u64 {
        self.frames.iter().sum()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }

    pub fn frames_of(&self, kind: Kind) -> u64 {
        self.frames[kind as usize]
    }

    pub fn add(&mut self, other: &Received) {
        for k in 0..self.frames.len() {
            self.frames[k] += other.frames[k];
            self.bytes[k] += other.bytes[k];
        }
        self.messages += other.messages;
    }

    /// `{"<kind>":{"frames","bytes"},…, "messages"}`, kinds with no frame left out.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for k in Kind::ALL {
            let i = k as usize;
            if self.frames[i] > 0 {
                out.insert(
                    k.label().into(),
                    json!({"frames": self.frames[i], "bytes": self.bytes[i]}),
                );
            }
        }
        out.insert("messages".into(), json!(self.messages));
        Value::Object(out)
    }
}

/// Per-connection counts summed and spread: `{"frames":{mean,p50,p99,max},"bytes":{…},
/// "connections"}`, from one [`Received`] per connection (one entry each: bounded by the
/// connection count).
pub fn per_connection(each: &[Received]) -> Value {
    let spread = |mut v: Vec<u64>| -> Value {
        if v.is_empty() {
            return json!({"mean": 0, "p50": 0, "p99": 0, "max": 0});
        }
        v.sort_unstable();
        let n = v.len();
        let pick = |p: f64| v[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
        let mean = v.iter().sum::<u64>() as f64 / n as f64;
        json!({
            "mean": crate::common::r3(mean),
            "p50": pick(50.0),
            "p99": pick(99.0),
            "max": v[n - 1],
        })
    };
    json!({
        "connections": each.len(),
        "frames": spread(each.iter().map(Received::frames).collect()),
        "bytes": spread(each.iter().map(Received::bytes).collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WELCOME_LIST: &str =
        r#"{"type":"welcome","room":"r","conn_id":"c","user":"u","seq":0,"presence":[{"id":"a"}]}"#;
    const WELCOME_COUNTS: &str =
        r#"{"type":"welcome","room":"r","seq":0,"occupancy":{"connections":101,"users":101}}"#;
    const JOIN: &str = r#"{"type":"presence","event":"join","user":{"id":"b"}}"#;
    const LEAVE: &str = r#"{"type":"presence","event":"leave","user":{"id":"b"},"last_seen":"t"}"#;
    const OCCUPANCY: &str = r#"{"type":"occupancy","connections":500,"users":500}"#;

    #[test]
    fn frames_are_told_apart_by_type_and_event() {
        assert_eq!(Kind::of(WELCOME_LIST), Kind::Welcome);
        assert_eq!(Kind::of(WELCOME_COUNTS), Kind::Welcome);
        assert_eq!(Kind::of(JOIN), Kind::Join);
        assert_eq!(Kind::of(LEAVE), Kind::Leave);
        assert_eq!(Kind::of(OCCUPANCY), Kind::Occupancy);
        assert_eq!(
            Kind::of(r#"{"type":"message","seq":1,"data":{}}"#),
            Kind::Other
        );
        assert_eq!(Kind::of(r#"{"type":"presence"}"#), Kind::Other);
        assert_eq!(Kind::of("not json"), Kind::Other);
    }

    #[test]
    fn counts_frames_and_bytes_by_kind_including_batches() {
        let mut r = Received::default();
        r.count_message(WELCOME_LIST);
        r.count_message(JOIN);
        r.count_message(&format!("[{JOIN},{OCCUPANCY}]"));
        r.count_other(4);
        assert_eq!(r.frames(), 5);
        assert_eq!(r.frames_of(Kind::Welcome), 1);
        assert_eq!(r.frames_of(Kind::Join), 2);
        assert_eq!(r.frames_of(Kind::Occupancy), 1);
        assert_eq!(r.frames_of(Kind::Other), 1);
        assert_eq!(
            r.bytes(),
            (WELCOME_LIST.len() + 2 * JOIN.len() + OCCUPANCY.len() + 4) as u64
        );
        let j = r.to_json();
        assert_eq!(j["presence join"]["frames"], 2);
        assert_eq!(j["presence join"]["bytes"], 2 * JOIN.len() as u64);
        assert_eq!(j["messages"], 4);
        assert!(j.get("presence leave").is_none());
    }

    #[test]
    fn sums_and_spreads_over_connections() {
        // A room of 4 filled in order in list mode: the k-th connection sees its welcome
        // and the joins of the 3 - k that come after it: 4 + 3 + 2 + 1 frames.
        let each: Vec<Received> = (0..4)
            .map(|k| {
                let mut r = Received::default();
                r.count_message(WELCOME_LIST);
                for _ in k..3 {
                    r.count_message(JOIN);
                }
                r
            })
            .collect();
        let mut total = Received::default();
        each.iter().for_each(|r| total.add(r));
        assert_eq!(total.frames_of(Kind::Join), 6);
        assert_eq!(total.frames(), 10);
        let s = per_connection(&each);
        assert_eq!(s["connections"], 4);
        assert_eq!(s["frames"]["mean"], 2.5);
        assert_eq!(s["frames"]["p50"], 2);
        assert_eq!(s["frames"]["p99"], 4);
        assert_eq!(s["frames"]["max"], 4);
        assert_eq!(
            s["bytes"]["max"],
            (WELCOME_LIST.len() + 3 * JOIN.len()) as u64
        );
        assert_eq!(per_connection(&[])["frames"]["max"], 0);
    }
}
