//! The `Directory` Durable Object: one per deployment, keeping the rooms' reports (which come in
//! batches, one per isolate and interval) so that stats never wake every room.

use std::cell::Cell;

use serde::Deserialize;
use worker::{
    durable_object, DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State,
};

use super::http;
use crate::error::{RelayError, RelayResult};
use crate::room_api::{self, DirectoryRequest};
use crate::stats::{self, RoomReport, MAX_BATCH_REPORTS};

/// The one directory instance's name.
pub const DIRECTORY_NAME: &str = "directory";

#[durable_object]
pub struct Directory {
    state: State,
    /// Whether this instance has made sure its table exists (once, not per request).
    table_ready: Cell<bool>,
}

#[derive(Deserialize)]
struct ReportRow {
    room: String,
    connections: u64,
    users: u64,
    last_seq: u64,
}

impl DurableObject for Directory {
    fn new(state: State, _env: Env) -> Self {
        Directory {
            state,
            table_ready: Cell::new(false),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        match self.handle(req).await {
            Ok(response) => Ok(response),
            Err(err) => Ok(http::error(&err)?.into()),
        }
    }
}

fn storage_error(err: worker::Error) -> RelayError {
    worker::console_error!("directory storage failure: {err}");
    RelayError::internal()
}

/// Keeps a room's latest report; a room without connections drops out.
fn store_report(sql: &SqlStorage, report: RoomReport) -> RelayResult<()> {
    if report.connections == 0 {
        sql.exec(
            "DELETE FROM rooms WHERE room = ?",
            Some(vec![report.room.into()]),
        )
    } else {
        sql.exec(
            "INSERT INTO rooms (room, connections, users, last_seq) VALUES (?, ?, ?, ?)
             ON CONFLICT (room) DO UPDATE SET connections = excluded.connections,
             users = excluded.users, last_seq = excluded.last_seq",
            Some(vec![
                report.room.into(),
                SqlStorageValue::Integer(report.connections as i64),
                SqlStorageValue::Integer(report.users as i64),
                SqlStorageValue::Integer(report.last_seq as i64),
            ]),
        )
    }
    .map(|_| ())
    .map_err(storage_error)
}

impl Directory {
    async fn handle(&self, mut req: Request) -> RelayResult<Response> {
        let sql = self.state.storage().sql();
        if !self.table_ready.get() {
            sql.exec(
                "CREATE TABLE IF NOT EXISTS rooms (room TEXT PRIMARY KEY, connections INTEGER NOT NULL,
                 users INTEGER NOT NULL, last_seq INTEGER NOT NULL)",
                None,
            )
            .map_err(storage_error)?;
            self.table_ready.set(true);
        }
        let method = req.method().to_string();
        let body = match room_api::has_body(&method) {
            true => Some(
                req.text()
                    .await
                    .map_err(|_| RelayError::bad_request("bad reports"))?,
            ),
            false => None,
        };
        let request = DirectoryRequest::decode(&method, &req.inner().url(), body)?;
        match request {
            DirectoryRequest::Reports(reports) => {
                for report in reports.into_iter().take(MAX_BATCH_REPORTS) {
                    store_report(&sql, report)?;
                }
                Response::empty().map_err(storage_error)
            }
            DirectoryRequest::Totals | DirectoryRequest::Rooms => {
                let rows: Vec<ReportRow> = sql
                    .exec(
                        "SELECT room, connections, users, last_seq FROM rooms LIMIT 10000",
                        None,
                    )
                    .and_then(|c| c.to_array())
                    .map_err(storage_error)?;
                let reports: Vec<RoomReport> = rows
                    .into_iter()
                    .map(|r| RoomReport {
                        room: r.room,
                        connections: r.connections,
                        users: r.users,
                        last_seq: r.last_seq,
                    })
                    .collect();
                let body = match request {
                    DirectoryRequest::Totals => stats::totals_json(&reports),
                    _ => stats::rooms_json(&reports),
                };
                Ok(http::json(body, 200).map_err(storage_error)?.into())
            }
        }
    }
}
