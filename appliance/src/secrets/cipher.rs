use rap_storage::ResourceId;
use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::keys::random_bytes;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("no key with id {0} is configured")]
    UnknownKey(String),
    /// Tampered ciphertext, another resource's ciphertext, or the wrong key:
    /// AES-GCM cannot tell them apart, and neither do we.
    #[error("secret does not decrypt")]
    Undecryptable,
    #[error("secret plaintext is not a credential record")]
    Malformed,
    #[error("key id {0} is configured twice")]
    DuplicateKeyId(String),
}

/// Username, password and domain for a remote host. `Debug` never shows
/// the password; memory is wiped on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub domain: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("domain", &self.domain)
            .finish()
    }
}

/// One encryption's output, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

/// The active key (new encryptions) and retired keys (still decrypt).
pub struct SecretKeyRing {
    active_id: String,
    ciphers: HashMap<String, Aes256Gcm>,
}

fn associated_data(resource_id: ResourceId) -> Vec<u8> {
    format!("rap-resource-secret-v1:{resource_id}").into_bytes()
}

/// A different label than resources': a sealed resource secret can never
/// be opened as a source's, even with the same id.
fn source_associated_data(source_id: Uuid) -> Vec<u8> {
    format!("rap-identity-source-secret-v1:{source_id}").into_bytes()
}

impl SecretKeyRing {
    pub fn new(active: (String, [u8; 32]), retired: Vec<(String, [u8; 32])>) -> Result<Self, SecretError> {
        let mut ciphers = HashMap::new();
        let active_id = active.0.clone();
        for (id, key) in std::iter::once(active).chain(retired) {
            let key = Zeroizing::new(key);
            if ciphers.insert(id.clone(), Aes256Gcm::new((&*key).into())).is_some() {
                return Err(SecretError::DuplicateKeyId(id));
            }
        }
        Ok(Self { active_id, ciphers })
    }

    pub fn active_key_id(&self) -> &str {
        &self.active_id
    }

    /// Encrypts under the active key with a fresh random nonce.
    pub fn seal(&self, resource_id: ResourceId, credentials: &Credentials) -> Result<Sealed, SecretError> {
        let plaintext = Zeroizing::new(serde_json::to_vec(credentials).map_err(|_| SecretError::Malformed)?);
        self.seal_bytes(&associated_data(resource_id), &plaintext)
    }

    /// Decrypts a stored secret of `resource_id`; any mismatch fails closed.
    pub fn open(
        &self,
        resource_id: ResourceId,
        key_id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Credentials, SecretError> {
        let plaintext = self.open_bytes(&associated_data(resource_id), key_id, nonce, ciphertext)?;
        serde_json::from_slice(&plaintext).map_err(|_| SecretError::Malformed)
    }

    /// Encrypts an identity source's credential-like settings (a JSON
    /// object), bound to the source.
    pub fn seal_source_secrets(&self, source_id: Uuid, secrets: &serde_json::Value) -> Result<Sealed, SecretError> {
        let plaintext = Zeroizing::new(serde_json::to_vec(secrets).map_err(|_| SecretError::Malformed)?);
        self.seal_bytes(&source_associated_data(source_id), &plaintext)
    }

    /// Decrypts what [`Self::seal_source_secrets`] sealed for `source_id`.
    pub fn open_source_secrets(
        &self,
        source_id: Uuid,
        key_id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<serde_json::Value, SecretError> {
        let plaintext = self.open_bytes(&source_associated_data(source_id), key_id, nonce, ciphertext)?;
        serde_json::from_slice(&plaintext).map_err(|_| SecretError::Malformed)
    }

    fn seal_bytes(&self, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, SecretError> {
        let cipher =
            self.ciphers.get(&self.active_id).ok_or_else(|| SecretError::UnknownKey(self.active_id.clone()))?;
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&random_bytes()[..12]);
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| SecretError::Undecryptable)?;
        Ok(Sealed { key_id: self.active_id.clone(), nonce, ciphertext })
    }

    fn open_bytes(
        &self,
        aad: &[u8],
        key_id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let cipher = self.ciphers.get(key_id).ok_or_else(|| SecretError::UnknownKey(key_id.to_owned()))?;
        if nonce.len() != 12 {
            return Err(SecretError::Undecryptable);
        }
        let plaintext = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| SecretError::Undecryptable)?;
        Ok(Zeroizing::new(plaintext))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials { username: "svc".into(), password: "hunter2-but-longer".into(), domain: Some("OFFICE".into()) }
    }

    #[test]
    fn sealed_secrets_open_only_for_their_resource_and_key() {
        let ring = SecretKeyRing::new(("k2".into(), [2; 32]), vec![("k1".into(), [1; 32])]).expect("ring");
        let resource = ResourceId::from_uuid(Uuid::from_u128(10));
        let sealed = ring.seal(resource, &credentials()).expect("seal");
        assert_eq!(sealed.key_id, "k2");
        assert!(!sealed.ciphertext.windows(7).any(|window| window == b"hunter2"), "no plaintext in the ciphertext");
        assert_eq!(ring.open(resource, "k2", &sealed.nonce, &sealed.ciphertext), Ok(credentials()));

        let other_resource = ResourceId::from_uuid(Uuid::from_u128(11));
        assert_eq!(ring.open(other_resource, "k2", &sealed.nonce, &sealed.ciphertext), Err(SecretError::Undecryptable));
        assert_eq!(ring.open(resource, "k1", &sealed.nonce, &sealed.ciphertext), Err(SecretError::Undecryptable));
        assert_eq!(
            ring.open(resource, "k9", &sealed.nonce, &sealed.ciphertext),
            Err(SecretError::UnknownKey("k9".into()))
        );
        let mut tampered = sealed.ciphertext.clone();
        tampered[0] ^= 1;
        assert_eq!(ring.open(resource, "k2", &sealed.nonce, &tampered), Err(SecretError::Undecryptable));
        let mut other_nonce = sealed.nonce;
        other_nonce[0] ^= 1;
        assert_eq!(ring.open(resource, "k2", &other_nonce, &sealed.ciphertext), Err(SecretError::Undecryptable));
    }

    #[test]
    fn every_encryption_uses_a_new_nonce_and_old_keys_still_open() {
        let old = SecretKeyRing::new(("k1".into(), [1; 32]), vec![]).expect("ring");
        let resource = ResourceId::from_uuid(Uuid::from_u128(10));
        let first = old.seal(resource, &credentials()).expect("seal");
        let second = old.seal(resource, &credentials()).expect("seal");
        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
        let rotated = SecretKeyRing::new(("k2".into(), [2; 32]), vec![("k1".into(), [1; 32])]).expect("ring");
        assert_eq!(rotated.open(resource, "k1", &first.nonce, &first.ciphertext), Ok(credentials()));
        assert!(SecretKeyRing::new(("k1".into(), [1; 32]), vec![("k1".into(), [2; 32])]).is_err());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let shown = format!("{:?}", credentials());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("svc"));
    }
}
