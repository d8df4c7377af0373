//! Password hashing: Argon2id with OWASP's recommended parameters
//! (19 MiB, 2 passes, 1 lane), PHC strings in the database.
//!
//! Hashing takes tens of milliseconds of CPU by design, so it runs on the
//! blocking pool, never on the async workers.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::keys::random_bytes;

/// Shortest password accepted for a new user.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted, to bound hashing cost per request.
pub const MAX_PASSWORD_BYTES: usize = 1024;

fn hasher() -> Argon2<'static> {
    // INVARIANT: constant parameters within Argon2's documented bounds.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_else(|_| unreachable!("valid Argon2 parameters"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed: {0}")]
    Task(String),
}

/// Hashes `password` with a fresh random salt.
pub async fn hash(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|error| PasswordError::Task(error.to_string()))?
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let salt_bytes = random_bytes();
    let salt = SaltString::encode_b64(&salt_bytes[..16]).map_err(|error| PasswordError::Hash(error.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| PasswordError::Hash(error.to_string()))
}

/// Whether `password` matches `stored`. `None` (no such user, or a user
/// without a local password) is checked against a fixed dummy hash so that
/// the answer takes as long as for a real user.
pub async fn verify(stored: Option<String>, password: String, dummy: &str) -> bool {
    let dummy = dummy.to_owned();
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match stored {
            Some(hash) => (hash, true),
            None => (dummy, false),
        };
        let matches = PasswordHash::new(&hash)
            .map(|parsed| hasher().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false);
        matches && real
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, to spend the same time on unknown users.
pub async fn dummy_hash() -> Result<String, PasswordError> {
    let random: String = random_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
    hash(random).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let dummy = dummy_hash().await.expect("dummy");
        let first = hash("correct horse battery".into()).await.expect("hash");
        let second = hash("correct horse battery".into()).await.expect("hash");
        assert!(first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{first}");
        assert_ne!(first, second, "a fresh salt each time");
        assert!(verify(Some(first.clone()), "correct horse battery".into(), &dummy).await);
        assert!(!verify(Some(first), "correct horse battery!".into(), &dummy).await);
        assert!(!verify(None, "anything".into(), &dummy).await, "no user never matches, not even the dummy");
        assert!(!verify(Some("not a phc string".into()), "x".into(), &dummy).await);
    }
}
