//! Tunable limits read from the Worker's variables, with the documented defaults.

use crate::protocol::DEFAULT_MAX_FRAME_BYTES;
use crate::rate_limit::RateLimits;

/// Messages whose bodies a room keeps in its own storage after they are archived in D1.
pub const DEFAULT_HOT_WINDOW: u64 = 1_000;
/// Delay between a publish and the archive write that picks it up: one D1 batch per busy room
/// every five seconds. Each run costs an alarm and a D1 batch per active room, which at 1 s
/// took 5% of the CPU of 50 busy rooms; clients never wait for it (history and resume read
/// the room's own storage for whatever is not archived yet). See bench/RESULTS.md.
pub const DEFAULT_ARCHIVE_DELAY_MS: u64 = 5_000;
/// Largest HTTP body the relay reads.
pub const MAX_HTTP_BODY_BYTES: usize = 256 * 1024;
/// Error frames a connection may cause before it is closed with 4400.
pub const MAX_PROTOCOL_VIOLATIONS: u32 = 20;
/// Unsent output a socket may have before the room closes it as a slow consumer (4010). A
/// socket that keeps up never has much more than one batch unsent (a batch leaves at 1 MiB), so
/// 2 MiB catches only sockets that are really behind, at 1 Mbit/s about 16 s of backlog; and a
/// stuck socket pins at most this plus one message, where without a bound the relay kept
/// everything published to it.
pub const DEFAULT_MAX_SOCKET_BUFFER_BYTES: usize = 2 << 20;
/// Range of `MAX_SOCKET_BUFFER_BYTES`: at least a whole batch and twice what a paced resume
/// keeps unsent (see `crate::replay`), at most what a few stuck sockets may pin without
/// starving the isolate.
pub const MIN_SOCKET_BUFFER_BYTES: usize = 1 << 20;
pub const MAX_SOCKET_BUFFER_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub hot_window: u64,
    pub archive_delay_ms: u64,
    pub rates: RateLimits,
    /// Unsent output past which a socket is closed with 4010 (`MAX_SOCKET_BUFFER_BYTES`).
    pub max_socket_buffer_bytes: usize,
}

impl Limits {
    /// Reads `MAX_FRAME_BYTES`, `ROOM_HOT_WINDOW`, `ARCHIVE_DELAY_MS`, `PUBLISH_RATE_PER_SEC`,
    /// `PUBLISH_BURST`, `RATE_LIMIT_STRIKES`, `CONNECT_RATE_PER_SEC`, `CONNECT_BURST` and
    /// `MAX_SOCKET_BUFFER_BYTES`; missing or
    /// unparsable values fall back to the defaults, and each is clamped to a sane range.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let number = |name: &str, default: u64, min: u64, max: u64| {
            var(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
                .clamp(min, max)
        };
        Limits {
            max_frame_bytes: number(
                "MAX_FRAME_BYTES",
                DEFAULT_MAX_FRAME_BYTES as u64,
                1024,
                1 << 20,
            ) as usize,
            hot_window: number("ROOM_HOT_WINDOW", DEFAULT_HOT_WINDOW, 100, 1_000_000),
            archive_delay_ms: number("ARCHIVE_DELAY_MS", DEFAULT_ARCHIVE_DELAY_MS, 10, 60_000),
            rates: RateLimits {
                publish_per_second: number("PUBLISH_RATE_PER_SEC", 20, 1, 10_000) as u32,
                publish_burst: number("PUBLISH_BURST", 40, 1, 10_000) as u32,
                max_strikes: number("RATE_LIMIT_STRIKES", 50, 1, 10_000) as u32,
                connect_per_second: number("CONNECT_RATE_PER_SEC", 5, 1, 10_000) as u32,
                connect_burst: number("CONNECT_BURST", 30, 1, 10_000) as u32,
                ..RateLimits::default()
            },
            max_socket_buffer_bytes: number(
                "MAX_SOCKET_BUFFER_BYTES",
                DEFAULT_MAX_SOCKET_BUFFER_BYTES as u64,
                MIN_SOCKET_BUFFER_BYTES as u64,
                MAX_SOCKET_BUFFER_BYTES as u64,
            ) as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let defaults = Limits::from_vars(|_| None);
        assert_eq!(defaults.max_frame_bytes, 64 * 1024);
        assert_eq!(defaults.hot_window, 1_000);
        let custom = Limits::from_vars(|name| (name == "MAX_FRAME_BYTES").then(|| "2048".into()));
        assert_eq!(custom.max_frame_bytes, 2048);
        let clamped = Limits::from_vars(|_| Some("1".into()));
        assert_eq!(clamped.max_frame_bytes, 1024);
        assert_eq!(clamped.hot_window, 100);
        let junk = Limits::from_vars(|_| Some("lots".into()));
        assert_eq!(junk, defaults);
        assert_eq!(defaults.rates.connect_burst, 30);
        let connects = Limits::from_vars(|name| (name == "CONNECT_BURST").then(|| "3".into()));
        assert_eq!(connects.rates.connect_burst, 3);
    }

    #[test]
    fn socket_buffer_bound_defaults_to_2_mib_and_is_clamped() {
        let bound = |value: &str| {
            let value = value.to_string();
            Limits::from_vars(|name| (name == "MAX_SOCKET_BUFFER_BYTES").then(|| value.clone()))
                .max_socket_buffer_bytes
        };
        assert_eq!(Limits::from_vars(|_| None).max_socket_buffer_bytes, 2 << 20);
        assert_eq!(bound("4194304"), 4 << 20);
        assert_eq!(bound(" 1048576 "), 1 << 20);
        assert_eq!(bound("1000"), 1 << 20, "raised to 1 MiB");
        assert_eq!(bound("0"), 1 << 20);
        assert_eq!(bound("99999999999"), 64 << 20, "lowered to 64 MiB");
        assert_eq!(bound("2MiB"), 2 << 20, "unparsable: the default");
    }
}
