//! The configuration read from the Worker's variables and secrets: the Worker's [`Settings`]
//! (token verification, backend and admin secrets, origins, development mode) and the rooms'
//! tunable [`Limits`], with the documented defaults and bounds. Pure: the runtime hands in a
//! lookup of its environment.

use std::rc::Rc;

use crate::auth::{AuthConfig, MAX_LEEWAY_SECS};
use crate::cors::AllowedOrigins;
use crate::events::EventsConfig;
use crate::jwks::{self, KeySet};
use crate::occupancy::PresenceLimits;
use crate::protocol::DEFAULT_MAX_FRAME_BYTES;
use crate::publish_hook::HookConfig;
use crate::rate_limit::RateLimits;
use crate::room_prefixes::RoomPrefixes;
use crate::shard_fanout::ShardViewers;

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
/// How long a member may leave a message unread while offline before the room sends
/// `message.unread` (`UNREAD_NOTIFY_AFTER_S`): a minute, so that a user who steps away briefly
/// is not notified at once.
pub const DEFAULT_UNREAD_NOTIFY_AFTER_S: u64 = 60;
/// Sockets per object before a room shards its fan-out (`SHARD_VIEWERS`): well below the
/// 32,768 hibernatable sockets one object may hold, so that nothing changes for ordinary rooms.
pub const DEFAULT_SHARD_VIEWERS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub hot_window: u64,
    pub archive_delay_ms: u64,
    pub rates: RateLimits,
    /// Unsent output past which a socket is closed with 4010 (`MAX_SOCKET_BUFFER_BYTES`).
    pub max_socket_buffer_bytes: usize,
    /// Token roles that may edit and delete anyone's message (`MODERATOR_ROLES`).
    pub moderator_roles: Vec<String>,
    /// How long an offline member leaves a message unread before `message.unread`, in ms
    /// (`UNREAD_NOTIFY_AFTER_S`, 5 s to a day).
    pub unread_notify_after_ms: i64,
    /// Sockets a room holds itself before it places new ones on shards, and each shard's
    /// share (`SHARD_VIEWERS`, per prefix `SHARD_VIEWERS_PREFIXES`).
    pub shard_viewers: ShardViewers,
}

impl Limits {
    /// Reads `MAX_FRAME_BYTES`, `ROOM_HOT_WINDOW`, `ARCHIVE_DELAY_MS`, `PUBLISH_RATE_PER_SEC`,
    /// `PUBLISH_BURST`, `RATE_LIMIT_STRIKES`, `CONNECT_RATE_PER_SEC`, `CONNECT_BURST`,
    /// `MAX_SOCKET_BUFFER_BYTES`, `UNREAD_NOTIFY_AFTER_S`, `SHARD_VIEWERS` and
    /// `SHARD_VIEWERS_PREFIXES`; missing or
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
            moderator_roles: crate::edits::moderator_roles(var("MODERATOR_ROLES")),
            unread_notify_after_ms: number(
                "UNREAD_NOTIFY_AFTER_S",
                DEFAULT_UNREAD_NOTIFY_AFTER_S,
                5,
                86_400,
            ) as i64
                * 1000,
            shard_viewers: ShardViewers::parse(
                number("SHARD_VIEWERS", DEFAULT_SHARD_VIEWERS, 2, 32_000) as usize,
                var("SHARD_VIEWERS_PREFIXES").as_deref(),
            ),
        }
    }
}

/// Most prefixes read from `MEMBERS_ONLY_PREFIXES`.
const MAX_MEMBERS_ONLY_PREFIXES: usize = 32;

/// The Worker's settings. Not `Debug`: it holds secrets, which never reach a log.
#[derive(Clone)]
pub struct Settings {
    /// How user tokens are verified; `None` when none of `JWT_SECRET`, `JWT_PUBLIC_KEYS` and
    /// `JWT_JWKS_URL` is set (every authenticated route then answers 500).
    pub jwt: Option<AuthConfig>,
    /// `JWT_PUBLIC_KEYS`: empty when unset or not a usable JWKS.
    pub public_keys: Rc<KeySet>,
    /// `JWT_JWKS_URL`, when it is one the relay may fetch (see [`jwks::url_allowed`]).
    pub jwks_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub admin_secret: Option<String>,
    /// `DEV_MODE` set to anything but `0` or `false`: `POST /dev/token` answers.
    pub dev_mode: bool,
    /// `ALLOWED_ORIGINS`.
    pub allowed_origins: AllowedOrigins,
    /// `MEMBERS_ONLY_PREFIXES`: the rooms that admit their members only.
    pub members_only: RoomPrefixes,
    /// `EVENTS_URL` and the rest: `None` when rooms send no events.
    pub events: Option<EventsConfig>,
    /// `PUBLISH_HOOK_URL` and the rest: `None` when no room has a before-publish hook.
    pub publish_hook: Option<HookConfig>,
    /// `PRESENCE_FULL_MAX` and `PRESENCE_FULL_MAX_PREFIXES`: where rooms switch to counts.
    pub presence_limits: PresenceLimits,
    /// What was set but not used, for the log; names variables and says why, never a value
    /// of a secret.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Reads `JWT_SECRET`, `JWT_PUBLIC_KEYS`, `JWT_JWKS_URL`, `JWT_ISSUER`, `JWT_AUDIENCE`,
    /// `JWT_LEEWAY_SECS`, `WEBHOOK_SECRET`, `ADMIN_SECRET`, `DEV_MODE`, `ALLOWED_ORIGINS`,
    /// `MEMBERS_ONLY_PREFIXES`, the `EVENTS_*` settings ([`EventsConfig`]), the `PUBLISH_HOOK_*`
    /// settings ([`HookConfig`]) and the `PRESENCE_FULL_MAX*` ones ([`PresenceLimits`]).
    /// An empty value counts as unset; a value that cannot be used is left out with a warning.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let text = |name: &str| var(name).filter(|value| !value.is_empty());
        let mut warnings = Vec::new();
        let public_keys = match text("JWT_PUBLIC_KEYS").map(|json| jwks::parse(&json)) {
            None => KeySet::default(),
            Some(Ok(keys)) => {
                if keys.is_empty() {
                    warnings.push(
                        "JWT_PUBLIC_KEYS has no RS256, ES256 or EdDSA signature key".to_string(),
                    );
                }
                keys
            }
            Some(Err(err)) => {
                warnings.push(format!("JWT_PUBLIC_KEYS is not used: {err}"));
                KeySet::default()
            }
        };
        let jwks_url = text("JWT_JWKS_URL").filter(|url| {
            let allowed = jwks::url_allowed(url);
            if !allowed {
                warnings.push("JWT_JWKS_URL is not used: it must be an https URL".to_string());
            }
            allowed
        });
        let secret = text("JWT_SECRET").unwrap_or_default();
        let configured = !secret.is_empty() || !public_keys.is_empty() || jwks_url.is_some();
        let jwt = configured.then(|| {
            let mut config = AuthConfig::new(secret.into_bytes());
            config.issuer = text("JWT_ISSUER");
            config.audience = text("JWT_AUDIENCE");
            if let Some(leeway) = text("JWT_LEEWAY_SECS").and_then(|v| v.parse::<i64>().ok()) {
                config.leeway_secs = leeway.clamp(0, MAX_LEEWAY_SECS);
            }
            config
        });
        let (allowed_origins, invalid) = AllowedOrigins::parse(text("ALLOWED_ORIGINS").as_deref());
        warnings.extend(invalid.into_iter().map(|entry| {
            format!("ALLOWED_ORIGINS: {entry:?} is not an origin (scheme://host[:port]); ignored")
        }));
        let (members_only, ignored) = RoomPrefixes::parse(
            text("MEMBERS_ONLY_PREFIXES").as_deref(),
            MAX_MEMBERS_ONLY_PREFIXES,
        );
        warnings.extend(RoomPrefixes::warning(
            "MEMBERS_ONLY_PREFIXES",
            ignored,
            MAX_MEMBERS_ONLY_PREFIXES,
        ));
        let (events, events_warnings) = EventsConfig::from_vars(text);
        warnings.extend(events_warnings);
        let (publish_hook, hook_warnings) = HookConfig::from_vars(text);
        warnings.extend(hook_warnings);
        let (presence_limits, presence_warnings) = PresenceLimits::parse(
            text("PRESENCE_FULL_MAX").as_deref(),
            text("PRESENCE_FULL_MAX_PREFIXES").as_deref(),
        );
        warnings.extend(presence_warnings);
        Settings {
            jwt,
            events,
            publish_hook,
            presence_limits,
            public_keys: Rc::new(public_keys),
            members_only,
            jwks_url,
            webhook_secret: text("WEBHOOK_SECRET"),
            admin_secret: text("ADMIN_SECRET"),
            dev_mode: text("DEV_MODE").is_some_and(|v| v != "0" && v != "false"),
            allowed_origins,
            warnings,
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
        let junk = Limits::from_vars(|name| (name != "MODERATOR_ROLES").then(|| "lots".into()));
        assert_eq!(junk, defaults);
        assert_eq!(defaults.rates.connect_burst, 30);
        let connects = Limits::from_vars(|name| (name == "CONNECT_BURST").then(|| "3".into()));
        assert_eq!(connects.rates.connect_burst, 3);
    }

    #[test]
    fn unread_interval_defaults_to_a_minute_within_5_s_and_a_day() {
        let after_ms = |value: &str| {
            let value = value.to_string();
            Limits::from_vars(|name| (name == "UNREAD_NOTIFY_AFTER_S").then(|| value.clone()))
                .unread_notify_after_ms
        };
        assert_eq!(Limits::from_vars(|_| None).unread_notify_after_ms, 60_000);
        assert_eq!(after_ms("300"), 300_000);
        assert_eq!(after_ms("1"), 5_000);
        assert_eq!(after_ms("9999999"), 86_400_000);
    }

    #[test]
    fn rooms_shard_past_ten_thousand_sockets_unless_told() {
        let viewers = |value: &str| {
            let value = value.to_string();
            Limits::from_vars(|name| (name == "SHARD_VIEWERS").then(|| value.clone()))
                .shard_viewers
                .for_room("r")
        };
        assert_eq!(
            Limits::from_vars(|_| None).shard_viewers.for_room("r"),
            10_000
        );
        let by_prefix = Limits::from_vars(|name| match name {
            "SHARD_VIEWERS_PREFIXES" => Some("e2e-shard:=25".into()),
            _ => None,
        });
        assert_eq!(by_prefix.shard_viewers.for_room("e2e-shard:1"), 25);
        assert_eq!(by_prefix.shard_viewers.for_room("chat:1"), 10_000);
        assert_eq!(viewers("25"), 25);
        assert_eq!(viewers("1"), 2);
        assert_eq!(viewers("100000"), 32_000);
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

    fn settings(vars: &[(&str, &str)]) -> Settings {
        Settings::from_vars(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn settings_default_to_nothing_configured() {
        let unset = settings(&[]);
        assert!(unset.jwt.is_none());
        assert!(unset.public_keys.is_empty());
        assert_eq!(unset.jwks_url, None);
        assert_eq!(unset.webhook_secret, None);
        assert_eq!(unset.admin_secret, None);
        assert!(!unset.dev_mode);
        assert_eq!(unset.allowed_origins, AllowedOrigins::default());
        assert!(unset.warnings.is_empty());
        // Empty values count as unset.
        let empty = settings(&[
            ("JWT_SECRET", ""),
            ("WEBHOOK_SECRET", ""),
            ("ADMIN_SECRET", ""),
            ("DEV_MODE", ""),
        ]);
        assert!(empty.jwt.is_none() && empty.webhook_secret.is_none());
        assert!(empty.admin_secret.is_none() && !empty.dev_mode);
    }

    #[test]
    fn settings_read_the_secrets_and_token_options() {
        let set = settings(&[
            ("JWT_SECRET", "s3cret"),
            ("JWT_ISSUER", "https://idp.example/"),
            ("JWT_AUDIENCE", ""),
            ("JWT_LEEWAY_SECS", "10"),
            ("WEBHOOK_SECRET", "hook"),
            ("ADMIN_SECRET", "admin"),
        ]);
        let jwt = set.jwt.unwrap();
        assert_eq!(jwt.secret, b"s3cret");
        assert_eq!(jwt.issuer.as_deref(), Some("https://idp.example/"));
        assert_eq!(jwt.audience, None);
        assert_eq!(jwt.leeway_secs, 10);
        assert_eq!(set.webhook_secret.as_deref(), Some("hook"));
        assert_eq!(set.admin_secret.as_deref(), Some("admin"));
    }

    #[test]
    fn token_leeway_defaults_and_bounds() {
        let leeway = |value: &str| {
            settings(&[("JWT_SECRET", "s"), ("JWT_LEEWAY_SECS", value)])
                .jwt
                .unwrap()
                .leeway_secs
        };
        assert_eq!(leeway(""), crate::auth::DEFAULT_LEEWAY_SECS);
        assert_eq!(leeway("soon"), 30, "unparsable: the default");
        assert_eq!(leeway("1.5"), 30);
        assert_eq!(leeway("0"), 0);
        assert_eq!(leeway("60"), 60);
        assert_eq!(leeway("3600"), 60, "at most 60 s");
        assert_eq!(leeway("-5"), 0);
    }

    #[test]
    fn dev_mode_is_on_for_anything_but_0_and_false() {
        for (value, on) in [("1", true), ("yes", true), ("0", false), ("false", false)] {
            assert_eq!(settings(&[("DEV_MODE", value)]).dev_mode, on, "{value}");
        }
    }

    #[test]
    fn unusable_key_settings_are_left_out_with_a_warning() {
        let bad = settings(&[
            ("JWT_PUBLIC_KEYS", "not json"),
            ("JWT_JWKS_URL", "http://idp.example/jwks"),
        ]);
        assert!(bad.jwt.is_none(), "nothing usable: not configured");
        assert!(bad.public_keys.is_empty() && bad.jwks_url.is_none());
        assert_eq!(bad.warnings.len(), 2, "{:?}", bad.warnings);
        assert!(bad.warnings[0].starts_with("JWT_PUBLIC_KEYS is not used"));
        assert!(bad.warnings[1].starts_with("JWT_JWKS_URL is not used"));
        let no_keys = settings(&[("JWT_PUBLIC_KEYS", r#"{"keys":[]}"#)]);
        assert!(no_keys.jwt.is_none());
        assert_eq!(no_keys.warnings.len(), 1);

        let keys = crate::jwks::tests::jwks_of(&["ed-1"]);
        let good = settings(&[
            ("JWT_PUBLIC_KEYS", &keys),
            ("JWT_JWKS_URL", "https://idp.example/jwks"),
        ]);
        let jwt = good.jwt.expect("public keys alone configure tokens");
        assert!(jwt.secret.is_empty(), "no HS256 without JWT_SECRET");
        assert!(!good.public_keys.is_empty());
        assert_eq!(good.jwks_url.as_deref(), Some("https://idp.example/jwks"));
        assert!(good.warnings.is_empty(), "{:?}", good.warnings);
    }

    #[test]
    fn allowed_origins_are_parsed_and_bad_entries_reported() {
        let set = settings(&[("ALLOWED_ORIGINS", "https://app.example, nope")]);
        assert_eq!(
            set.allowed_origins,
            AllowedOrigins::parse(Some("https://app.example")).0
        );
        assert_eq!(set.warnings.len(), 1);
        assert!(set.warnings[0].contains("\"nope\""), "{:?}", set.warnings);
    }

    #[test]
    fn warnings_never_carry_a_secret() {
        let set = settings(&[
            ("JWT_SECRET", "hs-secret-value"),
            ("WEBHOOK_SECRET", "hook-secret-value"),
            ("ADMIN_SECRET", "admin-secret-value"),
            ("JWT_PUBLIC_KEYS", "{bad"),
            ("JWT_JWKS_URL", "ftp://x"),
        ]);
        assert_eq!(set.warnings.len(), 2);
        for warning in &set.warnings {
            assert!(!warning.contains("secret-value"), "{warning}");
        }
    }
}
