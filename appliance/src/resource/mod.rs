//! The resource inventory: the remote hosts an organization publishes, with
//! their certificate policy, clipboard and file transfer policy, and a
//! reference to their encrypted credentials.

pub(crate) mod routes;
mod service;

pub mod flow;

pub use rap_storage::types::{CertificateMode, PolicyMode, Protocol};
pub use service::{PolicyInput, ResourceError, ResourceInput, ResourcePatch, ResourceService, SecretInput};
