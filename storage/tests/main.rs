//! rap-storage integration tests: a real SQLite file per test, real threads.

mod live;
mod sqlite;
