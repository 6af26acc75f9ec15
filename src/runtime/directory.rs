//! The `Directory` Durable Object: one per shard (see [`crate::directory_shards`]), keeping the
//! reports of its rooms (which come in batches, one per isolate, shard and interval) so that
//! stats never wake every room.

use std::cell::OnceCell;

use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, State};

use super::http;
use crate::error::{RelayError, RelayResult};
use crate::room_api::{self, DirectoryRequest};
use crate::stats::{self, DirectoryStore, MAX_BATCH_REPORTS};

#[durable_object]
pub struct Directory {
    state: State,
    /// Its table, made sure of once per instance (not per request).
    store: OnceCell<DirectoryStore<SqlStorage>>,
}

impl DurableObject for Directory {
    fn new(state: State, _env: Env) -> Self {
        Directory {
            state,
            store: OnceCell::new(),
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

impl Directory {
    fn store(&self) -> RelayResult<&DirectoryStore<SqlStorage>> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let store = DirectoryStore::open(self.state.storage().sql())?;
        Ok(self.store.get_or_init(|| store))
    }

    async fn handle(&self, mut req: Request) -> RelayResult<Response> {
        let store = self.store()?;
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
        let body = match request {
            DirectoryRequest::Reports(reports) => {
                for report in reports.iter().take(MAX_BATCH_REPORTS) {
                    store.keep(report)?;
                }
                return Response::empty().map_err(storage_error);
            }
            DirectoryRequest::Totals => stats::totals_json(&store.reports()?),
            DirectoryRequest::Rooms => stats::rooms_json(&store.reports()?),
        };
        Ok(http::json(body, 200).map_err(storage_error)?.into())
    }
}
