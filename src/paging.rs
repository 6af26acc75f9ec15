//! History paging: query parameters, the seq bounds to fetch, and assembling a page from sources.

use crate::error::{RelayError, RelayResult};

pub const DEFAULT_PAGE_LIMIT: u32 = 50;
pub const MAX_PAGE_LIMIT: u32 = 200;

/// A validated history query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    pub after: Option<u64>,
    pub before: Option<u64>,
    pub limit: u32,
}

/// Which end of the range a page is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The oldest messages after `after` (and below `before`).
    Forward,
    /// The newest messages below `before` (or overall).
    Backward,
}

/// What a store must fetch: seqs in `(after, before)`, `fetch_limit` of them from `direction`'s end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    pub after: u64,
    pub before: u64,
    pub direction: Direction,
    /// One more than the page limit, so that `has_more` can be told.
    pub fetch_limit: u32,
}

/// Largest seq a store is asked about (SQLite integers are signed 64-bit).
pub const SEQ_CEILING: u64 = i64::MAX as u64;

/// Parses a seq or a limit: a non-negative integer, saturated at [`SEQ_CEILING`] (a larger one
/// means "beyond everything", and SQLite integers are signed 64-bit). Anything else is refused.
pub fn parse_number(name: &str, value: &str) -> RelayResult<u64> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RelayError::bad_request(format!(
            "{name} must be a non-negative integer"
        )));
    }
    // All digits: the only way to fail is to be above u64::MAX.
    Ok(digits.parse::<u64>().unwrap_or(u64::MAX).min(SEQ_CEILING))
}

impl HistoryQuery {
    /// Parses `after`, `before` and `limit`; other parameters (such as `token`) are ignored.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> RelayResult<Self> {
        let mut query = HistoryQuery {
            after: None,
            before: None,
            limit: DEFAULT_PAGE_LIMIT,
        };
        for (name, value) in pairs {
            match name {
                "after" => query.after = Some(parse_number(name, value)?),
                "before" => query.before = Some(parse_number(name, value)?),
                "limit" => {
                    let limit = parse_number(name, value)?;
                    if limit == 0 {
                        return Err(RelayError::bad_request("limit must be at least 1"));
                    }
                    query.limit = limit.min(u64::from(MAX_PAGE_LIMIT)) as u32;
                }
                _ => {}
            }
        }
        Ok(query)
    }

    pub fn range(&self) -> SeqRange {
        SeqRange {
            after: self.after.unwrap_or(0),
            before: self.before.unwrap_or(SEQ_CEILING),
            direction: if self.after.is_some() {
                Direction::Forward
            } else {
                Direction::Backward
            },
            fetch_limit: self.limit + 1,
        }
    }
}

/// One page of history: message bodies ascending by seq, and whether more exist beyond it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub messages: Vec<(u64, String)>,
    pub has_more: bool,
}

impl Page {
    /// `{"messages":[...],"has_more":bool}` built from the stored message bodies without re-parsing.
    pub fn to_json(&self) -> String {
        let body_len: usize = self.messages.iter().map(|(_, body)| body.len() + 1).sum();
        let mut out = String::with_capacity(body_len + 40);
        out.push_str(r#"{"messages":["#);
        for (i, (_, body)) in self.messages.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(body);
        }
        out.push_str(r#"],"has_more":"#);
        out.push_str(if self.has_more { "true" } else { "false" });
        out.push('}');
        out
    }
}

/// Builds the page from rows of one or more sources, each fetched with `range` (at most
/// `fetch_limit` rows from the right end). Rows may overlap between sources and come in any order.
pub fn assemble(range: &SeqRange, rows: Vec<(u64, String)>) -> Page {
    let mut rows: Vec<(u64, String)> = rows
        .into_iter()
        .filter(|(seq, _)| *seq > range.after && *seq < range.before)
        .collect();
    rows.sort_by_key(|(seq, _)| *seq);
    rows.dedup_by_key(|(seq, _)| *seq);
    let limit = (range.fetch_limit - 1) as usize;
    let has_more = rows.len() > limit;
    if has_more {
        match range.direction {
            Direction::Forward => rows.truncate(limit),
            Direction::Backward => {
                rows.drain(..rows.len() - limit);
            }
        }
    }
    Page {
        messages: rows,
        has_more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> RelayResult<HistoryQuery> {
        HistoryQuery::from_pairs(pairs.iter().copied())
    }

    fn rows(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, String)> {
        seqs.into_iter()
            .map(|s| (s, format!("{{\"seq\":{s}}}")))
            .collect()
    }

    /// Stands in for a store: the rows of `all` that `range` selects, as a store returns them.
    fn fetch(all: &[u64], range: &SeqRange) -> Vec<(u64, String)> {
        let mut hits: Vec<u64> = all
            .iter()
            .copied()
            .filter(|s| *s > range.after && *s < range.before)
            .collect();
        if range.direction == Direction::Backward {
            hits.reverse();
        }
        hits.truncate(range.fetch_limit as usize);
        rows(hits)
    }

    fn seqs(page: &Page) -> Vec<u64> {
        page.messages.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn parses_defaults_and_clamps() {
        assert_eq!(
            q(&[]).unwrap(),
            HistoryQuery {
                after: None,
                before: None,
                limit: 50
            }
        );
        assert_eq!(q(&[("limit", "500")]).unwrap().limit, 200);
        assert_eq!(q(&[("token", "x"), ("after", "3")]).unwrap().after, Some(3));
    }

    #[test]
    fn rejects_bad_numbers() {
        for (k, v) in [
            ("after", "-1"),
            ("before", "abc"),
            ("limit", "1.5"),
            ("limit", "0"),
            ("after", ""),
        ] {
            assert!(q(&[(k, v)]).is_err(), "{k}={v}");
        }
        assert!(q(&[("after", "+-1")]).is_err());
    }

    #[test]
    fn numbers_above_the_ceiling_saturate() {
        let huge = "9223372036854775808";
        let beyond_u64 = "340282366920938463463374607431768211456";
        for value in [huge, "18446744073709551615", beyond_u64] {
            let query = q(&[("after", value), ("before", value), ("limit", value)]).unwrap();
            assert_eq!(query.after, Some(SEQ_CEILING));
            assert_eq!(query.before, Some(SEQ_CEILING));
            assert_eq!(query.limit, MAX_PAGE_LIMIT);
        }
        assert_eq!(parse_number("since", "+7").unwrap(), 7);
    }

    #[test]
    fn forward_pages_are_the_oldest_after() {
        let all: Vec<u64> = (1..=30).collect();
        let range = q(&[("after", "10"), ("limit", "5")]).unwrap().range();
        let page = assemble(&range, fetch(&all, &range));
        assert_eq!(seqs(&page), vec![11, 12, 13, 14, 15]);
        assert!(page.has_more);
        let range = q(&[("after", "25"), ("limit", "10")]).unwrap().range();
        let page = assemble(&range, fetch(&all, &range));
        assert_eq!(seqs(&page), vec![26, 27, 28, 29, 30]);
        assert!(!page.has_more);
    }

    #[test]
    fn backward_pages_are_the_newest_before_ascending() {
        let all: Vec<u64> = (1..=30).collect();
        let range = q(&[("before", "11"), ("limit", "5")]).unwrap().range();
        let page = assemble(&range, fetch(&all, &range));
        assert_eq!(seqs(&page), vec![6, 7, 8, 9, 10]);
        assert!(page.has_more);
        let range = q(&[("before", "6")]).unwrap().range();
        let page = assemble(&range, fetch(&all, &range));
        assert_eq!(seqs(&page), vec![1, 2, 3, 4, 5]);
        assert!(!page.has_more);
        let range = q(&[]).unwrap().range();
        assert_eq!(assemble(&range, fetch(&all, &range)).messages.len(), 30);
    }

    #[test]
    fn after_and_before_together_bound_both_ends() {
        let all: Vec<u64> = (1..=30).collect();
        let range = q(&[("after", "5"), ("before", "9")]).unwrap().range();
        let page = assemble(&range, fetch(&all, &range));
        assert_eq!(seqs(&page), vec![6, 7, 8]);
        assert!(!page.has_more);
    }

    #[test]
    fn merging_two_overlapping_sources_gives_the_same_page() {
        let archive: Vec<u64> = (1..=80).collect();
        let hot: Vec<u64> = (60..=100).collect();
        let all: Vec<u64> = (1..=100).collect();
        for pairs in [
            vec![("after", "50"), ("limit", "20")],
            vec![("after", "0"), ("limit", "200")],
            vec![("before", "70"), ("limit", "15")],
            vec![("limit", "50")],
        ] {
            let range = q(&pairs).unwrap().range();
            let mut merged = fetch(&archive, &range);
            merged.extend(fetch(&hot, &range));
            assert_eq!(
                assemble(&range, merged),
                assemble(&range, fetch(&all, &range)),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn page_json_joins_stored_bodies() {
        let page = Page {
            messages: rows([1, 2]),
            has_more: true,
        };
        let v: serde_json::Value = serde_json::from_str(&page.to_json()).unwrap();
        assert_eq!(v["messages"][1]["seq"], 2);
        assert_eq!(v["has_more"], true);
        assert_eq!(
            Page {
                messages: vec![],
                has_more: false
            }
            .to_json(),
            r#"{"messages":[],"has_more":false}"#
        );
    }
}
