//! `capacity`: the highest total publish rate over K rooms × P clients at which the p99 of
//! delivery latency stays under a threshold (50 ms by default), with nothing lost or
//! duplicated. It runs the `rooms` workload ([`rooms::run_workload`]) once per rate step on
//! one running server, each step on fresh rooms and users, with a settling pause before each.
//!
//! Steps (per-client rates): start at `--start-rate`, double while steps pass (up to
//! `--max-rate`), halve while they fail (down to an eighth of the start); once one rate passed
//! and one failed, bisect between the highest pass and the lowest fail (geometric midpoint, two
//! significant digits) until they are within `--resolution` of each other, at most
//! `--max-steps` steps in all.

use crate::common::{self, Ctx, Res, RunOutput};
use crate::cpu;
use crate::rooms::{self, Workload};
use crate::CommonArgs;
use clap::Args;
use serde_json::{json, Map, Value};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Args, Debug)]
pub struct CapacityArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Rooms per step.
    #[arg(long, default_value_t = 50)]
    pub rooms: usize,
    /// Clients per room (each a distinct user).
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// A step passes while the p99 of its delivery latency is below this many ms.
    #[arg(long, default_value_t = 50.0)]
    pub p99_ms: f64,
    /// Messages per second each client publishes in the first step.
    #[arg(long, default_value_t = 1.0)]
    pub start_rate: f64,
    /// The highest per-client rate tried; a run whose step at this rate passes stops there.
    #[arg(long, default_value_t = 64.0)]
    pub max_rate: f64,
    /// At most this many steps.
    #[arg(long, default_value_t = 8)]
    pub max_steps: usize,
    /// Bisection stops once the lowest failing rate is within this fraction above the highest
    /// passing one.
    #[arg(long, default_value_t = 0.2)]
    pub resolution: f64,
    /// Seconds of publishing per step.
    #[arg(long, default_value_t = 8.0)]
    pub duration: f64,
    /// Seconds a step waits for outstanding deliveries after its last publish.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Seconds of rest before each step, so that the last step's closes, leaves and archive
    /// writes (ARCHIVE_DELAY_MS is 5 s by default) are over. With `--server-pid` the rest goes
    /// on (at most as long again) while the server still uses more than 20% of a core.
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,
    /// Connections opened at once while a step sets up.
    #[arg(long, default_value_t = 50)]
    pub connect_concurrency: usize,
    /// The server's pid (`wrangler dev`): each step reports the CPU its process tree used while
    /// the clients published and drained, and the rest before a step watches it.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// Why a run stopped stepping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// The lowest failing rate is within the resolution of the highest passing one.
    Bracketed,
    /// The step at the rate cap passed.
    CapPassed,
    /// The lowest rate tried (an eighth of the start) failed.
    FloorFailed,
    StepLimit,
    /// The run's `--timeout` left no time for the next step, or ended a step.
    Timeout,
}

impl Stop {
    fn text(self) -> &'static str {
        match self {
            Stop::Bracketed => "bracketed",
            Stop::CapPassed => "rate cap passed",
            Stop::FloorFailed => "lowest rate failed",
            Stop::StepLimit => "step limit",
            Stop::Timeout => "timeout",
        }
    }
}

/// The step schedule: which per-client rate to try next, given the steps so far.
pub struct Schedule {
    start: f64,
    max: f64,
    floor: f64,
    resolution: f64,
    max_steps: usize,
    steps: usize,
    highest_pass: Option<f64>,
    lowest_fail: Option<f64>,
}

impl Schedule {
    pub fn new(start: f64, max: f64, resolution: f64, max_steps: usize) -> Schedule {
        Schedule {
            start,
            max,
            floor: start / 8.0,
            resolution,
            max_steps,
            steps: 0,
            highest_pass: None,
            lowest_fail: None,
        }
    }

    /// The next per-client rate, or why there is none.
    pub fn next(&self) -> Result<f64, Stop> {
        let rate = match (self.highest_pass, self.lowest_fail) {
            (None, None) => self.start,
            (Some(pass), None) if pass >= self.max => return Err(Stop::CapPassed),
            (Some(pass), None) => (2.0 * pass).min(self.max),
            (None, Some(fail)) if fail <= self.floor => return Err(Stop::FloorFailed),
            (None, Some(fail)) => (fail / 2.0).max(self.floor),
            (Some(pass), Some(fail)) => {
                let mid = two_significant_digits((pass * fail).sqrt());
                if fail <= pass * (1.0 + self.resolution) || mid <= pass || mid >= fail {
                    return Err(Stop::Bracketed);
                }
                mid
            }
        };
        if self.steps >= self.max_steps {
            return Err(Stop::StepLimit);
        }
        Ok(rate)
    }

    pub fn record(&mut self, rate: f64, passed: bool) {
        self.steps += 1;
        if passed {
            self.highest_pass = Some(self.highest_pass.map_or(rate, |p| p.max(rate)));
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(rate, |f| f.min(rate)));
        }
    }
}

fn two_significant_digits(x: f64) -> f64 {
    let exp = x.log10().floor() as i32 - 1;
    if exp < 0 {
        let scale = 10f64.powi(-exp);
        (x * scale).round() / scale
    } else {
        let scale = 10f64.powi(exp);
        (x / scale).round() * scale
    }
}

/// What a step is judged by, from the workload's results.
#[derive(Debug, Default, PartialEq)]
pub struct StepFigures {
    pub clients: u64,
    pub connected: u64,
    pub to_send: u64,
    pub sent: u64,
    pub acked: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub ended_early: u64,
    pub error_frames: u64,
    pub p99_ms: Option<f64>,
    pub timed_out: bool,
}

impl StepFigures {
    pub fn from_results(r: &Map<String, Value>, clients: u64, to_send: u64) -> StepFigures {
        let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        let total = |k: &str| {
            r.get(k)
                .and_then(Value::as_object)
                .map_or(0, |o| o.values().filter_map(Value::as_u64).sum())
        };
        StepFigures {
            clients,
            connected: n("connected"),
            to_send,
            sent: n("sent"),
            acked: n("acked"),
            lost: n("lost"),
            duplicated: n("duplicated"),
            ended_early: total("clients_ended_early"),
            error_frames: total("client_errors"),
            p99_ms: r
                .get("latency_ms")
                .and_then(|l| l.get("p99"))
                .and_then(Value::as_f64),
            timed_out: r.get("incomplete_reason").and_then(Value::as_str) == Some("timeout"),
        }
    }
}

/// The pass rule: every client connected and stayed connected, every message was published and
/// acknowledged, no error frame, nothing lost or duplicated, and p99 below the threshold.
/// Returns why the step failed (empty when it passed).
pub fn failures(f: &StepFigures, p99_limit_ms: f64) -> Vec<String> {
    let mut why = Vec::new();
    if f.connected < f.clients {
        why.push(format!(
            "{} of {} clients connected",
            f.connected, f.clients
        ));
    }
    if f.ended_early > 0 {
        why.push(format!("{} clients disconnected", f.ended_early));
    }
    if f.connected == f.clients && f.sent < f.to_send {
        why.push(format!("{} of {} messages published", f.sent, f.to_send));
    }
    if f.acked < f.sent {
        why.push(format!("{} publishes not acknowledged", f.sent - f.acked));
    }
    if f.error_frames > 0 {
        why.push(format!("{} error frames", f.error_frames));
    }
    if f.lost > 0 {
        why.push(format!("{} lost", f.lost));
    }
    if f.duplicated > 0 {
        why.push(format!("{} duplicated", f.duplicated));
    }
    match f.p99_ms {
        Some(p99) if p99 >= p99_limit_ms => why.push(format!("p99 {p99} ms >= {p99_limit_ms} ms")),
        Some(_) => {}
        None if f.connected == f.clients => why.push("no deliveries".into()),
        None => {}
    }
    why
}

fn check(a: &CapacityArgs) -> Res<()> {
    if !(a.p99_ms > 0.0 && a.p99_ms <= 60_000.0) {
        return Err("--p99-ms must be in (0, 60000]".into());
    }
    if !(a.start_rate > 0.0 && a.start_rate <= a.max_rate && a.max_rate <= 1000.0) {
        return Err("need 0 < --start-rate <= --max-rate <= 1000".into());
    }
    if !(1..=20).contains(&a.max_steps) || !(0.01..=1.0).contains(&a.resolution) {
        return Err("--max-steps must be in 1..=20, --resolution in [0.01, 1]".into());
    }
    let seconds = 0.0..=60.0;
    let in_bounds = a.duration > 0.0
        && seconds.contains(&a.duration)
        && seconds.contains(&a.drain)
        && seconds.contains(&a.settle);
    if !in_bounds {
        return Err("--duration must be in (0, 60], --drain and --settle in [0, 60]".into());
    }
    // The largest step must fit the workload's own bounds.
    workload(a, a.max_rate, String::new()).check()
}

fn workload(a: &CapacityArgs, rate: f64, tag: String) -> Workload {
    Workload {
        rooms: a.rooms,
        clients: a.clients,
        rate,
        duration: a.duration,
        drain: a.drain,
        connect_concurrency: a.connect_concurrency,
        scenario: "capacity",
        tag,
        server_pid: a.server_pid,
    }
}

/// Rests `settle` seconds; with a server pid, goes on in half-second slices (at most `settle`
/// more) while the server uses more than 20% of a core. Returns the seconds rested and the
/// server's CPU share over the last slice.
async fn settle(settle_s: f64, server_pid: Option<u32>) -> (f64, Option<f64>) {
    const SLICE: Duration = Duration::from_millis(500);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(settle_s)).await;
    let Some(pid) = server_pid else {
        return (settle_s, None);
    };
    let mut share = None;
    let extra_until = Instant::now() + Duration::from_secs_f64(settle_s);
    while let Some(before) = cpu::tree_cpu_s(pid) {
        tokio::time::sleep(SLICE).await;
        let Some(after) = cpu::tree_cpu_s(pid) else {
            break;
        };
        let pct = (after - before) / SLICE.as_secs_f64() * 100.0;
        share = Some(pct);
        if pct <= 20.0 || Instant::now() >= extra_until {
            break;
        }
    }
    (started.elapsed().as_secs_f64(), share)
}

pub async fn run(ctx: &'static Ctx, a: &CapacityArgs) -> Res<RunOutput> {
    check(a)?;
    let (k, p) = (a.rooms, a.clients);
    let clients = (k * p) as f64;
    let mut params = Map::new();
    params.insert(
        "case".into(),
        json!(ctx.case_label(format!("{k} rooms x {p} clients, p99 < {} ms", a.p99_ms))),
    );
    params.insert("rooms".into(), json!(k));
    params.insert("clients".into(), json!(p));
    params.insert("p99_ms".into(), json!(a.p99_ms));
    params.insert("start_rate".into(), json!(a.start_rate));
    params.insert("max_rate".into(), json!(a.max_rate));
    params.insert("max_steps".into(), json!(a.max_steps));
    params.insert("resolution".into(), json!(a.resolution));
    params.insert("step_duration_s".into(), json!(a.duration));
    params.insert("drain_s".into(), json!(a.drain));
    params.insert("settle_s".into(), json!(a.settle));
    params.insert("timeout_s".into(), json!(ctx.timeout.as_secs_f64()));

    let mut schedule = Schedule::new(a.start_rate, a.max_rate, a.resolution, a.max_steps);
    let mut steps = Vec::new();
    let stop = loop {
        let rate = match schedule.next() {
            Ok(rate) => rate,
            Err(stop) => break stop,
        };
        let (settled_s, settled_cpu_pct) = settle(a.settle, a.server_pid).await;
        // Setup, publishing and drain, with a few seconds for connecting.
        let needed = Duration::from_secs_f64(a.duration + a.drain + 5.0);
        if Instant::now() + needed > ctx.deadline {
            break Stop::Timeout;
        }
        let n = steps.len() + 1;
        let w = workload(a, rate, format!("{}-s{n}", ctx.run_id));
        let to_send = w.messages_per_client() * (k * p) as u64;
        let tool_cpu_before = cpu::tree_cpu_s(std::process::id());
        let r = rooms::run_workload(ctx, &w).await?;
        let tool_cpu_s = cpu::tree_cpu_s(std::process::id())
            .zip(tool_cpu_before)
            .map(|(after, before)| common::r3(after - before));
        let f = StepFigures::from_results(&r, (k * p) as u64, to_send);
        let why = failures(&f, a.p99_ms);
        let passed = why.is_empty() && !f.timed_out;
        let failed_because = if f.timed_out {
            vec!["timeout".to_string()]
        } else {
            why
        };
        let lat = r.get("latency_ms").cloned().unwrap_or(Value::Null);
        let mut step = json!({
            "step": n,
            "rate_per_client": rate,
            "msgs_per_s": common::r3(rate * clients),
            "deliveries_per_s": common::r3(rate * clients * (p - 1) as f64),
            "delivered_per_s": r.get("delivered_per_s"),
            "p50": lat.get("p50"),
            "p90": lat.get("p90"),
            "p99": lat.get("p99"),
            "max": lat.get("max"),
            "connected": f.connected,
            "sent": f.sent,
            "acked": f.acked,
            "lost": f.lost,
            "duplicated": f.duplicated,
            "clients_ended_early": f.ended_early,
            "error_frames": f.error_frames,
            "pass": passed,
            "failed_because": failed_because,
            "settled_s": common::r3(settled_s),
            "tool_cpu_s": tool_cpu_s,
            "load_average_1m": common::load_average_1m(),
        });
        for key in ["server_cpu_s", "server_cpu_us_per_delivery"] {
            if let Some(v) = r.get(key) {
                step[key] = v.clone();
            }
        }
        if let Some(pct) = settled_cpu_pct {
            step["server_cpu_pct_before"] = json!(common::r3(pct));
        }
        eprintln!(
            "   capacity step {n}: {rate} msg/s x {} clients = {} msgs/s (rested {settled_s:.1} s): \
             p50 {} p99 {} ms, lost {}, dup {}, load {} -> {}",
            k * p,
            common::r3(rate * clients),
            lat.get("p50").unwrap_or(&Value::Null),
            lat.get("p99").unwrap_or(&Value::Null),
            f.lost,
            f.duplicated,
            step["load_average_1m"],
            if passed {
                "pass".to_string()
            } else {
                format!("FAIL ({})", failed_because.join("; "))
            }
        );
        steps.push(step);
        if f.timed_out {
            break Stop::Timeout;
        }
        schedule.record(rate, passed);
    };

    let mut results = Map::new();
    let pass_rate = schedule.highest_pass.unwrap_or(0.0);
    results.insert("capacity_rate_per_client".into(), json!(pass_rate));
    results.insert(
        "capacity_msgs_per_s".into(),
        json!(common::r3(pass_rate * clients)),
    );
    results.insert(
        "capacity_deliveries_per_s".into(),
        json!(common::r3(pass_rate * clients * (p - 1) as f64)),
    );
    results.insert(
        "first_failing_msgs_per_s".into(),
        json!(schedule.lowest_fail.map(|f| common::r3(f * clients))),
    );
    results.insert("stopped".into(), json!(stop.text()));
    results.insert("steps".into(), Value::Array(steps));
    results.insert("complete".into(), json!(stop != Stop::Timeout));
    if stop == Stop::Timeout {
        results.insert("incomplete_reason".into(), json!("timeout"));
    }
    Ok(RunOutput {
        scenario: "capacity",
        target: ctx.target.clone(),
        params,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the schedule against a server that passes every rate up to `capacity`.
    fn walk(s: &mut Schedule, capacity: f64) -> (Vec<f64>, Stop) {
        let mut tried = Vec::new();
        loop {
            match s.next() {
                Ok(rate) => {
                    tried.push(rate);
                    s.record(rate, rate <= capacity);
                }
                Err(stop) => return (tried, stop),
            }
        }
    }

    #[test]
    fn doubles_then_bisects_to_the_resolution() {
        let mut s = Schedule::new(1.0, 64.0, 0.2, 8);
        let (tried, stop) = walk(&mut s, 3.0);
        assert_eq!(tried, vec![1.0, 2.0, 4.0, 2.8, 3.3]);
        assert_eq!(stop, Stop::Bracketed);
        assert_eq!((s.highest_pass, s.lowest_fail), (Some(2.8), Some(3.3)));
    }

    #[test]
    fn halves_when_the_start_fails_and_stops_at_the_floor() {
        let mut s = Schedule::new(1.0, 64.0, 0.2, 8);
        let (tried, stop) = walk(&mut s, 0.3);
        assert_eq!(tried, vec![1.0, 0.5, 0.25, 0.35, 0.3]);
        assert_eq!(stop, Stop::Bracketed);
        assert_eq!(s.highest_pass, Some(0.3));

        let mut s = Schedule::new(1.0, 64.0, 0.2, 8);
        let (tried, stop) = walk(&mut s, 0.01);
        assert_eq!(tried, vec![1.0, 0.5, 0.25, 0.125]);
        assert_eq!(stop, Stop::FloorFailed);
        assert_eq!(s.highest_pass, None);
    }

    #[test]
    fn stops_at_the_rate_cap_and_at_the_step_limit() {
        let mut s = Schedule::new(1.0, 6.0, 0.2, 8);
        let (tried, stop) = walk(&mut s, 100.0);
        assert_eq!(tried, vec![1.0, 2.0, 4.0, 6.0]);
        assert_eq!(stop, Stop::CapPassed);

        let mut s = Schedule::new(1.0, 64.0, 0.2, 3);
        let (tried, stop) = walk(&mut s, 100.0);
        assert_eq!(tried, vec![1.0, 2.0, 4.0]);
        assert_eq!(stop, Stop::StepLimit);
        // Whatever the server, a run is bounded by --max-steps.
        for capacity in [0.0, 0.2, 1.3, 7.7, 33.0, 1000.0] {
            let mut s = Schedule::new(1.0, 64.0, 0.01, 8);
            assert!(walk(&mut s, capacity).0.len() <= 8);
        }
    }

    #[test]
    fn two_significant_digits_rounding() {
        assert_eq!(two_significant_digits(2.828), 2.8);
        assert_eq!(two_significant_digits(0.3535), 0.35);
        assert_eq!(two_significant_digits(45.25), 45.0);
        assert_eq!(two_significant_digits(181.0), 180.0);
    }

    fn passing() -> StepFigures {
        StepFigures {
            clients: 500,
            connected: 500,
            to_send: 4000,
            sent: 4000,
            acked: 4000,
            p99_ms: Some(49.9),
            ..StepFigures::default()
        }
    }

    #[test]
    fn the_pass_rule() {
        assert!(failures(&passing(), 50.0).is_empty());
        let at_limit = StepFigures {
            p99_ms: Some(50.0),
            ..passing()
        };
        assert_eq!(failures(&at_limit, 50.0), vec!["p99 50 ms >= 50 ms"]);
        let lossy = StepFigures {
            lost: 3,
            duplicated: 1,
            ..passing()
        };
        assert_eq!(failures(&lossy, 50.0), vec!["3 lost", "1 duplicated"]);
        let dropped = StepFigures {
            ended_early: 2,
            sent: 3990,
            acked: 3980,
            error_frames: 1,
            ..passing()
        };
        assert_eq!(
            failures(&dropped, 50.0),
            vec![
                "2 clients disconnected",
                "3990 of 4000 messages published",
                "10 publishes not acknowledged",
                "1 error frames"
            ]
        );
        let short = StepFigures {
            connected: 498,
            sent: 0,
            acked: 0,
            p99_ms: None,
            ..passing()
        };
        assert_eq!(failures(&short, 50.0), vec!["498 of 500 clients connected"]);
        let silent = StepFigures {
            p99_ms: None,
            ..passing()
        };
        assert_eq!(failures(&silent, 50.0), vec!["no deliveries"]);
    }

    #[test]
    fn figures_from_the_rooms_results() {
        let r = json!({
            "connected": 500, "sent": 4000, "acked": 3999, "lost": 2, "duplicated": 0,
            "clients_ended_early": {"eof": 1, "closed 1011": 2},
            "client_errors": {"error rate_limited": 4},
            "latency_ms": {"p50": 1.5, "p99": 61.25},
            "complete": false, "incomplete_reason": "timeout"
        });
        let f = StepFigures::from_results(r.as_object().unwrap(), 500, 4000);
        assert_eq!(
            f,
            StepFigures {
                clients: 500,
                connected: 500,
                to_send: 4000,
                sent: 4000,
                acked: 3999,
                lost: 2,
                duplicated: 0,
                ended_early: 3,
                error_frames: 4,
                p99_ms: Some(61.25),
                timed_out: true,
            }
        );
    }
}
