//! The stats directory's shards seen as one: a report batch goes to each shard it concerns,
//! and the stats answers ask every shard at once and merge (see [`crate::directory_shards`]).

use futures::future::join_all;
use web_sys::Response;
use worker::Env;

use super::{call_directory, http, internal};
use crate::directory_shards::{self, DIRECTORY_SHARDS};
use crate::error::{RelayError, RelayResult};
use crate::room_api::DirectoryRequest;
use crate::stats::RoomReport;

/// Sends an isolate's batch, one call per shard concerned, in parallel; returns the reports
/// of the shards that failed, to be queued again.
pub async fn send_reports(env: &Env, batch: Vec<RoomReport>) -> Vec<RoomReport> {
    let calls =
        directory_shards::split_by_shard(batch)
            .into_iter()
            .map(|(shard, reports)| async move {
                let request = DirectoryRequest::Reports(reports);
                let sent = match call_directory(env, shard, &request).await {
                    Ok(response) if response.status() == 200 => Ok(()),
                    Ok(_) => Err(RelayError::internal()),
                    Err(err) => Err(err),
                };
                match (sent, request) {
                    (Err(err), DirectoryRequest::Reports(reports)) => {
                        worker::console_error!("stats reports to shard {shard} failed: {err}");
                        reports
                    }
                    _ => Vec::new(),
                }
            });
    join_all(calls).await.into_iter().flatten().collect()
}

/// `{"connections","rooms"}` over every shard.
pub async fn totals(env: &Env) -> RelayResult<String> {
    directory_shards::merge_totals(&ask_every_shard(env, &DirectoryRequest::Totals).await?)
}

/// `{"rooms":[…]}` over every shard, busiest first.
pub async fn rooms(env: &Env) -> RelayResult<String> {
    directory_shards::merge_rooms(&ask_every_shard(env, &DirectoryRequest::Rooms).await?)
}

/// A merged answer as the stats routes' response.
pub fn answer(body: String) -> RelayResult<Response> {
    http::json(body, 200).map_err(internal("stats answer"))
}

/// The answers of all [`DIRECTORY_SHARDS`] shards to one request, asked in parallel; any shard
/// that fails fails the whole answer (a partial count would look like a true one).
async fn ask_every_shard(env: &Env, request: &DirectoryRequest) -> RelayResult<Vec<String>> {
    let calls = (0..DIRECTORY_SHARDS).map(|shard| async move {
        let response = call_directory(env, shard, request).await?;
        if response.status() != 200 {
            worker::console_error!("directory shard {shard} answered {}", response.status());
            return Err(RelayError::internal());
        }
        http::response_text(&response)
            .await
            .map_err(internal("directory answer"))
    });
    join_all(calls).await.into_iter().collect()
}
