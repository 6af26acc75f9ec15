//! `rooms`: K fresh rooms of P clients each; every client publishes at R msg/s for D seconds
//! (each with a random phase, so the room does not see bursts) and receives everybody
//! else's messages. Latency, delivered msgs/s, lost and duplicated as in `fanout`: each
//! client expects every seq its room acknowledged to somebody else.
//!
//! [`run_workload`] is the workload itself; `capacity` runs it once per rate step.

use crate::common::{self, now_us, publish_frame, Counts, Ctx, Frame, Res, RunOutput, Ws};
use crate::cpu;
use crate::stats::{sample, summary_ms};
use crate::CommonArgs;
use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Args, Debug)]
pub struct RoomsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Rooms.
    #[arg(long, default_value_t = 50)]
    pub rooms: usize,
    /// Clients per room (each a distinct user).
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Messages per second each client publishes.
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds to wait for outstanding deliveries after the last publish.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Connections opened at once during setup.
    #[arg(long, default_value_t = 50)]
    pub connect_concurrency: usize,
    /// The server's pid (`wrangler dev`): adds the CPU its process tree used while the clients
    /// published and drained (`server_cpu_s`, `server_cpu_us_per_delivery`).
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// One run of the workload: K rooms of P clients publishing at `rate` for `duration` s.
pub struct Workload {
    pub rooms: usize,
    pub clients: usize,
    /// Messages per second per client.
    pub rate: f64,
    pub duration: f64,
    pub drain: f64,
    pub connect_concurrency: usize,
    /// Keeps the run's rooms, users and cids apart from every other run's and step's: rooms are
    /// `bench:{scenario}:{tag}:{r}`, users `bench-{tag}-{r}-{c}`.
    pub scenario: &'static str,
    pub tag: String,
    pub server_pid: Option<u32>,
}

impl Workload {
    /// The bounds of one run: sizes, rate, duration and receipts.
    pub fn check(&self) -> Res<()> {
        let (k, p) = (self.rooms, self.clients);
        if k == 0 || p < 2 || k * p > 20_000 {
            return Err("--rooms >= 1, --clients >= 2, rooms x clients <= 20000".into());
        }
        if !(self.rate > 0.0
            && self.rate <= 1000.0
            && self.duration > 0.0
            && self.duration <= 3600.0)
        {
            return Err("--rate must be in (0, 1000], --duration in (0, 3600]".into());
        }
        if self.messages_per_client() * (k * p) as u64 * (p as u64 - 1) > 50_000_000 {
            return Err("the run is bounded to 50 000 000 receipts".into());
        }
        Ok(())
    }

    pub fn messages_per_client(&self) -> u64 {
        (self.rate * self.duration).round().max(1.0) as u64
    }
}

/// Counters the main task watches while draining.
#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    acked: AtomicU64,
    /// First receipts of a seq, over all clients.
    distinct_receipts: AtomicU64,
}

#[derive(Default)]
struct ClientStats {
    room: usize,
    sent: u64,
    own_seqs: Vec<u64>,
    latencies: Vec<u32>,
    ack_latencies: Vec<u32>,
    seq_count: Vec<u8>,
    receipts: u64,
    foreign: u64,
    first_send_us: u64,
    last_receipt_us: u64,
    errors: Counts,
    ended: Option<String>,
}

pub async fn run(ctx: &'static Ctx, a: &RoomsArgs) -> Res<RunOutput> {
    let w = Workload {
        rooms: a.rooms,
        clients: a.clients,
        rate: a.rate,
        duration: a.duration,
        drain: a.drain,
        connect_concurrency: a.connect_concurrency,
        scenario: "rooms",
        tag: ctx.run_id.clone(),
        server_pid: a.server_pid,
    };
    w.check()?;
    let (k, p) = (a.rooms, a.clients);
    let mut params = Map::new();
    params.insert(
        "case".into(),
        json!(ctx.case_label(format!(
            "{k} rooms x {p} clients, {} msg/s each, {} s",
            a.rate, a.duration
        ))),
    );
    params.insert("rooms".into(), json!(k));
    params.insert("clients".into(), json!(p));
    params.insert("rate".into(), json!(a.rate));
    params.insert("duration_s".into(), json!(a.duration));
    params.insert("timeout_s".into(), json!(ctx.timeout.as_secs_f64()));
    let results = run_workload(ctx, &w).await?;
    Ok(RunOutput {
        scenario: "rooms",
        target: ctx.target.clone(),
        params,
        results,
    })
}

/// Connects the clients, lets them publish and receive, drains, closes (in the background)
/// and returns the run's results (the `rooms` scenario's `results`). A run where not every
/// client connected returns early with `complete: false` and `error`.
pub async fn run_workload(ctx: &'static Ctx, w: &Workload) -> Res<Map<String, Value>> {
    w.check()?;
    let (k, p) = (w.rooms, w.clients);
    let per_client = w.messages_per_client();
    let period = Duration::from_secs_f64(1.0 / w.rate);
    let drain = Duration::from_secs_f64(w.drain.clamp(0.1, 600.0));
    let mut results = Map::new();

    // ---- setup
    let setup_start = Instant::now();
    let sem = common::semaphore(w.connect_concurrency);
    let mut opens = Vec::with_capacity(k * p);
    for r in 0..k {
        for c in 0..p {
            let sem = sem.clone();
            let room = format!("bench:{}:{}:{r}", w.scenario, w.tag);
            let token = ctx.token(&format!("bench-{}-{r}-{c}", w.tag));
            opens.push(tokio::spawn(async move {
                let _permit = sem.acquire().await.expect("semaphore");
                common::open(ctx, &room, &token)
                    .await
                    .map(|(ws, seq)| (r, ws, seq))
            }));
        }
    }
    let clients = common::gather_opens(opens, setup_start, &mut results).await?;
    if clients.len() < k * p {
        results.insert("complete".into(), json!(false));
        results.insert("error".into(), json!("not every client connected"));
        for (_, ws, _) in clients {
            tokio::spawn(common::close_ws(ws, Duration::from_secs(2)));
        }
        return Ok(results);
    }

    // ---- publishing
    let totals = Arc::new(Totals::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now() + Duration::from_millis(200);
    let cpu_at_start = w.server_pid.map(|pid| (pid, cpu::tree_cpu_s(pid)));
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(idx, (room, ws, base))| {
            let phase = period.mul_f64(fastrand::f64());
            tokio::spawn(client(
                ws,
                ClientPlan {
                    room,
                    base_seq: base,
                    cid_prefix: format!("{}-{idx}-", w.tag),
                    first: start + phase,
                    period,
                    messages: per_client,
                    deadline: ctx.deadline,
                    expect_seqs: per_client as usize * p + 16,
                },
                totals.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let publish_end = start + period.mul_f64(per_client as f64);
    sleep_until(publish_end.min(ctx.deadline)).await;
    let drain_until = (Instant::now() + drain).min(ctx.deadline);
    let total_sent = per_client * (k * p) as u64;
    loop {
        // Each acknowledged message should reach the other P-1 clients of its room.
        let acked = totals.acked.load(Ordering::Acquire);
        let all_in = totals.sent.load(Ordering::Acquire) >= total_sent
            && acked >= total_sent
            && totals.distinct_receipts.load(Ordering::Acquire) >= acked * (p as u64 - 1);
        if all_in || Instant::now() >= drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let timed_out = ctx.timed_out();
    // Sampled before the clients close: closing (and presence leaves) is not the workload.
    let server_cpu_s =
        cpu_at_start.and_then(|(pid, at_start)| Some(cpu::tree_cpu_s(pid)? - at_start?));
    let _ = stop_tx.send(true);
    let mut stats = Vec::with_capacity(k * p);
    for t in tasks {
        stats.push(t.await.map_err(|e| format!("client task: {e}"))?);
    }

    // ---- results: per room, the seqs acknowledged to anybody; each client expects those
    // acknowledged to the others.
    let mut room_acked: Vec<Vec<bool>> = vec![Vec::new(); k];
    for s in &stats {
        let v = &mut room_acked[s.room];
        for &q in &s.own_seqs {
            if v.len() <= q as usize {
                v.resize(q as usize + 1, false);
            }
            v[q as usize] = true;
        }
    }
    let (mut lost, mut dup, mut receipts, mut foreign, mut sent, mut acked) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut expected = 0u64;
    let mut first_send = u64::MAX;
    let mut last_receipt = 0u64;
    let mut errors = Counts::default();
    let mut ended = Counts::default();
    let mut lat = Vec::with_capacity(stats.iter().map(|s| s.latencies.len()).sum());
    let mut ack_lat = Vec::new();
    for s in &mut stats {
        let mut own = vec![false; room_acked[s.room].len()];
        for &q in &s.own_seqs {
            own[q as usize] = true;
        }
        for (q, &acked_q) in room_acked[s.room].iter().enumerate() {
            if acked_q && !own[q] {
                expected += 1;
                if s.seq_count.get(q).copied().unwrap_or(0) == 0 {
                    lost += 1;
                }
            }
        }
        dup += s
            .seq_count
            .iter()
            .map(|&c| c.saturating_sub(1) as u64)
            .sum::<u64>();
        receipts += s.receipts;
        foreign += s.foreign;
        sent += s.sent;
        acked += s.own_seqs.len() as u64;
        first_send = first_send.min(s.first_send_us);
        last_receipt = last_receipt.max(s.last_receipt_us);
        errors.merge(&s.errors);
        if let Some(e) = &s.ended {
            ended.add(e);
        }
        lat.append(&mut s.latencies);
        ack_lat.append(&mut s.ack_latencies);
    }
    let span_s = last_receipt.saturating_sub(first_send) as f64 / 1e6;
    results.insert("sent".into(), json!(sent));
    results.insert("acked".into(), json!(acked));
    results.insert("receipts".into(), json!(receipts));
    results.insert("expected_receipts".into(), json!(expected));
    results.insert("lost".into(), json!(lost));
    results.insert("duplicated".into(), json!(dup));
    results.insert("foreign_messages".into(), json!(foreign));
    results.insert("latency_ms".into(), summary_ms(&mut lat));
    results.insert("ack_ms".into(), summary_ms(&mut ack_lat));
    results.insert(
        "delivered_per_s".into(),
        json!(if span_s > 0.0 {
            (receipts as f64 / span_s).round()
        } else {
            0.0
        }),
    );
    results.insert("span_s".into(), json!(common::r3(span_s)));
    if let Some(cpu_s) = server_cpu_s {
        results.insert("server_cpu_s".into(), json!(common::r3(cpu_s)));
        if receipts > 0 {
            results.insert(
                "server_cpu_us_per_delivery".into(),
                json!(common::r3(cpu_s * 1e6 / receipts as f64)),
            );
        }
    }
    results.insert("client_errors".into(), errors.to_json());
    results.insert("clients_ended_early".into(), ended.to_json());
    let complete = !timed_out && sent == total_sent;
    results.insert("complete".into(), json!(complete));
    if !complete {
        results.insert(
            "incomplete_reason".into(),
            json!(if timed_out {
                "timeout"
            } else {
                "not every message was sent"
            }),
        );
    }
    Ok(results)
}

struct ClientPlan {
    room: usize,
    base_seq: u64,
    cid_prefix: String,
    first: Instant,
    period: Duration,
    messages: u64,
    deadline: Instant,
    expect_seqs: usize,
}

async fn client(
    ws: Ws,
    plan: ClientPlan,
    totals: Arc<Totals>,
    mut stop: watch::Receiver<bool>,
) -> ClientStats {
    let (mut sink, mut stream) = ws.split();
    let mut st = ClientStats {
        room: plan.room,
        seq_count: vec![0; plan.expect_seqs + 1],
        latencies: Vec::with_capacity(plan.expect_seqs),
        first_send_us: u64::MAX,
        ..Default::default()
    };
    let mut sent_at = vec![0u64; plan.messages as usize];
    let mut next = 0u64;
    let mut next_at = plan.first;
    loop {
        let can_send = next < plan.messages && next_at < plan.deadline && st.ended.is_none();
        tokio::select! {
                    biased;
                    _ = common::stopped(&mut stop) => break,
                    _ = sleep_until(next_at), if can_send => {
                        let t = now_us();
                        sent_at[next as usize] = t;
                        st.first_send_us = st.first_send_us.min(t);
                        if let Err(e) = sink.send(Message::text(publish_frame(&plan.cid_prefix, next, t))).await {
                            st.ended = Some(format!("send: {}", common::classify(&e)));
                            continue;
                        }
                        st.sent += 1;
                        totals.sent.fetch_add(1, Ordering::AcqRel);
                        next += 1;
                        next_at = plan.first + plan.period.mul_f64(next as f64);
                    }
                    msg = stream.next(), if st.ended.is_none() => {
                        if let Some(reason) = common::end_reason(&msg) {
                            st.ended = Some(reason);
                            continue;
                        }
                        let Some(Ok(Message::Text(text))) = msg else { continue };
                        let now = now_us();
        for one in common::frame_texts(text.as_str()) {
                        let Ok(f) = serde_json::from_str::<Frame>(one) else { continue };
                        match f.ty.as_ref() {
                            "message" => {
                                let Some(stamp) = f.stamp() else { st.foreign += 1; continue };
                                st.receipts += 1;
                                st.last_receipt_us = now;
                                st.latencies.push(sample(stamp.t, now));
                                let q = f.seq.map(|s| s.saturating_sub(plan.base_seq) as usize);
                                if let Some(q) = q.filter(|&q| q <= 4 * plan.expect_seqs) {
                                    if st.seq_count.len() <= q {
                                        st.seq_count.resize(q + 1, 0);
                                    }
                                    let c = &mut st.seq_count[q];
                                    if *c == 0 {
                                        totals.distinct_receipts.fetch_add(1, Ordering::AcqRel);
                                    }
                                    *c = c.saturating_add(1);
                                }
                            }
                            "ack" => {
                                let i = f.cid.as_deref()
                                    .and_then(|c| c.strip_prefix(plan.cid_prefix.as_str()))
                                    .and_then(|c| c.parse::<usize>().ok());
                                if let Some(t) = i.and_then(|i| sent_at.get(i)) {
                                    st.ack_latencies.push(sample(*t, now));
                                }
                                if let Some(q) = f.seq {
                                    st.own_seqs.push(q.saturating_sub(plan.base_seq));
                                }
                                totals.acked.fetch_add(1, Ordering::AcqRel);
                            }
                            "error" => st.errors.add(&format!("error {}", f.code.as_deref().unwrap_or("?"))),
                            _ => {}
                        }
                    }
        }
                }
    }
    if let Ok(ws) = sink.reunite(stream) {
        tokio::spawn(common::close_ws(ws, Duration::from_secs(2)));
    }
    st
}
