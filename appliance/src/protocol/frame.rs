//! The `binary_v1` frame format lives in `rap-wire`, shared with the
//! clients that decode it; the appliance names it here as before.

pub use rap_wire::frame::*;
