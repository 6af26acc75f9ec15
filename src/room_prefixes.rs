//! Variables that pick rooms by the start of their names (`MEMBERS_ONLY_PREFIXES`,
//! `EVENTS_PREFIXES`, `PUBLISH_HOOK_PREFIXES`) or give them a number (`SHARD_VIEWERS_PREFIXES`,
//! `PRESENCE_FULL_MAX_PREFIXES`): comma-separated lists read within bounds.

use std::ops::RangeInclusive;

/// The longest prefix read; a longer entry is ignored.
const MAX_PREFIX_BYTES: usize = 128;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomPrefixes {
    prefixes: Vec<String>,
}

impl RoomPrefixes {
    /// Reads a list such as `dialog:,support:`; blanks are skipped, and entries past the
    /// first `max` or longer than 128 bytes are ignored (and counted, for the caller to log).
    pub fn parse(var: Option<&str>, max: usize) -> (RoomPrefixes, usize) {
        let mut prefixes = Vec::new();
        let mut ignored = 0;
        for prefix in var.unwrap_or_default().split(',').map(str::trim) {
            if prefix.is_empty() {
                continue;
            }
            if prefixes.len() == max || prefix.len() > MAX_PREFIX_BYTES {
                ignored += 1;
                continue;
            }
            prefixes.push(prefix.to_string());
        }
        (RoomPrefixes { prefixes }, ignored)
    }

    /// Whether one of the prefixes starts `room`'s name (never, for an empty list).
    pub fn match_room(&self, room: &str) -> bool {
        self.prefixes.iter().any(|prefix| room.starts_with(prefix))
    }

    /// Whether `room` is picked, where an empty list picks every room.
    pub fn pick_or_all(&self, room: &str) -> bool {
        self.prefixes.is_empty() || self.match_room(room)
    }

    /// The warning for `ignored` entries of `name`, if any.
    pub fn warning(name: &str, ignored: usize, max: usize) -> Option<String> {
        (ignored > 0).then(|| {
            format!(
                "{name}: {ignored} entries past {max} prefixes of at most {MAX_PREFIX_BYTES} bytes are ignored"
            )
        })
    }
}

/// A number per room prefix over a default (`prefix=N,...`; the longest matching prefix wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixNumbers {
    default: usize,
    by_prefix: Vec<(String, usize)>,
}

impl PrefixNumbers {
    /// Reads `prefix=N` entries with each N clamped to `range`; blanks are skipped, and entries
    /// that are not `prefix=N`, whose prefix is empty or longer than 128 bytes, or that come
    /// past the first `max` are ignored (and counted, for the caller to log).
    pub fn parse(
        default: usize,
        var: Option<&str>,
        range: RangeInclusive<usize>,
        max: usize,
    ) -> (PrefixNumbers, usize) {
        let mut by_prefix = Vec::new();
        let mut ignored = 0;
        for entry in var.unwrap_or_default().split(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let parsed = entry.rsplit_once('=').and_then(|(prefix, n)| {
                let n = n.trim().parse::<usize>().ok()?;
                Some((prefix.trim(), n.clamp(*range.start(), *range.end())))
            });
            match parsed {
                Some((prefix, n))
                    if !prefix.is_empty()
                        && prefix.len() <= MAX_PREFIX_BYTES
                        && by_prefix.len() < max =>
                {
                    by_prefix.push((prefix.to_string(), n))
                }
                _ => ignored += 1,
            }
        }
        (PrefixNumbers { default, by_prefix }, ignored)
    }

    /// The number of `room`.
    pub fn for_room(&self, room: &str) -> usize {
        self.by_prefix
            .iter()
            .filter(|(prefix, _)| room.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.default, |(_, n)| *n)
    }

    /// How many prefixes were read.
    pub fn prefix_count(&self) -> usize {
        self.by_prefix.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_per_prefix_clamp_bound_and_let_the_longest_prefix_win() {
        let var = "a:=5, a:b:=700 ,=3,x=y,long:=1,, c:=0";
        let (numbers, ignored) = PrefixNumbers::parse(10, Some(var), 1..=500, 3);
        assert_eq!(ignored, 3, "=3, x=y and c:=0 past the first 3");
        assert_eq!(numbers.prefix_count(), 3);
        assert_eq!(numbers.for_room("a:1"), 5);
        assert_eq!(numbers.for_room("a:b:1"), 500, "clamped, longest prefix");
        assert_eq!(numbers.for_room("long:1"), 1);
        assert_eq!(numbers.for_room("other"), 10);
        let (none, ignored) = PrefixNumbers::parse(7, None, 0..=1, 32);
        assert_eq!((none.for_room("a"), ignored), (7, 0));
    }

    #[test]
    fn prefixes_pick_rooms_by_the_start_of_their_names() {
        let (list, ignored) = RoomPrefixes::parse(Some(" dialog:, support: ,,"), 32);
        assert_eq!(ignored, 0);
        assert!(list.match_room("dialog:9") && list.match_room("support:ticket-1"));
        assert!(!list.match_room("chat:1") && !list.match_room("my-dialog:1"));
        assert!(list.pick_or_all("dialog:9") && !list.pick_or_all("chat:1"));
    }

    #[test]
    fn an_empty_list_matches_no_room_and_picks_every_room() {
        for var in [None, Some(""), Some(" , ")] {
            let (list, _) = RoomPrefixes::parse(var, 32);
            assert!(!list.match_room("dialog:9"), "{var:?}");
            assert!(list.pick_or_all("dialog:9"), "{var:?}");
        }
    }

    #[test]
    fn entries_past_the_bounds_are_ignored_and_counted() {
        let many: Vec<String> = (0..40).map(|i| format!("p{i}:")).collect();
        let (list, ignored) = RoomPrefixes::parse(Some(&many.join(",")), 32);
        assert_eq!(ignored, 8);
        assert!(list.match_room("p31:x") && !list.match_room("p32:x"));
        let long = "x".repeat(MAX_PREFIX_BYTES + 1);
        assert_eq!(RoomPrefixes::parse(Some(&long), 32).1, 1);
        assert!(RoomPrefixes::warning("EVENTS_PREFIXES", 1, 64)
            .is_some_and(|w| w.starts_with("EVENTS_PREFIXES: 1 entries")));
        assert_eq!(RoomPrefixes::warning("EVENTS_PREFIXES", 0, 64), None);
    }
}
