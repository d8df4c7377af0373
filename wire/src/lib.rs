//! What travels between the appliance and the programs that show its
//! desktops (the web viewer, the desktop app's native viewer): one crate,
//! so the appliance and a client cannot disagree about a byte. No I/O, no
//! runtime: formats and the pure functions that read and write them.
//!
//! - [`frame`]: the `binary_v1` frame header (API.md "binary frame header"),
//!   rectangles, colour modes, encodings, and the zlib payload.
//! - [`h264`]: what a client needs to know about an access unit before it
//!   decodes it (key frame or not, the codec string of its stream).
//! - [`envelope`]: the messages a client sends on the live plane, by type
//!   name and payload.
//! - [`size`]: the bounds of a desktop a client may ask for.
//! - [`renewal`]: how a native viewer window asks the desktop app that
//!   launched it for a fresh attach token.

pub mod envelope;
pub mod frame;
pub mod h264;
pub mod renewal;
pub mod size;
