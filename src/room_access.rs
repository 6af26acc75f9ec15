//! Who may use a room beyond what their token grants: rooms whose name starts with one of
//! `MEMBERS_ONLY_PREFIXES` admit only the users on their members list.

/// Most prefixes read from `MEMBERS_ONLY_PREFIXES`, and the longest one.
const MAX_PREFIXES: usize = 32;
const MAX_PREFIX_BYTES: usize = 128;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembersOnly {
    prefixes: Vec<String>,
}

impl MembersOnly {
    /// Reads a comma-separated list such as `dialog:,support:`; blanks are skipped, and
    /// entries past the bounds are ignored (and counted, for the caller to log).
    pub fn parse(var: Option<&str>) -> (MembersOnly, usize) {
        let mut prefixes = Vec::new();
        let mut ignored = 0;
        for prefix in var.unwrap_or_default().split(',').map(str::trim) {
            if prefix.is_empty() {
                continue;
            }
            if prefixes.len() == MAX_PREFIXES || prefix.len() > MAX_PREFIX_BYTES {
                ignored += 1;
                continue;
            }
            prefixes.push(prefix.to_string());
        }
        (MembersOnly { prefixes }, ignored)
    }

    /// Whether `room` admits members only.
    pub fn applies_to(&self, room: &str) -> bool {
        self.prefixes.iter().any(|prefix| room.starts_with(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_select_the_rooms() {
        let (rule, ignored) = MembersOnly::parse(Some(" dialog:, support: ,,"));
        assert_eq!(ignored, 0);
        assert!(rule.applies_to("dialog:9"));
        assert!(rule.applies_to("support:ticket-1"));
        assert!(!rule.applies_to("chat:1"));
        assert!(!rule.applies_to("my-dialog:1"));
    }

    #[test]
    fn unset_or_empty_means_no_members_only_rooms() {
        for var in [None, Some(""), Some(" , ")] {
            let (rule, _) = MembersOnly::parse(var);
            assert!(!rule.applies_to("dialog:9"), "{var:?}");
        }
    }

    #[test]
    fn entries_past_the_bounds_are_ignored_and_counted() {
        let many: Vec<String> = (0..40).map(|i| format!("p{i}:")).collect();
        let (rule, ignored) = MembersOnly::parse(Some(&many.join(",")));
        assert_eq!(ignored, 8);
        assert!(rule.applies_to("p31:x"));
        assert!(!rule.applies_to("p32:x"));
        let long = "x".repeat(MAX_PREFIX_BYTES + 1);
        assert_eq!(MembersOnly::parse(Some(&long)).1, 1);
    }
}
