//! `relay-bench`: the load and benchmark tool of edge-relay.
//!
//! It drives a relay that runs on this machine (`wrangler dev`, loopback addresses only) with
//! one scenario per run and prints a human table on stderr and one JSON line on stdout:
//! `{"scenario":..,"target":<label>,"params":{..},"results":{..}}`. Every run is bounded in
//! message count and in wall time (`--timeout`); a run stopped by its timeout reports what it
//! has with `"complete": false`. See bench/README.md.

mod capacity;
mod common;
mod cpu;
mod events_sink;
mod fanout;
mod history;
mod publishers;
mod received;
mod report;
mod report_events;
mod rooms;
mod stats;
mod storm;

use clap::{Args, Parser, Subcommand};
use common::Ctx;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "relay-bench",
    version,
    about = "Load/benchmark tool for edge-relay and its baselines (loopback targets only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags every scenario takes.
#[derive(Args, Clone, Debug)]
pub struct CommonArgs {
    /// Base URL of the relay, e.g. http://127.0.0.1:8787. Only loopback hosts are accepted
    /// (127.0.0.0/8, localhost, [::1]).
    #[arg(long, env = "RELAY_URL")]
    pub url: String,
    /// Label of the target in the output (edge-relay, baseline-js, ...).
    #[arg(long, default_value = "edge-relay")]
    pub target: String,
    /// HS256 secret the relay verifies user tokens with (tokens are minted here).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// Wall-time bound of the run in seconds; when it is reached the run stops and reports
    /// what it has, marked incomplete.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Bound for one connection's TCP connect + upgrade + welcome, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub connect_timeout: f64,
    /// Connect with `batch=1` (edge-relay's batched delivery: the frames of one burst arrive
    /// as one JSON array); the case label gets the suffix ` batch=1`.
    #[arg(long)]
    pub batch: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// One room, N receivers, one sender (WebSocket, or POST /v1/broadcast): latency,
    /// delivered msgs/s, lost and duplicated messages.
    Fanout(fanout::FanoutArgs),
    /// K rooms of P clients, each publishing at R msg/s for D seconds.
    Rooms(rooms::RoomsArgs),
    /// The highest total publish rate over K rooms of P clients at which delivery p99 stays
    /// under a threshold (and nothing is lost): the rooms workload at increasing rates.
    Capacity(capacity::CapacityArgs),
    /// P publishers into one room, each in a closed loop: durable (acknowledged)
    /// publishes/s and ack latency.
    Publishers(publishers::PublishersArgs),
    /// Open C connections as fast as a concurrency limit allows: connections/s, failures.
    Storm(storm::StormArgs),
    /// Open C connections, hold them, close them: server RSS before/during/after.
    Idle(storm::IdleArgs),
    /// Seed a room with M messages (once), then time GET history pages.
    History(history::HistoryArgs),
    /// Turn a results.jsonl (written by bench/run) into the Markdown results table.
    Report {
        /// The JSON lines file.
        input: PathBuf,
        /// Only the events comparison's section (runs of `fanout --events`).
        #[arg(long)]
        events_only: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Report { input, events_only } = &cli.cmd {
        let report = if *events_only {
            report::run_events_only(input)
        } else {
            report::run(input)
        };
        return match report {
            Ok(md) => {
                print!("{md}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("relay-bench report: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // One runtime for everything, two workers: the machine has two cores and the relay
    // under test shares them.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let res = rt.block_on(async move {
        match cli.cmd {
            Cmd::Fanout(a) => {
                let ctx = Ctx::leak(&a.common)?;
                fanout::run(ctx, &a).await
            }
            Cmd::Rooms(a) => {
                let ctx = Ctx::leak(&a.common)?;
                rooms::run(ctx, &a).await
            }
            Cmd::Capacity(a) => {
                let ctx = Ctx::leak(&a.common)?;
                capacity::run(ctx, &a).await
            }
            Cmd::Publishers(a) => {
                let ctx = Ctx::leak(&a.common)?;
                publishers::run(ctx, &a).await
            }
            Cmd::Storm(a) => {
                let ctx = Ctx::leak(&a.common)?;
                storm::run_storm(ctx, &a).await
            }
            Cmd::Idle(a) => {
                let ctx = Ctx::leak(&a.common)?;
                storm::run_idle(ctx, &a).await
            }
            Cmd::History(a) => {
                let ctx = Ctx::leak(&a.common)?;
                history::run(ctx, &a).await
            }
            Cmd::Report { .. } => unreachable!("handled above"),
        }
    });
    // Sockets still open are dropped with the runtime; no task outlives the run.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match res {
        Ok(out) => {
            out.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("relay-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
