//! Password hashing: Argon2id with OWASP's recommended parameters
//! (19 MiB, 2 passes, 1 lane), PHC strings in the database.
//!
//! Hashing takes tens of milliseconds and 19 MiB by design, so it runs on
//! the blocking pool, never on the async workers, and only a few hashes run
//! at once: a flood of logins queues instead of exhausting memory.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

use crate::keys::random_bytes;

/// Shortest password accepted for a new user.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted, to bound hashing cost per request.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Hashes computed at once (each holds 19 MiB while it runs).
const CONCURRENT_HASHES: usize = 4;

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

/// Hashes and verifies passwords, a few at a time.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of a random password, to spend the same time on unknown users.
    dummy: Arc<OnceCell<String>>,
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

impl Passwords {
    pub fn new() -> Self {
        Self { permits: Arc::new(Semaphore::new(CONCURRENT_HASHES)), dummy: Arc::new(OnceCell::new()) }
    }

    /// Computes the dummy hash now, off the start-up path, so the first
    /// unknown-user login costs what every later one does.
    pub fn prepare_in_background(&self) {
        let passwords = self.clone();
        tokio::spawn(async move {
            if let Err(error) = passwords.dummy().await {
                tracing::error!(%error, "Preparing the dummy password hash failed");
            }
        });
    }

    async fn dummy(&self) -> Result<&str, PasswordError> {
        self.dummy
            .get_or_try_init(|| async {
                let random: String = random_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
                self.hash(random).await
            })
            .await
            .map(String::as_str)
    }

    async fn run<T: Send + 'static>(
        permits: &Semaphore,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = permits.acquire().await.map_err(|error| PasswordError::Task(error.to_string()))?;
        tokio::task::spawn_blocking(work).await.map_err(|error| PasswordError::Task(error.to_string()))
    }

    /// Hashes `password` with a fresh random salt.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        Self::run(&self.permits, move || hash_blocking(&password)).await?
    }

    /// Whether `password` matches `stored`. `None` (no such user, or a user
    /// without a local password) is checked against the dummy hash so that
    /// the answer takes as long as for a real user, and is always false.
    pub async fn verify(&self, stored: Option<String>, password: String) -> bool {
        let real = stored.is_some();
        let hash = match stored {
            Some(hash) => hash,
            None => match self.dummy().await {
                Ok(dummy) => dummy.to_owned(),
                Err(_) => return false,
            },
        };
        let matches = Self::run(&self.permits, move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| hasher().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .unwrap_or(false);
        matches && real
    }
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let salt_bytes = random_bytes();
    let salt = SaltString::encode_b64(&salt_bytes[..16]).map_err(|error| PasswordError::Hash(error.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| PasswordError::Hash(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let passwords = Passwords::new();
        let first = passwords.hash("correct horse battery".into()).await.expect("hash");
        let second = passwords.hash("correct horse battery".into()).await.expect("hash");
        assert!(first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{first}");
        assert_ne!(first, second, "a fresh salt each time");
        assert!(passwords.verify(Some(first.clone()), "correct horse battery".into()).await);
        assert!(!passwords.verify(Some(first), "correct horse battery!".into()).await);
        assert!(!passwords.verify(Some("not a phc string".into()), "x".into()).await);
    }

    #[tokio::test]
    async fn no_user_never_matches_even_the_dummys_own_password() {
        let passwords = Passwords::new();
        let known = passwords.hash("the dummy password".into()).await.expect("hash");
        passwords.dummy.set(known).expect("not yet set");
        assert!(!passwords.verify(None, "the dummy password".into()).await);
    }
}
