//! When an isolate fetches `JWT_JWKS_URL` again, and the key set it verifies with in between.
//!
//! - The fetched set is fresh for the response's `Cache-Control` max-age (1 minute to 1 day),
//!   10 minutes without one. A token that needs a public key after that fetches it again.
//! - A token whose `kid` the set does not know fetches it again at once (keys rotate), but an
//!   unknown `kid` does so at most once a minute, so made-up kids cannot drive fetches.
//! - A failed fetch keeps the last good set; the next attempt comes no sooner than 10 s later.
//! - One fetch at a time: while it runs, a token whose key is known uses the current set, and
//!   one whose key is not waits for the fetch's outcome.

use std::rc::Rc;

use crate::jwks::KeySet;

pub const DEFAULT_MAX_AGE_MS: i64 = 10 * 60 * 1000;
pub const MIN_MAX_AGE_MS: i64 = 60 * 1000;
pub const MAX_MAX_AGE_MS: i64 = 24 * 60 * 60 * 1000;
/// At most one fetch per this interval is caused by an unknown `kid`.
pub const UNKNOWN_KID_REFETCH_MS: i64 = 60 * 1000;
/// The least time between a failed attempt and the next one.
pub const RETRY_AFTER_FAILURE_MS: i64 = 10 * 1000;
/// A fetch is abandoned after this (the runtime aborts it).
pub const FETCH_TIMEOUT_MS: u32 = 5_000;
/// A fetch that has not reported within this is taken as lost: the request that ran it may have
/// been cancelled before it could record the outcome.
pub const FETCH_LOST_MS: i64 = FETCH_TIMEOUT_MS as i64 + 1_000;

/// What to do before verifying a token that needs a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Verify with [`JwksCache::keys`] as they are.
    UseCurrent,
    /// Fetch the set now (record it with [`JwksCache::fetch_started`]), then verify.
    Fetch(FetchReason),
    /// Another request's fetch is running and the key is not known: wait for its outcome.
    WaitForFetch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchReason {
    /// No good set yet, or the last one's max-age has passed.
    Stale,
    /// The token's `kid` is not in a fresh set.
    UnknownKid,
}

/// One isolate's view of the fetched set: the keys it verifies with and when to fetch again.
#[derive(Debug, Clone)]
pub struct JwksCache {
    inline: Rc<KeySet>,
    /// The inline keys followed by the last good fetched set's.
    keys: Rc<KeySet>,
    /// Until when the last good fetched set is fresh; `None` before the first good fetch.
    fresh_until_ms: Option<i64>,
    last_attempt_ms: Option<i64>,
    last_unknown_kid_fetch_ms: Option<i64>,
    in_flight_since_ms: Option<i64>,
}

impl JwksCache {
    /// A cache that has fetched nothing yet, verifying with the inline keys meanwhile.
    pub fn new(inline: Rc<KeySet>) -> Self {
        JwksCache {
            keys: inline.clone(),
            inline,
            fresh_until_ms: None,
            last_attempt_ms: None,
            last_unknown_kid_fetch_ms: None,
            in_flight_since_ms: None,
        }
    }

    pub fn keys(&self) -> Rc<KeySet> {
        self.keys.clone()
    }

    /// Whether a fetch has ever succeeded.
    pub fn has_fetched(&self) -> bool {
        self.fresh_until_ms.is_some()
    }

    pub fn fetch_in_flight(&self, now_ms: i64) -> bool {
        self.in_flight_since_ms
            .is_some_and(|since| now_ms - since < FETCH_LOST_MS)
    }

    /// What a token asking for `kid` (or for no kid) does at `now_ms`.
    pub fn decide(&self, now_ms: i64, kid: Option<&str>) -> Decision {
        let known = self.keys.knows(kid);
        if self.fetch_in_flight(now_ms) {
            return if known {
                Decision::UseCurrent
            } else {
                Decision::WaitForFetch
            };
        }
        let since = |at: Option<i64>, interval: i64| at.is_none_or(|at| now_ms - at >= interval);
        let stale = self.fresh_until_ms.is_none_or(|until| now_ms >= until);
        if stale && since(self.last_attempt_ms, RETRY_AFTER_FAILURE_MS) {
            return Decision::Fetch(FetchReason::Stale);
        }
        // A stale set is fetched again on the failure backoff above, whatever the kid.
        if !stale
            && !known
            && kid.is_some()
            && since(self.last_unknown_kid_fetch_ms, UNKNOWN_KID_REFETCH_MS)
        {
            return Decision::Fetch(FetchReason::UnknownKid);
        }
        Decision::UseCurrent
    }

    pub fn fetch_started(&mut self, now_ms: i64, reason: FetchReason) {
        self.last_attempt_ms = Some(now_ms);
        self.in_flight_since_ms = Some(now_ms);
        if reason == FetchReason::UnknownKid {
            self.last_unknown_kid_fetch_ms = Some(now_ms);
        }
    }

    /// A good set arrived: it replaces the last one, fresh for the response's max-age.
    pub fn fetch_succeeded(&mut self, now_ms: i64, fetched: &KeySet, cache_control: Option<&str>) {
        self.keys = Rc::new(self.inline.merged(fetched));
        self.fresh_until_ms = Some(now_ms + max_age_ms(cache_control));
        self.in_flight_since_ms = None;
    }

    /// The fetch failed (network, status, size, time or an invalid set): keep the last good set.
    pub fn fetch_failed(&mut self) {
        self.in_flight_since_ms = None;
    }
}

/// How long a fetched set stays fresh, from its `Cache-Control`: `max-age` within 1 minute
/// and 1 day, `no-cache` / `no-store` as the minimum, 10 minutes without either.
pub fn max_age_ms(cache_control: Option<&str>) -> i64 {
    let mut max_age = None;
    for directive in cache_control.unwrap_or("").split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-cache" || directive == "no-store" {
            return MIN_MAX_AGE_MS;
        }
        if let Some(value) = directive.strip_prefix("max-age=") {
            let value = value.trim_matches('"');
            if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                // Digits only; anything too long for an i64 is far past the upper bound.
                let secs = value.parse::<i64>().unwrap_or(i64::MAX / 1000);
                max_age = Some(secs.saturating_mul(1000));
            }
        }
    }
    max_age.map_or(DEFAULT_MAX_AGE_MS, |ms| {
        ms.clamp(MIN_MAX_AGE_MS, MAX_MAX_AGE_MS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::{self, tests::jwks_of};

    const MIN: i64 = 60 * 1000;
    const T0: i64 = 1_800_000_000_000;

    fn cache() -> JwksCache {
        JwksCache::new(Rc::new(jwks::parse(&jwks_of(&["ed-1"])).unwrap()))
    }

    fn fetched(kids: &[&str]) -> KeySet {
        jwks::parse(&jwks_of(kids)).unwrap()
    }

    /// Runs a fetch to completion at `now` with `kids` and `cache_control`.
    fn fetch_ok(c: &mut JwksCache, now: i64, reason: FetchReason, kids: &[&str], cc: Option<&str>) {
        c.fetch_started(now, reason);
        c.fetch_succeeded(now, &fetched(kids), cc);
    }

    #[test]
    fn first_token_fetches_and_the_set_is_fresh_for_ten_minutes() {
        let mut c = cache();
        assert_eq!(
            c.decide(T0, Some("es-1")),
            Decision::Fetch(FetchReason::Stale)
        );
        fetch_ok(&mut c, T0, FetchReason::Stale, &["es-1"], None);
        assert!(c.has_fetched());
        assert!(c.keys().knows(Some("es-1")) && c.keys().knows(Some("ed-1")));
        assert_eq!(
            c.decide(T0 + 10 * MIN - 1, Some("es-1")),
            Decision::UseCurrent
        );
        assert_eq!(
            c.decide(T0 + 10 * MIN, Some("es-1")),
            Decision::Fetch(FetchReason::Stale)
        );
    }

    #[test]
    fn max_age_is_honoured_within_bounds() {
        assert_eq!(max_age_ms(None), 10 * MIN);
        assert_eq!(max_age_ms(Some("public, max-age=3600")), 60 * MIN);
        assert_eq!(
            max_age_ms(Some("Max-Age=\"120\", must-revalidate")),
            2 * MIN
        );
        assert_eq!(max_age_ms(Some("max-age=0")), MIN);
        assert_eq!(max_age_ms(Some("max-age=15")), MIN);
        assert_eq!(max_age_ms(Some("no-store")), MIN);
        assert_eq!(
            max_age_ms(Some("max-age=99999999999999999999")),
            24 * 60 * MIN
        );
        assert_eq!(max_age_ms(Some("max-age=-5")), 10 * MIN);
        assert_eq!(max_age_ms(Some("s-maxage=60")), 10 * MIN);
        let mut c = cache();
        fetch_ok(
            &mut c,
            T0,
            FetchReason::Stale,
            &["es-1"],
            Some("max-age=300"),
        );
        assert_eq!(c.decide(T0 + 5 * MIN - 1, None), Decision::UseCurrent);
        assert_eq!(
            c.decide(T0 + 5 * MIN, None),
            Decision::Fetch(FetchReason::Stale)
        );
    }

    #[test]
    fn an_unknown_kid_refetches_at_once_then_at_most_once_a_minute() {
        let mut c = cache();
        fetch_ok(&mut c, T0, FetchReason::Stale, &["es-1"], None);
        // Right after the first fetch, a rotated key is picked up at once.
        let t = T0 + 1000;
        assert_eq!(
            c.decide(t, Some("es-2")),
            Decision::Fetch(FetchReason::UnknownKid)
        );
        fetch_ok(&mut c, t, FetchReason::UnknownKid, &["es-1"], None);
        // Still unknown: no more fetches for it (or any other made-up kid) for a minute.
        for later in [t + 1, t + 30_000, t + MIN - 1] {
            assert_eq!(c.decide(later, Some("es-2")), Decision::UseCurrent);
            assert_eq!(c.decide(later, Some("other")), Decision::UseCurrent);
        }
        assert_eq!(
            c.decide(t + MIN, Some("es-2")),
            Decision::Fetch(FetchReason::UnknownKid)
        );
        // A token without kid is not an unknown kid.
        assert_eq!(c.decide(t + MIN, None), Decision::UseCurrent);
    }

    #[test]
    fn made_up_kids_cause_at_most_one_fetch_a_minute_over_an_hour() {
        let mut c = cache();
        let mut fetches = 0;
        // A request with a new made-up kid every 100 ms for an hour; the set says max-age=1 day.
        for i in 0..36_000i64 {
            let now = T0 + i * 100;
            if let Decision::Fetch(reason) = c.decide(now, Some(&format!("made-up-{i}"))) {
                fetches += 1;
                fetch_ok(&mut c, now, reason, &["es-1"], Some("max-age=86400"));
            }
        }
        // The first fetch, then one per minute.
        assert!(fetches <= 61, "{fetches} fetches");
    }

    #[test]
    fn a_failed_fetch_keeps_the_last_good_set_and_retries_after_ten_seconds() {
        let mut c = cache();
        fetch_ok(&mut c, T0, FetchReason::Stale, &["es-1"], None);
        let stale_at = T0 + 10 * MIN;
        assert_eq!(
            c.decide(stale_at, Some("es-1")),
            Decision::Fetch(FetchReason::Stale)
        );
        c.fetch_started(stale_at, FetchReason::Stale);
        c.fetch_failed();
        assert!(c.keys().knows(Some("es-1")), "the last good set stays");
        assert_eq!(
            c.decide(stale_at + 9_999, Some("es-1")),
            Decision::UseCurrent
        );
        assert_eq!(
            c.decide(stale_at + 10_000, Some("es-1")),
            Decision::Fetch(FetchReason::Stale)
        );
    }

    #[test]
    fn failures_before_any_good_set_retry_every_ten_seconds() {
        let mut c = cache();
        c.fetch_started(T0, FetchReason::Stale);
        c.fetch_failed();
        assert!(!c.has_fetched());
        assert!(c.keys().knows(Some("ed-1")), "the inline keys stay usable");
        assert_eq!(c.decide(T0 + 5_000, Some("es-1")), Decision::UseCurrent);
        assert_eq!(
            c.decide(T0 + 10_000, Some("es-1")),
            Decision::Fetch(FetchReason::Stale)
        );
    }

    #[test]
    fn while_a_fetch_runs_known_keys_go_on_and_unknown_ones_wait() {
        let mut c = cache();
        c.fetch_started(T0, FetchReason::Stale);
        assert_eq!(c.decide(T0 + 10, Some("ed-1")), Decision::UseCurrent);
        assert_eq!(c.decide(T0 + 10, Some("es-1")), Decision::WaitForFetch);
        // A fetch that never reports (its request was cancelled) stops blocking others, and
        // counts as a failed attempt.
        assert!(c.fetch_in_flight(T0 + FETCH_LOST_MS - 1));
        assert!(!c.fetch_in_flight(T0 + FETCH_LOST_MS));
        assert_eq!(
            c.decide(T0 + FETCH_LOST_MS, Some("es-1")),
            Decision::UseCurrent
        );
        assert_eq!(
            c.decide(T0 + RETRY_AFTER_FAILURE_MS, Some("es-1")),
            Decision::Fetch(FetchReason::Stale)
        );
    }

    #[test]
    fn a_new_set_replaces_the_old_fetched_keys_but_not_the_inline_ones() {
        let mut c = cache();
        fetch_ok(&mut c, T0, FetchReason::Stale, &["es-1"], None);
        fetch_ok(&mut c, T0 + 1, FetchReason::UnknownKid, &["ed-2"], None);
        let keys = c.keys();
        assert!(keys.knows(Some("ed-1")) && keys.knows(Some("ed-2")));
        assert!(!keys.knows(Some("es-1")));
    }
}
