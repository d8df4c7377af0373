//! The resource inventory: the remote hosts an organization publishes, with
//! their certificate policy, clipboard and file transfer policy, and a
//! reference to their encrypted credentials.

mod guard;
pub(crate) mod routes;
mod service;

pub use guard::{credential_like_paths, redact_credentials, split_credentials};
pub mod flow;

pub use rap_storage::types::{CertificateMode, PolicyMode, Protocol};
pub use service::{PolicyInput, ResourceError, ResourceInput, ResourcePatch, ResourceService, SecretInput};
