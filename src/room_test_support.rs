//! Fixtures of the room's native tests: a clock the test sets, and a room machine over an
//! in-memory SQLite (the room's real statements).

use std::cell::Cell;
use std::rc::Rc;

use crate::config::Limits;
use crate::room::{RoomCore, Stamps};
use crate::room_machine::RoomMachine;
use crate::room_sql::SqlRoomStore;

/// The room's storage as the tests have it.
pub type TestStore = SqlRoomStore<rusqlite::Connection>;
/// A room machine over [`TestStore`] and a [`TestClock`].
pub type SqlMachine = RoomMachine<TestStore, TestClock>;

/// Now, in ms since the epoch, as the test sets it; ids are made from it.
#[derive(Clone)]
pub struct TestClock(pub Rc<Cell<i64>>);

impl Stamps for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
    fn new_id(&self) -> String {
        format!("id-{}", self.0.get())
    }
}

/// An empty room's storage.
pub fn test_store() -> TestStore {
    SqlRoomStore::open(crate::sql::in_memory()).expect("the schema applies")
}

/// The room `room` over `store` at `now_ms` with `limits`, and the handle that moves its
/// clock.
pub fn machine_over(
    store: TestStore,
    room: &str,
    now_ms: i64,
    limits: Limits,
) -> (SqlMachine, Rc<Cell<i64>>) {
    let retry_at = crate::room_archive::retry_at(&store).expect("meta reads");
    let core = RoomCore::open(store, room.to_string()).expect("the room opens");
    let now = Rc::new(Cell::new(now_ms));
    let machine = RoomMachine::new(core, TestClock(now.clone()), limits, 0, retry_at);
    (machine, now)
}

/// The room `room`, empty, at `now_ms`, with the default limits.
pub fn sql_machine(room: &str, now_ms: i64) -> (SqlMachine, Rc<Cell<i64>>) {
    machine_over(test_store(), room, now_ms, Limits::from_vars(|_| None))
}
