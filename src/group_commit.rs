//! Group commit: when a room's frames are handled, so that frames arriving while the room's
//! last write is being committed share the next SQLite transaction instead of one each.
//!
//! Each event's writes are one implicit transaction, committed (one `fsync` locally) after the
//! event, and the runtime holds the event's outgoing frames (the acks) until that commit is
//! durable. A frame that arrives while no commit is in flight is handled at once, so a quiet
//! room waits for nothing. One that arrives while a commit is in flight waits in a bounded
//! queue; when the commit is durable the whole queue is handled in one turn (one transaction,
//! one commit). Frames are handled in arrival order, whether at once or from the queue, so each
//! socket's order, its acks' seq order and dedup are those of handling every frame at once.
//! This module only decides; the room object keeps the frames and watches the commit.

use std::collections::VecDeque;

/// Frames queued at most while a commit is in flight (a full queue is handled at once).
pub const MAX_QUEUED_FRAMES: usize = 512;
/// Bytes of queued frames at most (a full queue is handled at once).
pub const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;

/// How long queued frames wait for a commit at most: past it they are handled anyway (only
/// the grouping is lost; their acks still wait for durability).
pub const MAX_COMMIT_WAIT_MS: u32 = 1000;

/// What to do with a frame that just arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival<T> {
    /// No commit in flight: handle these now (the frame alone), then watch the commit.
    HandleNow(Vec<T>),
    /// Queued until the commit in flight is durable.
    Queued,
    /// The queue is full: handle these now (the queue, then the frame); the commit in flight
    /// is still watched.
    HandleFull(Vec<T>),
}

/// A room's group-commit state: whether a commit is being watched and the frames waiting for it.
#[derive(Debug)]
pub struct GroupCommit<T> {
    commit_in_flight: bool,
    queue: VecDeque<(T, usize)>,
    queued_bytes: usize,
    max_frames: usize,
    max_bytes: usize,
}

impl<T> Default for GroupCommit<T> {
    fn default() -> Self {
        GroupCommit::with_bounds(MAX_QUEUED_FRAMES, MAX_QUEUED_BYTES)
    }
}

impl<T> GroupCommit<T> {
    /// A group commit that queues at most `max_frames` frames and `max_bytes` bytes.
    pub fn with_bounds(max_frames: usize, max_bytes: usize) -> Self {
        GroupCommit {
            commit_in_flight: false,
            queue: VecDeque::new(),
            queued_bytes: 0,
            max_frames: max_frames.max(1),
            max_bytes,
        }
    }

    /// A frame of `bytes` bytes arrived. After [`Arrival::HandleNow`] the caller handles the
    /// frame and watches the commit its writes start, calling [`Self::committed`] when it is
    /// durable.
    pub fn arrive(&mut self, frame: T, bytes: usize) -> Arrival<T> {
        if !self.commit_in_flight {
            self.commit_in_flight = true;
            return Arrival::HandleNow(vec![frame]);
        }
        self.queue.push_back((frame, bytes));
        self.queued_bytes += bytes;
        if self.queue.len() >= self.max_frames || self.queued_bytes >= self.max_bytes {
            return Arrival::HandleFull(self.take_queue());
        }
        Arrival::Queued
    }

    /// The watched commit is durable, failed or overdue ([`MAX_COMMIT_WAIT_MS`]): the frames
    /// are handled either way (after a failure the runtime resets the object). Returns the frames to handle now, in
    /// one turn; when there are any, their commit is the one in flight and is to be watched.
    pub fn committed(&mut self) -> Vec<T> {
        let frames = self.take_queue();
        self.commit_in_flight = !frames.is_empty();
        frames
    }

    /// Takes the queued frames for an event that must come after them (a close, a request,
    /// the alarm): they arrived first, so they are handled first, in that event's turn.
    pub fn take_before_event(&mut self) -> Vec<T> {
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

    #[test]
    fn a_quiet_room_handles_every_frame_at_once() {
        let mut group = GroupCommit::default();
        for i in 0..5 {
            assert_eq!(group.arrive(i, 10), Arrival::HandleNow(vec![i]));
            assert!(group.committed().is_empty());
        }
    }

    #[test]
    fn frames_during_a_commit_wait_for_it_and_share_the_next_in_order() {
        let mut group = GroupCommit::default();
        assert_eq!(group.arrive("a1", 10), Arrival::HandleNow(vec!["a1"]));
        assert_eq!(group.arrive("b1", 10), Arrival::Queued);
        assert_eq!(group.arrive("a2", 10), Arrival::Queued);
        assert_eq!(group.arrive("c1", 10), Arrival::Queued);
        assert_eq!(group.committed(), vec!["b1", "a2", "c1"]);
        // Their commit is now in flight: the next frame waits for it.
        assert_eq!(group.arrive("b2", 10), Arrival::Queued);
        assert_eq!(group.committed(), vec!["b2"]);
        // Nothing came during that one: the room is quiet again.
        assert!(group.committed().is_empty());
        assert_eq!(group.arrive("a3", 10), Arrival::HandleNow(vec!["a3"]));
    }

    #[test]
    fn a_full_queue_is_handled_at_once_by_count_and_by_bytes() {
        let mut group = GroupCommit::with_bounds(3, 1000);
        assert_eq!(group.arrive(0, 1), Arrival::HandleNow(vec![0]));
        assert_eq!(group.arrive(1, 1), Arrival::Queued);
        assert_eq!(group.arrive(2, 1), Arrival::Queued);
        assert_eq!(group.arrive(3, 1), Arrival::HandleFull(vec![1, 2, 3]));
        // The first commit is still watched; the queue starts empty again.
        assert_eq!(group.arrive(4, 1), Arrival::Queued);
        assert_eq!(group.committed(), vec![4]);

        let mut group = GroupCommit::with_bounds(100, 1000);
        assert_eq!(group.arrive(0, 600), Arrival::HandleNow(vec![0]));
        assert_eq!(group.arrive(1, 600), Arrival::Queued);
        assert_eq!(group.arrive(2, 400), Arrival::HandleFull(vec![1, 2]));
        assert_eq!(group.arrive(3, 999), Arrival::Queued);
        assert_eq!(group.committed(), vec![3]);
    }

    #[test]
    fn another_event_takes_the_queue_first() {
        let mut group = GroupCommit::default();
        assert_eq!(group.arrive(1, 1), Arrival::HandleNow(vec![1]));
        assert_eq!(group.arrive(2, 1), Arrival::Queued);
        assert_eq!(group.take_before_event(), vec![2]);
        // The commit is still watched: its resolution finds nothing left.
        assert_eq!(group.arrive(3, 1), Arrival::Queued);
        assert_eq!(group.committed(), vec![3]);
        assert!(group.committed().is_empty());
    }

    #[test]
    fn the_default_bounds_hold() {
        let mut group = GroupCommit::default();
        assert!(matches!(group.arrive(0, 0), Arrival::HandleNow(_)));
        for i in 1..MAX_QUEUED_FRAMES {
            assert_eq!(group.arrive(i, 0), Arrival::Queued);
        }
        match group.arrive(MAX_QUEUED_FRAMES, 0) {
            Arrival::HandleFull(frames) => assert_eq!(frames.len(), MAX_QUEUED_FRAMES),
            other => panic!("expected a full queue, got {other:?}"),
        }
    }
}
