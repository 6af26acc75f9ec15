//! Statements over any SQLite ([`Sql`]): a Durable Object's storage in the Worker, an
//! in-memory SQLite in the native tests ([`in_memory`]).

use serde::de::DeserializeOwned;

use crate::error::RelayResult;

/// A value bound to a statement's `?`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SqlValue<'a> {
    Integer(i64),
    Text(&'a str),
    Null,
}

impl<'a> From<&'a str> for SqlValue<'a> {
    fn from(text: &'a str) -> Self {
        SqlValue::Text(text)
    }
}

impl<'a> From<Option<&'a str>> for SqlValue<'a> {
    fn from(text: Option<&'a str>) -> Self {
        text.map_or(SqlValue::Null, SqlValue::Text)
    }
}

/// An SQLite that runs one statement at a time.
pub trait Sql {
    /// The rows of a statement, each read from its columns by name.
    fn rows<T: DeserializeOwned>(
        &self,
        statement: &str,
        bindings: &[SqlValue<'_>],
    ) -> RelayResult<Vec<T>>;
    /// Runs a write; how many rows it wrote.
    fn write(&self, statement: &str, bindings: &[SqlValue<'_>]) -> RelayResult<u64>;
}

/// A fresh in-memory SQLite for native tests: the engine the runtime has.
#[cfg(test)]
pub fn in_memory() -> rusqlite::Connection {
    rusqlite::Connection::open_in_memory().expect("SQLite opens in memory")
}

#[cfg(test)]
mod native {
    use rusqlite::types::Value as SqliteValue;
    use serde::de::DeserializeOwned;
    use serde_json::{Map, Value};

    use super::{Sql, SqlValue};
    use crate::error::{RelayError, RelayResult};

    impl Sql for rusqlite::Connection {
        fn rows<T: DeserializeOwned>(
            &self,
            statement: &str,
            bindings: &[SqlValue<'_>],
        ) -> RelayResult<Vec<T>> {
            let mut prepared = self.prepare(statement).expect("statement prepares");
            let names: Vec<String> = prepared.column_names().map(|n| n.to_string()).collect();
            let rows = prepared
                .query_map(
                    rusqlite::params_from_iter(bindings.iter().map(sqlite_value)),
                    |row| {
                        let mut columns = Map::new();
                        for (i, name) in names.iter().enumerate() {
                            let value = match row.get::<_, SqliteValue>(i)? {
                                SqliteValue::Null => Value::Null,
                                SqliteValue::Integer(n) => Value::from(n),
                                SqliteValue::Real(x) => Value::from(x),
                                SqliteValue::Text(text) => Value::from(text),
                                SqliteValue::Blob(_) => panic!("no blobs in the room's tables"),
                            };
                            columns.insert(name.clone(), value);
                        }
                        Ok(Value::Object(columns))
                    },
                )
                .expect("statement runs");
            rows.map(|row| {
                serde_json::from_value(row.expect("row reads")).map_err(|_| RelayError::internal())
            })
            .collect()
        }

        fn write(&self, statement: &str, bindings: &[SqlValue<'_>]) -> RelayResult<u64> {
            let written = self
                .execute(
                    statement,
                    rusqlite::params_from_iter(bindings.iter().map(sqlite_value)),
                )
                .expect("write runs");
            Ok(written as u64)
        }
    }

    fn sqlite_value(value: &SqlValue<'_>) -> SqliteValue {
        match value {
            SqlValue::Integer(n) => SqliteValue::Integer(*n),
            SqlValue::Text(text) => SqliteValue::Text(text.to_string()),
            SqlValue::Null => SqliteValue::Null,
        }
    }
}
