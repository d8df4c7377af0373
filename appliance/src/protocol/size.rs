//! Desktop size bounds live in `rap-wire`, shared with the native viewer
//! that asks for sizes; the appliance names them here as before.

pub use rap_wire::size::*;
