//! A resume's replay (`?since=S`) in pages: which stored messages go out next, checked to be
//! exactly `S+1..=up_to` in order, cut into pages the socket can take one at a time.
//!
//! Stored seqs never change, so the rows of one fetch (the room's hot store, then the D1
//! archive, as history reads them) stay valid while the replay waits for the socket to drain.

use std::collections::VecDeque;

use crate::config;
use crate::error::{RelayError, RelayResult};
use crate::paging::{Direction, SeqRange, MAX_PAGE_LIMIT};

/// Most messages in one page (and in one fetch: a history page's limit).
pub const PAGE_MESSAGES: u32 = MAX_PAGE_LIMIT;
/// Bytes after which a page ends (it always holds at least one message).
pub const PAGE_BYTES: usize = 256 * 1024;
/// The next page is sent once the socket's unsent output is at most this, so that a paced
/// replay keeps at most `LOW_WATER_BYTES + PAGE_BYTES` unsent, half the smallest slow-consumer
/// bound (`config::MIN_SOCKET_BUFFER_BYTES`).
pub const LOW_WATER_BYTES: usize = 256 * 1024;
const _: () = assert!(LOW_WATER_BYTES + PAGE_BYTES <= config::MIN_SOCKET_BUFFER_BYTES / 2);
/// A socket that stays above the low-water mark this long is a slow consumer (4010).
pub const MAX_DRAIN_WAIT_MS: u32 = 10_000;
/// Longest a replay may take; past it the socket is closed with 4010 and resumes from what it
/// got. Also the bound of how long live frames wait for a resuming socket.
pub const MAX_REPLAY_MS: u32 = 60_000;

/// Where a replay stands: what was sent, what was fetched and is waiting to be sent.
#[derive(Debug)]
pub struct Replay {
    up_to: u64,
    /// The last seq sent to the socket (`since` at first).
    sent: u64,
    /// Fetched and not yet sent, in order, from `sent + 1`.
    fetched: VecDeque<(u64, String)>,
}

impl Replay {
    /// A replay of `since+1..=up_to`.
    pub fn new(since: u64, up_to: u64) -> Self {
        Replay {
            up_to,
            sent: since,
            fetched: VecDeque::new(),
        }
    }

    /// Whether every message up to `up_to` was handed out.
    pub fn is_done(&self) -> bool {
        self.sent >= self.up_to
    }

    /// The last seq handed out: what `synced` carries once the replay is done.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The rows to fetch next, when nothing fetched is left to send.
    pub fn next_fetch(&self) -> Option<SeqRange> {
        if self.is_done() || !self.fetched.is_empty() {
            return None;
        }
        Some(SeqRange {
            after: self.sent,
            before: self.up_to + 1,
            direction: Direction::Forward,
            fetch_limit: PAGE_MESSAGES + 1,
        })
    }

    /// Takes the rows of a fetch (ascending, as a page is assembled). They must continue the
    /// replay without a gap: an empty fetch or a missing seq is an internal error.
    pub fn add_rows(&mut self, rows: Vec<(u64, String)>) -> RelayResult<()> {
        if rows.is_empty() && !self.is_done() {
            return Err(RelayError::internal());
        }
        let mut last = self.fetched.back().map_or(self.sent, |(seq, _)| *seq);
        for (seq, body) in rows {
            if seq > self.up_to {
                break;
            }
            if seq != last + 1 {
                return Err(RelayError::internal());
            }
            last = seq;
            self.fetched.push_back((seq, body));
        }
        Ok(())
    }

    /// The next page, its frames joined by `\n` (a stored frame is compact JSON, which never
    /// holds a raw newline), so that it crosses into JavaScript as one string. `None` when
    /// nothing fetched is waiting.
    pub fn next_page(&mut self) -> Option<String> {
        let mut page = String::new();
        let mut count = 0;
        while let Some((seq, body)) = self.fetched.front() {
            let full = count == PAGE_MESSAGES as usize || page.len() + body.len() > PAGE_BYTES;
            if count > 0 && full {
                break;
            }
            if count > 0 {
                page.push('\n');
            }
            page.push_str(body);
            self.sent = *seq;
            count += 1;
            self.fetched.pop_front();
        }
        (count > 0).then_some(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(seqs: impl IntoIterator<Item = u64>, size: usize) -> Vec<(u64, String)> {
        seqs.into_iter()
            .map(|s| {
                let body = format!("{{\"seq\":{s},\"pad\":\"\"}}");
                let pad = "x".repeat(size.saturating_sub(body.len()));
                (s, format!("{{\"seq\":{s},\"pad\":\"{pad}\"}}"))
            })
            .collect()
    }

    fn seqs(page: &str) -> Vec<u64> {
        page.split('\n')
            .map(|f| {
                serde_json::from_str::<serde_json::Value>(f).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    /// Runs a whole replay against `stored` (every seq of the room), fetching like the room.
    fn run(since: u64, up_to: u64, stored: &[(u64, String)]) -> Vec<Vec<u64>> {
        let mut replay = Replay::new(since, up_to);
        let mut pages = Vec::new();
        while !replay.is_done() {
            if let Some(range) = replay.next_fetch() {
                let fetched: Vec<_> = stored
                    .iter()
                    .filter(|(s, _)| *s > range.after && *s < range.before)
                    .take(range.fetch_limit as usize - 1)
                    .cloned()
                    .collect();
                replay.add_rows(fetched).unwrap();
            }
            pages.push(seqs(&replay.next_page().unwrap()));
        }
        pages
    }

    #[test]
    fn small_messages_go_in_pages_of_200() {
        let stored = rows(1..=1000, 100);
        let pages = run(10, 1000, &stored);
        assert_eq!(pages.len(), 5);
        assert_eq!(pages[0], (11..=210).collect::<Vec<_>>());
        assert_eq!(pages[4], (811..=1000).collect::<Vec<_>>());
        assert_eq!(pages.concat(), (11..=1000).collect::<Vec<_>>());
    }

    #[test]
    fn large_messages_go_in_pages_of_256_kib() {
        let stored = rows(1..=100, 16 * 1024);
        let mut replay = Replay::new(0, 100);
        replay.add_rows(stored[..100].to_vec()).expect("contiguous");
        let page = replay.next_page().unwrap();
        assert_eq!(seqs(&page), (1..=15).collect::<Vec<_>>());
        assert!(page.len() <= PAGE_BYTES);
        assert_eq!(
            replay.next_fetch(),
            None,
            "the rest of the fetch is used first"
        );
        assert_eq!(run(0, 100, &stored).concat(), (1..=100).collect::<Vec<_>>());
    }

    #[test]
    fn a_message_larger_than_a_page_goes_alone() {
        let stored = rows(1..=3, PAGE_BYTES + 10);
        assert_eq!(run(0, 3, &stored), vec![vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn nothing_to_replay_is_done_at_once() {
        let replay = Replay::new(7, 7);
        assert!(replay.is_done());
        assert_eq!(replay.next_fetch(), None);
        assert_eq!(replay.sent(), 7);
    }

    #[test]
    fn fetches_continue_after_the_last_sent_seq() {
        let mut replay = Replay::new(4, 500);
        let range = replay.next_fetch().unwrap();
        assert_eq!((range.after, range.before), (4, 501));
        assert_eq!(range.fetch_limit, PAGE_MESSAGES + 1);
        replay.add_rows(rows(5..=204, 10)).unwrap();
        replay.next_page().unwrap();
        assert_eq!(replay.sent(), 204);
        assert_eq!(replay.next_fetch().unwrap().after, 204);
    }

    #[test]
    fn gaps_and_empty_fetches_are_refused() {
        let mut replay = Replay::new(0, 10);
        assert!(replay.add_rows(Vec::new()).is_err());
        let mut gap = rows(1..=3, 10);
        gap.extend(rows(5..=6, 10));
        assert!(replay.add_rows(gap).is_err());
        let mut late = Replay::new(0, 10);
        assert!(
            late.add_rows(rows(2..=3, 10)).is_err(),
            "must start at since+1"
        );
    }

    #[test]
    fn rows_past_up_to_are_left_for_live_traffic() {
        let mut replay = Replay::new(0, 3);
        replay.add_rows(rows(1..=5, 10)).unwrap();
        assert_eq!(seqs(&replay.next_page().unwrap()), vec![1, 2, 3]);
        assert!(replay.is_done());
        assert_eq!(replay.next_page(), None);
    }
}
