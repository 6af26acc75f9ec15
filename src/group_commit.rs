//! Group commit: when a room's frames are handled, so that frames arriving while the room's
//! last write is being committed share the next SQLite transaction instead of one each.
//!
//! Each event's writes are one implicit transaction, committed (one `fsync` locally) after the
//! event, and the runtime holds the event's outgoing frames (the acks) until that commit is
//! durable. A frame that arrives while no watched commit is in flight is handled at once. One
//! that arrives while a watched commit is in flight waits in a bounded queue; when the commit
//! is durable the whole queue is handled in one turn (one transaction, one commit). Frames are
//! handled in arrival order, whether at once or from the queue, so each socket's order, its
//! acks' seq order and dedup are those of handling every frame at once.
//!
//! Watching a commit costs an entry into the isolate when it ends (and a frame that comes
//! before that entry waits for it), so a room watches only once it is busy: when a frame comes
//! from another socket within [`BUSY_GAP_MS`] of the last one handled. A quiet room's frames,
//! and those of one socket that waits for each ack before it publishes again, are handled at
//! once and nothing else happens.
//! This module only decides; the room object keeps the frames and watches the commit.

use std::collections::VecDeque;

/// Frames queued at most while a commit is in flight (a full queue is handled at once).
pub const MAX_QUEUED_FRAMES: usize = 512;
/// Bytes of queued frames at most (a full queue is handled at once).
pub const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;

/// A frame that comes from another socket within this many ms of the last frame handled makes
/// the room watch the commit of its writes (a local commit takes well under this; after a gap
/// longer than a commit there was no commit in flight to share).
pub const BUSY_GAP_MS: i64 = 10;

/// How long queued frames wait for a commit at most: past it they are handled anyway (only
/// the grouping is lost; their acks still wait for durability).
pub const MAX_COMMIT_WAIT_MS: u32 = 1000;

/// What to do with a frame that just arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival<T> {
    /// Handle these frames now, in order; with `watch`, then watch the commit of their writes
    /// and call [`GroupCommit::committed`] when it is durable.
    Handle { frames: Vec<T>, watch: bool },
    /// Queued until the watched commit is durable.
    Queued,
}

/// A room's group-commit state: whether a commit is being watched and the frames waiting for
/// it. `S` tells frames' sources (sockets) apart.
#[derive(Debug)]
pub struct GroupCommit<T, S> {
    commit_in_flight: bool,
    /// The source of the last frame handled (`None` after a group: any source differs) and
    /// when it was handled (ms since the epoch).
    last_handled: Option<(Option<S>, i64)>,
    queue: VecDeque<(T, usize)>,
    queued_bytes: usize,
    max_frames: usize,
    max_bytes: usize,
}

impl<T, S: PartialEq> Default for GroupCommit<T, S> {
    fn default() -> Self {
        GroupCommit::with_bounds(MAX_QUEUED_FRAMES, MAX_QUEUED_BYTES)
    }
}

impl<T, S: PartialEq> GroupCommit<T, S> {
    /// A group commit that queues at most `max_frames` frames and `max_bytes` bytes.
    pub fn with_bounds(max_frames: usize, max_bytes: usize) -> Self {
        GroupCommit {
            commit_in_flight: false,
            last_handled: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
            max_frames: max_frames.max(1),
            max_bytes,
        }
    }

    /// A frame of `bytes` bytes arrived from `source` at `now_ms`.
    pub fn arrive(&mut self, frame: T, source: S, bytes: usize, now_ms: i64) -> Arrival<T> {
        if !self.commit_in_flight {
            let busy = self.last_handled.as_ref().is_some_and(|(last, at)| {
                now_ms.saturating_sub(*at) < BUSY_GAP_MS && last.as_ref() != Some(&source)
            });
            self.commit_in_flight = busy;
            self.last_handled = Some((Some(source), now_ms));
            return Arrival::Handle {
                frames: vec![frame],
                watch: busy,
            };
        }
        self.queue.push_back((frame, bytes));
        self.queued_bytes += bytes;
        if self.queue.len() >= self.max_frames || self.queued_bytes >= self.max_bytes {
            // The commit in flight stays watched; these share the event's own.
            self.last_handled = Some((None, now_ms));
            return Arrival::Handle {
                frames: self.take_queue(),
                watch: false,
            };
        }
        Arrival::Queued
    }

    /// The watched commit is durable, failed or overdue ([`MAX_COMMIT_WAIT_MS`]) at `now_ms`:
    /// the frames are handled either way (after a failure the runtime resets the object).
    /// Returns the frames to handle now, in one turn; when there are any, their commit is the
    /// one in flight and is to be watched.
    pub fn committed(&mut self, now_ms: i64) -> Vec<T> {
        let frames = self.take_queue();
        self.commit_in_flight = !frames.is_empty();
        if self.commit_in_flight {
            self.last_handled = Some((None, now_ms));
        }
        frames
    }

    /// Takes the queued frames for an event that must come after them (a close, a request,
    /// the alarm): they arrived first, so they are handled first, in that event's turn.
    pub fn take_before_event(&mut self, now_ms: i64) -> Vec<T> {
        if !self.queue.is_empty() {
            self.last_handled = Some((None, now_ms));
        }
        self.take_queue()
    }

    fn take_queue(&mut self) -> Vec<T> {
        self.queued_bytes = 0;
        self.queue.drain(..).map(|(frame, _)| frame).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(frames: Vec<i32>) -> Arrival<i32> {
        Arrival::Handle {
            frames,
            watch: false,
        }
    }

    fn watched(frames: Vec<i32>) -> Arrival<i32> {
        Arrival::Handle {
            frames,
            watch: true,
        }
    }

    /// Frames are numbered socket * 10 + n: frame 21 is socket 2's first.
    fn socket(frame: i32) -> i32 {
        frame / 10
    }

    fn arrive(group: &mut GroupCommit<i32, i32>, frame: i32, bytes: usize, t: i64) -> Arrival<i32> {
        group.arrive(frame, socket(frame), bytes, t)
    }

    /// A group commit that is watching the commit of frame 0, handled at `t`.
    fn busy_at(t: i64) -> GroupCommit<i32, i32> {
        let mut group = GroupCommit::default();
        assert_eq!(arrive(&mut group, 91, 1, t - 1), now(vec![91]));
        assert_eq!(arrive(&mut group, 0, 1, t), watched(vec![0]));
        group
    }

    #[test]
    fn a_quiet_room_handles_every_frame_at_once_and_watches_nothing() {
        let mut group = GroupCommit::default();
        for i in 0..5 {
            let t = 1_000 + i64::from(i) * BUSY_GAP_MS;
            let frame = i * 10 + 1;
            assert_eq!(arrive(&mut group, frame, 10, t), now(vec![frame]));
        }
    }

    #[test]
    fn one_socket_that_waits_for_its_acks_is_never_watched() {
        let mut group = GroupCommit::default();
        for frame in 11..20 {
            assert_eq!(
                arrive(&mut group, frame, 10, 1_000 + i64::from(frame)),
                now(vec![frame])
            );
        }
    }

    #[test]
    fn a_frame_soon_after_another_is_handled_at_once_and_its_commit_watched() {
        let mut group = GroupCommit::default();
        assert_eq!(arrive(&mut group, 11, 10, 1_000), now(vec![11]));
        assert_eq!(
            arrive(&mut group, 21, 10, 1_000 + BUSY_GAP_MS - 1),
            watched(vec![21])
        );
        // Durable with nothing waiting: the next frame is handled at once again.
        assert!(group.committed(1_012).is_empty());
        assert_eq!(arrive(&mut group, 31, 10, 1_015), watched(vec![31]));
        assert!(group.committed(1_016).is_empty());
        assert_eq!(arrive(&mut group, 41, 10, 2_000), now(vec![41]));
    }

    #[test]
    fn frames_during_a_watched_commit_wait_for_it_and_share_the_next_in_order() {
        let mut group = busy_at(1_000);
        assert_eq!(arrive(&mut group, 11, 10, 1_001), Arrival::Queued);
        assert_eq!(arrive(&mut group, 21, 10, 1_001), Arrival::Queued);
        assert_eq!(arrive(&mut group, 12, 10, 1_002), Arrival::Queued);
        assert_eq!(group.committed(1_003), vec![11, 21, 12]);
        // Their commit is now in flight and watched: the next frame waits for it, however late.
        assert_eq!(arrive(&mut group, 22, 10, 1_500), Arrival::Queued);
        assert_eq!(group.committed(1_501), vec![22]);
        // Nothing came during that one: the next frame is handled at once.
        assert!(group.committed(1_502).is_empty());
        assert_eq!(arrive(&mut group, 13, 10, 5_000), now(vec![13]));
    }

    #[test]
    fn a_full_queue_is_handled_at_once_by_count_and_by_bytes() {
        let mut group = GroupCommit::with_bounds(3, 1000);
        assert_eq!(arrive(&mut group, 0, 1, 0), now(vec![0]));
        assert_eq!(arrive(&mut group, 10, 1, 1), watched(vec![10]));
        assert_eq!(arrive(&mut group, 2, 1, 1), Arrival::Queued);
        assert_eq!(arrive(&mut group, 3, 1, 1), Arrival::Queued);
        assert_eq!(arrive(&mut group, 4, 1, 1), now(vec![2, 3, 4]));
        // The first commit is still watched; the queue starts empty again.
        assert_eq!(arrive(&mut group, 5, 1, 2), Arrival::Queued);
        assert_eq!(group.committed(3), vec![5]);

        let mut group = GroupCommit::with_bounds(100, 1000);
        assert_eq!(arrive(&mut group, 0, 1, 0), now(vec![0]));
        assert_eq!(arrive(&mut group, 10, 1, 1), watched(vec![10]));
        assert_eq!(arrive(&mut group, 2, 600, 1), Arrival::Queued);
        assert_eq!(arrive(&mut group, 3, 400, 1), now(vec![2, 3]));
        assert_eq!(arrive(&mut group, 4, 999, 1), Arrival::Queued);
        assert_eq!(group.committed(2), vec![4]);
    }

    #[test]
    fn another_event_takes_the_queue_first() {
        let mut group = busy_at(100);
        assert_eq!(arrive(&mut group, 2, 1, 101), Arrival::Queued);
        assert_eq!(group.take_before_event(102), vec![2]);
        // The commit is still watched: its resolution finds nothing left.
        assert_eq!(arrive(&mut group, 3, 1, 103), Arrival::Queued);
        assert_eq!(group.committed(104), vec![3]);
        assert!(group.committed(105).is_empty());
    }

    #[test]
    fn the_default_bounds_hold() {
        let mut group = busy_at(10);
        for i in 1..MAX_QUEUED_FRAMES as i32 {
            assert_eq!(arrive(&mut group, i, 0, 11), Arrival::Queued);
        }
        match arrive(&mut group, MAX_QUEUED_FRAMES as i32, 0, 11) {
            Arrival::Handle {
                frames,
                watch: false,
            } => assert_eq!(frames.len(), MAX_QUEUED_FRAMES),
            other => panic!("expected a full queue, got {other:?}"),
        }
    }
}
