//! CPU time of the server under test: user + system seconds of a process and all its
//! descendants (wrangler's node processes and both workerd processes), read from /proc.

use crate::common;

/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, which Linux fixes at 100 per second
/// for user space whatever the kernel's own tick rate.
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds (user + system) used so far by `pid` and its live descendants; `None` when `pid`
/// does not exist. A process that ended meanwhile drops out of the sum, so the difference of
/// two samples is exact only for a tree whose processes live through both (a server's do).
pub fn tree_cpu_s(pid: u32) -> Option<f64> {
    let tree = common::tree_rss(pid)?;
    let ticks: u64 = tree
        .iter()
        .filter_map(|(p, _, _)| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|stat| stat_ticks(&stat))
        .sum();
    Some(ticks as f64 / TICKS_PER_S)
}

/// utime + stime from one `/proc/<pid>/stat` line: "pid (comm) state ppid …", fields 14 and 15
/// counted from 1; comm may hold spaces and parentheses, so the count starts after its last ')'.
fn stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_from_a_stat_line() {
        let line =
            "4242 (workerd (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 0 0 20 0 9 0 77 0 0";
        assert_eq!(stat_ticks(line), Some(1290));
        assert_eq!(stat_ticks("garbage"), None);
    }

    #[test]
    fn a_live_process_has_a_cpu_time_and_a_missing_one_none() {
        assert!(tree_cpu_s(std::process::id()).is_some());
        // Above the kernel's largest pid (2^22).
        assert_eq!(tree_cpu_s(u32::MAX), None);
    }
}
