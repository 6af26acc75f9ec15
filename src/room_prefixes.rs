//! Variables that pick rooms by the start of their names (`MEMBERS_ONLY_PREFIXES`,
//! `EVENTS_PREFIXES`, `PUBLISH_HOOK_PREFIXES`): a comma-separated list read within bounds.

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

#[cfg(test)]
mod tests {
    use super::*;

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
