//! The Durable Object's SQLite as the room's [`Sql`]: statements run on its storage.

use serde::de::DeserializeOwned;
use worker::{SqlStorage, SqlStorageValue};

use crate::error::{RelayError, RelayResult};
use crate::room_sql;
use crate::sql::{Sql, SqlValue};

/// The room's store over its object's storage.
pub type SqlRoomStore = room_sql::SqlRoomStore<SqlStorage>;

/// Logs the storage failure and returns an error that reveals nothing of it.
fn storage_error(context: &str) -> impl Fn(worker::Error) -> RelayError + '_ {
    move |err| {
        worker::console_error!("storage failure in {context}: {err}");
        RelayError::internal()
    }
}

fn bind(bindings: &[SqlValue<'_>]) -> Vec<SqlStorageValue> {
    bindings
        .iter()
        .map(|value| match value {
            SqlValue::Integer(n) => SqlStorageValue::Integer(*n),
            SqlValue::Text(text) => SqlStorageValue::String((*text).to_string()),
            SqlValue::Null => SqlStorageValue::Null,
        })
        .collect()
}

impl Sql for SqlStorage {
    fn rows<T: DeserializeOwned>(
        &self,
        statement: &str,
        bindings: &[SqlValue<'_>],
    ) -> RelayResult<Vec<T>> {
        self.exec(statement, Some(bind(bindings)))
            .and_then(|cursor| cursor.to_array::<T>())
            .map_err(storage_error(statement))
    }

    fn write(&self, statement: &str, bindings: &[SqlValue<'_>]) -> RelayResult<u64> {
        self.exec(statement, Some(bind(bindings)))
            .map(|cursor| cursor.rows_written() as u64)
            .map_err(storage_error(statement))
    }
}
