//! The one-time set-up code of a legacy-mode installation without an owner:
//! proof that whoever creates the first owner can read the appliance's data
//! directory (`APP_DATA_DIR/setup-code`, 0600), so that nobody else on the
//! LAN can claim a freshly started appliance first.
//!
//! The code is 140 random bits in Crockford's base32 (no I, L, O or U;
//! those typed anyway are read as 1, 1, 0 and refused), shown in groups of
//! four. It is compared in constant time, wrong guesses are throttled per
//! address and overall, and it is deleted once an owner exists. Only its
//! location is ever logged.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SETUP_CODE_FILE: &str = "setup-code";
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_CHARS: usize = 28;
const GROUP_CHARS: usize = 4;

const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
const FAILURES_PER_ADDRESS: usize = 10;
const FAILURES_OVERALL: usize = 100;
/// Addresses whose failures are remembered; the oldest is forgotten first.
const ADDRESSES_REMEMBERED: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SetupCodeError {
    #[error("the set-up code is wrong")]
    Wrong,
    #[error("no set-up code is issued")]
    NotIssued,
    #[error("too many wrong set-up codes")]
    Throttled { retry_after: Duration },
}

pub struct SetupCode {
    path: PathBuf,
    /// SHA-256 of the normalised code; `None` once used (or never made).
    digest: Mutex<Option<[u8; 32]>>,
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    overall: VecDeque<Instant>,
    by_address: HashMap<IpAddr, VecDeque<Instant>>,
    address_order: VecDeque<IpAddr>,
}

impl SetupCode {
    /// No code: an owner exists, or another proof is asked for.
    pub fn none(data_dir: &Path) -> Self {
        Self { path: data_dir.join(SETUP_CODE_FILE), digest: Mutex::new(None), failures: Default::default() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the code in `data_dir`, or writes a new one (blocking file
    /// work). A file that does not hold a well-formed code is replaced.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(SETUP_CODE_FILE);
        let existing = match std::fs::read_to_string(&path) {
            Ok(text) => normalize(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        let code = match existing {
            Some(code) => code,
            None => {
                let code = generate();
                let _ = std::fs::remove_file(&path);
                crate::keys::write_private_file(&path, format!("{}\n", grouped(&code)).as_bytes())?;
                code
            }
        };
        Ok(Self { path, digest: Mutex::new(Some(digest(&code))), failures: Default::default() })
    }

    pub fn is_issued(&self) -> bool {
        self.digest.lock().is_some()
    }

    /// Checks `given`, counting a wrong one against `source` and overall.
    pub fn check(&self, given: &str, source: Option<IpAddr>) -> Result<(), SetupCodeError> {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        failures.forget_before(now);
        if let Some(retry_after) = failures.throttled(source, now) {
            return Err(SetupCodeError::Throttled { retry_after });
        }
        let expected = (*self.digest.lock()).ok_or(SetupCodeError::NotIssued)?;
        let matches = normalize(given).is_some_and(|code| bool::from(digest(&code).ct_eq(&expected)));
        if matches {
            return Ok(());
        }
        failures.record(source, now);
        Err(SetupCodeError::Wrong)
    }

    /// The code has done its work (an owner exists): forget it and delete
    /// its file.
    pub fn retire(&self) {
        *self.digest.lock() = None;
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::info!(path = %self.path.display(), "Deleted the set-up code: the installation has an owner")
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(path = %self.path.display(), %error, "Could not delete the used set-up code"),
        }
    }
}

impl Failures {
    fn forget_before(&mut self, now: Instant) {
        let expired = |at: &Instant| now.duration_since(*at) >= FAILURE_WINDOW;
        while self.overall.front().is_some_and(expired) {
            self.overall.pop_front();
        }
        self.by_address.retain(|_, times| {
            while times.front().is_some_and(expired) {
                times.pop_front();
            }
            !times.is_empty()
        });
        let known = &self.by_address;
        self.address_order.retain(|address| known.contains_key(address));
    }

    fn throttled(&self, source: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let wait = |times: &VecDeque<Instant>, limit: usize| {
            (times.len() >= limit)
                .then(|| times.front().map_or(FAILURE_WINDOW, |first| FAILURE_WINDOW - now.duration_since(*first)))
        };
        let by_address = source
            .and_then(|address| self.by_address.get(&address))
            .and_then(|times| wait(times, FAILURES_PER_ADDRESS));
        by_address.or_else(|| wait(&self.overall, FAILURES_OVERALL))
    }

    fn record(&mut self, source: Option<IpAddr>, now: Instant) {
        self.overall.push_back(now);
        let Some(address) = source else { return };
        if !self.by_address.contains_key(&address) {
            if self.address_order.len() >= ADDRESSES_REMEMBERED
                && let Some(oldest) = self.address_order.pop_front()
            {
                self.by_address.remove(&oldest);
            }
            self.address_order.push_back(address);
        }
        self.by_address.entry(address).or_default().push_back(now);
    }
}

fn generate() -> String {
    let random = crate::keys::random_bytes();
    // 5 bits per character from 32 random bytes (256 bits, 140 used).
    (0..CODE_CHARS)
        .map(|index| {
            let bit = index * 5;
            let pair = u16::from(random[bit / 8]) << 8 | u16::from(random[bit / 8 + 1]);
            let value = (pair >> (11 - bit % 8)) & 0x1f;
            char::from(ALPHABET[usize::from(value)])
        })
        .collect()
}

fn grouped(code: &str) -> String {
    code.as_bytes()
        .chunks(GROUP_CHARS)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The code as typed, made canonical: case, spaces and hyphens do not
/// matter, and the letters base32 leaves out read as the digits they look
/// like. `None` if it cannot be a code.
fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect();
    (code.len() == CODE_CHARS && code.bytes().all(|byte| ALPHABET.contains(&byte))).then_some(code)
}

fn digest(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_long_random_and_typed_forgivingly() {
        let dir = tempfile::tempdir().expect("dir");
        let code = SetupCode::load_or_create(dir.path()).expect("made");
        let text = std::fs::read_to_string(code.path()).expect("file");
        let shown = text.trim();
        assert_eq!(shown.len(), CODE_CHARS + CODE_CHARS / GROUP_CHARS - 1, "{shown}");
        assert_eq!(code.check(shown, None), Ok(()));
        assert_eq!(code.check(&shown.to_lowercase().replace('-', " "), None), Ok(()));
        assert_eq!(code.check("not a code", None), Err(SetupCodeError::Wrong));
        // Reloading keeps the same code; two installations never share one.
        let again = SetupCode::load_or_create(dir.path()).expect("reloaded");
        assert_eq!(again.check(shown, None), Ok(()));
        let other = tempfile::tempdir().expect("dir");
        SetupCode::load_or_create(other.path()).expect("other");
        assert_ne!(std::fs::read_to_string(other.path().join(SETUP_CODE_FILE)).expect("file"), text);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(code.path()).expect("meta").permissions().mode() & 0o777, 0o600);
        }
        code.retire();
        assert!(!code.path().exists());
        assert_eq!(code.check(shown, None), Err(SetupCodeError::NotIssued));
    }

    #[test]
    fn wrong_guesses_are_throttled_per_address_even_for_the_right_code() {
        let dir = tempfile::tempdir().expect("dir");
        let code = SetupCode::load_or_create(dir.path()).expect("made");
        let right = std::fs::read_to_string(code.path()).expect("file");
        let guesser: IpAddr = "192.168.1.66".parse().expect("ip");
        for _ in 0..FAILURES_PER_ADDRESS {
            assert_eq!(code.check("0000-0000-0000-0000-0000-0000-0000", Some(guesser)), Err(SetupCodeError::Wrong));
        }
        assert!(matches!(code.check(&right, Some(guesser)), Err(SetupCodeError::Throttled { .. })));
        assert_eq!(code.check(&right, Some("192.168.1.10".parse().expect("ip"))), Ok(()));
    }

    #[test]
    fn every_character_of_the_alphabet_can_appear() {
        let seen: std::collections::BTreeSet<char> =
            (0..200).flat_map(|_| generate().chars().collect::<Vec<_>>()).collect();
        assert_eq!(seen.len(), 32);
    }
}
