//! The resource secret store: credentials encrypted with AES-256-GCM, a
//! fresh random 96-bit nonce per encryption, the key id stored beside each
//! ciphertext, and the resource id as associated data, so a ciphertext
//! copied onto another resource, altered, or read with another key fails to
//! decrypt. Plaintext exists only in [`Credentials`] values handed to the
//! session broker, and is wiped when they drop.

mod cipher;
mod service;

mod guard;

pub use cipher::{Credentials, Sealed, SecretError, SecretKeyRing};
pub use guard::{credential_like_paths, redact_credentials, split_credentials};
pub use service::{RotationReport, SecretService, SecretStoreError, secret_ref};
