//! The before-publish hook (`PUBLISH_HOOK_URL`): its settings, the signed call's body, how the
//! backend's answer is read and what an unusable one means (`PUBLISH_HOOK_FAIL`), and the
//! queue that holds users' publishes (and edits, which add content too) while they wait for
//! their answers. Pure: the room machine
//! decides with it (`room_machine/publish_hook.rs`) and the runtime makes the call
//! (`runtime/publish_hook.rs`).
//!
//! Order: each origin (a socket, or one HTTP request) has a FIFO of pending publishes. Their
//! calls run at the same time, but a publish is committed or refused only once every earlier
//! one of its origin was, so a slow answer holds back the later publishes of its socket and
//! nobody else's.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::auth::User;
use crate::error::{ErrorCode, RelayError};
use crate::room_prefixes::RoomPrefixes;
use crate::signed_target::SignedTarget;

/// How long a call waits for the answer unless `PUBLISH_HOOK_TIMEOUT_MS` says (50 ms to 10 s):
/// a user waits this long for their ack when the backend hangs.
pub const DEFAULT_TIMEOUT_MS: u32 = 500;
const MIN_TIMEOUT_MS: u32 = 50;
const MAX_TIMEOUT_MS: u32 = 10_000;
/// Publishes of one socket waiting for the hook; one more is refused (`rate_limited`).
pub const MAX_PENDING_PER_ORIGIN: usize = 32;
/// Publishes of one user (all their sockets and HTTP requests) waiting for the hook.
pub const MAX_PENDING_PER_USER: usize = 64;
/// Publishes of the whole room waiting for the hook.
pub const MAX_PENDING_PER_ROOM: usize = 4_096;
/// The longest `reason` passed on to the publisher (longer ones are cut).
pub const MAX_REASON_CHARS: usize = 256;
/// Bytes of an answer beyond the replaced data's limit (the JSON around it).
pub const ANSWER_SLACK_BYTES: usize = 4_096;
/// The reason a publish is refused with when the hook gave no usable answer and the room
/// fails closed.
pub const UNAVAILABLE_REASON: &str = "hook unavailable";
/// Room-name prefixes `PUBLISH_HOOK_PREFIXES` may list.
const MAX_PREFIXES: usize = 64;

/// What happens to a publish when the hook does not answer usably (timeout, no connection,
/// a non-2xx status, a malformed answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Accepted as sent.
    Open,
    /// Refused with `rejected` and the reason [`UNAVAILABLE_REASON`]: nothing unchecked gets in.
    Closed,
}

/// `PUBLISH_HOOK_URL`, `PUBLISH_HOOK_SECRET`, `PUBLISH_HOOK_PREFIXES`, `PUBLISH_HOOK_TIMEOUT_MS`,
/// `PUBLISH_HOOK_FAIL`.
#[derive(Clone)]
pub struct HookConfig {
    /// `None` when `PUBLISH_HOOK_URL` is set but cannot be used (not https, or no secret): the
    /// hooked rooms then get no answer, and the fail mode decides (closed by default), so a
    /// configuration mistake never lets unchecked publishes through silently.
    pub target: Option<SignedTarget>,
    /// Rooms whose names start with one of these are hooked; empty: every room.
    prefixes: RoomPrefixes,
    pub timeout_ms: u32,
    pub fail: FailMode,
}

impl HookConfig {
    /// The settings when `PUBLISH_HOOK_URL` is set, and what was set but not used, for the log
    /// (never a secret's value).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> (Option<HookConfig>, Vec<String>) {
        let text = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut warnings = Vec::new();
        let target = SignedTarget::from_vars(&text, "PUBLISH_HOOK_URL", "PUBLISH_HOOK_SECRET");
        if matches!(target, Ok(None)) {
            return (None, warnings);
        }
        let fail = match text("PUBLISH_HOOK_FAIL").as_deref() {
            None | Some("closed") => FailMode::Closed,
            Some("open") => FailMode::Open,
            Some(_) => {
                warnings
                    .push("PUBLISH_HOOK_FAIL must be open or closed; closed is used".to_string());
                FailMode::Closed
            }
        };
        let target = target.unwrap_or_else(|why| {
            let consequence = match fail {
                FailMode::Closed => "publishes in hooked rooms are refused",
                FailMode::Open => "publishes in hooked rooms are accepted unchecked",
            };
            warnings.push(format!("{why}; {consequence}"));
            None
        });
        let (prefixes, ignored) =
            RoomPrefixes::parse(text("PUBLISH_HOOK_PREFIXES").as_deref(), MAX_PREFIXES);
        warnings.extend(RoomPrefixes::warning(
            "PUBLISH_HOOK_PREFIXES",
            ignored,
            MAX_PREFIXES,
        ));
        let timeout_ms = text("PUBLISH_HOOK_TIMEOUT_MS")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(DEFAULT_TIMEOUT_MS)
            .clamp(MIN_TIMEOUT_MS, MAX_TIMEOUT_MS);
        let config = HookConfig {
            target,
            prefixes,
            timeout_ms,
            fail,
        };
        (Some(config), warnings)
    }

    /// Whether `room`'s user publishes go through the hook.
    pub fn applies_to(&self, room: &str) -> bool {
        self.prefixes.pick_or_all(room)
    }

    /// What a hooked room needs to decide (the URL and secret stay with the runtime).
    pub fn policy(&self, max_data_bytes: usize) -> HookPolicy {
        HookPolicy {
            fail: self.fail,
            timeout_ms: self.timeout_ms,
            max_data_bytes,
        }
    }
}

/// A hooked room's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookPolicy {
    pub fail: FailMode,
    pub timeout_ms: u32,
    /// The largest replaced `data` (its JSON), the limit a publish's frame has.
    pub max_data_bytes: usize,
}

impl HookPolicy {
    /// The most bytes of an answer worth reading.
    pub fn max_answer_bytes(&self) -> usize {
        self.max_data_bytes + ANSWER_SLACK_BYTES
    }

    /// What happens to a publish given the hook's answer ([`read_answer`]); an unusable
    /// answer (`Err`, with why) goes by the fail mode.
    pub fn decide(&self, answer: Result<Verdict, &'static str>) -> Verdict {
        match (answer, self.fail) {
            (Ok(verdict), _) => verdict,
            (Err(_), FailMode::Open) => Verdict::Accept,
            (Err(_), FailMode::Closed) => Verdict::Reject(UNAVAILABLE_REASON.to_string()),
        }
    }
}

/// What a hook call asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// A new message.
    Publish,
    /// New data for the message at `ref_seq`: a harmless message must not become a rejected
    /// one by an edit.
    Edit { ref_seq: u64 },
}

/// The body of a hook call.
#[derive(Serialize)]
struct HookRequest<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ref_seq: Option<u64>,
    room: &'a str,
    user: &'a User,
    event: &'a str,
    data: &'a RawValue,
    cid: Option<&'a str>,
}

/// `{"kind","room","user","event","data","cid"}`: what the hook is asked about. `kind` is
/// `publish`, or `edit` with `ref_seq` (the message edited, whose `event` it is); `cid` is
/// null for an HTTP request without one.
pub fn request_body(
    asked: Asked,
    room: &str,
    user: &User,
    event: &str,
    data: &RawValue,
    cid: Option<&str>,
) -> String {
    let (kind, ref_seq) = match asked {
        Asked::Publish => ("publish", None),
        Asked::Edit { ref_seq } => ("edit", Some(ref_seq)),
    };
    let request = HookRequest {
        kind,
        ref_seq,
        room,
        user,
        event,
        data,
        cid,
    };
    serde_json::to_string(&request).unwrap_or_default()
}

/// What the hook decided about a publish.
#[derive(Debug, Clone)]
pub enum Verdict {
    Accept,
    /// Refused with this reason: nothing is stored or broadcast.
    Reject(String),
    /// Stored and broadcast with this `data` instead.
    Replace(Box<RawValue>),
}

/// Replacements compare by their JSON text.
impl PartialEq for Verdict {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Verdict::Accept, Verdict::Accept) => true,
            (Verdict::Reject(a), Verdict::Reject(b)) => a == b,
            (Verdict::Replace(a), Verdict::Replace(b)) => a.get() == b.get(),
            _ => false,
        }
    }
}

impl Verdict {
    /// The error a rejected publish is answered with.
    pub fn rejection(reason: &str) -> RelayError {
        RelayError::new(ErrorCode::Rejected, reason)
    }
}

#[derive(Deserialize)]
struct Answer {
    action: String,
    #[serde(default)]
    reason: Option<String>,
    /// `Some` whenever the answer has `data`, `null` included (a replace may blank a message).
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Reads the hook's answer: `status` is the HTTP status (`None` without an answer in time),
/// `body` its text. `Err` says why it cannot be used (for the log; never the body itself).
pub fn read_answer(
    status: Option<u16>,
    body: &str,
    max_data_bytes: usize,
) -> Result<Verdict, &'static str> {
    let status = status.ok_or("no answer in time")?;
    if !(200..300).contains(&status) {
        return Err("a status other than 2xx");
    }
    let answer: Answer = serde_json::from_str(body).map_err(|_| "not an answer object")?;
    match answer.action.as_str() {
        "accept" => Ok(Verdict::Accept),
        "reject" => {
            let reason: String = answer
                .reason
                .as_deref()
                .unwrap_or("rejected")
                .chars()
                .take(MAX_REASON_CHARS)
                .collect();
            Ok(Verdict::Reject(reason))
        }
        "replace" => {
            let data = answer.data.ok_or("a replace without data")?;
            if data.get().len() > max_data_bytes {
                return Err("a replacement larger than a publish may be");
            }
            Ok(Verdict::Replace(data))
        }
        _ => Err("an unknown action"),
    }
}

/// One pending publish of an origin.
#[derive(Debug)]
struct Entry<T> {
    ticket: u64,
    user: String,
    item: T,
    verdict: Option<Verdict>,
}

/// Publishes waiting for the hook, in a FIFO per origin, bounded per origin, per user and per
/// room. `T` is what the room needs to commit one.
#[derive(Debug)]
pub struct Pending<T> {
    next_ticket: u64,
    origins: HashMap<String, VecDeque<Entry<T>>>,
    /// The origin of each pending ticket.
    tickets: HashMap<u64, String>,
    per_user: HashMap<String, usize>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            next_ticket: 1,
            origins: HashMap::new(),
            tickets: HashMap::new(),
            per_user: HashMap::new(),
        }
    }
}

impl<T> Pending<T> {
    /// Queues a publish behind its origin's earlier ones (`None`: an origin of its own, e.g. an
    /// HTTP request); its ticket, or the refusal when a bound is reached (`retry_after_ms`:
    /// about when there is room again).
    pub fn add(
        &mut self,
        origin: Option<&str>,
        user: &str,
        item: T,
        retry_after_ms: u64,
    ) -> Result<u64, RelayError> {
        let ticket = self.next_ticket;
        // Socket origins are connection ids (hex): `#<ticket>` is no socket's.
        let origin = origin.map_or_else(|| format!("#{ticket}"), str::to_string);
        let origin = origin.as_str();
        let origin_len = self.origins.get(origin).map_or(0, VecDeque::len);
        let user_len = self.per_user.get(user).copied().unwrap_or(0);
        if origin_len >= MAX_PENDING_PER_ORIGIN
            || user_len >= MAX_PENDING_PER_USER
            || self.tickets.len() >= MAX_PENDING_PER_ROOM
        {
            return Err(RelayError {
                retry_after_ms: Some(retry_after_ms),
                ..RelayError::new(
                    ErrorCode::RateLimited,
                    "too many publishes waiting for the publish hook",
                )
            });
        }
        self.next_ticket += 1;
        self.origins
            .entry(origin.to_string())
            .or_default()
            .push_back(Entry {
                ticket,
                user: user.to_string(),
                item,
                verdict: None,
            });
        self.tickets.insert(ticket, origin.to_string());
        *self.per_user.entry(user.to_string()).or_default() += 1;
        Ok(ticket)
    }

    /// Records a ticket's verdict and returns the publishes now due, in their origin's order:
    /// this one and those after it that were answered already, or nothing while an earlier one
    /// still waits. An unknown ticket (its origin gone) returns nothing.
    pub fn answered(&mut self, ticket: u64, verdict: Verdict) -> Vec<(T, Verdict)> {
        let Some(origin) = self.tickets.get(&ticket).cloned() else {
            return Vec::new();
        };
        let Some(queue) = self.origins.get_mut(&origin) else {
            return Vec::new();
        };
        if let Some(entry) = queue.iter_mut().find(|e| e.ticket == ticket) {
            entry.verdict = Some(verdict);
        }
        let mut due = Vec::new();
        while queue.front().is_some_and(|e| e.verdict.is_some()) {
            let Some(Entry {
                ticket,
                user,
                item,
                verdict: Some(verdict),
            }) = queue.pop_front()
            else {
                break;
            };
            self.tickets.remove(&ticket);
            release(&mut self.per_user, &user);
            due.push((item, verdict));
        }
        if queue.is_empty() {
            self.origins.remove(&origin);
        }
        due
    }

    /// Forgets an origin's pending publishes (its socket closed): none of them is committed,
    /// and their answers, when they come, find nothing.
    pub fn drop_origin(&mut self, origin: &str) {
        for entry in self.origins.remove(origin).unwrap_or_default() {
            self.tickets.remove(&entry.ticket);
            release(&mut self.per_user, &entry.user);
        }
    }

    /// Publishes waiting, in the whole room.
    pub fn len(&self) -> usize {
        self.tickets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty()
    }
}

fn release(per_user: &mut HashMap<String, usize>, user: &str) {
    if let Some(count) = per_user.get_mut(user) {
        *count -= 1;
        if *count == 0 {
            per_user.remove(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    #[test]
    fn without_a_url_there_is_no_hook() {
        let (config, warnings) = HookConfig::from_vars(vars(&[("PUBLISH_HOOK_SECRET", "s")]));
        assert!(config.is_none());
        assert!(warnings.is_empty());
    }

    #[test]
    fn defaults_are_every_room_500_ms_and_fail_closed() {
        let (config, warnings) = HookConfig::from_vars(vars(&[
            ("PUBLISH_HOOK_URL", "https://backend.example/hook"),
            ("PUBLISH_HOOK_SECRET", "s3cret"),
        ]));
        let config = config.unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.timeout_ms, 500);
        assert_eq!(config.fail, FailMode::Closed);
        assert!(config.applies_to("anything"));
        let target = config.target.unwrap();
        assert_eq!(target.url, "https://backend.example/hook");
        assert_eq!(target.secret, "s3cret");
    }

    #[test]
    fn prefixes_timeout_and_fail_mode_are_read_and_bounded() {
        let (config, _) = HookConfig::from_vars(vars(&[
            ("PUBLISH_HOOK_URL", "http://127.0.0.1:9/hook"),
            ("PUBLISH_HOOK_SECRET", "s"),
            ("PUBLISH_HOOK_PREFIXES", " support:, dispute: ,,"),
            ("PUBLISH_HOOK_TIMEOUT_MS", "999999"),
            ("PUBLISH_HOOK_FAIL", "open"),
        ]));
        let config = config.unwrap();
        assert!(config.applies_to("support:1") && config.applies_to("dispute:x"));
        assert!(!config.applies_to("chat:1"));
        assert_eq!(config.timeout_ms, MAX_TIMEOUT_MS);
        assert_eq!(config.fail, FailMode::Open);
        let (config, warnings) = HookConfig::from_vars(vars(&[
            ("PUBLISH_HOOK_URL", "https://b.example/h"),
            ("PUBLISH_HOOK_SECRET", "s"),
            ("PUBLISH_HOOK_TIMEOUT_MS", "1"),
            ("PUBLISH_HOOK_FAIL", "sometimes"),
        ]));
        let config = config.unwrap();
        assert_eq!(config.timeout_ms, MIN_TIMEOUT_MS);
        assert_eq!(config.fail, FailMode::Closed);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn an_unusable_url_or_a_missing_secret_leaves_the_rooms_hooked_without_a_target() {
        for pairs in [
            [
                ("PUBLISH_HOOK_URL", "http://backend.example/hook"),
                ("PUBLISH_HOOK_SECRET", "s3cret"),
            ],
            [
                ("PUBLISH_HOOK_URL", "https://user:pw@backend.example/"),
                ("PUBLISH_HOOK_SECRET", "s3cret"),
            ],
            [
                ("PUBLISH_HOOK_URL", "https://backend.example/hook"),
                ("PUBLISH_HOOK_SECRET", ""),
            ],
        ] {
            let (config, warnings) = HookConfig::from_vars(vars(&pairs));
            let config = config.unwrap();
            assert!(config.target.is_none());
            assert_eq!(warnings.len(), 1);
            assert!(warnings[0].contains("refused"), "{warnings:?}");
            assert!(!warnings[0].contains("s3cret"));
        }
    }

    #[test]
    fn the_request_names_kind_room_user_event_data_and_cid() {
        let user = User {
            id: "alice".into(),
            name: Some("Alice".into()),
            role: None,
        };
        let data = raw(r#"{"t":1}"#);
        let body = request_body(
            Asked::Publish,
            "chat:1",
            &user,
            "message",
            &data,
            Some("c1"),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind":"publish","room":"chat:1","user":{"id":"alice","name":"Alice"},
                "event":"message","data":{"t":1},"cid":"c1"})
        );
        let body = request_body(
            Asked::Publish,
            "chat:1",
            &user,
            "message",
            &raw("null"),
            None,
        );
        assert!(body.contains(r#""data":null"#) && body.contains(r#""cid":null"#));
        let edit = Asked::Edit { ref_seq: 7 };
        let body = request_body(edit, "chat:1", &user, "chat", &data, Some("e1"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (&v["kind"], &v["ref_seq"], &v["event"]),
            (&"edit".into(), &7.into(), &"chat".into())
        );
    }

    #[test]
    fn answers_are_read() {
        let read = |body: &str| read_answer(Some(200), body, 100);
        assert_eq!(read(r#"{"action":"accept"}"#), Ok(Verdict::Accept));
        assert_eq!(
            read(r#"{"action":"reject","reason":"no links"}"#),
            Ok(Verdict::Reject("no links".into()))
        );
        assert_eq!(
            read(r#"{"action":"reject"}"#),
            Ok(Verdict::Reject("rejected".into()))
        );
        let long = "x".repeat(1000);
        match read(&format!(r#"{{"action":"reject","reason":"{long}"}}"#)) {
            Ok(Verdict::Reject(reason)) => assert_eq!(reason.chars().count(), MAX_REASON_CHARS),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            read(r#"{"action":"replace","data":{"text":"***"}}"#),
            Ok(Verdict::Replace(raw(r#"{"text":"***"}"#)))
        );
        assert_eq!(
            read(r#"{"action":"replace","data":null}"#),
            Ok(Verdict::Replace(raw("null")))
        );
    }

    #[test]
    fn unusable_answers_say_why() {
        assert!(read_answer(None, "", 100).is_err());
        assert!(read_answer(Some(500), r#"{"action":"accept"}"#, 100).is_err());
        assert!(read_answer(Some(302), r#"{"action":"accept"}"#, 100).is_err());
        for body in [
            "",
            "accept",
            "[]",
            r#"{"action":"allow"}"#,
            r#"{"action":"replace"}"#,
            r#"{"action":1}"#,
            r#"{"action":"reject","reason":7}"#,
        ] {
            assert!(read_answer(Some(200), body, 100).is_err(), "{body}");
        }
    }

    #[test]
    fn a_replacement_is_limited_like_publish_data() {
        let fits = format!(r#"{{"action":"replace","data":"{}"}}"#, "x".repeat(98));
        assert!(matches!(
            read_answer(Some(200), &fits, 100),
            Ok(Verdict::Replace(_))
        ));
        let too_large = format!(r#"{{"action":"replace","data":"{}"}}"#, "x".repeat(99));
        assert_eq!(
            read_answer(Some(200), &too_large, 100),
            Err("a replacement larger than a publish may be")
        );
    }

    #[test]
    fn the_fail_mode_decides_unusable_answers_only() {
        let policy = |fail| HookPolicy {
            fail,
            timeout_ms: 500,
            max_data_bytes: 100,
        };
        let closed = policy(FailMode::Closed);
        let open = policy(FailMode::Open);
        assert_eq!(
            closed.decide(Err("no answer in time")),
            Verdict::Reject(UNAVAILABLE_REASON.into())
        );
        assert_eq!(open.decide(Err("no answer in time")), Verdict::Accept);
        let rejected = Verdict::Reject("no".into());
        assert_eq!(open.decide(Ok(rejected.clone())), rejected);
        assert_eq!(closed.decide(Ok(Verdict::Accept)), Verdict::Accept);
    }

    #[test]
    fn a_later_answer_waits_for_the_earlier_publishes_of_its_origin() {
        let mut pending = Pending::default();
        let a = pending.add(Some("c1"), "alice", "a", 500).unwrap();
        let b = pending.add(Some("c1"), "alice", "b", 500).unwrap();
        let other = pending.add(Some("c2"), "bob", "x", 500).unwrap();
        let c = pending.add(Some("c1"), "alice", "c", 500).unwrap();
        // b and c answer first: held back behind a.
        assert!(pending.answered(c, Verdict::Accept).is_empty());
        assert!(pending.answered(b, Verdict::Reject("no".into())).is_empty());
        // Another origin is not held back by a.
        assert_eq!(
            pending.answered(other, Verdict::Accept),
            [("x", Verdict::Accept)]
        );
        let due = pending.answered(a, Verdict::Accept);
        assert_eq!(
            due,
            [
                ("a", Verdict::Accept),
                ("b", Verdict::Reject("no".into())),
                ("c", Verdict::Accept)
            ]
        );
        assert!(pending.is_empty());
        // A repeated or unknown answer releases nothing.
        assert!(pending.answered(a, Verdict::Accept).is_empty());
    }

    #[test]
    fn pending_publishes_are_bounded_per_origin_and_per_user() {
        let mut pending = Pending::default();
        for _ in 0..MAX_PENDING_PER_ORIGIN {
            pending.add(Some("c1"), "alice", (), 500).unwrap();
        }
        let refused = pending.add(Some("c1"), "alice", (), 500).unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(refused.retry_after_ms, Some(500));
        for _ in MAX_PENDING_PER_ORIGIN..MAX_PENDING_PER_USER {
            pending.add(Some("c2"), "alice", (), 500).unwrap();
        }
        assert!(
            pending.add(Some("c3"), "alice", (), 500).is_err(),
            "user bound"
        );
        pending.add(Some("c3"), "bob", (), 500).unwrap();
        // A closed socket frees its share.
        pending.drop_origin("c1");
        assert_eq!(
            pending.len(),
            MAX_PENDING_PER_USER - MAX_PENDING_PER_ORIGIN + 1
        );
        pending.add(Some("c3"), "alice", (), 500).unwrap();
    }

    #[test]
    fn answers_for_a_dropped_origin_release_nothing() {
        let mut pending = Pending::default();
        let a = pending.add(Some("c1"), "alice", "a", 500).unwrap();
        pending.drop_origin("c1");
        assert!(pending.answered(a, Verdict::Accept).is_empty());
        assert!(pending.is_empty());
    }

    #[test]
    fn the_room_bound_holds_over_every_user() {
        let mut pending = Pending::default();
        for n in 0..MAX_PENDING_PER_ROOM {
            pending
                .add(Some(&format!("c{n}")), &format!("u{n}"), (), 500)
                .unwrap();
        }
        assert!(pending.add(None, "new", (), 500).is_err());
    }
}
