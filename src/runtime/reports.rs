//! Stats reports: the rooms of one isolate send their counts to the directory together, in
//! one batch per interval (split over the directory's shards).

use std::cell::RefCell;

use worker::wasm_bindgen_futures::spawn_local;
use worker::Env;

use super::now_ms;
use super::settle::sleep;
use crate::stats::{ReportQueue, RoomReport};

thread_local! {
    /// The reports of every room of this isolate that wait for the next batch.
    static REPORTS: RefCell<ReportQueue> = RefCell::new(ReportQueue::default());
}

/// Queues a room's report for the isolate's next batch, and starts the timer that sends it
/// when none waits. The timer keeps the object that started it awake until it fires.
pub fn queue_report(env: &Env, report: RoomReport) {
    let delay_ms = REPORTS.with(|queue| queue.borrow_mut().push(report, now_ms()));
    if let Some(delay_ms) = delay_ms {
        spawn_local(send_reports(env.clone(), delay_ms));
    }
}

/// Sends the isolate's queued reports as one batch after `delay_ms`; a batch that fails is
/// queued again (newer reports of the same rooms win) and retried an interval later: only
/// the reports of the shards that failed.
async fn send_reports(env: Env, delay_ms: i64) {
    sleep(u32::try_from(delay_ms).unwrap_or(u32::MAX)).await;
    let batch = REPORTS.with(|queue| queue.borrow_mut().take(now_ms()));
    if batch.is_empty() {
        return;
    }
    let failed = super::directory_fanout::send_reports(&env, batch).await;
    if failed.is_empty() {
        return;
    }
    let retry = REPORTS.with(|queue| queue.borrow_mut().put_back(failed, now_ms()));
    if let Some(delay_ms) = retry {
        spawn_local(Box::pin(send_reports(env, delay_ms)));
    }
}
