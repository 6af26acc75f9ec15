//! When a room's write-behind to D1 runs: a delay after a publish, and after failures an
//! exponential backoff that later publishes do not cut short.

/// Longest wait between two attempts while D1 keeps failing.
pub const MAX_BACKOFF_MS: u64 = 60_000;

/// The wait after `failures` failed attempts in a row: 1 s, 2 s, 4 s ... up to a minute.
pub fn backoff_ms(failures: u32) -> u64 {
    (500u64 << failures.min(7)).min(MAX_BACKOFF_MS)
}

/// When the archive should run for a publish at `now_ms`: after the room's delay (and its
/// jitter), but never before a retry that a failure put off (`retry_at_ms`). Without that
/// floor every publish pulled the alarm forward, and a busy room retried a failing D1 once
/// per delay whatever its backoff (64 attempts in 20 s were seen).
pub fn due_after_write(now_ms: i64, delay_ms: i64, retry_at_ms: Option<i64>) -> i64 {
    let due = now_ms.saturating_add(delay_ms);
    retry_at_ms.map_or(due, |retry_at| due.max(retry_at))
}

/// Whether an alarm at `now_ms` (it may have been set for something else, a feed update or a
/// stats report) may write to D1 now.
pub fn may_write(now_ms: i64, retry_at_ms: Option<i64>) -> bool {
    retry_at_ms.is_none_or(|retry_at| now_ms >= retry_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(backoff_ms).collect();
        assert_eq!(
            waits,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
        );
        assert_eq!(backoff_ms(u32::MAX), MAX_BACKOFF_MS);
    }

    #[test]
    fn publishes_do_not_cut_a_backoff_short() {
        assert_eq!(due_after_write(1_000, 5_000, None), 6_000);
        // D1 failed and the retry waits until 40 s: publishes at 2 s and 30 s wait for it.
        assert_eq!(due_after_write(2_000, 5_000, Some(40_000)), 40_000);
        assert_eq!(due_after_write(30_000, 5_000, Some(40_000)), 40_000);
        // A publish after the retry time is scheduled as usual.
        assert_eq!(due_after_write(50_000, 5_000, Some(40_000)), 55_000);
        assert_eq!(due_after_write(i64::MAX, 5_000, None), i64::MAX);
    }

    #[test]
    fn a_failing_d1_is_tried_at_most_once_per_backoff() {
        // A busy room publishing every 100 ms for 20 s while D1 fails: the attempts follow
        // the backoff (1, 2, 4, 8 s ...), not the 50 ms delay.
        let delay = 50;
        let (mut failures, mut retry_at, mut alarm_at) = (0u32, None, None::<i64>);
        let mut attempts = 0;
        for now in (0..20_000).step_by(100) {
            if alarm_at.is_some_and(|at| at <= now) {
                if may_write(now, retry_at) {
                    attempts += 1;
                    failures += 1;
                    retry_at = Some(now + backoff_ms(failures) as i64);
                }
                // The alarm is spent; after a failure it is set for the retry.
                alarm_at = retry_at;
            }
            let due = due_after_write(now, delay, retry_at);
            alarm_at = Some(alarm_at.map_or(due, |at| at.min(due)));
        }
        assert!(attempts <= 5, "{attempts} attempts in 20 s");
        assert!(attempts >= 4, "retries still happen: {attempts}");
    }
}
