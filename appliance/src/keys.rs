//! Key material the appliance makes for itself and keeps in the data
//! directory (`keys/`, mode 0700; each file 0600), generated on first start.
//!
//! - `installation-signing.key`: the installation's Ed25519 key. It signs
//!   platform role grants, so a role written into SQLite by hand carries no
//!   valid signature and grants nothing in strict mode. Production sites
//!   should point `INSTALLATION_SIGNING_KEY_FILE` outside the data directory,
//!   so that write access to the database does not come with the key.
//! - `access-token.key`: the HMAC-SHA256 key of access tokens. Replacing it
//!   logs everyone out (refresh tokens survive; clients refresh).
//!
//! - `secret-encryption.key`: in development only, the secret store's master
//!   key when none is configured. Production refuses to start without a
//!   configured one.
//!
//! The Product Root key is never here: it comes from the configuration.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Directory inside the data directory holding generated keys.
pub const KEYS_DIR: &str = "keys";
pub const INSTALLATION_SIGNING_KEY_FILE: &str = "installation-signing.key";
pub const ACCESS_TOKEN_KEY_FILE: &str = "access-token.key";
/// The development secret-store key, used only when no
/// `SECRET_ENCRYPTION_KEY_*` is configured (never in production).
pub const SECRET_ENCRYPTION_KEY_FILE: &str = "secret-encryption.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// The generated keys, loaded once at start-up.
#[derive(Clone)]
pub struct KeyRing {
    pub installation_signing: SigningKey,
    /// Identifies the installation key in grant rows (a fingerprint).
    pub installation_key_id: String,
    pub access_token: [u8; 32],
}

impl KeyRing {
    /// Loads the keys from `data_dir/keys`, generating any that are missing.
    /// `signing_key_file` moves the installation key elsewhere.
    pub fn load_or_generate(data_dir: &Path, signing_key_file: Option<&Path>) -> Result<Self, KeyError> {
        let dir = data_dir.join(KEYS_DIR);
        create_private_dir(&dir)?;
        let signing_path = signing_key_file.map_or_else(|| dir.join(INSTALLATION_SIGNING_KEY_FILE), Path::to_owned);
        let signing_seed = load_or_generate_secret(&signing_path)?;
        let access_token = load_or_generate_secret(&dir.join(ACCESS_TOKEN_KEY_FILE))?;
        let installation_signing = SigningKey::from_bytes(&signing_seed);
        let installation_key_id = key_id(&installation_signing.verifying_key());
        Ok(Self { installation_signing, installation_key_id, access_token })
    }

    /// The development secret-store key in `data_dir/keys`, made on first use.
    pub fn development_secret_key(data_dir: &Path) -> Result<[u8; 32], KeyError> {
        let dir = data_dir.join(KEYS_DIR);
        create_private_dir(&dir)?;
        load_or_generate_secret(&dir.join(SECRET_ENCRYPTION_KEY_FILE))
    }
}

/// A short, stable name for a public key: `ed25519:` and 16 hex digits of
/// its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect();
    format!("ed25519:{hex}")
}

/// 32 bytes from the operating system's generator.
pub fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    // INVARIANT: the OS generator does not fail on the platforms we ship
    // for; if it ever does, running without randomness is worse than dying.
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let error = |reason: std::io::Error| KeyError::File { path: dir.to_owned(), reason: reason.to_string() };
    std::fs::create_dir_all(dir).map_err(error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(error)?;
    }
    Ok(())
}

fn load_or_generate_secret(path: &Path) -> Result<[u8; 32], KeyError> {
    let error = |reason: String| KeyError::File { path: path.to_owned(), reason };
    match std::fs::read(path) {
        Ok(bytes) => {
            bytes.try_into().map_err(|bytes: Vec<u8>| error(format!("expected 32 bytes, found {}", bytes.len())))
        }
        Err(read_error) if read_error.kind() == std::io::ErrorKind::NotFound => {
            let secret = random_bytes();
            write_private_file(path, &secret).map_err(|write_error| error(write_error.to_string()))?;
            tracing::info!(path = %path.display(), "Generated key");
            Ok(secret)
        }
        Err(read_error) => Err(error(read_error.to_string())),
    }
}

/// Writes a new file readable by the owner only; never overwrites one.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_once_private_and_stable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = KeyRing::load_or_generate(dir.path(), None).expect("generate");
        let second = KeyRing::load_or_generate(dir.path(), None).expect("load");
        assert_eq!(first.access_token, second.access_token);
        assert_eq!(first.installation_key_id, second.installation_key_id);
        assert!(first.installation_key_id.starts_with("ed25519:"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: PathBuf| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode(dir.path().join(KEYS_DIR)), 0o700);
            assert_eq!(mode(dir.path().join(KEYS_DIR).join(ACCESS_TOKEN_KEY_FILE)), 0o600);
            assert_eq!(mode(dir.path().join(KEYS_DIR).join(INSTALLATION_SIGNING_KEY_FILE)), 0o600);
        }
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join(KEYS_DIR)).expect("dir");
        std::fs::write(dir.path().join(KEYS_DIR).join(ACCESS_TOKEN_KEY_FILE), b"short").expect("write");
        let error = KeyRing::load_or_generate(dir.path(), None).err().expect("refused").to_string();
        assert!(error.ends_with("access-token.key: expected 32 bytes, found 5"), "{error}");
    }
}
