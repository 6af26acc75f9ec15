//! Latency samples (µs) and their summary. Samples are kept exactly (4 bytes each; runs are
//! bounded in message count) and the percentiles are nearest-rank over all of them.

use serde_json::{json, Value};

/// A summary in milliseconds: `{"count","p50","p90","p99","max","mean"}`, or `{"count":0}`.
pub fn summary_ms(samples: &mut [u32]) -> Value {
    if samples.is_empty() {
        return json!({ "count": 0 });
    }
    samples.sort_unstable();
    let n = samples.len();
    let pick = |p: f64| -> f64 {
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        samples[rank.clamp(1, n) - 1] as f64 / 1000.0
    };
    let mean = samples.iter().map(|&v| v as f64).sum::<f64>() / n as f64 / 1000.0;
    json!({
        "count": n,
        "p50": crate::common::r3(pick(50.0)),
        "p90": crate::common::r3(pick(90.0)),
        "p99": crate::common::r3(pick(99.0)),
        "max": crate::common::r3(samples[n - 1] as f64 / 1000.0),
        "mean": crate::common::r3(mean),
    })
}

/// Microseconds from `from` to `to` (on [`crate::common::now_us`]'s clock) as a sample,
/// saturating at both ends.
pub fn sample(from: u64, to: u64) -> u32 {
    to.saturating_sub(from).min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        let s = summary_ms(&mut v);
        assert_eq!(s["p50"], 50.0);
        assert_eq!(s["p90"], 90.0);
        assert_eq!(s["p99"], 99.0);
        assert_eq!(s["max"], 100.0);
        assert_eq!(s["count"], 100);
        let mut one = vec![1500];
        assert_eq!(summary_ms(&mut one)["p99"], 1.5);
        assert_eq!(summary_ms(&mut [])["count"], 0);
    }
}
