//! rap-storage integration tests: a real SQLite file per test, real threads.

mod contract;
mod contract_sqlite;
mod live;
mod sqlite;
