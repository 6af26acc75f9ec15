//! Outgoing events: what rooms tell a backend (`EVENTS_URL`), at least once and in each room's
//! order. The rules live here: the settings, the events as JSON, how a room's outbox is cut
//! into queue messages, the signed delivery's body, and what a failed delivery does next
//! (retry with backoff, then the dead-letter queue). The room and the queue consumer in
//! `runtime` only carry them out.
//!
//! Order without an ordered queue: a room keeps at most one batch of its events in the queue
//! ([`InFlight`]); it sends the next only when the consumer said the last one was delivered
//! (or dead-lettered), or after [`EventsConfig::resend_after_ms`] without word.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::User;
use crate::error::{RelayError, RelayResult};
use crate::protocol::ReadMarker;
use crate::room_prefixes::RoomPrefixes;
use crate::signed_target::SignedTarget;

/// Events per delivery (one queue message, one POST).
pub const MAX_BATCH_EVENTS: usize = 100;
/// Bytes of events per queue message: under the queue's 128 KB message limit, with room for
/// the envelope ([`QueuedBatch`]).
pub const MAX_BATCH_BYTES: usize = 120_000;
/// A message frame larger than this travels without its body (`message_omitted: true`), so
/// that every event fits a queue message on its own; the backend reads it from the history.
pub const MAX_MESSAGE_IN_EVENT: usize = 100_000;
/// Events a room keeps waiting for delivery; past it, new events are dropped and counted in
/// the log (a backend that is down for long must not fill the room's storage).
pub const MAX_OUTBOX_EVENTS: u64 = 10_000;
/// From an event to the alarm run that sends it: a burst of events leaves as one batch.
pub const SEND_DELAY_MS: i64 = 50;
/// After the queue refused a batch, the room tries again this much later.
pub const QUEUE_RETRY_MS: i64 = 5_000;
/// Longest wait for the backend's answer to one delivery, unless `EVENTS_TIMEOUT_MS` says
/// (1 to 30 s).
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;
const MIN_TIMEOUT_MS: u32 = 1_000;
const MAX_TIMEOUT_MS: u32 = 30_000;
/// Longest backoff between two deliveries of a batch.
pub const MAX_RETRY_DELAY_S: u32 = 300;
/// Deliveries of a batch before it is dead-lettered, unless `EVENTS_MAX_ATTEMPTS` says.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// The bound of `EVENTS_MAX_ATTEMPTS`: the consumer's `max_retries` in `wrangler.toml` (20)
/// plus one, so the relay's own bound always comes first.
pub const MAX_ATTEMPTS_LIMIT: u32 = 21;
/// Added to a batch's whole retry schedule before the room sends it again unasked.
const RESEND_SLACK_MS: i64 = 60_000;
/// Room-name prefixes `EVENTS_PREFIXES` may list.
const MAX_PREFIXES: usize = 64;

/// The queue whose messages are dead letters: its name ends so (see `wrangler.toml`).
pub const DEAD_LETTER_SUFFIX: &str = "-dlq";

/// `EVENTS_URL`, `EVENTS_SECRET`, `EVENTS_PREFIXES`, `EVENTS_MAX_ATTEMPTS`,
/// `EVENTS_TIMEOUT_MS`. Not `Debug`: it holds the signing secret.
#[derive(Clone)]
pub struct EventsConfig {
    /// `EVENTS_URL` and `EVENTS_SECRET`.
    pub target: SignedTarget,
    /// Rooms whose names start with one of these have events; empty: every room.
    prefixes: RoomPrefixes,
    pub max_attempts: u32,
    /// How long a delivery waits for the backend's answer.
    pub timeout_ms: u32,
}

impl EventsConfig {
    /// The settings when events are on (`EVENTS_URL` and `EVENTS_SECRET` both set), and what
    /// was set but not used, for the log (never a secret's value).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> (Option<EventsConfig>, Vec<String>) {
        let text = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut warnings = Vec::new();
        let target = match SignedTarget::from_vars(&text, "EVENTS_URL", "EVENTS_SECRET") {
            Ok(Some(target)) => target,
            Ok(None) => return (None, warnings),
            Err(why) => {
                warnings.push(why);
                return (None, warnings);
            }
        };
        let (prefixes, ignored) =
            RoomPrefixes::parse(text("EVENTS_PREFIXES").as_deref(), MAX_PREFIXES);
        warnings.extend(RoomPrefixes::warning(
            "EVENTS_PREFIXES",
            ignored,
            MAX_PREFIXES,
        ));
        let number = |name: &str, default: u32, min: u32, max: u32| {
            text(name)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(default)
                .clamp(min, max)
        };
        let config = EventsConfig {
            target,
            prefixes,
            max_attempts: number(
                "EVENTS_MAX_ATTEMPTS",
                DEFAULT_MAX_ATTEMPTS,
                1,
                MAX_ATTEMPTS_LIMIT,
            ),
            timeout_ms: number(
                "EVENTS_TIMEOUT_MS",
                DEFAULT_TIMEOUT_MS,
                MIN_TIMEOUT_MS,
                MAX_TIMEOUT_MS,
            ),
        };
        (Some(config), warnings)
    }

    /// Whether `room` has events.
    pub fn applies_to(&self, room: &str) -> bool {
        self.prefixes.pick_or_all(room)
    }

    /// How long a room waits for word on a batch before it sends its events again: longer than
    /// the batch's whole retry schedule (every delivery timing out, every backoff), so that a
    /// batch still being retried is not overtaken by its own resend.
    pub fn resend_after_ms(&self) -> i64 {
        let backoffs: i64 = (1..self.max_attempts)
            .map(|attempt| i64::from(retry_delay_s(attempt)) * 1000)
            .sum();
        let deliveries = i64::from(self.max_attempts) * i64::from(self.timeout_ms);
        backoffs + deliveries + RESEND_SLACK_MS
    }
}

/// The kinds of events this relay sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    MessageCreated,
    MessageEdited,
    MessageDeleted,
    PresenceJoined,
    PresenceLeft,
    ReadUpdated,
    MessageUnread,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageCreated => "message.created",
            EventType::MessageEdited => "message.edited",
            EventType::MessageDeleted => "message.deleted",
            EventType::PresenceJoined => "presence.joined",
            EventType::PresenceLeft => "presence.left",
            EventType::ReadUpdated => "read.updated",
            EventType::MessageUnread => "message.unread",
        }
    }
}

/// One event as the backend receives it. Built once, stored in the room's outbox as JSON and
/// sent as stored: every delivery of it carries the same `id`.
#[derive(Serialize)]
struct Event<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    /// The message an edit or delete changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    ref_seq: Option<u64>,
    ts: &'a str,
    /// `null` for a backend's broadcast.
    user: Option<&'a User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    message_omitted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<&'a str>,
    /// `message.unread`: how many messages the member has left unread, from `seq` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    unread: Option<u64>,
}

impl<'a> Event<'a> {
    fn new(id: &'a str, kind: EventType, room: &'a str, ts: &'a str) -> Self {
        Event {
            id,
            kind: kind.as_str(),
            room,
            seq: None,
            ref_seq: None,
            ts,
            user: None,
            message: None,
            message_omitted: false,
            last_seen: None,
            unread: None,
        }
    }

    fn to_json(&self) -> RelayResult<String> {
        serde_json::to_string(self).map_err(|_| RelayError::internal())
    }
}

/// `message.created`: a new message (`message` is its frame, as clients and history see it).
pub fn message_created(
    id: &str,
    room: &str,
    seq: u64,
    ts: &str,
    user: Option<&User>,
    message_frame: &str,
) -> RelayResult<String> {
    message_event(
        Event::new(id, EventType::MessageCreated, room, ts),
        seq,
        user,
        message_frame,
    )
}

/// `message.edited` or `message.deleted` (`deleted`): `message` is the record committed at
/// `seq` (its frame, with `ref_seq` and the new `data`), `user` who changed the message.
#[allow(clippy::too_many_arguments)]
pub fn message_changed(
    id: &str,
    room: &str,
    deleted: bool,
    seq: u64,
    ref_seq: u64,
    ts: &str,
    user: &User,
    record_frame: &str,
) -> RelayResult<String> {
    let kind = match deleted {
        true => EventType::MessageDeleted,
        false => EventType::MessageEdited,
    };
    let event = Event {
        ref_seq: Some(ref_seq),
        ..Event::new(id, kind, room, ts)
    };
    message_event(event, seq, Some(user), record_frame)
}

/// An event carrying a message frame, left out (and said so) when it is too large.
fn message_event(
    event: Event<'_>,
    seq: u64,
    user: Option<&User>,
    message_frame: &str,
) -> RelayResult<String> {
    let omitted = message_frame.len() > MAX_MESSAGE_IN_EVENT;
    let message = match omitted {
        true => None,
        false => Some(
            serde_json::from_str::<&RawValue>(message_frame).map_err(|_| RelayError::internal())?,
        ),
    };
    Event {
        seq: Some(seq),
        user,
        message,
        message_omitted: omitted,
        ..event
    }
    .to_json()
}

/// `presence.joined`: the user's first connection in the room.
pub fn presence_joined(id: &str, room: &str, ts: &str, user: &User) -> RelayResult<String> {
    Event {
        user: Some(user),
        ..Event::new(id, EventType::PresenceJoined, room, ts)
    }
    .to_json()
}

/// `presence.left`: the user's last connection closed and the leave grace passed.
pub fn presence_left(
    id: &str,
    room: &str,
    ts: &str,
    user: &User,
    last_seen: &str,
) -> RelayResult<String> {
    Event {
        user: Some(user),
        last_seen: Some(last_seen),
        ..Event::new(id, EventType::PresenceLeft, room, ts)
    }
    .to_json()
}

/// `read.updated`: a user's read marker moved to `seq` (`ts` is when).
pub fn read_updated(id: &str, room: &str, marker: &ReadMarker) -> RelayResult<String> {
    Event {
        seq: Some(marker.seq),
        user: Some(&marker.user),
        ..Event::new(id, EventType::ReadUpdated, room, &marker.at)
    }
    .to_json()
}

/// A streak of messages a member left unread while offline (see
/// [`crate::room_unread`]).
pub struct UnreadStreak<'a> {
    /// The oldest message of the streak.
    pub seq: u64,
    /// Messages of the streak (from `seq` on, by others, edits and deletes not counted).
    pub unread: u64,
    /// The newest of them as clients see it, when the room still keeps its body.
    pub newest_frame: Option<&'a str>,
}

/// `message.unread`: `member` has left `streak` unread for the room's interval while offline
/// (`ts`: when the room noticed).
pub fn message_unread(
    id: &str,
    room: &str,
    ts: &str,
    member: &User,
    streak: &UnreadStreak<'_>,
) -> RelayResult<String> {
    let event = Event {
        unread: Some(streak.unread),
        ..Event::new(id, EventType::MessageUnread, room, ts)
    };
    match streak.newest_frame {
        Some(frame) => message_event(event, streak.seq, Some(member), frame),
        None => Event {
            seq: Some(streak.seq),
            user: Some(member),
            message_omitted: true,
            ..event
        }
        .to_json(),
    }
}

/// One queue message: a batch of one room's events, up to outbox position `up_to`.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueuedBatch {
    pub room: String,
    /// Names this sending of the batch: word about an older one is ignored.
    pub batch: String,
    pub up_to: u64,
    pub events: Vec<Box<RawValue>>,
}

impl QueuedBatch {
    /// The next batch from the outbox's oldest rows (position, event JSON): as many as fit
    /// [`MAX_BATCH_EVENTS`] and [`MAX_BATCH_BYTES`], at least one. `None` for no rows.
    pub fn from_rows(room: &str, batch: String, rows: &[(u64, String)]) -> Option<QueuedBatch> {
        let mut bytes = 0;
        let mut events = Vec::new();
        let mut up_to = None;
        for (position, json) in rows.iter().take(MAX_BATCH_EVENTS) {
            bytes += json.len() + 1;
            if !events.is_empty() && bytes > MAX_BATCH_BYTES {
                break;
            }
            // A row that is not JSON (it never is) is skipped rather than block the room.
            if let Ok(event) = RawValue::from_string(json.clone()) {
                events.push(event);
            }
            up_to = Some(*position);
        }
        Some(QueuedBatch {
            room: room.to_string(),
            batch,
            up_to: up_to?,
            events,
        })
    }

    /// The body of the POST to `EVENTS_URL`.
    pub fn delivery_body(&self) -> String {
        #[derive(Serialize)]
        struct Delivery<'a> {
            events: &'a [Box<RawValue>],
        }
        serde_json::to_string(&Delivery {
            events: &self.events,
        })
        .unwrap_or_else(|_| r#"{"events":[]}"#.to_string())
    }
}

/// The batch a room has in the queue, kept in its storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub batch: String,
    pub up_to: u64,
    /// When the room sends its events again without word (ms since the epoch).
    pub resend_at: i64,
}

/// The consumer's word to a room about a batch: delivered, or dead-lettered (`dropped`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSettled {
    pub batch: String,
    pub dropped: bool,
}

/// What the queue does with a message after a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Done with it (delivered, or the room was told).
    Ack,
    /// Deliver it again after this many seconds.
    Retry { delay_s: u32 },
    /// Send it to the dead-letter queue.
    DeadLetter,
}

impl Next {
    /// As the consumer's JavaScript applies it (`worker/events.mjs`).
    pub fn to_json(self) -> String {
        match self {
            Next::Ack => r#"{"action":"ack"}"#.to_string(),
            Next::Retry { delay_s } => format!(r#"{{"action":"retry","delaySeconds":{delay_s}}}"#),
            Next::DeadLetter => r#"{"action":"dead_letter"}"#.to_string(),
        }
    }
}

/// Backoff after the `attempt`th failed delivery (1-based): 1, 2, 4, ... s, at most
/// [`MAX_RETRY_DELAY_S`].
pub fn retry_delay_s(attempt: u32) -> u32 {
    1u32.checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(MAX_RETRY_DELAY_S)
}

/// After the `attempt`th delivery got `status` (`None`: no answer in time, or no connection):
/// any 2xx is delivered; anything else is retried until `max_attempts`, then dead-lettered.
pub fn after_delivery(status: Option<u16>, attempt: u32, max_attempts: u32) -> Next {
    match status {
        Some(200..=299) => Next::Ack,
        _ if attempt >= max_attempts => Next::DeadLetter,
        _ => Next::Retry {
            delay_s: retry_delay_s(attempt),
        },
    }
}

/// Whether a queue's messages are dead letters.
pub fn is_dead_letter_queue(queue: &str) -> bool {
    queue.ends_with(DEAD_LETTER_SUFFIX)
}

/// The signature header's value for a delivery body: `t=<unix>,v1=<hex HMAC-SHA256 of
/// "t.body">`, the scheme backends sign their broadcasts with.
pub fn signature(body: &str, secret: &str, now_secs: i64) -> String {
    crate::webhook::sign(body.as_bytes(), secret.as_bytes(), now_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn ann() -> User {
        User {
            id: "ann".into(),
            name: Some("Ann".into()),
            role: None,
        }
    }

    #[test]
    fn events_are_off_without_url_or_secret() {
        assert!(EventsConfig::from_vars(vars(&[])).0.is_none());
        let (config, warnings) =
            EventsConfig::from_vars(vars(&[("EVENTS_URL", "https://b.example/e")]));
        assert!(config.is_none());
        assert_eq!(
            warnings,
            ["EVENTS_URL is not used: EVENTS_SECRET is not set"]
        );
        for url in [
            "ftp://b.example",
            "http://b.example/e",
            "https://u:p@b.example/e",
        ] {
            let (config, warnings) =
                EventsConfig::from_vars(vars(&[("EVENTS_URL", url), ("EVENTS_SECRET", "s3cret")]));
            assert!(config.is_none(), "{url}");
            assert!(!warnings.concat().contains("s3cret"));
        }
        let local = [
            ("EVENTS_URL", "http://127.0.0.1:9/e"),
            ("EVENTS_SECRET", "s"),
        ];
        assert!(EventsConfig::from_vars(vars(&local)).0.is_some());
    }

    #[test]
    fn prefixes_select_rooms_and_default_to_every_room() {
        let on = [
            ("EVENTS_URL", "https://b.example/e"),
            ("EVENTS_SECRET", "s"),
        ];
        let every = EventsConfig::from_vars(vars(&on)).0.unwrap();
        assert!(every.applies_to("anything"));
        assert_eq!(every.max_attempts, DEFAULT_MAX_ATTEMPTS);
        let some = EventsConfig::from_vars(vars(&[
            on[0],
            on[1],
            ("EVENTS_PREFIXES", " support:, ,dispute:"),
            ("EVENTS_MAX_ATTEMPTS", "500"),
        ]))
        .0
        .unwrap();
        assert!(some.applies_to("support:1") && some.applies_to("dispute:9"));
        assert!(!some.applies_to("chat:1") && !some.applies_to("user:ann"));
        assert_eq!(some.max_attempts, MAX_ATTEMPTS_LIMIT);
        assert_eq!(every.timeout_ms, DEFAULT_TIMEOUT_MS);
        let short = EventsConfig::from_vars(vars(&[on[0], on[1], ("EVENTS_TIMEOUT_MS", "5")]));
        assert_eq!(short.0.unwrap().timeout_ms, MIN_TIMEOUT_MS);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_then_dead_letters() {
        let delays: Vec<u32> = (1..=11).map(retry_delay_s).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(retry_delay_s(40), MAX_RETRY_DELAY_S);
        assert_eq!(after_delivery(Some(204), 1, 3), Next::Ack);
        assert_eq!(after_delivery(Some(200), 3, 3), Next::Ack);
        assert_eq!(after_delivery(Some(500), 1, 3), Next::Retry { delay_s: 1 });
        assert_eq!(after_delivery(None, 2, 3), Next::Retry { delay_s: 2 });
        assert_eq!(after_delivery(Some(302), 2, 3), Next::Retry { delay_s: 2 });
        assert_eq!(after_delivery(Some(400), 3, 3), Next::DeadLetter);
        assert_eq!(
            Next::Retry { delay_s: 4 }.to_json(),
            r#"{"action":"retry","delaySeconds":4}"#
        );
    }

    #[test]
    fn a_resend_waits_out_the_whole_retry_schedule() {
        let config = |attempts: &str| {
            EventsConfig::from_vars(vars(&[
                ("EVENTS_URL", "https://b.example/e"),
                ("EVENTS_SECRET", "s"),
                ("EVENTS_MAX_ATTEMPTS", attempts),
            ]))
            .0
            .unwrap()
        };
        // 4 attempts: backoffs 1 + 2 + 4 s, 4 timeouts of 10 s, 60 s slack.
        assert_eq!(config("4").resend_after_ms(), 7_000 + 40_000 + 60_000);
        assert_eq!(config("1").resend_after_ms(), 10_000 + 60_000);
    }

    #[test]
    fn events_carry_id_type_room_seq_ts_user_and_the_message() {
        let frame = r#"{"type":"message","seq":7,"data":{"text":"hi"}}"#;
        let json = message_created(
            "e1",
            "chat:1",
            7,
            "2026-12-04T10:00:00.000Z",
            Some(&ann()),
            frame,
        )
        .unwrap();
        let event: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(event["id"], "e1");
        assert_eq!(event["type"], "message.created");
        assert_eq!(event["room"], "chat:1");
        assert_eq!(event["seq"], 7);
        assert_eq!(event["ts"], "2026-12-04T10:00:00.000Z");
        assert_eq!(event["user"]["id"], "ann");
        assert_eq!(event["message"]["data"]["text"], "hi");
        assert!(event.get("message_omitted").is_none());

        let backend = message_created("e2", "r", 1, "t", None, frame).unwrap();
        assert!(backend.contains(r#""user":null"#));

        let big = format!(r#"{{"data":"{}"}}"#, "x".repeat(MAX_MESSAGE_IN_EVENT));
        let omitted: Value =
            serde_json::from_str(&message_created("e3", "r", 2, "t", None, &big).unwrap()).unwrap();
        assert!(omitted.get("message").is_none());
        assert_eq!(omitted["message_omitted"], true);

        let left: Value =
            serde_json::from_str(&presence_left("e4", "r", "t2", &ann(), "t1").unwrap()).unwrap();
        assert_eq!(left["type"], "presence.left");
        assert_eq!(left["last_seen"], "t1");
        assert!(left.get("seq").is_none());
        let joined = presence_joined("e5", "r", "t", &ann()).unwrap();
        assert!(joined.contains(r#""type":"presence.joined""#));
        let marker = ReadMarker {
            user: ann(),
            seq: 5,
            at: "t3".into(),
        };
        let read: Value = serde_json::from_str(&read_updated("e6", "r", &marker).unwrap()).unwrap();
        assert_eq!(
            (read["type"].as_str(), read["seq"].as_u64()),
            (Some("read.updated"), Some(5))
        );
        assert_eq!(read["ts"], "t3");
        assert!(
            read.get("ref_seq").is_none(),
            "only edits and deletes name one"
        );
    }

    #[test]
    fn an_unread_notice_carries_the_streak_and_its_newest_message_when_kept() {
        let frame = r#"{"type":"message","seq":9,"data":{"text":"hi"}}"#;
        let streak = UnreadStreak {
            seq: 7,
            unread: 3,
            newest_frame: Some(frame),
        };
        let told: Value =
            serde_json::from_str(&message_unread("e7", "r", "t", &ann(), &streak).unwrap())
                .unwrap();
        assert_eq!(told["type"], "message.unread");
        assert_eq!(
            (told["seq"].as_u64(), told["unread"].as_u64()),
            (Some(7), Some(3))
        );
        assert_eq!(told["user"]["id"], "ann");
        assert_eq!(told["message"]["seq"], 9);
        assert!(told.get("message_omitted").is_none());
        let dropped_body = UnreadStreak {
            newest_frame: None,
            ..streak
        };
        let told: Value =
            serde_json::from_str(&message_unread("e8", "r", "t", &ann(), &dropped_body).unwrap())
                .unwrap();
        assert_eq!(told["message_omitted"], true);
        assert!(told.get("message").is_none());
        assert_eq!(told["unread"], 3);
    }

    #[test]
    fn edits_and_deletes_carry_their_record_and_the_seq_they_changed() {
        let record =
            r#"{"type":"message","seq":9,"event":"message.edited","data":"new","ref_seq":4}"#;
        for (deleted, kind) in [(false, "message.edited"), (true, "message.deleted")] {
            let json = message_changed("e7", "r", deleted, 9, 4, "t", &ann(), record).unwrap();
            let event: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(
                (&event["type"], &event["seq"], &event["ref_seq"]),
                (&Value::from(kind), &Value::from(9), &Value::from(4))
            );
            assert_eq!(event["user"]["id"], "ann");
            assert_eq!(event["message"]["data"], "new");
        }
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes_and_take_at_least_one() {
        let small: Vec<(u64, String)> = (1..=150).map(|n| (n, format!(r#"{{"n":{n}}}"#))).collect();
        let batch = QueuedBatch::from_rows("r", "b1".into(), &small).unwrap();
        assert_eq!((batch.events.len(), batch.up_to), (MAX_BATCH_EVENTS, 100));
        assert_eq!(
            batch.delivery_body(),
            format!(
                r#"{{"events":[{}]}}"#,
                (1..=100)
                    .map(|n| format!(r#"{{"n":{n}}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        );

        let big = |n: u64| (n, format!(r#"{{"x":"{}"}}"#, "y".repeat(50_000)));
        let rows = vec![big(4), big(5), big(6)];
        let batch = QueuedBatch::from_rows("r", "b2".into(), &rows).unwrap();
        assert_eq!((batch.events.len(), batch.up_to), (2, 5));
        assert!(serde_json::to_string(&batch).unwrap().len() < 128_000);

        let huge = vec![(9, format!(r#""{}""#, "z".repeat(MAX_BATCH_BYTES)))];
        assert_eq!(
            QueuedBatch::from_rows("r", "b3".into(), &huge)
                .unwrap()
                .up_to,
            9
        );
        assert!(QueuedBatch::from_rows("r", "b4".into(), &[]).is_none());
    }

    #[test]
    fn deliveries_are_signed_like_backend_broadcasts() {
        let body = r#"{"events":[]}"#;
        let header = signature(body, "sekrit", 1_700_000_000);
        // The reference HMAC, computed apart from the relay's code.
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"sekrit").unwrap();
        mac.update(format!("1700000000.{body}").as_bytes());
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(is_dead_letter_queue("edge-relay-events-dlq"));
        assert!(!is_dead_letter_queue("edge-relay-events"));
    }
}
