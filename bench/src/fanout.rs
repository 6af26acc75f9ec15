//! `fanout`: one fresh room, N receivers, one sender publishing M messages over a WebSocket
//! (or through `POST /v1/broadcast` with `--via-broadcast`), either closed-loop (at most W
//! messages sent but not yet received by every receiver) or at a fixed rate.
//!
//! Every receiver records the latency of each receipt (now − the `t` stamped into the
//! message) and counts seqs: a fresh room numbers the messages 1..=M, so a seq never seen is
//! lost and a seq seen twice is duplicated.
//!
//! With `--events off|PORT` the run is one side of the events comparison (scenario `events`):
//! `off` against a server without `EVENTS_URL`; `PORT` against one whose `EVENTS_URL` points at
//! 127.0.0.1:PORT, where an event sink ([`crate::events_sink`]) runs for the run, and after
//! the fan-out the run waits (at most `--events-wait`) for every acknowledged message's
//! `message.created` event and reports what arrived.

use crate::common::{self, now_us, publish_frame, Counts, Ctx, Frame, Res, RunOutput, Ws};
use crate::cpu;
use crate::events_sink::Sink;
use crate::stats::{sample, summary_ms};
use crate::CommonArgs;
use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Receiving connections (all in the one room).
    #[arg(long, default_value_t = 10)]
    pub receivers: usize,
    /// Messages to publish.
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Closed loop: at most this many messages sent but not yet received by all receivers
    /// (the default, 16, unless --rate is given).
    #[arg(long, conflicts_with = "rate")]
    pub window: Option<u64>,
    /// Open loop: publish at this fixed rate (messages per second).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Publish through POST /v1/broadcast (webhook secret) instead of a WebSocket sender.
    #[arg(long)]
    pub via_broadcast: bool,
    /// Webhook secret for --via-broadcast.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Seconds to wait for outstanding deliveries after the last send (also how long the
    /// closed loop waits for any progress before it gives up as stalled).
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Connections opened at once while setting up the receivers.
    #[arg(long, default_value_t = 50)]
    pub connect_concurrency: usize,
    /// Run as one side of the events comparison (scenario `events`, case suffix
    /// ` events=off` / ` events=on`): `off` for a server without EVENTS_URL, or the port on
    /// 127.0.0.1 its EVENTS_URL points at, where an event sink then runs for the run.
    #[arg(long, value_parser = parse_events_side)]
    pub events: Option<EventsSide>,
    /// EVENTS_SECRET of the server, to verify the deliveries' signatures (--events PORT).
    #[arg(long, env = "EVENTS_SECRET", hide_env_values = true)]
    pub events_secret: Option<String>,
    /// With --events PORT: seconds to wait after the fan-out for the events of every
    /// acknowledged message (0..=600).
    #[arg(long, default_value_t = 30.0)]
    pub events_wait: f64,
    /// Pid of the server (`wrangler dev`): adds `server_cpu_s`, the CPU of its whole process
    /// tree from the first send to the end of the run (with --events PORT, to the end of the
    /// wait for the events: their delivery included), and `server_cpu_ms_per_publish`.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// Which side of the events comparison a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventsSide {
    Off,
    /// The sink's port.
    On(u16),
}

fn parse_events_side(s: &str) -> Result<EventsSide, String> {
    match s {
        "off" => Ok(EventsSide::Off),
        _ => match s.parse::<u16>() {
            Ok(port) if port > 0 => Ok(EventsSide::On(port)),
            _ => Err(format!("{s:?}: give `off` or the sink's port (1..=65535)")),
        },
    }
}

/// What the receivers share with the sender.
struct Shared {
    receivers: u32,
    /// Per message index: how many receivers have it.
    have: Vec<AtomicU32>,
    /// Messages every receiver has.
    completed: AtomicU64,
    progress: Notify,
}

#[derive(Default)]
struct RecvStats {
    latencies: Vec<u32>,
    /// Receipts per seq offset (index 0 unused); saturating.
    seq_count: Vec<u8>,
    receipts: u64,
    out_of_range: u64,
    foreign: u64,
    last_receipt_us: u64,
    ended: Option<String>,
}

pub async fn run(ctx: &'static Ctx, a: &FanoutArgs) -> Res<RunOutput> {
    let m = a.messages;
    let n = a.receivers;
    if m == 0 || m > 10_000_000 {
        return Err("--messages must be in 1..=10000000".into());
    }
    if n == 0 || n > 20_000 {
        return Err("--receivers must be in 1..=20000".into());
    }
    if m.saturating_mul(n as u64) > 50_000_000 {
        return Err("--messages x --receivers is bounded to 50 000 000 receipts".into());
    }
    if let Some(r) = a.rate {
        if !(r > 0.0 && r <= 1_000_000.0) {
            return Err("--rate must be in (0, 1000000]".into());
        }
    }
    let window = if a.rate.is_some() {
        None
    } else {
        Some(a.window.unwrap_or(16).max(1))
    };
    let drain = Duration::from_secs_f64(a.drain.clamp(0.1, 600.0));
    let room = format!("bench:fanout:{}", ctx.run_id);
    let scenario = if a.events.is_some() {
        "events"
    } else {
        "fanout"
    };
    let events_suffix = match a.events {
        None => "",
        Some(EventsSide::Off) => " events=off",
        Some(EventsSide::On(_)) => " events=on",
    };
    let mut params = Map::new();
    let mode = match (window, a.rate) {
        (Some(w), _) => format!("W={w}"),
        (None, Some(r)) => format!("rate={r}/s"),
        _ => unreachable!(),
    };
    params.insert(
        "case".into(),
        json!(ctx.case_label(format!(
            "N={n} M={m} {mode}{}{events_suffix}",
            if a.via_broadcast {
                " via broadcast"
            } else {
                ""
            }
        ))),
    );
    params.insert("receivers".into(), json!(n));
    params.insert("messages".into(), json!(m));
    params.insert("window".into(), json!(window));
    params.insert("rate".into(), json!(a.rate));
    params.insert("via_broadcast".into(), json!(a.via_broadcast));
    params.insert("timeout_s".into(), json!(ctx.timeout.as_secs_f64()));
    let mut results = Map::new();

    // The broadcast route may not exist on a baseline: find out before opening anything.
    let webhook = if a.via_broadcast {
        let secret = a
            .webhook_secret
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or("--via-broadcast needs --webhook-secret (or WEBHOOK_SECRET)")?;
        if let Some(reason) = broadcast_unsupported(ctx, &secret).await? {
            results.insert("unsupported".into(), json!(reason));
            results.insert("complete".into(), json!(false));
            return Ok(RunOutput {
                scenario,
                target: ctx.target.clone(),
                params,
                results,
            });
        }
        Some(secret)
    } else {
        None
    };

    if a.events.is_some() {
        // The machine is shared: the comparison's runs say what else was running.
        results.insert(
            "load_average_1m_at_start".into(),
            json!(common::load_average_1m()),
        );
    }
    // Up before the first connect, so that the presence events find it too.
    let events_sink = match a.events {
        Some(EventsSide::On(port)) => {
            Some(Sink::start(port, a.events_secret.as_deref().unwrap_or_default(), &room).await?)
        }
        _ => None,
    };

    // Receivers: one user for all of them (presence is per user, so N receivers cause one
    // `join`, not N² of them), the sender another.
    let setup_start = Instant::now();
    let rx_token = ctx.token(&format!("bench-rx-{}", ctx.run_id));
    let sem = common::semaphore(a.connect_concurrency);
    let mut opens = Vec::with_capacity(n);
    for _ in 0..n {
        let sem = sem.clone();
        let (room, token) = (room.clone(), rx_token.clone());
        opens.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.expect("semaphore");
            common::open(ctx, &room, &token).await
        }));
    }
    let mut opened = Vec::with_capacity(n);
    for o in opens {
        opened.push(o.await.map_err(|e| format!("connect task: {e}"))?);
    }
    let mut sockets = Vec::with_capacity(n);
    let mut failures = Counts::default();
    let mut base_seq = None;
    for r in opened {
        match r {
            Ok((ws, seq)) => {
                base_seq.get_or_insert(seq);
                sockets.push(ws);
            }
            Err(reason) => failures.add(&reason),
        }
    }
    let sender = if webhook.is_none() {
        match common::open(ctx, &room, &ctx.token(&format!("bench-tx-{}", ctx.run_id))).await {
            Ok((ws, seq)) => {
                base_seq.get_or_insert(seq);
                Some(ws)
            }
            Err(reason) => {
                failures.add(&format!("sender: {reason}"));
                None
            }
        }
    } else {
        None
    };
    let setup_s = setup_start.elapsed().as_secs_f64();
    results.insert("setup_s".into(), json!(common::r3(setup_s)));
    results.insert("connect_failures".into(), failures.to_json());
    if sockets.len() < n || (webhook.is_none() && sender.is_none()) {
        results.insert(
            "error".into(),
            json!(format!(
                "only {} of {n} receivers connected{}",
                sockets.len(),
                if webhook.is_none() && sender.is_none() {
                    " and the sender did not"
                } else {
                    ""
                }
            )),
        );
        results.insert("complete".into(), json!(false));
        for ws in sockets {
            tokio::spawn(common::close_ws(ws, Duration::from_secs(2)));
        }
        return Ok(RunOutput {
            scenario,
            target: ctx.target.clone(),
            params,
            results,
        });
    }
    let base_seq = base_seq.unwrap_or(0);
    results.insert("room_seq_before".into(), json!(base_seq));

    let shared = Arc::new(Shared {
        receivers: n as u32,
        have: (0..m).map(|_| AtomicU32::new(0)).collect(),
        completed: AtomicU64::new(0),
        progress: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let receivers: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, shared.clone(), stop_rx.clone(), base_seq, m)))
        .collect();

    // ---- sending
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..m).map(|_| AtomicU64::new(0)).collect());
    let acks = Arc::new(AckState::default());
    let cid_prefix = format!("{}-", ctx.run_id);
    let ack_reader;
    let mut sink = None;
    match sender {
        Some(ws) => {
            let (s, stream) = ws.split();
            sink = Some(s);
            ack_reader = Some(tokio::spawn(read_acks(
                stream,
                sent_at.clone(),
                acks.clone(),
                cid_prefix.clone(),
                base_seq,
                stop_rx.clone(),
            )));
        }
        None => ack_reader = None,
    }
    let http_limit = common::semaphore(256);
    let broadcast_body_prefix = format!(
        r#"{{"rooms":[{}],"event":"bench","data":"#,
        serde_json::to_string(&room).expect("room as JSON")
    );
    let cpu_at_start = a.server_pid.map(|pid| (pid, cpu::tree_cpu_s(pid)));
    let first_send_us = now_us();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut last_send_us = first_send_us;
    let mut stop_reason: Option<String> = None;
    let mut http_tasks = Vec::new();
    'send: for i in 0..m {
        if ctx.timed_out() {
            stop_reason = Some("timeout".into());
            break;
        }
        match (window, a.rate) {
            (Some(w), _) => loop {
                if i - shared.completed.load(Ordering::Acquire) < w {
                    break;
                }
                tokio::select! {
                    _ = shared.progress.notified() => {}
                    _ = tokio::time::sleep(drain) => {
                        stop_reason = Some(format!("stalled: no message completed for {} s", drain.as_secs_f64()));
                        break 'send;
                    }
                    _ = sleep_until(ctx.deadline) => {
                        stop_reason = Some("timeout".into());
                        break 'send;
                    }
                }
            },
            (None, Some(r)) => {
                let at = start + Duration::from_secs_f64(i as f64 / r);
                if at >= ctx.deadline {
                    sleep_until(ctx.deadline).await;
                    stop_reason = Some("timeout".into());
                    break;
                }
                sleep_until(at).await;
            }
            _ => unreachable!(),
        }
        let t = now_us();
        sent_at[i as usize].store(t, Ordering::Relaxed);
        if let Some(sink) = sink.as_mut() {
            if let Err(e) = sink
                .send(Message::text(publish_frame(&cid_prefix, i, t)))
                .await
            {
                stop_reason = Some(format!("send failed: {}", common::classify(&e)));
                break;
            }
        } else {
            let permit = http_limit.clone().acquire_owned().await.expect("semaphore");
            let body = format!(r#"{broadcast_body_prefix}{{"t":{t},"i":{i}}}}}"#);
            let req = ctx
                .http
                .post(format!("{}/v1/broadcast", ctx.http_base))
                .bearer_auth(webhook.as_deref().unwrap_or_default())
                .header("content-type", "application/json")
                .body(body);
            let acks = acks.clone();
            http_tasks.push(tokio::spawn(async move {
                let _permit = permit;
                let r = req.send().await;
                let now = now_us();
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        let seq = resp
                            .json::<Value>()
                            .await
                            .ok()
                            .and_then(|v| v["results"][0]["seq"].as_u64());
                        acks.record(seq.map(|s| s.saturating_sub(base_seq)), sample(t, now));
                    }
                    Ok(resp) => acks.error(&format!("http {}", resp.status().as_u16())),
                    Err(e) => acks.error(&format!(
                        "http error: {}",
                        if e.is_timeout() {
                            "timeout"
                        } else if e.is_connect() {
                            "connect"
                        } else {
                            "other"
                        }
                    )),
                }
            }));
        }
        sent += 1;
        last_send_us = t;
    }
    let send_done_us = now_us();

    // ---- draining: until every receiver has every sent message (and every ack is in), or
    // the drain time passes, or the run's deadline.
    let drain_until = (Instant::now() + drain).min(ctx.deadline);
    loop {
        let all_in = shared.completed.load(Ordering::Acquire) >= sent
            && acks.count.load(Ordering::Acquire) + acks.errors() >= sent;
        if all_in || Instant::now() >= drain_until {
            break;
        }
        tokio::select! {
            _ = shared.progress.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let drained = shared.completed.load(Ordering::Acquire) >= sent;
    if !drained && stop_reason.is_none() && ctx.timed_out() {
        stop_reason = Some("timeout".into());
    }
    let _ = stop_tx.send(true);
    for t in http_tasks {
        t.abort();
    }
    let mut stats = Vec::with_capacity(n);
    for r in receivers {
        stats.push(r.await.map_err(|e| format!("receiver task: {e}"))?);
    }
    if let Some(r) = ack_reader {
        let _ = r.await;
    }
    if let Some(s) = sink {
        let mut s = s;
        let _ = tokio::time::timeout(Duration::from_secs(2), s.close()).await;
    }

    // ---- results
    let acked = acks.count.load(Ordering::Acquire);
    let expected_seqs: Vec<bool> = {
        // A complete run expects 1..=M. Otherwise: what the server acknowledged.
        let mut e = vec![false; m as usize + 1];
        if sent == m && stop_reason.is_none() {
            e.iter_mut().skip(1).for_each(|x| *x = true);
        } else {
            for s in acks.seqs.lock().expect("acks").iter() {
                if (1..=m).contains(s) {
                    e[*s as usize] = true;
                }
            }
        }
        e
    };
    let mut lost = 0u64;
    let mut dup = 0u64;
    let mut receipts = 0u64;
    let mut out_of_range = 0u64;
    let mut foreign = 0u64;
    let mut last_receipt_us = 0u64;
    let mut ended = Counts::default();
    let mut lat: Vec<u32> = Vec::with_capacity(stats.iter().map(|s| s.latencies.len()).sum());
    for s in &mut stats {
        for (seq, &c) in s.seq_count.iter().enumerate().skip(1) {
            if expected_seqs[seq] && c == 0 {
                lost += 1;
            }
            if c > 1 {
                dup += (c - 1) as u64;
            }
        }
        receipts += s.receipts;
        out_of_range += s.out_of_range;
        foreign += s.foreign;
        last_receipt_us = last_receipt_us.max(s.last_receipt_us);
        if let Some(e) = &s.ended {
            ended.add(e);
        }
        lat.append(&mut s.latencies);
    }
    let span_s = (last_receipt_us.saturating_sub(first_send_us)) as f64 / 1e6;
    let send_span_s = (last_send_us.saturating_sub(first_send_us)) as f64 / 1e6;
    let mut ack_lat = std::mem::take(&mut *acks.latencies.lock().expect("acks"));
    results.insert("sent".into(), json!(sent));
    results.insert("acked".into(), json!(acked));
    results.insert("receipts".into(), json!(receipts));
    results.insert("expected_receipts".into(), json!(sent * n as u64));
    results.insert("lost".into(), json!(lost));
    results.insert("duplicated".into(), json!(dup));
    results.insert("out_of_range".into(), json!(out_of_range));
    results.insert("foreign_messages".into(), json!(foreign));
    results.insert("latency_ms".into(), summary_ms(&mut lat));
    results.insert(
        if webhook.is_some() {
            "broadcast_response_ms"
        } else {
            "ack_ms"
        }
        .into(),
        summary_ms(&mut ack_lat),
    );
    results.insert(
        "delivered_per_s".into(),
        json!(if span_s > 0.0 {
            (receipts as f64 / span_s).round()
        } else {
            0.0
        }),
    );
    results.insert(
        "sent_per_s".into(),
        json!(if send_span_s > 0.0 {
            common::r3(sent.saturating_sub(1) as f64 / send_span_s)
        } else {
            0.0
        }),
    );
    results.insert(
        "send_s".into(),
        json!(common::r3((send_done_us - first_send_us) as f64 / 1e6)),
    );
    results.insert("span_s".into(), json!(common::r3(span_s)));
    results.insert("sender_errors".into(), acks.errors_json());
    results.insert("receivers_ended_early".into(), ended.to_json());
    results.insert("complete".into(), json!(stop_reason.is_none() && sent == m));
    if let Some(r) = stop_reason {
        results.insert("incomplete_reason".into(), json!(r));
    }
    if let Some(sink) = events_sink {
        let expected: Vec<u64> = expected_seqs
            .iter()
            .enumerate()
            .filter(|(_, &e)| e)
            .map(|(k, _)| base_seq + k as u64)
            .collect();
        let wait_start = Instant::now();
        let wait_until = wait_start + Duration::from_secs_f64(a.events_wait.clamp(0.0, 600.0));
        while sink.created() < expected.len() as u64 && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        results.insert(
            "events_wait_s".into(),
            json!(common::r3(wait_start.elapsed().as_secs_f64())),
        );
        results.insert("events".into(), sink.stop(&expected).await);
    }
    if let Some(cpu_s) =
        cpu_at_start.and_then(|(pid, at_start)| Some(cpu::tree_cpu_s(pid)? - at_start?))
    {
        results.insert("server_cpu_s".into(), json!(common::r3(cpu_s)));
        if sent > 0 {
            results.insert(
                "server_cpu_ms_per_publish".into(),
                json!(common::r3(cpu_s * 1000.0 / sent as f64)),
            );
        }
    }
    Ok(RunOutput {
        scenario,
        target: ctx.target.clone(),
        params,
        results,
    })
}

/// `Some(reason)` when the target has no `POST /v1/broadcast` (the JS baseline).
pub async fn broadcast_unsupported(ctx: &Ctx, secret: &str) -> Res<Option<String>> {
    let resp = ctx
        .http
        .post(format!("{}/v1/broadcast", ctx.http_base))
        .bearer_auth(secret)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .map_err(|e| format!("probing POST /v1/broadcast: {e}"))?;
    match resp.status().as_u16() {
        404 | 405 | 501 => Ok(Some(format!(
            "POST /v1/broadcast answered {}",
            resp.status().as_u16()
        ))),
        401 | 403 => Err(format!(
            "POST /v1/broadcast refused the webhook secret ({})",
            resp.status().as_u16()
        )),
        _ => Ok(None),
    }
}

/// What the sender learns back: acks (or broadcast answers) and errors.
#[derive(Default)]
struct AckState {
    count: AtomicU64,
    seqs: std::sync::Mutex<Vec<u64>>,
    latencies: std::sync::Mutex<Vec<u32>>,
    errors: std::sync::Mutex<Counts>,
}

impl AckState {
    /// `seq` is relative to the room's seq before the run.
    fn record(&self, seq: Option<u64>, latency: u32) {
        if let Some(s) = seq {
            self.seqs.lock().expect("acks").push(s);
        }
        self.latencies.lock().expect("acks").push(latency);
        self.count.fetch_add(1, Ordering::Release);
    }
    fn error(&self, code: &str) {
        self.errors.lock().expect("acks").add(code);
    }
    fn errors(&self) -> u64 {
        self.errors.lock().expect("acks").total()
    }
    fn errors_json(&self) -> Value {
        self.errors.lock().expect("acks").to_json()
    }
}

async fn read_acks(
    mut stream: futures_util::stream::SplitStream<Ws>,
    sent_at: Arc<Vec<AtomicU64>>,
    acks: Arc<AckState>,
    prefix: String,
    base_seq: u64,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let msg = tokio::select! {
            biased;
            _ = common::stopped(&mut stop) => return,
            m = stream.next() => m,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                acks.error("sender socket closed");
                return;
            }
            Some(Ok(_)) => continue,
        };
        let now = now_us();
        for one in common::frame_texts(text.as_str()) {
            let Ok(f) = serde_json::from_str::<Frame>(one) else {
                acks.error("non-JSON frame");
                continue;
            };
            match f.ty.as_ref() {
                "ack" => {
                    let i = f
                        .cid
                        .as_deref()
                        .and_then(|c| c.strip_prefix(prefix.as_str()))
                        .and_then(|c| c.parse::<usize>().ok());
                    let lat = i
                        .and_then(|i| sent_at.get(i))
                        .map(|t| sample(t.load(Ordering::Relaxed), now))
                        .unwrap_or(0);
                    acks.record(f.seq.map(|s| s.saturating_sub(base_seq)), lat);
                }
                "error" => acks.error(&format!("error {}", f.code.as_deref().unwrap_or("?"))),
                _ => {}
            }
        }
    }
}

async fn receive(
    mut ws: Ws,
    sh: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    base_seq: u64,
    m: u64,
) -> RecvStats {
    let mut st = RecvStats {
        latencies: Vec::with_capacity(m as usize),
        seq_count: vec![0; m as usize + 1],
        ..Default::default()
    };
    let mut have = vec![false; m as usize];
    loop {
        let msg = tokio::select! {
            biased;
            _ = common::stopped(&mut stop) => break,
            m = ws.next() => m,
        };
        if let Some(reason) = common::end_reason(&msg) {
            st.ended = Some(reason);
            break;
        }
        let Some(Ok(Message::Text(text))) = msg else {
            continue;
        };
        let now = now_us();
        for one in common::frame_texts(text.as_str()) {
            let Ok(f) = serde_json::from_str::<Frame>(one) else {
                continue;
            };
            if f.ty != "message" {
                continue;
            }
            let Some(stamp) = f.stamp() else {
                st.foreign += 1;
                continue;
            };
            st.receipts += 1;
            st.last_receipt_us = now;
            st.latencies.push(sample(stamp.t, now));
            match f.seq.map(|s| s.saturating_sub(base_seq)) {
                Some(k) if (1..=m).contains(&k) => {
                    let c = &mut st.seq_count[k as usize];
                    *c = c.saturating_add(1);
                }
                _ => st.out_of_range += 1,
            }
            if let Some(h) = have.get_mut(stamp.i as usize) {
                if !*h {
                    *h = true;
                    let got = sh.have[stamp.i as usize].fetch_add(1, Ordering::AcqRel) + 1;
                    if got == sh.receivers {
                        sh.completed.fetch_add(1, Ordering::AcqRel);
                        sh.progress.notify_one();
                    }
                }
            }
        }
    }
    // The socket is closed in the background: the run's figures do not wait for it.
    tokio::spawn(common::close_ws(ws, Duration::from_secs(2)));
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_takes_off_or_a_port() {
        assert_eq!(parse_events_side("off"), Ok(EventsSide::Off));
        assert_eq!(parse_events_side("8788"), Ok(EventsSide::On(8788)));
        for bad in ["0", "on", "65536", "-1", ""] {
            assert!(parse_events_side(bad).is_err(), "{bad}");
        }
    }
}
