//! `publishers`: many publishers into one fresh room, each in a closed loop (at most
//! `--window` publishes sent and not yet acknowledged), for `--duration` seconds. An ack comes
//! only after the message is durable, so acked publishes/s is the room's durable write rate.
//! Every publisher also receives the others' messages; the run checks that each got every seq
//! acknowledged to somebody else, once, and that each socket's acks came in seq order.

use crate::common::{self, now_us, publish_frame, Counts, Ctx, Frame, Res, RunOutput, Ws};
use crate::stats::{sample, summary_ms};
use crate::CommonArgs;
use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Map};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Args, Debug)]
pub struct PublishersArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Publishers (each a distinct user with one socket), all in one room.
    #[arg(long, default_value_t = 50)]
    pub publishers: usize,
    /// Publishes each publisher may have sent and not yet seen acknowledged.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds to wait for outstanding acks and deliveries after the publishing ends.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Connections opened at once during setup.
    #[arg(long, default_value_t = 50)]
    pub connect_concurrency: usize,
}

/// Bound of the publishes one publisher sends in a run (1 000 per second for an hour would
/// not reach it; it sizes the per-publisher bookkeeping).
const MAX_PER_PUBLISHER: usize = 1_000_000;

/// What the publishers share to know when the drain is over: every publish acknowledged and
/// every acknowledged message received by every other publisher.
#[derive(Default)]
struct Totals {
    acked: AtomicU64,
    /// Publishers whose every publish is acknowledged.
    settled: AtomicU64,
}

#[derive(Default)]
struct PublisherStats {
    sent: u64,
    /// Acked seqs in the order the acks arrived.
    own_seqs: Vec<u64>,
    ack_latencies: Vec<u32>,
    /// Receipts of each seq (index = seq - the welcome's seq).
    seq_count: Vec<u8>,
    distinct_receipts: u64,
    first_send_us: u64,
    last_ack_us: u64,
    errors: Counts,
    ended: Option<String>,
}

pub async fn run(ctx: &'static Ctx, a: &PublishersArgs) -> Res<RunOutput> {
    let p = a.publishers;
    if !(1..=5_000).contains(&p) || !(1..=64).contains(&a.window) {
        return Err("--publishers must be in [1, 5000], --window in [1, 64]".into());
    }
    if !(a.duration > 0.0 && a.duration <= 600.0) {
        return Err("--duration must be in (0, 600]".into());
    }
    let mut params = Map::new();
    params.insert(
        "case".into(),
        json!(ctx.case_label(format!(
            "1 room, {p} publishers, window {}, {} s",
            a.window, a.duration
        ))),
    );
    params.insert("publishers".into(), json!(p));
    params.insert("window".into(), json!(a.window));
    params.insert("duration_s".into(), json!(a.duration));
    params.insert("timeout_s".into(), json!(ctx.timeout.as_secs_f64()));
    let mut results = Map::new();

    // ---- setup
    let setup_start = Instant::now();
    let room = format!("bench:publishers:{}", ctx.run_id);
    let sem = common::semaphore(a.connect_concurrency);
    let opens: Vec<_> = (0..p)
        .map(|c| {
            let (sem, room) = (sem.clone(), room.clone());
            let token = ctx.token(&format!("bench-{}-{c}", ctx.run_id));
            tokio::spawn(async move {
                let _permit = sem.acquire().await.expect("semaphore");
                common::open(ctx, &room, &token).await
            })
        })
        .collect();
    let sockets = common::gather_opens(opens, setup_start, &mut results).await?;
    if sockets.len() < p {
        results.insert("complete".into(), json!(false));
        results.insert("error".into(), json!("not every publisher connected"));
        for (ws, _) in sockets {
            tokio::spawn(common::close_ws(ws, Duration::from_secs(2)));
        }
        return Ok(run_output(ctx, params, results));
    }

    // ---- publishing: everybody starts together (that is the case: publishes that collide).
    // The room's seq at the start is the highest welcome seq (later joiners saw more).
    let base_seq = sockets.iter().map(|(_, s)| *s).max().unwrap_or(0);
    let start = Instant::now() + Duration::from_millis(200);
    let publish_end = start + Duration::from_secs_f64(a.duration);
    let drain_end =
        (publish_end + Duration::from_secs_f64(a.drain.clamp(0.1, 600.0))).min(ctx.deadline);
    let totals = Arc::new(Totals::default());
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(idx, (ws, _))| {
            let plan = Plan {
                cid_prefix: format!("{}-{idx}-", ctx.run_id),
                base_seq,
                start,
                publish_end: publish_end.min(ctx.deadline),
                drain_end,
                window: a.window,
                publishers: p as u64,
            };
            tokio::spawn(publisher(ws, plan, totals.clone()))
        })
        .collect();
    let mut stats = Vec::with_capacity(p);
    for t in tasks {
        stats.push(t.await.map_err(|e| format!("publisher task: {e}"))?);
    }

    // ---- results
    let mut acked_by_anyone: Vec<bool> = Vec::new();
    let (mut sent, mut acked, mut out_of_order) = (0u64, 0u64, 0u64);
    let (mut first_send, mut last_ack) = (u64::MAX, 0u64);
    let mut errors = Counts::default();
    let mut ended = Counts::default();
    let mut ack_lat = Vec::new();
    for s in &mut stats {
        sent += s.sent;
        acked += s.own_seqs.len() as u64;
        out_of_order += s.own_seqs.windows(2).filter(|w| w[1] <= w[0]).count() as u64;
        for &q in &s.own_seqs {
            if acked_by_anyone.len() <= q as usize {
                acked_by_anyone.resize(q as usize + 1, false);
            }
            acked_by_anyone[q as usize] = true;
        }
        first_send = first_send.min(s.first_send_us);
        last_ack = last_ack.max(s.last_ack_us);
        errors.merge(&s.errors);
        if let Some(e) = &s.ended {
            ended.add(e);
        }
        ack_lat.append(&mut s.ack_latencies);
    }
    let distinct_acked = acked_by_anyone.iter().filter(|&&a| a).count() as u64;
    let (mut lost, mut duplicated) = (0u64, 0u64);
    for s in &stats {
        let mut own = vec![false; acked_by_anyone.len()];
        for &q in &s.own_seqs {
            own[q as usize] = true;
        }
        for (q, &any) in acked_by_anyone.iter().enumerate() {
            if any && !own[q] && s.seq_count.get(q).copied().unwrap_or(0) == 0 {
                lost += 1;
            }
        }
        duplicated += s
            .seq_count
            .iter()
            .map(|&c| c.saturating_sub(1) as u64)
            .sum::<u64>();
    }
    let span_s = last_ack.saturating_sub(first_send) as f64 / 1e6;
    results.insert("sent".into(), json!(sent));
    results.insert("acked".into(), json!(acked));
    results.insert(
        "acked_per_s".into(),
        json!(if span_s > 0.0 {
            (acked as f64 / span_s).round()
        } else {
            0.0
        }),
    );
    results.insert("ack_ms".into(), summary_ms(&mut ack_lat));
    // Two acks with one seq would be two messages stored as one.
    results.insert("ack_seq_reused".into(), json!(acked - distinct_acked));
    results.insert("acks_out_of_order".into(), json!(out_of_order));
    results.insert("lost".into(), json!(lost));
    results.insert("duplicated".into(), json!(duplicated));
    results.insert("span_s".into(), json!(common::r3(span_s)));
    results.insert("client_errors".into(), errors.to_json());
    results.insert("clients_ended_early".into(), ended.to_json());
    let timed_out = ctx.timed_out();
    let complete = !timed_out && acked == sent && ended.total() == 0;
    results.insert("complete".into(), json!(complete));
    if !complete {
        results.insert(
            "incomplete_reason".into(),
            json!(if timed_out {
                "timeout"
            } else {
                "not every publish was acknowledged"
            }),
        );
    }
    Ok(run_output(ctx, params, results))
}

fn run_output(
    ctx: &Ctx,
    params: Map<String, serde_json::Value>,
    results: Map<String, serde_json::Value>,
) -> RunOutput {
    RunOutput {
        scenario: "publishers",
        target: ctx.target.clone(),
        params,
        results,
    }
}

struct Plan {
    cid_prefix: String,
    base_seq: u64,
    start: Instant,
    publish_end: Instant,
    drain_end: Instant,
    window: usize,
    publishers: u64,
}

/// One publisher: keeps `window` publishes in flight until `publish_end`, then waits (until
/// `drain_end`) for the acks still due and the others' messages.
async fn publisher(ws: Ws, plan: Plan, totals: Arc<Totals>) -> PublisherStats {
    let (mut sink, mut stream) = ws.split();
    let mut st = PublisherStats {
        first_send_us: u64::MAX,
        ..Default::default()
    };
    // Send times of the publishes in flight, oldest first (acks come in order).
    let mut in_flight: VecDeque<(u64, u64)> = VecDeque::with_capacity(plan.window);
    let mut next = 0u64;
    let mut settled = false;
    sleep_until(plan.start).await;
    loop {
        let now = Instant::now();
        let publishing = now < plan.publish_end && st.ended.is_none();
        if !publishing && in_flight.is_empty() && !settled {
            settled = true;
            totals.settled.fetch_add(1, Ordering::AcqRel);
        }
        let all_in = settled
            && totals.settled.load(Ordering::Acquire) == plan.publishers
            && st.distinct_receipts + st.own_seqs.len() as u64
                >= totals.acked.load(Ordering::Acquire);
        if !publishing && (all_in || now >= plan.drain_end || st.ended.is_some()) {
            break;
        }
        if publishing && in_flight.len() < plan.window && (next as usize) < MAX_PER_PUBLISHER {
            let t = now_us();
            st.first_send_us = st.first_send_us.min(t);
            let frame = publish_frame(&plan.cid_prefix, next, t);
            if let Err(e) = sink.send(Message::text(frame)).await {
                st.ended = Some(format!("send: {}", common::classify(&e)));
                continue;
            }
            in_flight.push_back((next, t));
            st.sent += 1;
            next += 1;
            continue;
        }
        // Draining, the others' progress is polled.
        let until = if publishing {
            plan.publish_end
        } else {
            Instant::now() + Duration::from_millis(20)
        };
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = sleep_until(until) => continue,
        };
        if let Some(reason) = common::end_reason(&msg) {
            st.ended = Some(reason);
            continue;
        }
        let Some(Ok(Message::Text(text))) = msg else {
            continue;
        };
        let now = now_us();
        for one in common::frame_texts(text.as_str()) {
            let Ok(f) = serde_json::from_str::<Frame>(one) else {
                continue;
            };
            let q = f.seq.map(|s| s.saturating_sub(plan.base_seq));
            match f.ty.as_ref() {
                "message" => {
                    if let Some(q) = q.filter(|&q| q as usize <= 4 * MAX_PER_PUBLISHER) {
                        let q = q as usize;
                        if st.seq_count.len() <= q {
                            st.seq_count.resize(q + 1, 0);
                        }
                        if st.seq_count[q] == 0 {
                            st.distinct_receipts += 1;
                        }
                        st.seq_count[q] = st.seq_count[q].saturating_add(1);
                    }
                }
                "ack" => {
                    let i = f
                        .cid
                        .as_deref()
                        .and_then(|c| c.strip_prefix(plan.cid_prefix.as_str()))
                        .and_then(|c| c.parse::<u64>().ok());
                    if let Some(pos) = i.and_then(|i| in_flight.iter().position(|&(n, _)| n == i)) {
                        if let Some((_, t)) = in_flight.remove(pos) {
                            st.ack_latencies.push(sample(t, now));
                        }
                    }
                    if let Some(q) = q {
                        st.own_seqs.push(q);
                    }
                    totals.acked.fetch_add(1, Ordering::AcqRel);
                    st.last_ack_us = now;
                }
                "error" => st
                    .errors
                    .add(&format!("error {}", f.code.as_deref().unwrap_or("?"))),
                _ => {}
            }
        }
    }
    if let Ok(ws) = sink.reunite(stream) {
        tokio::spawn(common::close_ws(ws, Duration::from_secs(2)));
    }
    st
}
