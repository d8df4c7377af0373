//! The live plane: `GET /api/v1/gateway/ws`.
//!
//! A socket redeems an attach token, then gets the session's state changes,
//! its screen as render frames (each viewer catching up on its own damage,
//! latest pixels first), and, if it is the controller, sends input that is
//! routed to the session's worker. A socket that goes silent is closed and
//! its session detached; reattaching resumes with a full frame.

mod access;
pub(crate) mod admission;
pub(crate) mod attach;
mod connection;
mod envelope;
mod files;
pub(crate) mod routes;
mod socket;

pub use admission::SocketCounts;
pub use envelope::{RenderTransport, encode_binary_frame};
