//! The room core: sequencing, idempotent publish and resume planning, over a storage trait.
//!
//! The Durable Object shell owns the sockets; this module decides what is stored and what
//! frames go out, so it runs natively in tests with [`MemoryRoomStore`].

use chrono::{DateTime, SecondsFormat};
use serde_json::value::RawValue;

use crate::auth::User;
use crate::error::{RelayError, RelayResult};
use crate::paging::{Page, SeqRange};
/// Read markers are stored here but defined with the frames that carry them; re-exported so
/// that storage code keeps naming them `room::ReadMarker`.
pub use crate::protocol::ReadMarker;
use crate::protocol::{MessageFrame, Publish, Receipt};

/// Longest replay a reconnecting client is sent; beyond it the room answers `reset`.
pub const MAX_REPLAY_MESSAGES: u64 = 10_000;

/// A message as a room stores it and hands it to the archive (D1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub seq: u64,
    pub id: String,
    pub event: String,
    /// `u:<sub>` for users, `b:` for backends: scopes the idempotency key.
    pub sender_key: String,
    pub cid: Option<String>,
    pub ts: String,
    /// The complete `message` frame, as broadcast and as history returns it.
    pub body: String,
}

/// Read markers the `welcome` frame carries, most recent first.
pub const WELCOME_READS: u32 = 50;

/// The room's own storage (a Durable Object's SQLite in production).
pub trait RoomStore {
    fn last_seq(&self) -> RelayResult<u64>;
    /// The message with this idempotency key, if the room still knows it.
    fn find_by_cid(&self, sender_key: &str, cid: &str) -> RelayResult<Option<Receipt>>;
    /// Stores a new message; `false` (and nothing stored) when its sender already used its cid.
    fn append(&self, message: &StoredMessage) -> RelayResult<bool>;
    /// Rows of `range` whose bodies the room still keeps (see [`SeqRange`]).
    fn page(&self, range: &SeqRange) -> RelayResult<Vec<(u64, String)>>;
    /// The lowest seq whose body the room still keeps (`None` when it keeps none).
    fn oldest_kept_seq(&self) -> RelayResult<Option<u64>>;
    fn read_marker(&self, user_id: &str) -> RelayResult<Option<u64>>;
    /// Stores a user's marker, replacing the earlier one.
    fn save_read(&self, marker: &ReadMarker) -> RelayResult<()>;
    /// The `limit` most recently moved markers, most recent first.
    fn recent_reads(&self, limit: u32) -> RelayResult<Vec<ReadMarker>>;
}

/// Time and identifiers, injected so that tests control them.
pub trait Stamps {
    fn now_ms(&self) -> i64;
    fn new_id(&self) -> String;
}

pub fn rfc3339_ms(now_ms: i64) -> String {
    DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Who publishes: a connected user, or a backend (shown as `from: null`).
#[derive(Debug, Clone, Copy)]
pub enum Sender<'a> {
    User(&'a User),
    Backend,
}

impl Sender<'_> {
    /// The sender's part of the idempotency key.
    pub fn key(&self) -> String {
        match self {
            Sender::User(user) => format!("u:{}", user.id),
            Sender::Backend => "b:".to_string(),
        }
    }

    fn user(&self) -> Option<&User> {
        match self {
            Sender::User(user) => Some(user),
            Sender::Backend => None,
        }
    }
}

/// The result of a publish: a new message to broadcast, or a repeat of an earlier one.
#[derive(Debug)]
pub enum Published {
    New { receipt: Receipt, frame: String },
    Duplicate(Receipt),
}

impl Published {
    pub fn receipt(&self) -> &Receipt {
        match self {
            Published::New { receipt, .. } | Published::Duplicate(receipt) => receipt,
        }
    }
}

/// What a connecting client with `?since=S` is sent before live traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumePlan {
    /// `reset {seq}`: the client cannot resume from S.
    Reset { seq: u64 },
    /// Replay `(since, up_to]`, page by page from the room's storage or the archive.
    Replay { since: u64, up_to: u64 },
}

/// One room's sequencer over its store.
pub struct RoomCore<S> {
    store: S,
    room: String,
    last_seq: u64,
    /// The latest read markers for welcomes, kept until a marker moves: a connect storm then
    /// reads them from storage once, not once per connection.
    welcome_reads: Option<Vec<ReadMarker>>,
}

impl<S: RoomStore> RoomCore<S> {
    pub fn open(store: S, room: String) -> RelayResult<Self> {
        let last_seq = store.last_seq()?;
        Ok(RoomCore {
            store,
            room,
            last_seq,
            welcome_reads: None,
        })
    }

    /// The [`WELCOME_READS`] most recently moved read markers, newest first.
    pub fn welcome_reads(&mut self) -> RelayResult<&[ReadMarker]> {
        if self.welcome_reads.is_none() {
            self.welcome_reads = Some(self.store.recent_reads(WELCOME_READS)?);
        }
        Ok(self.welcome_reads.as_deref().unwrap_or_default())
    }

    pub fn room(&self) -> &str {
        &self.room
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Sequences and stores a publish, or returns the original receipt for a repeated
    /// (sender, cid). The message is committed before this returns.
    pub fn publish(
        &mut self,
        sender: Sender<'_>,
        publish: &Publish,
        stamps: &impl Stamps,
    ) -> RelayResult<Published> {
        let sender_key = sender.key();
        let seq = self.last_seq + 1;
        let id = stamps.new_id();
        let ts = rfc3339_ms(stamps.now_ms());
        let body = message_body(
            &self.room,
            seq,
            &id,
            publish.event_name(),
            &publish.data,
            sender.user(),
            publish.cid.as_deref(),
            &ts,
        )?;
        let stored = StoredMessage {
            seq,
            id,
            event: publish.event_name().to_string(),
            sender_key,
            cid: publish.cid.clone(),
            ts,
            body,
        };
        // Insert first: a repeated cid costs a second statement, a new message only one.
        if !self.store.append(&stored)? {
            let cid = publish.cid.as_deref().unwrap_or_default();
            let original = self
                .store
                .find_by_cid(&stored.sender_key, cid)?
                .ok_or_else(RelayError::internal)?;
            return Ok(Published::Duplicate(Receipt {
                duplicate: true,
                ..original
            }));
        }
        self.last_seq = seq;
        Ok(Published::New {
            receipt: Receipt {
                seq,
                id: stored.id,
                ts: stored.ts,
                duplicate: false,
            },
            frame: stored.body,
        })
    }

    /// Commits a message another module built (the record of an edit or delete, see
    /// [`crate::edits`]) at the next seq; `false` (nothing stored) when its sender already
    /// used its cid.
    pub fn append(&mut self, message: &StoredMessage) -> RelayResult<bool> {
        if message.seq != self.last_seq + 1 {
            return Err(RelayError::internal());
        }
        let appended = self.store.append(message)?;
        if appended {
            self.last_seq = message.seq;
        }
        Ok(appended)
    }

    /// Moves a user's read marker forward; `None` when `seq` is not past the current one.
    pub fn mark_read(
        &mut self,
        user: &User,
        seq: u64,
        stamps: &impl Stamps,
    ) -> RelayResult<Option<ReadMarker>> {
        if seq > self.last_seq {
            return Err(RelayError::bad_request(format!(
                "read seq {seq} is beyond the room's last seq {}",
                self.last_seq
            )));
        }
        if self
            .store
            .read_marker(&user.id)?
            .is_some_and(|current| seq <= current)
        {
            return Ok(None);
        }
        let marker = ReadMarker {
            user: user.clone(),
            seq,
            at: rfc3339_ms(stamps.now_ms()),
        };
        self.store.save_read(&marker)?;
        self.welcome_reads = None;
        Ok(Some(marker))
    }

    /// Decides how a client resuming after `since` catches up.
    pub fn resume_plan(&self, since: u64) -> ResumePlan {
        let last = self.last_seq;
        if since > last || last - since > MAX_REPLAY_MESSAGES {
            return ResumePlan::Reset { seq: last };
        }
        ResumePlan::Replay { since, up_to: last }
    }

    /// The rows of a history page the room can answer from its own storage, and whether
    /// they are enough (otherwise the archive must be asked as well).
    pub fn local_page(&self, range: &SeqRange) -> RelayResult<(Vec<(u64, String)>, bool)> {
        let rows = self.store.page(range)?;
        let oldest_kept = self.store.oldest_kept_seq()?.unwrap_or(self.last_seq + 1);
        let complete = match range.direction {
            crate::paging::Direction::Forward => range.after + 1 >= oldest_kept,
            crate::paging::Direction::Backward => {
                rows.len() >= range.fetch_limit as usize || oldest_kept <= 1
            }
        };
        Ok((rows, complete))
    }
}

/// Serialises a `message` frame once; it is stored, broadcast and returned by history as is.
#[allow(clippy::too_many_arguments)]
pub fn message_body(
    room: &str,
    seq: u64,
    id: &str,
    event: &str,
    data: &RawValue,
    from: Option<&User>,
    cid: Option<&str>,
    ts: &str,
) -> RelayResult<String> {
    serde_json::to_string(&MessageFrame {
        kind: "message",
        room,
        seq,
        id,
        event,
        data,
        from,
        cid,
        ts,
    })
    .map_err(|_| RelayError::internal())
}

/// Builds a page from local and archive rows (see [`crate::paging::assemble`]).
pub fn merge_page(
    range: &SeqRange,
    local: Vec<(u64, String)>,
    archive: Vec<(u64, String)>,
) -> Page {
    let mut rows = local;
    rows.extend(archive);
    crate::paging::assemble(range, rows)
}

/// An in-memory [`RoomStore`] for tests and tools.
#[derive(Default)]
pub struct MemoryRoomStore {
    messages: std::cell::RefCell<Vec<StoredMessage>>,
    reads: std::cell::RefCell<Vec<ReadMarker>>,
    /// Bodies with seq below this are treated as pruned (kept only in the archive).
    pub pruned_below: std::cell::Cell<u64>,
}

impl RoomStore for MemoryRoomStore {
    fn last_seq(&self) -> RelayResult<u64> {
        Ok(self.messages.borrow().last().map_or(0, |m| m.seq))
    }

    fn find_by_cid(&self, sender_key: &str, cid: &str) -> RelayResult<Option<Receipt>> {
        Ok(self
            .messages
            .borrow()
            .iter()
            .find(|m| m.sender_key == sender_key && m.cid.as_deref() == Some(cid))
            .map(|m| Receipt {
                seq: m.seq,
                id: m.id.clone(),
                ts: m.ts.clone(),
                duplicate: false,
            }))
    }

    fn append(&self, message: &StoredMessage) -> RelayResult<bool> {
        let mut messages = self.messages.borrow_mut();
        let repeated = message.cid.is_some()
            && messages
                .iter()
                .any(|m| m.sender_key == message.sender_key && m.cid == message.cid);
        if !repeated {
            messages.push(message.clone());
        }
        Ok(!repeated)
    }

    fn page(&self, range: &SeqRange) -> RelayResult<Vec<(u64, String)>> {
        let floor = self.pruned_below.get();
        let mut rows: Vec<(u64, String)> = self
            .messages
            .borrow()
            .iter()
            .filter(|m| m.seq >= floor && m.seq > range.after && m.seq < range.before)
            .map(|m| (m.seq, m.body.clone()))
            .collect();
        if range.direction == crate::paging::Direction::Backward {
            rows.reverse();
        }
        rows.truncate(range.fetch_limit as usize);
        Ok(rows)
    }

    fn oldest_kept_seq(&self) -> RelayResult<Option<u64>> {
        let floor = self.pruned_below.get();
        Ok(self
            .messages
            .borrow()
            .iter()
            .map(|m| m.seq)
            .find(|seq| *seq >= floor))
    }

    fn read_marker(&self, user_id: &str) -> RelayResult<Option<u64>> {
        Ok(self
            .reads
            .borrow()
            .iter()
            .find(|r| r.user.id == user_id)
            .map(|r| r.seq))
    }

    fn save_read(&self, marker: &ReadMarker) -> RelayResult<()> {
        let mut reads = self.reads.borrow_mut();
        reads.retain(|r| r.user.id != marker.user.id);
        reads.insert(0, marker.clone());
        Ok(())
    }

    fn recent_reads(&self, limit: u32) -> RelayResult<Vec<ReadMarker>> {
        Ok(self
            .reads
            .borrow()
            .iter()
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::HistoryQuery;
    use std::cell::Cell;

    struct FakeStamps {
        now_ms: i64,
        next: Cell<u32>,
    }

    impl Stamps for FakeStamps {
        fn now_ms(&self) -> i64 {
            self.now_ms
        }
        fn new_id(&self) -> String {
            self.next.set(self.next.get() + 1);
            format!("m{}", self.next.get())
        }
    }

    fn stamps() -> FakeStamps {
        FakeStamps {
            now_ms: 1_800_000_000_123,
            next: Cell::new(0),
        }
    }

    fn publish(cid: &str, data: &str) -> Publish {
        serde_json::from_str(&format!(r#"{{"cid":"{cid}","data":{data}}}"#)).unwrap()
    }

    fn alice() -> User {
        User {
            id: "alice".into(),
            name: Some("Alice".into()),
            role: None,
        }
    }

    fn room() -> RoomCore<MemoryRoomStore> {
        RoomCore::open(MemoryRoomStore::default(), "chat:1".into()).unwrap()
    }

    #[test]
    fn publishes_get_consecutive_seqs_and_a_full_frame() {
        let mut room = room();
        let s = stamps();
        let user = alice();
        for expected in 1..=3 {
            let out = room
                .publish(
                    Sender::User(&user),
                    &publish(&format!("c{expected}"), "1"),
                    &s,
                )
                .unwrap();
            assert_eq!(out.receipt().seq, expected);
            assert!(!out.receipt().duplicate);
        }
        assert_eq!(room.last_seq(), 3);
        let out = room
            .publish(Sender::User(&user), &publish("c4", r#"{"text":"hi"}"#), &s)
            .unwrap();
        let Published::New { frame, receipt } = out else {
            panic!("expected new")
        };
        let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["room"], "chat:1");
        assert_eq!(v["seq"], 4);
        assert_eq!(v["id"], receipt.id);
        assert_eq!(v["ts"], "2027-01-15T08:00:00.123Z");
        assert_eq!(v["from"]["name"], "Alice");
        assert_eq!(v["cid"], "c4");
        assert_eq!(v["data"]["text"], "hi");
        assert_eq!(v["event"], "message");
    }

    #[test]
    fn repeated_cid_returns_the_original_without_a_new_seq() {
        let mut room = room();
        let s = stamps();
        let user = alice();
        let first = room
            .publish(Sender::User(&user), &publish("same", "1"), &s)
            .unwrap();
        let again = room
            .publish(Sender::User(&user), &publish("same", "2"), &s)
            .unwrap();
        assert!(matches!(again, Published::Duplicate(_)));
        assert!(again.receipt().duplicate);
        assert_eq!(again.receipt().seq, first.receipt().seq);
        assert_eq!(again.receipt().id, first.receipt().id);
        assert_eq!(room.last_seq(), 1);
        let bob = User {
            id: "bob".into(),
            name: None,
            role: None,
        };
        let other = room
            .publish(Sender::User(&bob), &publish("same", "3"), &s)
            .unwrap();
        assert_eq!(other.receipt().seq, 2, "cids are scoped per sender");
        let backend = room
            .publish(Sender::Backend, &publish("same", "4"), &s)
            .unwrap();
        assert_eq!(backend.receipt().seq, 3);
    }

    #[test]
    fn sequence_survives_reopening_the_store() {
        let mut room = room();
        let s = stamps();
        room.publish(Sender::Backend, &publish("a", "1"), &s)
            .unwrap();
        room.publish(Sender::Backend, &publish("b", "1"), &s)
            .unwrap();
        let RoomCore { store, .. } = room;
        let reopened = RoomCore::open(store, "chat:1".into()).unwrap();
        assert_eq!(reopened.last_seq(), 2);
    }

    #[test]
    fn resume_plans() {
        let mut room = room();
        let s = stamps();
        for i in 0..10 {
            room.publish(Sender::Backend, &publish(&format!("c{i}"), "1"), &s)
                .unwrap();
        }
        assert_eq!(room.resume_plan(11), ResumePlan::Reset { seq: 10 });
        assert_eq!(
            room.resume_plan(4),
            ResumePlan::Replay {
                since: 4,
                up_to: 10
            }
        );
        assert_eq!(
            room.resume_plan(10),
            ResumePlan::Replay {
                since: 10,
                up_to: 10
            }
        );
    }

    #[test]
    fn read_markers_only_move_forward() {
        let mut room = room();
        let s = stamps();
        let user = alice();
        for i in 0..5 {
            room.publish(Sender::Backend, &publish(&format!("c{i}"), "1"), &s)
                .unwrap();
        }
        let marker = room.mark_read(&user, 3, &s).unwrap().expect("moved");
        assert_eq!(
            (marker.seq, marker.at.as_str()),
            (3, "2027-01-15T08:00:00.123Z")
        );
        assert!(
            room.mark_read(&user, 3, &s).unwrap().is_none(),
            "equal changes nothing"
        );
        assert!(
            room.mark_read(&user, 2, &s).unwrap().is_none(),
            "lower changes nothing"
        );
        assert_eq!(room.mark_read(&user, 5, &s).unwrap().unwrap().seq, 5);
        let err = room.mark_read(&user, 6, &s).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::BadRequest);
        let bob = User {
            id: "bob".into(),
            name: None,
            role: None,
        };
        assert_eq!(room.welcome_reads().unwrap().len(), 1, "alice's marker");
        room.mark_read(&bob, 1, &s).unwrap();
        let recent = room.welcome_reads().unwrap();
        assert_eq!(
            recent
                .iter()
                .map(|r| (r.user.id.as_str(), r.seq))
                .collect::<Vec<_>>(),
            vec![("bob", 1), ("alice", 5)]
        );
    }

    #[test]
    fn local_pages_know_when_the_archive_is_needed() {
        let mut room = room();
        let s = stamps();
        for i in 0..20 {
            room.publish(Sender::Backend, &publish(&format!("c{i}"), "1"), &s)
                .unwrap();
        }
        let range = |pairs: &[(&str, &str)]| {
            HistoryQuery::from_pairs(pairs.iter().copied())
                .unwrap()
                .range()
        };
        assert!(room.local_page(&range(&[("after", "0")])).unwrap().1);
        room.store().pruned_below.set(11);
        assert!(!room.local_page(&range(&[("after", "0")])).unwrap().1);
        assert!(room.local_page(&range(&[("after", "10")])).unwrap().1);
        assert!(room.local_page(&range(&[("limit", "5")])).unwrap().1);
        assert!(!room.local_page(&range(&[("limit", "50")])).unwrap().1);
    }
}
