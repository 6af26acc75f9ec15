//! The event sink of `fanout --events PORT`: a small HTTP server on 127.0.0.1 that takes the
//! relay's signed event deliveries (`POST EVENTS_URL`, "Outgoing events" in docs/PROTOCOL.md),
//! checks each signature, answers 200 and counts the events of the run's room: ids seen,
//! repeats, seq order, and the lag from each event's `ts` to its arrival here.
//!
//! Bounded: one request per connection (answered with `connection: close`), at most
//! [`MAX_CONNECTIONS`] at once, [`MAX_HEAD_BYTES`] of head, [`MAX_BODY_BYTES`] of body, every
//! request read within [`REQUEST_TIMEOUT`], at most [`MAX_TRACKED_EVENTS`] ids remembered; the
//! server stops when the run stops it (or with the runtime).

use crate::common::Res;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest request head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest body: a delivery is at most 100 events and about 120 000 bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Longest time to read one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Event ids (and lag samples) remembered; later events are counted but not told apart.
pub const MAX_TRACKED_EVENTS: usize = 1_000_000;
/// How far a signature's timestamp may be from this machine's clock (the relay's SDK and
/// the e2e sink refuse beyond 5 minutes too).
pub const SIGNATURE_TOLERANCE_S: i64 = 300;

/// Why a delivery's signature did not verify.
#[derive(Debug, PartialEq, Eq)]
pub enum BadSignature {
    Missing,
    Malformed,
    Stale,
    Mismatch,
}

/// Checks `X-Relay-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (the scheme
/// backends sign broadcasts with), `t` within [`SIGNATURE_TOLERANCE_S`] of `now_unix`. The
/// MAC comparison is constant-time.
pub fn check_signature(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), BadSignature> {
    let header = header.ok_or(BadSignature::Missing)?;
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(BadSignature::Malformed);
    };
    let t_unix: i64 = t.parse().map_err(|_| BadSignature::Malformed)?;
    let mac_bytes = decode_hex(v1).ok_or(BadSignature::Malformed)?;
    if (now_unix - t_unix).abs() > SIGNATURE_TOLERANCE_S {
        return Err(BadSignature::Stale);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| BadSignature::Mismatch)?;
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&mac_bytes)
        .map_err(|_| BadSignature::Mismatch)
}

/// Lower- or upper-case hex, an even number of digits.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// What the sink needs of a request head.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub is_post: bool,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub signature: Option<String>,
}

/// Parses a request head (up to, not including, the blank line).
pub fn parse_head(head: &str) -> Head {
    let mut lines = head.split("\r\n");
    let mut out = Head {
        is_post: lines
            .next()
            .is_some_and(|request_line| request_line.starts_with("POST ")),
        ..Head::default()
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => out.content_length = value.parse().ok(),
            "transfer-encoding" => out.chunked = value.to_ascii_lowercase().contains("chunked"),
            "x-relay-signature" => out.signature = Some(value.to_string()),
            _ => {}
        }
    }
    out
}

/// The fields of an event the sink counts by.
#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    room: std::borrow::Cow<'a, str>,
    seq: Option<u64>,
    #[serde(borrow)]
    ts: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct Delivery<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// The count of one run's room: every event of a verified delivery goes through
/// [`Tally::record`].
#[derive(Debug, Default)]
pub struct Tally {
    room: String,
    /// Verified deliveries (of any room).
    pub deliveries: u64,
    /// Events of the run's room, repeats included.
    pub received: u64,
    /// Events of the run's room whose id had arrived before.
    pub repeated: u64,
    /// Events of other rooms (e.g. an earlier run's, still being retried).
    pub other_rooms: u64,
    /// First arrivals of the run's room by type.
    pub by_type: BTreeMap<String, u64>,
    /// `message.created` first arrivals whose seq is below one that arrived before.
    pub out_of_order: u64,
    /// Events whose `ts` did not parse (no lag sample).
    pub bad_ts: u64,
    /// Events past [`MAX_TRACKED_EVENTS`]: counted, neither deduplicated nor timed.
    pub untracked: u64,
    ids: HashSet<String>,
    created_seqs: HashSet<u64>,
    highest_created_seq: u64,
    /// Microseconds from `ts` to arrival of each `message.created` first arrival.
    created_lag_us: Vec<u32>,
    first_arrival: Option<DateTime<Utc>>,
    last_arrival: Option<DateTime<Utc>>,
}

impl Tally {
    pub fn new(room: &str) -> Tally {
        Tally {
            room: room.to_string(),
            ..Tally::default()
        }
    }

    /// Counts one verified delivery body that arrived at `arrival`; a body that is not
    /// `{"events":[{id,type,room,ts,..}..]}` is refused whole (nothing counted).
    pub fn record(&mut self, body: &[u8], arrival: DateTime<Utc>) -> Result<(), String> {
        let delivery: Delivery = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
        let events = delivery
            .events
            .iter()
            .map(|raw| serde_json::from_str::<EventHead>(raw.get()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("event: {e}"))?;
        self.deliveries += 1;
        for event in events {
            if event.room != self.room {
                self.other_rooms += 1;
                continue;
            }
            self.received += 1;
            if self.ids.len() >= MAX_TRACKED_EVENTS {
                self.untracked += 1;
                continue;
            }
            if !self.ids.insert(event.id.into_owned()) {
                self.repeated += 1;
                continue;
            }
            self.first_arrival.get_or_insert(arrival);
            self.last_arrival = Some(arrival);
            *self.by_type.entry(event.kind.to_string()).or_default() += 1;
            if event.kind != "message.created" {
                continue;
            }
            if let Some(seq) = event.seq {
                if seq < self.highest_created_seq {
                    self.out_of_order += 1;
                }
                self.highest_created_seq = self.highest_created_seq.max(seq);
                self.created_seqs.insert(seq);
            }
            match DateTime::parse_from_rfc3339(&event.ts) {
                Ok(ts) => {
                    let lag = (arrival - ts.with_timezone(&Utc))
                        .num_microseconds()
                        .unwrap_or(i64::MAX)
                        .clamp(0, u32::MAX as i64);
                    self.created_lag_us.push(lag as u32);
                }
                Err(_) => self.bad_ts += 1,
            }
        }
        Ok(())
    }

    /// Distinct `message.created` seqs of the run's room that arrived.
    pub fn created(&self) -> u64 {
        self.created_seqs.len() as u64
    }

    /// The figures, given the seqs whose `message.created` should have arrived.
    pub fn figures(&mut self, expected_seqs: &[u64]) -> Value {
        let missing = expected_seqs
            .iter()
            .filter(|s| !self.created_seqs.contains(s))
            .count();
        let span_s = match (self.first_arrival, self.last_arrival) {
            (Some(a), Some(b)) => (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6,
            _ => 0.0,
        };
        let unique: u64 = self.by_type.values().sum();
        json!({
            "deliveries": self.deliveries,
            "received": self.received,
            "unique": unique,
            "repeated": self.repeated,
            "by_type": self.by_type,
            "message_created_expected": expected_seqs.len(),
            "message_created_missing": missing,
            "out_of_order": self.out_of_order,
            "lag_ms": crate::stats::summary_ms(&mut self.created_lag_us),
            "events_per_delivery": if self.deliveries > 0 {
                crate::common::r3(self.received as f64 / self.deliveries as f64)
            } else {
                0.0
            },
            "unique_per_s": if span_s > 0.0 { (unique as f64 / span_s).round() } else { 0.0 },
            "other_rooms": self.other_rooms,
            "bad_ts": self.bad_ts,
            "untracked": self.untracked,
        })
    }
}

/// What the server shares with the run.
#[derive(Default)]
struct Counters {
    tally: Tally,
    bad_signatures: BTreeMap<String, u64>,
    refused: BTreeMap<String, u64>,
}

/// A running sink.
pub struct Sink {
    counters: Arc<Mutex<Counters>>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl Sink {
    /// Listens on 127.0.0.1:`port` and counts the events of `room`, verified with `secret`.
    pub async fn start(port: u16, secret: &str, room: &str) -> Res<Sink> {
        if secret.is_empty() {
            return Err("--events PORT needs --events-secret (or EVENTS_SECRET)".into());
        }
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("event sink on 127.0.0.1:{port}: {e}"))?;
        let counters = Arc::new(Mutex::new(Counters {
            tally: Tally::new(room),
            ..Counters::default()
        }));
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            Arc::from(secret.as_bytes()),
            counters.clone(),
            stopped,
        ));
        Ok(Sink {
            counters,
            stop,
            server,
        })
    }

    /// Distinct `message.created` seqs of the room so far.
    pub fn created(&self) -> u64 {
        self.counters.lock().expect("sink").tally.created()
    }

    /// Stops the server and gives the figures (see [`Tally::figures`]) with the deliveries
    /// refused for their signature or their form.
    pub async fn stop(self, expected_seqs: &[u64]) -> Value {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.server).await;
        let mut counters = self.counters.lock().expect("sink");
        let mut out = counters.tally.figures(expected_seqs);
        out["bad_signatures"] = json!(counters.bad_signatures.values().sum::<u64>());
        out["bad_signature_kinds"] = json!(counters.bad_signatures);
        out["refused"] = json!(counters.refused.values().sum::<u64>());
        out["refused_statuses"] = json!(counters.refused);
        out
    }
}

async fn serve(
    listener: TcpListener,
    secret: Arc<[u8]>,
    counters: Arc<Mutex<Counters>>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = crate::common::stopped(&mut stopped) => break,
            p = slots.clone().acquire_owned() => p.expect("semaphore"),
        };
        let stream = tokio::select! {
            _ = crate::common::stopped(&mut stopped) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let (secret, counters) = (secret.clone(), counters.clone());
        connections.spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &secret, &counters)).await;
        });
        // Reap finished connections so the set stays as small as the live ones.
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

/// Reads one request, judges it, answers it.
async fn answer(mut stream: TcpStream, secret: &[u8], counters: &Mutex<Counters>) {
    let status = match read_request(&mut stream).await {
        Err(status) => status,
        Ok((head, body)) => {
            let now = Utc::now();
            let mut c = counters.lock().expect("sink");
            match check_signature(secret, head.signature.as_deref(), &body, now.timestamp()) {
                Err(bad) => {
                    *c.bad_signatures.entry(format!("{bad:?}")).or_default() += 1;
                    401
                }
                Ok(()) => match c.tally.record(&body, now) {
                    Ok(()) => 200,
                    Err(_) => 400,
                },
            }
        }
    };
    if status != 200 && status != 401 {
        *counters
            .lock()
            .expect("sink")
            .refused
            .entry(status.to_string())
            .or_default() += 1;
    }
    let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The head and body of one request, or the status that refuses it.
async fn read_request(stream: &mut TcpStream) -> Result<(Head, Vec<u8>), u16> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(431);
        }
        let n = stream.read(&mut chunk).await.map_err(|_| 400u16)?;
        if n == 0 {
            return Err(400);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = parse_head(std::str::from_utf8(&buf[..head_end]).map_err(|_| 400u16)?);
    if !head.is_post {
        return Err(405);
    }
    let length = match (head.content_length, head.chunked) {
        (Some(n), false) => n,
        _ => return Err(411),
    };
    if length > MAX_BODY_BYTES {
        return Err(413);
    }
    let mut body = buf.split_off(head_end + 4);
    if body.len() > length {
        return Err(400);
    }
    let start = body.len();
    body.resize(length, 0);
    stream
        .read_exact(&mut body[start..])
        .await
        .map_err(|_| 400u16)?;
    Ok((head, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("t={t},v1={hex}")
    }

    #[test]
    fn a_signature_made_with_the_secret_verifies() {
        let body = br#"{"events":[]}"#;
        let header = sign(b"s3cret", 1_700_000_000, body);
        assert_eq!(
            check_signature(b"s3cret", Some(&header), body, 1_700_000_010),
            Ok(())
        );
        // Upper-case hex is the same MAC.
        let upper = header.replace(
            header.split("v1=").nth(1).unwrap(),
            &header.split("v1=").nth(1).unwrap().to_ascii_uppercase(),
        );
        assert_eq!(
            check_signature(b"s3cret", Some(&upper), body, 1_700_000_010),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_secret_body_or_timestamp_is_refused() {
        let body = br#"{"events":[]}"#;
        let header = sign(b"s3cret", 1_700_000_000, body);
        let now = 1_700_000_000;
        assert_eq!(
            check_signature(b"other", Some(&header), body, now),
            Err(BadSignature::Mismatch)
        );
        assert_eq!(
            check_signature(b"s3cret", Some(&header), br#"{"events":[1]}"#, now),
            Err(BadSignature::Mismatch)
        );
        // The timestamp is part of what is signed.
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            check_signature(b"s3cret", Some(&moved), body, now),
            Err(BadSignature::Mismatch)
        );
        assert_eq!(
            check_signature(b"s3cret", Some(&header), body, now + 301),
            Err(BadSignature::Stale)
        );
        assert_eq!(
            check_signature(b"s3cret", None, body, now),
            Err(BadSignature::Missing)
        );
        for bad in [
            "t=1700000000",
            "v1=00",
            "t=x,v1=00",
            "t=1700000000,v1=0g",
            "t=1,v1=abc",
        ] {
            assert_eq!(
                check_signature(b"s3cret", Some(bad), body, now),
                Err(BadSignature::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_head_gives_method_length_and_signature() {
        let head = parse_head(
            "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\nX-Relay-Signature: t=1,v1=ab",
        );
        assert_eq!(
            head,
            Head {
                is_post: true,
                content_length: Some(42),
                chunked: false,
                signature: Some("t=1,v1=ab".into()),
            }
        );
        let head = parse_head("GET / HTTP/1.1\r\ntransfer-encoding: Chunked");
        assert!(!head.is_post && head.chunked && head.content_length.is_none());
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn created(id: &str, room: &str, seq: u64, ts: &str) -> String {
        format!(
            r#"{{"id":"{id}","type":"message.created","room":"{room}","seq":{seq},"ts":"{ts}","user":null,"message":{{}}}}"#
        )
    }

    #[test]
    fn the_tally_counts_repeats_order_other_rooms_and_lag() {
        let mut tally = Tally::new("r");
        let joined = r#"{"id":"j","type":"presence.joined","room":"r","ts":"2026-01-01T00:00:00.000Z","user":{"id":"u"}}"#;
        let first = format!(
            r#"{{"events":[{joined},{},{}]}}"#,
            created("a", "r", 1, "2026-01-01T00:00:00.000Z"),
            created("b", "r", 2, "2026-01-01T00:00:00.010Z"),
        );
        tally
            .record(first.as_bytes(), at("2026-01-01T00:00:00.050Z"))
            .unwrap();
        // A repeat of b, then 4 before 3, and another room's event.
        let second = format!(
            r#"{{"events":[{},{},{},{}]}}"#,
            created("b", "r", 2, "2026-01-01T00:00:00.010Z"),
            created("d", "r", 4, "2026-01-01T00:00:00.020Z"),
            created("c", "r", 3, "2026-01-01T00:00:00.015Z"),
            created("x", "elsewhere", 9, "2026-01-01T00:00:00.015Z"),
        );
        tally
            .record(second.as_bytes(), at("2026-01-01T00:00:00.120Z"))
            .unwrap();
        assert_eq!(tally.created(), 4);
        let out = tally.figures(&[1, 2, 3, 4, 5]);
        assert_eq!(out["deliveries"], 2);
        assert_eq!(out["received"], 6);
        assert_eq!(out["unique"], 5);
        assert_eq!(out["repeated"], 1);
        assert_eq!(out["other_rooms"], 1);
        assert_eq!(out["out_of_order"], 1);
        assert_eq!(out["message_created_missing"], 1);
        assert_eq!(out["by_type"]["presence.joined"], 1);
        assert_eq!(out["by_type"]["message.created"], 4);
        assert_eq!(out["events_per_delivery"], 3.0);
        // Lags of a, b, d, c: 50, 40, 100, 105 ms.
        assert_eq!(out["lag_ms"]["count"], 4);
        assert_eq!(out["lag_ms"]["p50"], 50.0);
        assert_eq!(out["lag_ms"]["max"], 105.0);
    }

    #[test]
    fn a_malformed_delivery_counts_nothing() {
        let mut tally = Tally::new("r");
        let now = at("2026-01-01T00:00:00Z");
        assert!(tally.record(b"not json", now).is_err());
        assert!(tally.record(br#"{"events":[{"id":"a"}]}"#, now).is_err());
        let half = format!(
            r#"{{"events":[{},{{"id":"b"}}]}}"#,
            created("a", "r", 1, "2026-01-01T00:00:00Z")
        );
        assert!(tally.record(half.as_bytes(), now).is_err());
        assert_eq!(tally.deliveries, 0);
        assert_eq!(tally.received, 0);
        assert_eq!(tally.created(), 0);
    }

    #[tokio::test]
    async fn the_server_verifies_counts_and_refuses() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let sink = Sink::start(port, "s3cret", "r").await.unwrap();
        let body = format!(
            r#"{{"events":[{}]}}"#,
            created("a", "r", 1, &Utc::now().to_rfc3339())
        );
        let post = |signature: String, body: String| async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let request = format!(
                "POST /events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-relay-signature: {signature}\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).await.unwrap();
            answer[9..12].to_string()
        };
        let good = sign(b"s3cret", Utc::now().timestamp(), body.as_bytes());
        assert_eq!(post(good.clone(), body.clone()).await, "200");
        assert_eq!(post(good, body.clone()).await, "200");
        let bad = sign(b"wrong", Utc::now().timestamp(), body.as_bytes());
        assert_eq!(post(bad, body).await, "401");
        let junk = "x".repeat(10);
        let junk_sig = sign(b"s3cret", Utc::now().timestamp(), junk.as_bytes());
        assert_eq!(post(junk_sig, junk).await, "400");
        assert_eq!(sink.created(), 1);
        let out = sink.stop(&[1]).await;
        assert_eq!(out["received"], 2);
        assert_eq!(out["repeated"], 1);
        assert_eq!(out["message_created_missing"], 0);
        assert_eq!(out["bad_signatures"], 1);
        assert_eq!(out["bad_signature_kinds"]["Mismatch"], 1);
        assert_eq!(out["refused"], 1);
        assert_eq!(out["refused_statuses"]["400"], 1);
    }
}
