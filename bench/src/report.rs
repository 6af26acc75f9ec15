//! `relay-bench report results.jsonl`: the Markdown results table.
//!
//! Input: the JSON lines of the runs (`{"scenario","target","params":{"case",..},"results"}`)
//! plus what `bench/run` adds: one `meta` line (machine, versions, commands, notes),
//! `startup` lines (wrangler dev start to the first /health 200) and `size` lines. Runs are
//! grouped by scenario and `params.case`; each cell is the median of the repetitions with
//! their spread (min–max), and the last column the ratio edge-relay / baseline of the medians.
//! A `capacity` case also lists every step of every run.

use crate::common::BATCHED_SUFFIX;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The primary target; the ratio column divides its medians by the baseline's.
const PRIMARY: &str = "edge-relay";

struct Metric {
    path: &'static str,
    label: &'static str,
    /// "lower" or "higher" is better.
    better: &'static str,
}

const fn m(path: &'static str, label: &'static str, better: &'static str) -> Metric {
    Metric {
        path,
        label,
        better,
    }
}

fn metrics(scenario: &str) -> &'static [Metric] {
    const LAT: [Metric; 7] = [
        m("latency_ms.p50", "latency p50 (ms)", "lower"),
        m("latency_ms.p90", "latency p90 (ms)", "lower"),
        m("latency_ms.p99", "latency p99 (ms)", "lower"),
        m("latency_ms.max", "latency max (ms)", "lower"),
        m("delivered_per_s", "delivered msgs/s", "higher"),
        m("lost", "lost", "lower"),
        m("duplicated", "duplicated", "lower"),
    ];
    const STORM: [Metric; 7] = [
        m("connections_per_s", "connections/s", "higher"),
        m("failed", "failed opens", "lower"),
        m("connect_ms.p50", "connect p50 (ms)", "lower"),
        m("connect_ms.p99", "connect p99 (ms)", "lower"),
        m("close_s", "close all (s)", "lower"),
        m(
            "received_per_connection.frames.mean",
            "frames received per connection, welcome to storm end (mean)",
            "lower",
        ),
        m(
            "received_per_connection.bytes.mean",
            "bytes received per connection (mean)",
            "lower",
        ),
    ];
    const IDLE: [Metric; 6] = [
        m("opened", "opened", "higher"),
        m("rss_before_mib", "RSS before (MiB)", "lower"),
        m("rss_during_mib", "RSS during (MiB)", "lower"),
        m("rss_after_mib", "RSS after close (MiB)", "lower"),
        m("per_connection_kib", "per connection (KiB)", "lower"),
        m("connections_per_s", "connections/s", "higher"),
    ];
    const HISTORY: [Metric; 6] = [
        m("latency_ms.p50", "page p50 (ms)", "lower"),
        m("latency_ms.p90", "page p90 (ms)", "lower"),
        m("latency_ms.p99", "page p99 (ms)", "lower"),
        m("latency_ms.max", "page max (ms)", "lower"),
        m("requests_per_s", "pages/s (sequential)", "higher"),
        m("seed_per_s", "seeding msgs/s", "higher"),
    ];
    const CAPACITY: [Metric; 3] = [
        m(
            "capacity_msgs_per_s",
            "capacity: msgs/s published",
            "higher",
        ),
        m(
            "capacity_deliveries_per_s",
            "capacity: deliveries/s",
            "higher",
        ),
        m(
            "first_failing_msgs_per_s",
            "first failing step (msgs/s)",
            "higher",
        ),
    ];
    const PUBLISHERS: [Metric; 6] = [
        m("acked_per_s", "durable (acked) publishes/s", "higher"),
        m("ack_ms.p50", "ack p50 (ms)", "lower"),
        m("ack_ms.p99", "ack p99 (ms)", "lower"),
        m("lost", "lost", "lower"),
        m("duplicated", "duplicated", "lower"),
        m("acks_out_of_order", "acks out of seq order", "lower"),
    ];
    const STARTUP: [Metric; 1] = [m(
        "ms",
        "start (wrangler dev; node for baseline-node) to first /health 200 (ms)",
        "lower",
    )];
    const SIZE: [Metric; 4] = [
        m("wasm_raw_bytes", ".wasm raw (bytes)", "lower"),
        m("wasm_gzip_bytes", ".wasm gzip (bytes)", "lower"),
        m("upload_kib", "wrangler Total Upload (KiB)", "lower"),
        m(
            "upload_gzip_kib",
            "wrangler Total Upload gzip (KiB)",
            "lower",
        ),
    ];
    match scenario {
        "fanout" | "rooms" => &LAT,
        "storm" => &STORM,
        "idle" => &IDLE,
        "history" => &HISTORY,
        "capacity" => &CAPACITY,
        "publishers" => &PUBLISHERS,
        "startup" => &STARTUP,
        "size" => &SIZE,
        _ => &[],
    }
}

pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// Decimals for a cell: none for integers and for values of 100 and more, one from 10, two below.
pub fn decimals(vals: &[f64], med: f64) -> usize {
    if vals.iter().all(|v| v.fract() == 0.0) || med.abs() >= 100.0 {
        0
    } else if med.abs() >= 10.0 {
        1
    } else {
        2
    }
}

/// `x` with `dec` decimals; integers get thin groups of three digits (1 098 121).
pub fn fmt_num(x: f64, dec: usize) -> String {
    if dec > 0 {
        return format!("{x:.dec$}");
    }
    let s = format!("{}", x.round() as i64);
    let (sign, digits) = s.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("", &s));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub struct Cell {
    pub text: String,
    pub median: Option<f64>,
}

pub fn cell(runs: &[&Value], path: &str) -> Cell {
    if runs.is_empty() {
        return Cell {
            text: "—".into(),
            median: None,
        };
    }
    if runs.iter().any(|r| r.get("unsupported").is_some()) {
        return Cell {
            text: "unsupported".into(),
            median: None,
        };
    }
    let mut vals: Vec<f64> = runs.iter().filter_map(|r| get(r, path)?.as_f64()).collect();
    if vals.is_empty() {
        return Cell {
            text: "n/a".into(),
            median: None,
        };
    }
    let n = vals.len();
    let med = median(&mut vals);
    let (lo, hi) = (vals[0], vals[n - 1]);
    let dec = decimals(&vals, med);
    let mut text = fmt_num(med, dec);
    if n > 1 {
        let _ = write!(text, " ({}–{})", fmt_num(lo, dec), fmt_num(hi, dec));
    }
    let incomplete = runs
        .iter()
        .filter(|r| r.get("complete").and_then(Value::as_bool) == Some(false))
        .count();
    if incomplete > 0 {
        let _ = write!(text, " ⚠{incomplete}/{} incomplete", runs.len());
    }
    Cell {
        text,
        median: Some(med),
    }
}

/// The runs of a results file: grouped by (scenario, case) and target, in first-seen order.
pub struct Loaded {
    pub meta: Value,
    pub order: Vec<(String, String)>,
    pub groups: BTreeMap<(String, String), BTreeMap<String, Vec<Value>>>,
    targets: Vec<String>,
    pub notes: Vec<String>,
}

/// The whole report.
pub fn run(input: &Path) -> Result<String, String> {
    let loaded = load(input)?;
    let mut md = render(input, &loaded);
    let events = crate::report_events::section(&loaded);
    if !events.is_empty() {
        md.push('\n');
        md.push_str(&events);
    }
    Ok(md)
}

/// Only the events comparison (`report --events-only`): what `bench/run --only events`
/// puts in place of that section of RESULTS.md.
pub fn run_events_only(input: &Path) -> Result<String, String> {
    let loaded = load(input)?;
    let md = crate::report_events::section(&loaded);
    if md.is_empty() {
        return Err(format!("{}: no events runs", input.display()));
    }
    Ok(md)
}

fn load(input: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let mut meta = Value::Null;
    // (scenario, case) in first-seen order -> target -> results of each run
    let mut order: Vec<(String, String)> = Vec::new();
    let mut groups: BTreeMap<(String, String), BTreeMap<String, Vec<Value>>> = BTreeMap::new();
    let mut targets: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: {e}", input.display(), n + 1))?;
        let scenario = v["scenario"].as_str().unwrap_or("?").to_string();
        if scenario == "meta" {
            meta = v["results"].clone();
            continue;
        }
        let target = v["target"].as_str().unwrap_or("?").to_string();
        let case = v["params"]["case"].as_str().unwrap_or("").to_string();
        let key = (scenario.clone(), case.clone());
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        if !targets.contains(&target) {
            targets.push(target.clone());
        }
        let r = &v["results"];
        if r.get("complete").and_then(Value::as_bool) == Some(false) {
            let why = r
                .get("unsupported")
                .map(|u| format!("unsupported: {}", u.as_str().unwrap_or("")))
                .or_else(|| {
                    r.get("incomplete_reason")
                        .map(|x| format!("incomplete: {}", x.as_str().unwrap_or("")))
                })
                .or_else(|| {
                    r.get("error")
                        .map(|x| format!("error: {}", x.as_str().unwrap_or("")))
                })
                .unwrap_or_else(|| "incomplete".into());
            notes.push(format!("{scenario} `{case}` on {target}: {why}"));
        }
        for k in [
            "failures",
            "connect_failures",
            "sender_errors",
            "client_errors",
            "seed_errors",
            "errors",
        ] {
            if let Some(obj) = r
                .get(k)
                .and_then(Value::as_object)
                .filter(|o| !o.is_empty())
            {
                notes.push(format!(
                    "{scenario} `{case}` on {target}: {k} {}",
                    Value::Object(obj.clone())
                ));
            }
        }
        groups
            .entry(key)
            .or_default()
            .entry(target)
            .or_default()
            .push(r.clone());
    }
    // edge-relay first, then the baselines in the order they appeared
    targets.sort_by_key(|t| t != PRIMARY);
    Ok(Loaded {
        meta,
        order,
        groups,
        targets,
        notes,
    })
}

fn render(input: &Path, loaded: &Loaded) -> String {
    let Loaded {
        meta,
        order,
        groups,
        targets,
        notes,
    } = loaded;
    let mut notes = notes.clone();
    let baselines: Vec<&String> = targets.iter().filter(|t| *t != PRIMARY).collect();

    let mut md = String::new();
    let _ = writeln!(md, "# edge-relay benchmark results\n");
    let _ = writeln!(
        md,
        "Generated by `bench/run`{} from `{}` with `relay-bench report`. Do not edit by hand: rerun `bench/run`.\n",
        if meta["quick"].as_bool() == Some(true) { " --quick (a smoke run: 1 repetition, small sizes)" } else { "" },
        input.file_name().and_then(|f| f.to_str()).unwrap_or("results.jsonl"),
    );
    if let Some(d) = meta["date"].as_str() {
        let _ = writeln!(md, "Date: {d}\n");
    }
    for (title, key) in [
        ("Machine", "machine"),
        ("Versions", "versions"),
        ("Targets", "targets"),
    ] {
        if let Some(obj) = meta[key].as_object() {
            let _ = writeln!(md, "## {title}\n");
            for (k, v) in obj {
                let _ = writeln!(
                    md,
                    "- {k}: {}",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                );
            }
            md.push('\n');
        }
    }
    let _ = writeln!(md, "## How to read\n");
    let reps = meta["reps"].as_u64().unwrap_or(1);
    let _ = writeln!(
        md,
        "Each cell is the median of {reps} run(s) with the spread (min–max) in parentheses. \
         The ratio is the edge-relay median divided by the baseline's: below 1 is better for \
         latencies, memory and sizes, above 1 is better for rates. ⚠ marks runs that hit their \
         timeout (see Notes). Client and server share the machine's cores, so absolute numbers \
         include the load tool's own CPU use.\n"
    );
    if let Some(list) = meta["notes"].as_array() {
        for n in list {
            if let Some(s) = n.as_str() {
                let _ = writeln!(md, "- {s}");
            }
        }
        md.push('\n');
    }

    let _ = writeln!(md, "## Results\n");
    let mut last_scenario = String::new();
    // The events comparison has a section of its own (report_events).
    for key in order
        .iter()
        .filter(|(s, _)| s != crate::report_events::SCENARIO)
    {
        let (scenario, case) = key;
        let by_target = &groups[key];
        if *scenario != last_scenario {
            let _ = writeln!(md, "### {scenario}\n");
            last_scenario = scenario.clone();
        }
        let _ = writeln!(
            md,
            "**{}**\n",
            if case.is_empty() {
                scenario.as_str()
            } else {
                case.as_str()
            }
        );
        let mut header = String::from("| metric |");
        let mut rule = String::from("|---|");
        for t in targets {
            let _ = write!(header, " {t} |");
            rule.push_str("---|");
        }
        for b in &baselines {
            let _ = write!(header, " ratio {PRIMARY} / {b} |");
            rule.push_str("---|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        let empty = Vec::new();
        // A batched case of edge-relay is compared with the baselines' runs of the same case
        // (they have no batched delivery).
        let unbatched = case
            .strip_suffix(BATCHED_SUFFIX)
            .and_then(|plain| groups.get(&(scenario.clone(), plain.to_string())));
        for metric in metrics(scenario) {
            let cells: Vec<Cell> = targets
                .iter()
                .map(|t| {
                    let own = by_target.get(t);
                    let runs = match (own, unbatched) {
                        (None, Some(plain)) if t != PRIMARY => plain.get(t),
                        _ => own,
                    };
                    let runs: Vec<&Value> = runs.unwrap_or(&empty).iter().collect();
                    cell(&runs, metric.path)
                })
                .collect();
            if cells.iter().all(|c| c.text == "—" || c.text == "n/a") {
                continue;
            }
            let mut row = format!("| {} ({} is better) |", metric.label, metric.better);
            for c in &cells {
                let _ = write!(row, " {} |", c.text);
            }
            let primary = cells[0].median;
            for (i, _) in baselines.iter().enumerate() {
                let ratio = match (primary, cells[i + 1].median) {
                    (Some(p), Some(b)) if b != 0.0 => format!("{:.2}", p / b),
                    _ => "—".into(),
                };
                let _ = write!(row, " {ratio} |");
            }
            let _ = writeln!(md, "{row}");
        }
        md.push('\n');
        if scenario == "capacity" {
            capacity_steps(&mut md, targets, by_target);
        }
    }

    if let Some(cmds) = meta["commands"].as_array() {
        let _ = writeln!(md, "## Commands\n");
        let _ = writeln!(
            md,
            "Every run is `relay-bench <scenario> --url <target URL> --target <label> --timeout 120 \
             <flags>` (`idle` also gets `--server-pid <pid of wrangler dev>`) with `JWT_SECRET` \
             (and `WEBHOOK_SECRET`) of the target in the environment. The servers and the flags:\n"
        );
        md.push_str("```sh\n");
        for c in cmds {
            if let Some(s) = c.as_str() {
                let _ = writeln!(md, "{s}");
            }
        }
        md.push_str("```\n\n");
    }
    let _ = writeln!(md, "## Notes\n");
    if notes.is_empty() {
        let _ = writeln!(
            md,
            "Every run completed; no connect failures or errors were reported."
        );
    } else {
        // The same note from each repetition once, in first-seen order.
        let mut seen = std::collections::HashSet::new();
        notes.retain(|n| seen.insert(n.clone()));
        for n in notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

/// Every step of every capacity run of one case: rate, latency, losses, server CPU, the
/// machine's load average at the step's end, verdict.
fn capacity_steps(md: &mut String, targets: &[String], by_target: &BTreeMap<String, Vec<Value>>) {
    let _ = writeln!(
        md,
        "| target, run | step | msgs/s | deliveries/s | p50 / p90 / p99 (ms) | lost / dup | server CPU µs per delivery | load (1 min) | result |\n|---|---|---|---|---|---|---|---|---|"
    );
    let num = |v: &Value| match v.as_f64() {
        Some(x) => fmt_num(x, decimals(&[x], x)),
        None => "—".into(),
    };
    for t in targets {
        for (i, run) in by_target.get(t).into_iter().flatten().enumerate() {
            let steps = run["steps"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            for st in steps {
                let result = if st["pass"].as_bool() == Some(true) {
                    "pass".to_string()
                } else {
                    let why: Vec<&str> = st["failed_because"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    format!("fail: {}", why.join("; "))
                };
                let _ = writeln!(
                    md,
                    "| {t}, {} | {} | {} | {} | {} / {} / {} | {} / {} | {} | {} | {result} |",
                    i + 1,
                    st["step"],
                    num(&st["msgs_per_s"]),
                    num(&st["deliveries_per_s"]),
                    num(&st["p50"]),
                    num(&st["p90"]),
                    num(&st["p99"]),
                    num(&st["lost"]),
                    num(&st["duplicated"]),
                    num(&st["server_cpu_us_per_delivery"]),
                    num(&st["load_average_1m"]),
                );
            }
            let _ = writeln!(
                md,
                "| {t}, {} | stopped: {} | | | | | | | |",
                i + 1,
                run["stopped"].as_str().unwrap_or("?")
            );
        }
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_medians() {
        assert_eq!(fmt_num(1098121.0, 0), "1 098 121");
        assert_eq!(fmt_num(2.345, 2), "2.35");
        assert_eq!(fmt_num(12.34, 1), "12.3");
        assert_eq!(fmt_num(123.4, 0), "123");
        assert_eq!(decimals(&[2.0, 3.0], 2.0), 0);
        assert_eq!(decimals(&[2.5, 3.0], 2.5), 2);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn a_small_report() {
        let dir = std::env::temp_dir().join(format!("relay-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("r.jsonl");
        let lines = [
            r#"{"scenario":"meta","target":"-","params":{},"results":{"quick":false,"reps":3,"machine":{"cores":"2"}}}"#,
            r#"{"scenario":"fanout","target":"edge-relay","params":{"case":"N=10"},"results":{"latency_ms":{"p50":2.0},"complete":true}}"#,
            r#"{"scenario":"fanout","target":"edge-relay","params":{"case":"N=10"},"results":{"latency_ms":{"p50":4.0},"complete":true}}"#,
            r#"{"scenario":"fanout","target":"edge-relay","params":{"case":"N=10"},"results":{"latency_ms":{"p50":3.0},"complete":true}}"#,
            r#"{"scenario":"fanout","target":"baseline-js","params":{"case":"N=10"},"results":{"latency_ms":{"p50":1.5},"complete":false,"incomplete_reason":"timeout"}}"#,
            r#"{"scenario":"history","target":"baseline-js","params":{"case":"p"},"results":{"unsupported":"404","complete":false}}"#,
        ];
        std::fs::write(&f, lines.join("\n")).unwrap();
        let md = run(&f).unwrap();
        assert!(
            md.contains(
                "| latency p50 (ms) (lower is better) | 3 (2–4) | 1.50 ⚠1/1 incomplete | 2.00 |"
            ),
            "{md}"
        );
        assert!(md.contains("unsupported"), "{md}");
        assert!(
            md.contains("fanout `N=10` on baseline-js: incomplete: timeout"),
            "{md}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_capacity_table_with_its_steps() {
        let dir = std::env::temp_dir().join(format!("relay-bench-capacity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("r.jsonl");
        let lines = [
            r#"{"scenario":"capacity","target":"edge-relay","params":{"case":"50 rooms x 10 clients, p99 < 50 ms"},"results":{"capacity_msgs_per_s":1400.0,"capacity_deliveries_per_s":12600.0,"first_failing_msgs_per_s":1650.0,"stopped":"bracketed","complete":true,"steps":[{"step":1,"msgs_per_s":500.0,"deliveries_per_s":4500.0,"p50":1.2,"p90":3.4,"p99":12.5,"lost":0,"duplicated":0,"server_cpu_us_per_delivery":41.5,"load_average_1m":1.25,"pass":true,"failed_because":[]},{"step":2,"msgs_per_s":2000.0,"deliveries_per_s":18000.0,"p50":9.0,"p90":40.0,"p99":81.0,"lost":2,"duplicated":0,"pass":false,"failed_because":["2 lost","p99 81 ms >= 50 ms"]}]}}"#,
            r#"{"scenario":"capacity","target":"baseline-js","params":{"case":"50 rooms x 10 clients, p99 < 50 ms"},"results":{"capacity_msgs_per_s":1000.0,"capacity_deliveries_per_s":9000.0,"first_failing_msgs_per_s":1200.0,"stopped":"bracketed","complete":true,"steps":[]}}"#,
        ];
        std::fs::write(&f, lines.join("\n")).unwrap();
        let md = run(&f).unwrap();
        assert!(
            md.contains("| capacity: msgs/s published (higher is better) | 1 400 | 1 000 | 1.40 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| edge-relay, 1 | 1 | 500 | 4 500 | 1.20 / 3.40 / 12.5 | 0 / 0 | 41.5 | 1.25 | pass |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| edge-relay, 1 | 2 | 2 000 | 18 000 | 9 / 40 / 81 | 2 / 0 | — | — | fail: 2 lost; p99 81 ms >= 50 ms |"),
            "{md}"
        );
        assert!(
            md.contains("| baseline-js, 1 | stopped: bracketed |"),
            "{md}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_storm_shows_what_each_connection_received() {
        let dir = std::env::temp_dir().join(format!("relay-bench-storm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("r.jsonl");
        let lines = [
            r#"{"scenario":"storm","target":"edge-relay","params":{"case":"C=2000 L=100 per room 1000"},"results":{"connections_per_s":600.0,"received_per_connection":{"frames":{"mean":7.5},"bytes":{"mean":1200.0}},"complete":true}}"#,
            r#"{"scenario":"storm","target":"baseline-js","params":{"case":"C=2000 L=100 per room 1000"},"results":{"connections_per_s":650.0,"received_per_connection":{"frames":{"mean":1.0},"bytes":{"mean":100.0}},"complete":true}}"#,
        ];
        std::fs::write(&f, lines.join("\n")).unwrap();
        let md = run(&f).unwrap();
        assert!(
            md.contains("| frames received per connection, welcome to storm end (mean) (lower is better) | 7.50 | 1 | 7.50 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| bytes received per connection (mean) (lower is better) | 1 200 | 100 | 12.00 |"
            ),
            "{md}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_batched_case_is_compared_with_the_baselines_plain_case() {
        let dir = std::env::temp_dir().join(format!("relay-bench-batched-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("r.jsonl");
        let lines = [
            r#"{"scenario":"fanout","target":"edge-relay","params":{"case":"N=10"},"results":{"delivered_per_s":100.0,"complete":true}}"#,
            r#"{"scenario":"fanout","target":"baseline-js","params":{"case":"N=10"},"results":{"delivered_per_s":50.0,"complete":true}}"#,
            r#"{"scenario":"fanout","target":"edge-relay","params":{"case":"N=10 batch=1"},"results":{"delivered_per_s":300.0,"complete":true}}"#,
        ];
        std::fs::write(&f, lines.join("\n")).unwrap();
        let md = run(&f).unwrap();
        assert!(md.contains("| 100 | 50 | 2.00 |"), "{md}");
        assert!(md.contains("| 300 | 50 | 6.00 |"), "{md}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
