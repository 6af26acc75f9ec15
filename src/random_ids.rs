//! Random identifiers for connections and messages: bytes from the platform's secure random
//! source, drawn in blocks, so that most ids cost no call into the runtime.

use std::cell::RefCell;

/// Bytes drawn per call to the platform (sixteen ids).
const POOL_BYTES: usize = 256;
const ID_BYTES: usize = 16;
const HEX: &[u8; 16] = b"0123456789abcdef";

struct Pool {
    bytes: [u8; POOL_BYTES],
    next: usize,
    fallback_counter: u64,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { bytes: [0; POOL_BYTES], next: POOL_BYTES, fallback_counter: 0 })
    };
}

/// SplitMix64's output function: spreads a counter over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Pool {
    fn refill(&mut self, now_ms: i64) {
        if getrandom::fill(&mut self.bytes).is_err() {
            self.fill_without_randomness(now_ms);
        }
        self.next = 0;
    }

    /// The Workers runtime always has crypto.getRandomValues; without it, ids are still
    /// distinct within this instance (time and a counter), though predictable.
    fn fill_without_randomness(&mut self, now_ms: i64) {
        for chunk in self.bytes.chunks_mut(8) {
            self.fallback_counter += 1;
            let word = mix(now_ms as u64 ^ mix(self.fallback_counter));
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
        }
    }

    fn take<const N: usize>(&mut self, now_ms: i64) -> [u8; N] {
        if self.next + N > POOL_BYTES {
            self.refill(now_ms);
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.next..self.next + N]);
        // Bytes are handed out once.
        self.bytes[self.next..self.next + N].fill(0);
        self.next += N;
        out
    }
}

/// 32 lowercase hex digits (128 random bits). `now_ms` only feeds the fallback.
pub fn random_id(now_ms: i64) -> String {
    let bytes: [u8; ID_BYTES] = POOL.with(|pool| pool.borrow_mut().take(now_ms));
    let mut id = String::with_capacity(ID_BYTES * 2);
    for byte in bytes {
        id.push(HEX[usize::from(byte >> 4)] as char);
        id.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    id
}

/// A random number below `bound` (0 when `bound` is 0).
pub fn random_below(bound: u64, now_ms: i64) -> u64 {
    if bound == 0 {
        return 0;
    }
    let bytes: [u8; 8] = POOL.with(|pool| pool.borrow_mut().take(now_ms));
    u64::from_le_bytes(bytes) % bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_32_hex_digits_and_distinct_across_many_refills() {
        let ids: HashSet<String> = (0..5_000).map(|_| random_id(0)).collect();
        assert_eq!(ids.len(), 5_000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| HEX.contains(&b))));
    }

    #[test]
    fn numbers_stay_below_their_bound() {
        assert_eq!(random_below(0, 0), 0);
        assert!((0..1_000).all(|_| random_below(7, 0) < 7));
        let seen: HashSet<u64> = (0..1_000).map(|_| random_below(4, 0)).collect();
        assert_eq!(seen.len(), 4, "every value below the bound comes up");
    }

    #[test]
    fn the_fallback_without_platform_randomness_still_gives_distinct_bytes() {
        let mut pool = Pool {
            bytes: [0; POOL_BYTES],
            next: POOL_BYTES,
            fallback_counter: 0,
        };
        let mut blocks = HashSet::new();
        for _ in 0..64 {
            // The same instant every time: only the counter tells the blocks apart.
            pool.fill_without_randomness(42);
            pool.next = 0;
            while pool.next < POOL_BYTES {
                let block: [u8; ID_BYTES] = pool.take(42);
                assert!(blocks.insert(block));
            }
        }
    }
}
