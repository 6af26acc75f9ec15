//! `storm` (open C connections as fast as a concurrency limit allows) and `idle` (open C
//! connections, hold them, close them, and watch the server's memory).
//!
//! Every connection has its own token and user. Connections are spread over rooms of
//! `--per-room` (100 by default): one room with thousands of distinct users would measure
//! the O(C²) presence `join` broadcast, not connecting. An open counts when its `welcome`
//! arrives. Held connections keep reading (presence frames) so that no buffer fills up, and
//! count what they read by kind (see `received`): the price of presence in a storm.

use crate::common::{self, now_us, Counts, Ctx, Res, RunOutput};
use crate::received::{self, Kind, Received};
use crate::stats::{sample, summary_ms};
use crate::CommonArgs;
use clap::Args;
use futures_util::StreamExt as _;
use serde_json::{json, Map, Value};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

#[derive(Args, Debug)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections to open.
    #[arg(long, default_value_t = 2000)]
    pub connections: usize,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Connections per room.
    #[arg(long, default_value_t = 100)]
    pub per_room: usize,
}

#[derive(Args, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 5000)]
    pub connections: usize,
    /// Seconds to hold them once all are open.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Connections per room.
    #[arg(long, default_value_t = 100)]
    pub per_room: usize,
    /// The server's pid (`wrangler dev`); RSS is summed over it and all its descendants.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Seconds to wait after closing before the last RSS sample.
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,
}

struct Held {
    /// Everything this connection read, its welcome included, until it was asked to close.
    received: Received,
    ended_early: Option<String>,
}

struct Opened {
    ok: usize,
    failures: Counts,
    connect_lat: Vec<u32>,
    /// Start of the first connect to the last welcome, seconds.
    open_s: f64,
    tasks: Vec<JoinHandle<Option<Held>>>,
    timed_out: bool,
}

fn check(connections: usize, concurrency: usize, per_room: usize) -> Res<()> {
    if connections == 0 || connections > 50_000 {
        return Err("--connections must be in 1..=50000".into());
    }
    if concurrency == 0 || concurrency > 10_000 || per_room == 0 {
        return Err("--concurrency must be in 1..=10000, --per-room >= 1".into());
    }
    Ok(())
}

/// Opens `n` connections, `concurrency` at a time, each of which then holds until `stop`.
async fn open_many(
    ctx: &'static Ctx,
    n: usize,
    concurrency: usize,
    per_room: usize,
    stop: watch::Receiver<bool>,
) -> Opened {
    let tokens: Vec<String> = (0..n)
        .map(|i| ctx.token(&format!("bench-{}-{i}", ctx.run_id)))
        .collect();
    let sem = common::semaphore(concurrency);
    let (tx, mut rx) = mpsc::unbounded_channel::<(Result<u32, String>, u64)>();
    let start_us = now_us();
    let mut tasks = Vec::with_capacity(n);
    for (i, token) in tokens.into_iter().enumerate() {
        let (sem, tx, mut stop) = (sem.clone(), tx.clone(), stop.clone());
        let room = format!("bench:conn:{}:{}", ctx.run_id, i / per_room);
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire().await.expect("semaphore");
            let t0 = now_us();
            let r = common::open_welcomed(ctx, &room, &token).await;
            drop(permit);
            let t1 = now_us();
            let mut held = Held {
                received: Received::default(),
                ended_early: None,
            };
            let mut ws = match r {
                Ok((ws, welcome)) => {
                    let _ = tx.send((Ok(sample(t0, t1)), t1));
                    held.received.count_message(&welcome);
                    ws
                }
                Err(reason) => {
                    let _ = tx.send((Err(reason), t1));
                    return None;
                }
            };
            drop(tx);
            loop {
                let msg = tokio::select! {
                    biased;
                    _ = common::stopped(&mut stop) => break,
                    m = ws.next() => m,
                };
                if let Some(reason) = common::end_reason(&msg) {
                    held.ended_early = Some(reason);
                    break;
                }
                match msg {
                    Some(Ok(Message::Text(t))) => held.received.count_message(t.as_str()),
                    Some(Ok(other)) => held.received.count_other(other.len()),
                    _ => {}
                }
            }
            if held.ended_early.is_none() {
                common::close_ws(ws, Duration::from_secs(5)).await;
            }
            Some(held)
        }));
    }
    drop(tx);
    let mut ok = 0;
    let mut failures = Counts::default();
    let mut connect_lat = Vec::with_capacity(n);
    let mut last_us = start_us;
    let mut timed_out = false;
    for _ in 0..n {
        let got = tokio::select! {
            g = rx.recv() => g,
            _ = tokio::time::sleep_until(ctx.deadline) => { timed_out = true; None }
        };
        let Some((r, at)) = got else { break };
        match r {
            Ok(lat) => {
                ok += 1;
                connect_lat.push(lat);
                last_us = last_us.max(at);
            }
            Err(reason) => failures.add(&reason),
        }
    }
    Opened {
        ok,
        failures,
        connect_lat,
        open_s: last_us.saturating_sub(start_us) as f64 / 1e6,
        tasks,
        timed_out,
    }
}

/// What the held connections saw until they were asked to close.
struct Closed {
    /// Seconds from the request to close to the last connection closed.
    close_s: f64,
    /// One entry per opened connection.
    each: Vec<Received>,
    early: Counts,
}

impl Closed {
    fn total(&self) -> Received {
        let mut total = Received::default();
        self.each.iter().for_each(|r| total.add(r));
        total
    }

    /// Frames after the welcome, over all connections.
    fn frames_after_welcome(&self) -> u64 {
        let total = self.total();
        total.frames() - total.frames_of(Kind::Welcome)
    }
}

/// Stops every held connection and waits (bounded) until all are closed.
async fn close_all(stop: watch::Sender<bool>, tasks: Vec<JoinHandle<Option<Held>>>) -> Closed {
    let t0 = Instant::now();
    let _ = stop.send(true);
    let mut each = Vec::with_capacity(tasks.len());
    let mut early = Counts::default();
    for t in tasks {
        // Unfinished connects are bounded by --connect-timeout; closes by 5 s each.
        if let Ok(Some(h)) = t.await {
            each.push(h.received);
            if let Some(e) = h.ended_early {
                early.add(&e);
            }
        }
    }
    Closed {
        close_s: t0.elapsed().as_secs_f64(),
        each,
        early,
    }
}

fn open_results(results: &mut Map<String, Value>, o: &mut Opened, n: usize) {
    results.insert("opened".into(), json!(o.ok));
    results.insert("failed".into(), json!(o.failures.total()));
    results.insert("failures".into(), o.failures.to_json());
    results.insert("open_s".into(), json!(common::r3(o.open_s)));
    results.insert(
        "connections_per_s".into(),
        json!(if o.open_s > 0.0 {
            (o.ok as f64 / o.open_s).round()
        } else {
            0.0
        }),
    );
    results.insert("connect_ms".into(), summary_ms(&mut o.connect_lat));
    if o.ok + (o.failures.total() as usize) < n {
        results.insert(
            "unfinished".into(),
            json!(n - o.ok - o.failures.total() as usize),
        );
    }
}

pub async fn run_storm(ctx: &'static Ctx, a: &StormArgs) -> Res<RunOutput> {
    check(a.connections, a.concurrency, a.per_room)?;
    let mut params = Map::new();
    params.insert(
        "case".into(),
        json!(ctx.case_label(format!(
            "C={} L={} per room {}",
            a.connections, a.concurrency, a.per_room
        ))),
    );
    params.insert("connections".into(), json!(a.connections));
    params.insert("concurrency".into(), json!(a.concurrency));
    params.insert("per_room".into(), json!(a.per_room));
    params.insert("timeout_s".into(), json!(ctx.timeout.as_secs_f64()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut o = open_many(ctx, a.connections, a.concurrency, a.per_room, stop_rx).await;
    let mut results = Map::new();
    open_results(&mut results, &mut o, a.connections);
    let closed = close_all(stop_tx, std::mem::take(&mut o.tasks)).await;
    results.insert("close_s".into(), json!(common::r3(closed.close_s)));
    results.insert(
        "frames_while_held".into(),
        json!(closed.frames_after_welcome()),
    );
    // From each welcome to the end of the storm (the last welcome), when every connection
    // is asked to close.
    results.insert(
        "received_per_connection".into(),
        received::per_connection(&closed.each),
    );
    results.insert("received_by_kind".into(), closed.total().to_json());
    results.insert("dropped_while_held".into(), closed.early.to_json());
    results.insert("complete".into(), json!(!o.timed_out));
    if o.timed_out {
        results.insert("incomplete_reason".into(), json!("timeout"));
    }
    Ok(RunOutput {
        scenario: "storm",
        target: ctx.target.clone(),
        params,
        results,
    })
}

pub async fn run_idle(ctx: &'static Ctx, a: &IdleArgs) -> Res<RunOutput> {
    check(a.connections, a.concurrency, a.per_room)?;
    if !(a.hold >= 0.0 && a.hold <= 3600.0 && a.settle >= 0.0 && a.settle <= 600.0) {
        return Err("--hold must be in [0, 3600], --settle in [0, 600]".into());
    }
    let rss = |pid: Option<u32>| pid.and_then(common::tree_rss_kib);
    if let Some(pid) = a.server_pid {
        if rss(Some(pid)).is_none() {
            return Err(format!("--server-pid {pid}: no such process"));
        }
    }
    let mut params = Map::new();
    params.insert(
        "case".into(),
        json!(ctx.case_label(format!(
            "C={} hold {} s per room {}",
            a.connections, a.hold, a.per_room
        ))),
    );
    params.insert("connections".into(), json!(a.connections));
    params.insert("hold_s".into(), json!(a.hold));
    params.insert("concurrency".into(), json!(a.concurrency));
    params.insert("per_room".into(), json!(a.per_room));
    params.insert("settle_s".into(), json!(a.settle));
    params.insert("timeout_s".into(), json!(ctx.timeout.as_secs_f64()));
    let mut results = Map::new();

    let before = rss(a.server_pid);
    let before_by_process = a.server_pid.map(common::tree_rss_json);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut o = open_many(ctx, a.connections, a.concurrency, a.per_room, stop_rx).await;
    open_results(&mut results, &mut o, a.connections);
    // Hold: one RSS sample a second; "during" is the last one, after the presence traffic
    // of the opens has settled.
    let hold_start = Instant::now();
    let hold_end = (Instant::now() + Duration::from_secs_f64(a.hold)).min(ctx.deadline);
    let mut during = rss(a.server_pid);
    let mut peak = during.map(|d| d.0);
    while Instant::now() < hold_end {
        tokio::time::sleep(Duration::from_secs(1).min(hold_end - Instant::now())).await;
        during = rss(a.server_pid);
        peak = peak.max(during.map(|d| d.0));
    }
    let during_by_process = a.server_pid.map(common::tree_rss_json);
    let held_s = hold_start.elapsed().as_secs_f64();
    let closed = close_all(stop_tx, std::mem::take(&mut o.tasks)).await;
    let settle_end = (Instant::now() + Duration::from_secs_f64(a.settle)).min(ctx.deadline);
    tokio::time::sleep_until(settle_end).await;
    let after = rss(a.server_pid);
    let after_by_process = a.server_pid.map(common::tree_rss_json);
    let timed_out = o.timed_out || ctx.timed_out();

    let mib = |v: Option<(u64, usize)>| v.map(|(k, _)| common::r3(k as f64 / 1024.0));
    results.insert("held_s".into(), json!(common::r3(held_s)));
    results.insert("close_s".into(), json!(common::r3(closed.close_s)));
    results.insert(
        "frames_while_held".into(),
        json!(closed.frames_after_welcome()),
    );
    results.insert("dropped_while_held".into(), closed.early.to_json());
    results.insert("server_processes".into(), json!(before.map(|b| b.1)));
    results.insert("rss_before_mib".into(), json!(mib(before)));
    results.insert("rss_during_mib".into(), json!(mib(during)));
    results.insert(
        "rss_peak_mib".into(),
        json!(peak.map(|k| common::r3(k as f64 / 1024.0))),
    );
    results.insert("rss_after_mib".into(), json!(mib(after)));
    results.insert("rss_before_by_process_mib".into(), json!(before_by_process));
    results.insert("rss_during_by_process_mib".into(), json!(during_by_process));
    results.insert("rss_after_by_process_mib".into(), json!(after_by_process));
    results.insert(
        "per_connection_kib".into(),
        json!(match (before, during) {
            (Some(b), Some(d)) if o.ok > 0 =>
                Some(common::r3((d.0 as f64 - b.0 as f64) / o.ok as f64)),
            _ => None,
        }),
    );
    results.insert("complete".into(), json!(!timed_out));
    if timed_out {
        results.insert("incomplete_reason".into(), json!("timeout"));
    }
    Ok(RunOutput {
        scenario: "idle",
        target: ctx.target.clone(),
        params,
        results,
    })
}
