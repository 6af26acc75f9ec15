//! Token buckets for publishes, typing and connects, kept per user and room so that
//! reconnecting starts nothing afresh, and the strike count that ends abusive connections.

use std::collections::HashMap;

/// A bucket of `capacity` tokens refilled at `per_second`; time comes from the caller.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    updated_ms: i64,
}

impl TokenBucket {
    pub fn new(per_second: u32, capacity: u32, now_ms: i64) -> Self {
        TokenBucket {
            capacity: f64::from(capacity.max(1)),
            per_second: f64::from(per_second.max(1)),
            tokens: f64::from(capacity.max(1)),
            updated_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed_ms = (now_ms - self.updated_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed_ms * self.per_second / 1000.0).min(self.capacity);
        self.updated_ms = now_ms.max(self.updated_ms);
    }

    /// Whether the bucket has refilled completely: it then holds nothing worth remembering.
    fn is_full(&mut self, now_ms: i64) -> bool {
        self.refill(now_ms);
        self.tokens >= self.capacity
    }

    /// Takes a token, or says how many milliseconds until one is available.
    pub fn try_take(&mut self, now_ms: i64) -> Result<(), u64> {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) * 1000.0 / self.per_second).ceil() as u64)
        }
    }
}

/// Publish limits of one user in a room: refused publishes count as strikes, and the
/// connection that publishes with too many strikes in a row is closed (4008). An accepted
/// publish clears the strikes.
#[derive(Debug, Clone)]
pub struct PublishLimiter {
    bucket: TokenBucket,
    strikes: u32,
    max_strikes: u32,
}

/// What to do with a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse it with `rate_limited`; a token is free again after this many ms.
    Refuse {
        retry_after_ms: u64,
    },
    /// Refuse it and close the connection.
    Close,
}

impl PublishLimiter {
    pub fn new(limits: &RateLimits, now_ms: i64) -> Self {
        PublishLimiter {
            bucket: TokenBucket::new(limits.publish_per_second, limits.publish_burst, now_ms),
            strikes: 0,
            max_strikes: limits.max_strikes,
        }
    }

    pub fn check(&mut self, now_ms: i64) -> Verdict {
        match self.bucket.try_take(now_ms) {
            Ok(()) => {
                self.strikes = 0;
                Verdict::Allow
            }
            Err(retry_after_ms) => {
                self.strikes += 1;
                if self.strikes > self.max_strikes {
                    Verdict::Close
                } else {
                    Verdict::Refuse { retry_after_ms }
                }
            }
        }
    }
}

/// The configured rates (see `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub publish_per_second: u32,
    pub publish_burst: u32,
    /// Refused publishes in a row before the connection is closed with 4008.
    pub max_strikes: u32,
    pub typing_per_second: u32,
    pub typing_burst: u32,
    /// Connection attempts of one user to one room: a reconnect loop is refused (429) beyond them.
    pub connect_per_second: u32,
    pub connect_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            publish_per_second: 20,
            publish_burst: 40,
            max_strikes: 50,
            typing_per_second: 2,
            typing_burst: 5,
            connect_per_second: 5,
            connect_burst: 30,
        }
    }
}

/// The buckets of one user in one room, shared by all their connections and HTTP publishes.
#[derive(Debug, Clone)]
struct UserLimits {
    publish: PublishLimiter,
    typing: TokenBucket,
    connect: TokenBucket,
}

impl UserLimits {
    fn new(rates: &RateLimits, now_ms: i64) -> Self {
        UserLimits {
            publish: PublishLimiter::new(rates, now_ms),
            typing: TokenBucket::new(rates.typing_per_second, rates.typing_burst, now_ms),
            connect: TokenBucket::new(rates.connect_per_second, rates.connect_burst, now_ms),
        }
    }

    /// Whether forgetting this user changes nothing: every bucket has refilled, no strikes.
    fn is_idle(&mut self, now_ms: i64) -> bool {
        self.publish.strikes == 0
            && self.publish.bucket.is_full(now_ms)
            && self.typing.is_full(now_ms)
            && self.connect.is_full(now_ms)
    }
}

/// Users whose limits a room remembers at most; when full, the idle ones are forgotten first.
pub const MAX_TRACKED_USERS: usize = 10_000;

/// Every user's limits in one room. Kept in memory: after the room hibernates they start full,
/// which matches an idle period long enough to hibernate.
#[derive(Debug, Clone)]
pub struct RoomLimits {
    rates: RateLimits,
    users: HashMap<String, UserLimits>,
}

impl RoomLimits {
    pub fn new(rates: RateLimits) -> Self {
        RoomLimits {
            rates,
            users: HashMap::new(),
        }
    }

    fn user(&mut self, user_id: &str, now_ms: i64) -> &mut UserLimits {
        if !self.users.contains_key(user_id) && self.users.len() >= MAX_TRACKED_USERS {
            self.users.retain(|_, limits| !limits.is_idle(now_ms));
            if self.users.len() >= MAX_TRACKED_USERS {
                // Only busy users: forgetting them all is the bounded way out.
                self.users.clear();
            }
        }
        let rates = &self.rates;
        self.users
            .entry(user_id.to_string())
            .or_insert_with(|| UserLimits::new(rates, now_ms))
    }

    /// A publish by `user_id`, over any connection or HTTP.
    pub fn publish(&mut self, user_id: &str, now_ms: i64) -> Verdict {
        self.user(user_id, now_ms).publish.check(now_ms)
    }

    /// Whether a typing frame of `user_id` may go out (beyond the rate it is dropped).
    pub fn typing(&mut self, user_id: &str, now_ms: i64) -> bool {
        self.user(user_id, now_ms).typing.try_take(now_ms).is_ok()
    }

    /// A connection attempt of `user_id`: allowed, or the milliseconds until one is.
    pub fn connect(&mut self, user_id: &str, now_ms: i64) -> Result<(), u64> {
        self.user(user_id, now_ms).connect.try_take(now_ms)
    }

    pub fn tracked_users(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refills_at_the_rate() {
        let mut bucket = TokenBucket::new(20, 40, 0);
        for _ in 0..40 {
            assert!(bucket.try_take(0).is_ok());
        }
        assert_eq!(bucket.try_take(0), Err(50));
        assert!(bucket.try_take(49).is_err());
        assert!(bucket.try_take(50).is_ok());
        assert!(bucket.try_take(50).is_err());
        // A long pause refills only up to the capacity.
        for _ in 0..40 {
            assert!(bucket.try_take(100_000).is_ok());
        }
        assert!(bucket.try_take(100_000).is_err());
    }

    #[test]
    fn clock_going_backwards_gives_nothing_extra() {
        let mut bucket = TokenBucket::new(1, 1, 1_000);
        assert!(bucket.try_take(1_000).is_ok());
        assert!(bucket.try_take(0).is_err());
        assert!(bucket.try_take(1_999).is_err());
        assert!(bucket.try_take(2_000).is_ok());
    }

    #[test]
    fn limits_follow_the_user_not_the_connection() {
        let rates = RateLimits {
            publish_per_second: 1,
            publish_burst: 2,
            ..Default::default()
        };
        let mut room = RoomLimits::new(rates);
        assert_eq!(room.publish("ann", 0), Verdict::Allow);
        assert_eq!(room.publish("ann", 0), Verdict::Allow);
        // A new connection of ann (or an HTTP publish) draws from the same bucket.
        assert!(matches!(room.publish("ann", 0), Verdict::Refuse { .. }));
        assert_eq!(room.publish("bob", 0), Verdict::Allow);
        assert_eq!(room.publish("ann", 1_000), Verdict::Allow);
    }

    #[test]
    fn a_reconnect_loop_is_bounded() {
        let mut room = RoomLimits::new(RateLimits::default());
        let allowed = (0..100).filter(|_| room.connect("ann", 0).is_ok()).count();
        assert_eq!(allowed, 30);
        assert_eq!(room.connect("ann", 0), Err(200));
        assert!(room.connect("ann", 200).is_ok());
        assert!(room.connect("bob", 0).is_ok());
        // Over ten seconds: the burst plus five a second.
        let mut room = RoomLimits::new(RateLimits::default());
        let allowed = (0..=10_000)
            .filter(|i| room.connect("ann", i64::from(*i)).is_ok())
            .count();
        assert_eq!(allowed, 30 + 50);
    }

    #[test]
    fn typing_is_per_user_too() {
        let mut room = RoomLimits::new(RateLimits::default());
        let sent = (0..20).filter(|_| room.typing("ann", 0)).count();
        assert_eq!(sent, 5);
        assert!(room.typing("bob", 0));
    }

    #[test]
    fn the_user_map_is_bounded_and_forgets_idle_users_first() {
        let mut room = RoomLimits::new(RateLimits::default());
        assert_eq!(room.publish("busy", 0), Verdict::Allow);
        for i in 1..MAX_TRACKED_USERS {
            // Everyone else connected once, long ago: idle again by t = 1 000 000.
            room.connect(&format!("u{i}"), 0).unwrap();
        }
        assert_eq!(room.tracked_users(), MAX_TRACKED_USERS);
        // At t = 1: nobody has refilled, so a newcomer makes the room forget everybody.
        assert_eq!(room.publish("newcomer", 1), Verdict::Allow);
        assert_eq!(room.tracked_users(), 1);
        for i in 0..MAX_TRACKED_USERS - 1 {
            room.connect(&format!("v{i}"), 2).unwrap();
        }
        for _ in 0..39 {
            room.publish("newcomer", 3);
        }
        // A second later the others have refilled, newcomer has not: only the idle go.
        let later = 3 + 1_000;
        assert_eq!(room.publish("third", later), Verdict::Allow);
        assert_eq!(room.tracked_users(), 2);
        assert!(matches!(room.publish("newcomer", later), Verdict::Allow));
    }

    #[test]
    fn strikes_close_a_flooder_and_an_accepted_publish_clears_them() {
        let limits = RateLimits {
            publish_per_second: 1,
            publish_burst: 1,
            max_strikes: 3,
            ..Default::default()
        };
        let mut limiter = PublishLimiter::new(&limits, 0);
        assert_eq!(limiter.check(0), Verdict::Allow);
        for _ in 0..3 {
            assert!(matches!(limiter.check(0), Verdict::Refuse { .. }));
        }
        assert_eq!(limiter.check(0), Verdict::Close);
        let mut patient = PublishLimiter::new(&limits, 0);
        for second in 0..10 {
            assert_eq!(patient.check(second * 1000), Verdict::Allow);
            assert!(matches!(
                patient.check(second * 1000),
                Verdict::Refuse { .. }
            ));
        }
    }
}
