//! The session broker: owns every remote session state transition.
//!
//! HTTP commands (start, attach, takeover, detach, terminate) and worker
//! events (connected, failed, clipboard) all end in [`Broker`], which
//! authorizes, applies the pure [`state`] rules, writes the transition with
//! its audit event in one transaction, updates live state, and tells the
//! session's subscribers. The rooms: `service` (the broker and `apply`),
//! `commands` (what users ask), `events` (what workers report), `live`
//! (what the gateway may ask), `upkeep` (leases, reaper, restart recovery).
//! [`background`] runs the event processor, the lease monitor and the
//! reaper.

pub mod background;
mod commands;
mod events;
mod live;
pub(crate) mod routes;
mod service;
pub mod state;
mod types;
mod upkeep;

pub use service::{Broker, BrokerError, BrokerLive, BrokerSettings};
pub use types::{AttachGrant, AttachOffer, ControllerBinding, SessionNotice, SessionView, StartRequest};
pub use upkeep::Recovered;
