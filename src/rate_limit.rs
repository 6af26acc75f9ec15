//! Token buckets for publishes, typing and connects, kept per user and room so that
//! reconnecting starts nothing afresh, and the strikes per connection that end a flood.

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

/// A pause this long between two refusals of a connection clears its strikes: a client that
/// pauses after a refusal (or just stops) starts afresh, one that keeps publishing does not.
pub const STRIKE_PAUSE_MS: i64 = 1_000;

/// The refused publishes of one connection since its last pause of [`STRIKE_PAUSE_MS`]. An
/// accepted publish does not clear them: the refill lets a flooder through every few frames,
/// and clearing on each of those let any flood slower than `max_strikes` per refill interval
/// go on forever.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    count: u32,
    last_ms: i64,
}

impl Strikes {
    /// Counts a refusal at `now_ms`; true when it makes more than `max` without a pause.
    fn strike(&mut self, max: u32, now_ms: i64) -> bool {
        if now_ms.saturating_sub(self.last_ms) >= STRIKE_PAUSE_MS {
            self.count = 0;
        }
        self.count += 1;
        self.last_ms = now_ms.max(self.last_ms);
        self.count > max
    }

    fn paused(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.last_ms) >= STRIKE_PAUSE_MS
    }
}

/// The configured rates (see `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub publish_per_second: u32,
    pub publish_burst: u32,
    /// Refused publishes of one connection, without a pause of [`STRIKE_PAUSE_MS`] between two
    /// of them, beyond which it is closed with 4008.
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
    publish: TokenBucket,
    typing: TokenBucket,
    connect: TokenBucket,
}

impl UserLimits {
    fn new(rates: &RateLimits, now_ms: i64) -> Self {
        UserLimits {
            publish: TokenBucket::new(rates.publish_per_second, rates.publish_burst, now_ms),
            typing: TokenBucket::new(rates.typing_per_second, rates.typing_burst, now_ms),
            connect: TokenBucket::new(rates.connect_per_second, rates.connect_burst, now_ms),
        }
    }

    /// Whether forgetting this user changes nothing: every bucket has refilled.
    fn is_idle(&mut self, now_ms: i64) -> bool {
        self.publish.is_full(now_ms) && self.typing.is_full(now_ms) && self.connect.is_full(now_ms)
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
    /// By connection id: the strikes of connections refused lately (bounded like `users`).
    strikes: HashMap<String, Strikes>,
}

impl RoomLimits {
    pub fn new(rates: RateLimits) -> Self {
        RoomLimits {
            rates,
            users: HashMap::new(),
            strikes: HashMap::new(),
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

    /// A publish by `user_id` without a socket (over HTTP): refused while the user's bucket
    /// is empty (with the ms until a token is free), never counted as a strike.
    pub fn publish_without_socket(&mut self, user_id: &str, now_ms: i64) -> Result<(), u64> {
        self.user(user_id, now_ms).publish.try_take(now_ms)
    }

    /// A publish by `user_id` over its connection `conn_id`: the bucket is the user's, the
    /// strikes are the connection's.
    pub fn publish(&mut self, user_id: &str, conn_id: &str, now_ms: i64) -> Verdict {
        let Err(retry_after_ms) = self.publish_without_socket(user_id, now_ms) else {
            return Verdict::Allow;
        };
        if !self.strikes.contains_key(conn_id) && self.strikes.len() >= MAX_TRACKED_USERS {
            self.strikes.retain(|_, strikes| !strikes.paused(now_ms));
            if self.strikes.len() >= MAX_TRACKED_USERS {
                self.strikes.clear();
            }
        }
        let strikes = self.strikes.entry(conn_id.to_string()).or_insert(Strikes {
            count: 0,
            last_ms: now_ms,
        });
        if strikes.strike(self.rates.max_strikes, now_ms) {
            self.strikes.remove(conn_id);
            Verdict::Close
        } else {
            Verdict::Refuse { retry_after_ms }
        }
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
        assert!(room.publish_without_socket("ann", 0).is_ok());
        assert!(room.publish_without_socket("ann", 0).is_ok());
        // Another connection of ann, and an HTTP publish, draw from the same bucket.
        assert!(matches!(
            room.publish("ann", "tab2", 0),
            Verdict::Refuse { .. }
        ));
        assert!(room.publish_without_socket("ann", 0).is_err());
        assert!(room.publish_without_socket("bob", 0).is_ok());
        assert!(room.publish_without_socket("ann", 1_000).is_ok());
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
        assert!(room.publish_without_socket("busy", 0).is_ok());
        for i in 1..MAX_TRACKED_USERS {
            // Everyone else connected once, long ago: idle again by t = 1 000 000.
            room.connect(&format!("u{i}"), 0).unwrap();
        }
        assert_eq!(room.tracked_users(), MAX_TRACKED_USERS);
        // At t = 1: nobody has refilled, so a newcomer makes the room forget everybody.
        assert!(room.publish_without_socket("newcomer", 1).is_ok());
        assert_eq!(room.tracked_users(), 1);
        for i in 0..MAX_TRACKED_USERS - 1 {
            room.connect(&format!("v{i}"), 2).unwrap();
        }
        for _ in 0..39 {
            room.publish_without_socket("newcomer", 3).ok();
        }
        // A second later the others have refilled, newcomer has not: only the idle go.
        let later = 3 + 1_000;
        assert!(room.publish_without_socket("third", later).is_ok());
        assert_eq!(room.tracked_users(), 2);
        assert!(room.publish_without_socket("newcomer", later).is_ok());
    }

    #[test]
    fn strikes_close_a_flood_even_when_the_refill_lets_publishes_through() {
        let limits = RateLimits {
            publish_per_second: 20,
            publish_burst: 1,
            max_strikes: 5,
            ..Default::default()
        };
        // One frame every 10 ms: every fifth is accepted (a token each 50 ms). Clearing the
        // strikes on those kept this flood open for ever.
        let mut room = RoomLimits::new(limits.clone());
        let verdicts: Vec<Verdict> = (0..10).map(|i| room.publish("ann", "c1", i * 10)).collect();
        assert_eq!(verdicts[0], Verdict::Allow);
        assert_eq!(verdicts[5], Verdict::Allow, "the refill: {verdicts:?}");
        assert_eq!(
            verdicts[7],
            Verdict::Close,
            "the sixth refusal: {verdicts:?}"
        );
        // The strikes are the connection's: another socket of the user starts at none.
        let mut room = RoomLimits::new(limits.clone());
        room.publish("ann", "c1", 0);
        for _ in 0..5 {
            assert!(matches!(
                room.publish("ann", "c1", 0),
                Verdict::Refuse { .. }
            ));
        }
        assert!(matches!(
            room.publish("ann", "c2", 0),
            Verdict::Refuse { .. }
        ));
        assert_eq!(room.publish("ann", "c1", 0), Verdict::Close);
    }

    #[test]
    fn a_pause_between_refusals_clears_the_strikes() {
        let limits = RateLimits {
            publish_per_second: 1,
            publish_burst: 1,
            max_strikes: 3,
            ..Default::default()
        };
        // Refused twice a second, each time after a pause of a second: never closed.
        let mut patient = RoomLimits::new(limits);
        for second in 0..10 {
            let now = second * STRIKE_PAUSE_MS;
            assert_eq!(patient.publish("ann", "c1", now), Verdict::Allow);
            for _ in 0..3 {
                assert!(matches!(
                    patient.publish("ann", "c1", now),
                    Verdict::Refuse { .. }
                ));
            }
        }
    }

    #[test]
    fn the_strike_map_is_bounded() {
        let limits = RateLimits {
            publish_burst: 1,
            ..Default::default()
        };
        let mut room = RoomLimits::new(limits);
        room.publish_without_socket("ann", 0).ok();
        for i in 0..MAX_TRACKED_USERS + 10 {
            room.publish("ann", &format!("c{i}"), 0);
        }
        assert!(room.strikes.len() <= MAX_TRACKED_USERS);
    }
}
