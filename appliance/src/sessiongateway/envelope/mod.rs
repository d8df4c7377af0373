//! The live plane's wire: what clients send ([`client`]) and what the
//! server sends ([`server`]). The only place in the gateway that builds or
//! reads JSON by hand.

pub mod client;
pub mod server;

pub use client::*;
pub use server::*;
