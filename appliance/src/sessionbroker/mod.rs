//! The session broker: owns every remote session state transition.
//!
//! HTTP commands (start, attach, takeover, detach, terminate) and worker
//! events (connected, failed, heartbeats) all end in [`Broker`], which
//! authorizes, applies the pure [`state`] rules, writes the transition with
//! its audit event in one transaction, updates live state, and tells the
//! session's subscribers. [`background`] runs the event processor, the lease
//! monitor and the detached-session reaper.

pub mod background;
pub(crate) mod routes;
mod service;
pub mod state;

pub use service::{
    AttachGrant, AttachOffer, Broker, BrokerError, BrokerLive, BrokerSettings, ControllerBinding, PolicyMode,
    Recovered, SessionNotice, SessionView, StartRequest,
};
