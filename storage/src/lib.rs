//! `rap-storage`: where the appliance keeps what it knows.
//!
//! Two kinds of state, behind two kinds of traits:
//!
//! - **Durable** state (users, organizations, resources, sessions, audit) lives
//!   behind the repository traits in [`repo`]. [`sqlite`] implements them on one
//!   SQLite file in WAL mode: one writer thread, a small pool of reader
//!   threads, so no SQLite call ever runs on the async runtime.
//! - **Live** state (attach tokens, controller bindings, heartbeats, queues,
//!   fan-out channels) lives behind the traits in [`live`]. [`live::memory`]
//!   implements them in process with moka and tokio channels. It may be lost
//!   on restart; the broker rebuilds what matters from the durable state.
//!
//! Callers hold `Arc<dyn …>` trait objects and never name SQLite, so a site
//! that outgrows one machine can swap in PostgreSQL and Redis implementations.
//!
//! Architecture invariant: nothing in this crate knows about HTTP or business
//! rules (who may do what); it stores and fetches.

pub mod ids;
pub mod live;
pub mod repo;
pub mod sqlite;
mod time_text;
pub mod types;

pub use ids::{AuthSessionId, DeviceId, OrgId, ResourceId, SessionId, UserId, WorkerId};
pub use repo::{Repositories, StorageError};
pub use time_text::{format_timestamp, parse_timestamp};
