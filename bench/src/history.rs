//! `history`: seed a room with M messages once (POST /v1/broadcast, one room per request, or
//! HTTP publish when there is no broadcast route; a room that already has M messages is not
//! seeded again), wait for the archive to settle, then time R sequential
//! `GET /v1/rooms/{room}/messages?after=A&limit=P` at random offsets A (so pages come from
//! the room's hot window and from the D1 archive alike).

use crate::common::{self, now_us, Counts, Ctx, Res, RunOutput};
use crate::fanout::broadcast_unsupported;
use crate::stats::{sample, summary_ms};
use crate::CommonArgs;
use clap::Args;
use serde::Deserialize;
use serde_json::{json, Map};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Messages the room holds (seeded once).
    #[arg(long, default_value_t = 10_000)]
    pub messages: u64,
    /// Page size (`limit`; the relay clamps it to 200).
    #[arg(long, default_value_t = 50)]
    pub page: u64,
    /// Timed page requests (sequential).
    #[arg(long, default_value_t = 200)]
    pub requests: u64,
    /// The room (default `bench:history:<messages>`; it is reused when already seeded).
    #[arg(long)]
    pub room: Option<String>,
    /// Webhook secret for seeding through POST /v1/broadcast.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Seeding requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub seed_concurrency: usize,
    /// Seconds to wait after seeding (the archive writes behind) before timing.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
}

#[derive(Deserialize)]
struct Page {
    messages: Vec<Seq>,
}

#[derive(Deserialize)]
struct Seq {
    seq: u64,
}

pub async fn run(ctx: &'static Ctx, a: &HistoryArgs) -> Res<RunOutput> {
    if a.messages == 0 || a.messages > 1_000_000 {
        return Err("--messages must be in 1..=1000000".into());
    }
    if a.page == 0 || a.page > a.messages || a.requests == 0 || a.requests > 1_000_000 {
        return Err("--page must be in 1..=messages, --requests in 1..=1000000".into());
    }
    let room = a
        .room
        .clone()
        .unwrap_or_else(|| format!("bench:history:{}", a.messages));
    let mut params = Map::new();
    params.insert(
        "case".into(),
        json!(format!("M={} page={} R={}", a.messages, a.page, a.requests)),
    );
    params.insert("messages".into(), json!(a.messages));
    params.insert("page".into(), json!(a.page));
    params.insert("requests".into(), json!(a.requests));
    params.insert("timeout_s".into(), json!(ctx.timeout.as_secs_f64()));
    let mut results = Map::new();
    let out = |params, results| RunOutput {
        scenario: "history",
        target: ctx.target.clone(),
        params,
        results,
    };
    let token = ctx.token(&format!("bench-history-{}", ctx.run_id));

    // ---- how far the room is seeded
    let newest = ctx
        .http
        .get(ctx.room_url(&room, "messages?limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| format!("GET history: {e}"))?;
    let status = newest.status().as_u16();
    if status == 404 || status == 405 {
        results.insert(
            "unsupported".into(),
            json!(format!("GET /v1/rooms/{{room}}/messages answered {status}")),
        );
        results.insert("complete".into(), json!(false));
        return Ok(out(params, results));
    }
    if status != 200 {
        return Err(format!("GET history answered {status}"));
    }
    let have = newest
        .json::<Page>()
        .await
        .map_err(|e| format!("GET history body: {e}"))?
        .messages
        .last()
        .map(|m| m.seq)
        .unwrap_or(0);
    results.insert("seeded_before".into(), json!(have));

    // ---- seeding
    let to_seed = a.messages.saturating_sub(have);
    let mut seed_errors = Counts::default();
    let mut timed_out = false;
    if to_seed > 0 {
        let broadcast = match a.webhook_secret.as_deref().filter(|s| !s.is_empty()) {
            Some(secret) => broadcast_unsupported(ctx, secret).await?.is_none(),
            None => false,
        };
        results.insert(
            "seeded_via".into(),
            json!(if broadcast {
                "POST /v1/broadcast"
            } else {
                "POST /v1/rooms/{room}/messages"
            }),
        );
        let t0 = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let room_json = serde_json::to_string(&room).expect("room as JSON");
        let mut workers = Vec::new();
        for _ in 0..a.seed_concurrency.clamp(1, 256) {
            let (next, done) = (next.clone(), done.clone());
            let (room, room_json, token) = (room.clone(), room_json.clone(), token.clone());
            let secret = a.webhook_secret.clone().unwrap_or_default();
            let run_id = ctx.run_id.clone();
            workers.push(tokio::spawn(async move {
                let mut errors = Counts::default();
                loop {
                    let i = next.fetch_add(1, Ordering::AcqRel);
                    if i >= to_seed || ctx.timed_out() {
                        return errors;
                    }
                    let k = have + i + 1;
                    let data = format!(r#"{{"i":{k},"text":"bench history message {k}"}}"#);
                    let req = if broadcast {
                        ctx.http
                            .post(format!("{}/v1/broadcast", ctx.http_base))
                            .bearer_auth(&secret)
                            .body(format!(
                                r#"{{"rooms":[{room_json}],"event":"bench","data":{data}}}"#
                            ))
                    } else {
                        ctx.http
                            .post(ctx.room_url(&room, "messages"))
                            .bearer_auth(&token)
                            .body(format!(r#"{{"cid":"{run_id}-{k}","data":{data}}}"#))
                    };
                    match req.header("content-type", "application/json").send().await {
                        Ok(r) if r.status().is_success() => {
                            done.fetch_add(1, Ordering::AcqRel);
                        }
                        Ok(r) => errors.add(&format!("http {}", r.status().as_u16())),
                        Err(_) => errors.add("http error"),
                    }
                }
            }));
        }
        for w in workers {
            seed_errors.merge(&w.await.map_err(|e| format!("seed task: {e}"))?);
        }
        let seed_s = t0.elapsed().as_secs_f64();
        let seeded = done.load(Ordering::Acquire);
        results.insert("seeded".into(), json!(seeded));
        results.insert("seed_s".into(), json!(common::r3(seed_s)));
        results.insert(
            "seed_per_s".into(),
            json!(if seed_s > 0.0 {
                (seeded as f64 / seed_s).round()
            } else {
                0.0
            }),
        );
        results.insert("seed_errors".into(), seed_errors.to_json());
        if seed_errors.total() > 0 && seeded == 0 {
            results.insert("error".into(), json!("seeding failed"));
            results.insert("complete".into(), json!(false));
            return Ok(out(params, results));
        }
        timed_out |= ctx.timed_out();
        let settle_end = (Instant::now() + Duration::from_secs_f64(a.settle.clamp(0.0, 600.0)))
            .min(ctx.deadline);
        tokio::time::sleep_until(settle_end).await;
    }

    // ---- timed pages
    let mut lat = Vec::with_capacity(a.requests as usize);
    let mut errors = Counts::default();
    let mut bad_pages = 0u64;
    let mut bytes = 0u64;
    let max_after = a.messages - a.page;
    let t0 = now_us();
    let mut done = 0u64;
    for _ in 0..a.requests {
        if ctx.timed_out() {
            timed_out = true;
            break;
        }
        let after = fastrand::u64(0..=max_after);
        let url = ctx.room_url(&room, &format!("messages?after={after}&limit={}", a.page));
        let s = now_us();
        let r = ctx.http.get(url).bearer_auth(&token).send().await;
        let body = match r {
            Ok(r) if r.status().is_success() => r.bytes().await.ok(),
            Ok(r) => {
                errors.add(&format!("http {}", r.status().as_u16()));
                None
            }
            Err(_) => {
                errors.add("http error");
                None
            }
        };
        let e = now_us();
        done += 1;
        let Some(body) = body else { continue };
        lat.push(sample(s, e));
        bytes += body.len() as u64;
        let ok = serde_json::from_slice::<Page>(&body)
            .map(|p| {
                p.messages.len() as u64 == a.page
                    && p.messages.first().map(|m| m.seq) == Some(after + 1)
            })
            .unwrap_or(false);
        if !ok {
            bad_pages += 1;
        }
    }
    let span_s = now_us().saturating_sub(t0) as f64 / 1e6;
    let ok_count = lat.len() as u64;
    results.insert("requests_done".into(), json!(done));
    results.insert("requests_ok".into(), json!(ok_count));
    results.insert("bad_pages".into(), json!(bad_pages));
    results.insert("errors".into(), errors.to_json());
    results.insert("latency_ms".into(), summary_ms(&mut lat));
    results.insert(
        "requests_per_s".into(),
        json!(if span_s > 0.0 {
            common::r3(done as f64 / span_s)
        } else {
            0.0
        }),
    );
    results.insert(
        "bytes_per_page".into(),
        json!(bytes.checked_div(ok_count).unwrap_or(0)),
    );
    results.insert("complete".into(), json!(!timed_out));
    if timed_out {
        results.insert("incomplete_reason".into(), json!("timeout"));
    }
    Ok(out(params, results))
}
