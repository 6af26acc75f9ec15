//! Presence in big rooms: past `PRESENCE_FULL_MAX` users a room stops announcing each join and
//! leave (N joins into a room of N sockets is O(N²) frames) and sends its counts instead, in
//! `occupancy` frames at most every [`OCCUPANCY_INTERVAL_MS`]; the settings that choose the
//! limit per room; and the paged presence list of the `presence` route.
//!
//! The rule a client follows: a room is in *list* mode (welcome `presence`, then `join` and
//! `leave`) until more than its limit of users are online; from then on it is in *counts* mode
//! (welcome `occupancy`, then `occupancy` frames) until nobody is left in it (no connection,
//! and the leave grace of the last one over). So a connection sees at most one switch, from
//! list to counts, announced by its first `occupancy` frame.

use serde::Serialize;

use crate::error::{RelayError, RelayResult};
use crate::room_prefixes::PrefixNumbers;

/// Users online above which a room switches to counts, unless `PRESENCE_FULL_MAX` says.
pub const DEFAULT_PRESENCE_FULL_MAX: usize = 100;
/// Largest `PRESENCE_FULL_MAX`: a welcome lists at most this many users.
pub const MAX_PRESENCE_FULL_MAX: usize = 1_000;
/// Shortest time between two `occupancy` frames of a room.
pub const OCCUPANCY_INTERVAL_MS: i64 = 2_000;
/// Entries read from `PRESENCE_FULL_MAX_PREFIXES`.
const MAX_PREFIXES: usize = 32;

/// A room's counts, as an `occupancy` frame and a counts welcome carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Counts {
    pub connections: u64,
    pub users: u64,
}

impl Counts {
    pub fn new(connections: usize, users: usize) -> Self {
        Counts {
            connections: connections as u64,
            users: users as u64,
        }
    }
}

/// `PRESENCE_FULL_MAX` and its per-prefix overrides `PRESENCE_FULL_MAX_PREFIXES`
/// (`prefix=N,...`, the longest matching prefix wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceLimits(PrefixNumbers);

impl Default for PresenceLimits {
    fn default() -> Self {
        PresenceLimits::parse(None, None).0
    }
}

impl PresenceLimits {
    /// Reads both variables; numbers are clamped to 0..=[`MAX_PRESENCE_FULL_MAX`] (0: counts
    /// from the first user). Returns what could not be used, for the log.
    pub fn parse(full_max: Option<&str>, prefixes: Option<&str>) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let default = match full_max.map(str::trim).filter(|v| !v.is_empty()) {
            None => DEFAULT_PRESENCE_FULL_MAX,
            Some(text) => match text.parse::<usize>() {
                Ok(n) => n.min(MAX_PRESENCE_FULL_MAX),
                Err(_) => {
                    warnings.push("PRESENCE_FULL_MAX is not a number; using 100".to_string());
                    DEFAULT_PRESENCE_FULL_MAX
                }
            },
        };
        let range = 0..=MAX_PRESENCE_FULL_MAX;
        let (limits, ignored) = PrefixNumbers::parse(default, prefixes, range, MAX_PREFIXES);
        let warning = format!(
            "PRESENCE_FULL_MAX_PREFIXES: an entry was ignored (each is prefix=N, at most \
             {MAX_PREFIXES} of them)"
        );
        warnings.extend(std::iter::repeat_n(warning, ignored));
        (PresenceLimits(limits), warnings)
    }

    /// The limit of `room`.
    pub fn for_room(&self, room: &str) -> usize {
        self.0.for_room(room)
    }
}

/// What the room's alarm does about occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    Nothing,
    /// Send an `occupancy` frame with these counts to every socket.
    Send(Counts),
    /// Not yet: have the alarm fire again then.
    Later(i64),
}

/// A room's presence mode and its coalesced `occupancy` frames. Work per connect is constant:
/// a change only marks the counts as owed, and the alarm sends them.
#[derive(Debug, Clone)]
pub struct Occupancy {
    full_max: usize,
    counts_mode: bool,
    sent: Option<Counts>,
    sent_at_ms: Option<i64>,
    flush_at: Option<i64>,
}

impl Occupancy {
    pub fn new(full_max: usize) -> Self {
        Occupancy {
            full_max,
            counts_mode: false,
            sent: None,
            sent_at_ms: None,
            flush_at: None,
        }
    }

    /// After a wake, from the open sockets: counts mode if any was told so (see
    /// [`Occupancy::counts_mode`]) or the room is over its limit.
    pub fn restore(&mut self, marked: bool, users: usize) {
        *self = Occupancy {
            counts_mode: marked || users > self.full_max,
            ..Occupancy::new(self.full_max)
        };
    }

    /// Whether the room sends counts rather than joins and leaves.
    pub fn counts_mode(&self) -> bool {
        self.counts_mode
    }

    /// Whether a connection welcomed when the room has `users` online (itself counted) gets
    /// counts: it switches the room as it is counted.
    pub fn welcomes_with_counts(&self, users: usize) -> bool {
        self.counts_mode || users > self.full_max
    }

    /// The room's counts changed (`empty`: nobody online nor within their leave grace).
    /// Returns whether the room switched to counts now, and when the alarm must send them
    /// (`None` when it is already due to, or in list mode).
    pub fn changed(&mut self, counts: Counts, empty: bool, now_ms: i64) -> (bool, Option<i64>) {
        if empty {
            *self = Occupancy::new(self.full_max);
            return (false, None);
        }
        let switched = !self.counts_mode && counts.users > self.full_max as u64;
        self.counts_mode |= switched;
        if !self.counts_mode || self.flush_at.is_some() {
            return (switched, None);
        }
        let at = self
            .sent_at_ms
            .map_or(now_ms, |sent| (sent + OCCUPANCY_INTERVAL_MS).max(now_ms));
        self.flush_at = Some(at);
        (switched, Some(at))
    }

    /// From the alarm: the counts to send, if they are due and differ from the last ones.
    pub fn flush(&mut self, counts: Counts, now_ms: i64) -> Flush {
        match self.flush_at {
            None => Flush::Nothing,
            Some(at) if at > now_ms => Flush::Later(at),
            Some(_) => {
                self.flush_at = None;
                if !self.counts_mode || self.sent == Some(counts) {
                    return Flush::Nothing;
                }
                self.sent = Some(counts);
                self.sent_at_ms = Some(now_ms);
                Flush::Send(counts)
            }
        }
    }
}

/// Largest page of the presence route, and its default.
pub const MAX_PRESENCE_PAGE: usize = 1_000;
pub const DEFAULT_PRESENCE_PAGE: usize = 1_000;
/// Longest user id `after` may carry (ids are at most 256 bytes).
const MAX_AFTER_BYTES: usize = 256;

/// `GET /v1/rooms/{room}/presence?limit=&after=`: users by id, after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresencePage {
    pub after: Option<String>,
    pub limit: usize,
}

impl Default for PresencePage {
    fn default() -> Self {
        PresencePage {
            after: None,
            limit: DEFAULT_PRESENCE_PAGE,
        }
    }
}

impl PresencePage {
    /// Reads `limit` (1.., larger ones cut to [`MAX_PRESENCE_PAGE`]) and `after` (a user id);
    /// other parameters are ignored.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> RelayResult<Self> {
        let mut page = PresencePage::default();
        for (name, value) in pairs {
            match name {
                "limit" => {
                    let limit: usize =
                        value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                            RelayError::bad_request("limit must be a number from 1")
                        })?;
                    page.limit = limit.min(MAX_PRESENCE_PAGE);
                }
                "after" => {
                    if value.is_empty() || value.len() > MAX_AFTER_BYTES {
                        return Err(RelayError::bad_request("after must be a user id"));
                    }
                    page.after = Some(value.to_string());
                }
                _ => {}
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(connections: usize, users: usize) -> Counts {
        Counts::new(connections, users)
    }

    #[test]
    fn a_room_at_its_limit_stays_in_list_mode_and_owes_nothing() {
        let mut o = Occupancy::new(3);
        assert!(!o.welcomes_with_counts(3));
        assert_eq!(o.changed(counts(5, 3), false, 0), (false, None));
        assert!(!o.counts_mode());
        assert_eq!(o.flush(counts(5, 3), 10_000), Flush::Nothing);
    }

    #[test]
    fn passing_the_limit_switches_to_counts_sent_at_once_then_at_most_every_interval() {
        let mut o = Occupancy::new(3);
        assert!(
            o.welcomes_with_counts(4),
            "the fourth user is welcomed with counts"
        );
        assert_eq!(o.changed(counts(4, 4), false, 1_000), (true, Some(1_000)));
        assert!(o.counts_mode());
        // A storm: every connect is constant work and owes nothing new while a send is due.
        for n in 5..50 {
            assert_eq!(o.changed(counts(n, n), false, 1_000), (false, None));
        }
        assert_eq!(o.flush(counts(49, 49), 1_000), Flush::Send(counts(49, 49)));
        assert_eq!(
            o.flush(counts(49, 49), 1_001),
            Flush::Nothing,
            "nothing owed"
        );
        // The next change waits out the interval since the last send.
        assert_eq!(
            o.changed(counts(50, 50), false, 1_500),
            (false, Some(3_000))
        );
        assert_eq!(
            o.flush(counts(50, 50), 2_000),
            Flush::Later(3_000),
            "early alarm"
        );
        assert_eq!(o.flush(counts(50, 50), 3_000), Flush::Send(counts(50, 50)));
        // A change that comes back to the counts last sent sends nothing.
        o.changed(counts(51, 51), false, 3_100);
        o.changed(counts(50, 50), false, 3_200);
        assert_eq!(o.flush(counts(50, 50), 5_000), Flush::Nothing);
        // Long after the last send, a change goes at once.
        assert_eq!(
            o.changed(counts(9, 9), false, 60_000),
            (false, Some(60_000))
        );
    }

    #[test]
    fn counts_stay_until_the_room_is_empty_then_it_starts_over_in_list_mode() {
        let mut o = Occupancy::new(3);
        o.changed(counts(4, 4), false, 0);
        assert_eq!(o.flush(counts(4, 4), 0), Flush::Send(counts(4, 4)));
        assert_eq!(o.changed(counts(1, 1), false, 100), (false, Some(2_000)));
        assert!(o.counts_mode(), "back under the limit: still counts");
        assert!(o.welcomes_with_counts(2));
        assert_eq!(o.changed(counts(0, 0), true, 200), (false, None));
        assert!(!o.counts_mode());
        assert_eq!(o.flush(counts(0, 0), 2_000), Flush::Nothing);
        assert!(!o.welcomes_with_counts(1));
        assert_eq!(o.changed(counts(1, 1), false, 2_100), (false, None));
    }

    #[test]
    fn a_wake_keeps_counts_when_a_socket_was_told_so_or_the_room_is_big() {
        let mut o = Occupancy::new(3);
        o.restore(true, 1);
        assert!(o.counts_mode());
        o.restore(false, 4);
        assert!(o.counts_mode());
        o.restore(false, 3);
        assert!(!o.counts_mode());
        let mut zero = Occupancy::new(0);
        assert!(
            zero.welcomes_with_counts(1),
            "0: counts from the first user"
        );
        assert_eq!(zero.changed(counts(1, 1), false, 5), (true, Some(5)));
    }

    #[test]
    fn limits_come_from_the_variables_with_the_longest_prefix_winning() {
        let (limits, warnings) = PresenceLimits::parse(None, None);
        assert_eq!(limits.for_room("chat:1"), DEFAULT_PRESENCE_FULL_MAX);
        assert!(warnings.is_empty());
        let (limits, warnings) = PresenceLimits::parse(
            Some(" 50 "),
            Some("live:=0, live:vip:=500 ,e2e-occ:=3,,bad,=4,x=many,huge:=99999"),
        );
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert_eq!(limits.for_room("chat:1"), 50);
        assert_eq!(limits.for_room("live:1"), 0);
        assert_eq!(limits.for_room("live:vip:1"), 500);
        assert_eq!(limits.for_room("e2e-occ:x"), 3);
        assert_eq!(limits.for_room("huge:1"), MAX_PRESENCE_FULL_MAX);
        let (limits, warnings) = PresenceLimits::parse(Some("lots"), None);
        assert_eq!(
            (limits.for_room("a"), warnings.len()),
            (DEFAULT_PRESENCE_FULL_MAX, 1)
        );
    }

    #[test]
    fn presence_pages_are_bounded() {
        assert_eq!(
            PresencePage::from_pairs([]).unwrap(),
            PresencePage::default()
        );
        let page =
            PresencePage::from_pairs([("limit", "5000"), ("after", "bob"), ("x", "1")]).unwrap();
        assert_eq!(
            page,
            PresencePage {
                after: Some("bob".into()),
                limit: MAX_PRESENCE_PAGE
            }
        );
        for bad in [
            ("limit", "0"),
            ("limit", "-1"),
            ("limit", "x"),
            ("after", ""),
        ] {
            assert!(PresencePage::from_pairs([bad]).is_err(), "{bad:?}");
        }
        let long = "a".repeat(257);
        assert!(PresencePage::from_pairs([("after", long.as_str())]).is_err());
    }
}
