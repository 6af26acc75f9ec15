//! Token buckets for publishes and typing, and the strike count that ends abusive connections.

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

/// Publish limits of one connection: refused publishes count as strikes, and a connection
/// with too many strikes in a row is closed (4008). An accepted publish clears the strikes.
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
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            publish_per_second: 20,
            publish_burst: 40,
            max_strikes: 50,
            typing_per_second: 2,
            typing_burst: 5,
        }
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
