//! The raw form of configuration: name → text, from the environment and an
//! optional TOML file, before anything is interpreted.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::{ConfigError, decode_base64};

/// Every setting the appliance reads. A file key outside this list is a typo
/// and fails start-up instead of being silently ignored.
pub const KNOWN_SETTINGS: &[&str] = &[
    "APP_ENV",
    "APP_LISTEN_ADDR",
    "APP_DATA_DIR",
    "APP_LOG_FORMAT",
    "APP_TLS",
    "APP_TLS_CERT_FILE",
    "APP_TLS_KEY_FILE",
    "APP_ALLOW_PLAINTEXT_LAN",
    "APP_TLS_NAMES",
    "APP_HTTP_REDIRECT_ADDR",
    "APP_ALLOWED_ORIGINS",
    "APP_HTTP_HEADER_TIMEOUT",
    "APP_TLS_HANDSHAKE_TIMEOUT",
    "APP_MAX_CONNECTIONS",
    "APP_MAX_IDLE_CONNECTIONS",
    "APP_RATE_LIMIT_PER_SECOND",
    "APP_RATE_LIMIT_BURST",
    "RAP_WEBSOCKETS_PER_USER",
    "RAP_WEBSOCKETS_PER_ADDRESS",
    "RAP_SOCKET_MESSAGES_PER_SECOND",
    "RAP_SOCKET_MESSAGE_BURST",
    "APP_SHUTDOWN_GRACE",
    "RAP_WORKER_SLOTS",
    "RAP_WORKER_RUNTIME",
    "RAP_WORKER_LEASE_TTL",
    "RAP_ATTACH_TOKEN_TTL",
    "RAP_DETACHED_SESSION_TIMEOUT",
    "RAP_GATEWAY_PING_INTERVAL",
    "RAP_RDP_TRUSTED_CA_FILE",
    "AUTH_ACCESS_TOKEN_TTL",
    "AUTH_REFRESH_TOKEN_TTL",
    "AUTH_LOGIN_MAX_FAILURES",
    "AUTH_LOGIN_MAX_FAILURES_PER_IP",
    "AUTH_LOGIN_FAILURE_WINDOW",
    "INSTALLATION_AUTHORITY_MODE",
    "INSTALLATION_PRODUCT_ROOT_PUBLIC_KEY_B64",
    "INSTALLATION_PRODUCT_ROOT_PUBLIC_KEY_FILE",
    "INSTALLATION_INSECURE_BOOTSTRAP_ENABLED",
    "INSTALLATION_SIGNING_KEY_FILE",
    "SECRET_ENCRYPTION_KEY_B64",
    "SECRET_ENCRYPTION_KEY_FILE",
    "SECRET_ENCRYPTION_KEY_ID",
    "SECRET_ENCRYPTION_RETIRED_KEYS",
    "SECRET_ENCRYPTION_RETIRED_KEYS_FILE",
    "DATA_PLANE_TOKEN_TTL",
    "DATA_PLANE_TOKEN_PRIVATE_KEY_FILE",
    "DATA_PLANE_TOKEN_PRIVATE_KEY_PEM",
    "DATA_PLANE_BACKEND_GATEWAY_URL",
    "DATA_PLANE_DIRECT_WORKER_WSS_URL_TEMPLATE",
    "DATA_PLANE_DIRECT_WORKER_JSON_RUNTIME",
    "DATA_PLANE_DIRECT_WORKER_BINARY_RENDER",
    "DATA_PLANE_DIRECT_WORKER_TLS_TRUST_MODE",
    "DATA_PLANE_DIRECT_WORKER_TLS_CA_REF",
];

/// The variable that points at the optional config file.
pub const CONFIG_FILE_VARIABLE: &str = "APP_CONFIG_FILE";

#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    /// The config file (if `APP_CONFIG_FILE` names one), then the process
    /// environment on top.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut settings = match std::env::var(CONFIG_FILE_VARIABLE) {
            Ok(path) if !path.is_empty() => Self::from_file(&path)?,
            _ => Self::default(),
        };
        for name in KNOWN_SETTINGS {
            match std::env::var(name) {
                Ok(value) => {
                    settings.values.insert((*name).to_owned(), value);
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigError::new(name, "not valid UTF-8"));
                }
                Err(std::env::VarError::NotPresent) => {}
            }
        }
        Ok(settings)
    }

    /// A TOML file whose keys are setting names: `APP_LISTEN_ADDR = "…"`.
    /// Numbers and booleans are accepted as such.
    pub fn from_file(path: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::new(CONFIG_FILE_VARIABLE, format!("cannot read {path}: {error}")))?;
        Self::from_toml(&text).map_err(|error| ConfigError::new(CONFIG_FILE_VARIABLE, format!("{path}: {error}")))
    }

    fn from_toml(text: &str) -> Result<Self, String> {
        let table: toml::Table = text.parse().map_err(|error: toml::de::Error| error.message().to_owned())?;
        let mut values = BTreeMap::new();
        for (key, value) in table {
            if !KNOWN_SETTINGS.contains(&key.as_str()) {
                return Err(format!("unknown setting {key}"));
            }
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                _ => return Err(format!("{key} must be a string, number or boolean")),
            };
            values.insert(key, text);
        }
        Ok(Self { values })
    }

    /// Only the given pairs; everything else takes its embedded default.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for (name, value) in pairs {
            if !KNOWN_SETTINGS.contains(&name) {
                return Err(ConfigError::new(name, "unknown setting"));
            }
            values.insert(name.to_owned(), value.to_owned());
        }
        Ok(Self { values })
    }

    /// `value` for `name` unless the environment or file gave one: how an
    /// embedder (the desktop app) sets its own defaults under them.
    pub fn default_to(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        if !KNOWN_SETTINGS.contains(&name) {
            return Err(ConfigError::new(name, "unknown setting"));
        }
        self.values.entry(name.to_owned()).or_insert_with(|| value.to_owned());
        Ok(())
    }

    /// The value, with empty text treated as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str).filter(|value| !value.is_empty())
    }

    pub(super) fn require(&self, name: &str) -> Result<&str, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError::new(name, "required by the chosen mode"))
    }

    pub(super) fn flag(&self, name: &str) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false" | "0" | "no" | "off") => Ok(false),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some(_) => Err(ConfigError::new(name, "expected true or false")),
        }
    }

    pub(super) fn number(
        &self,
        name: &str,
        default: usize,
        allowed: RangeInclusive<usize>,
    ) -> Result<usize, ConfigError> {
        let Some(text) = self.get(name) else { return Ok(default) };
        let number: usize = text.parse().map_err(|_| ConfigError::new(name, "expected a whole number"))?;
        if !allowed.contains(&number) {
            return Err(ConfigError::new(name, format!("{number} is outside {}..={}", allowed.start(), allowed.end())));
        }
        Ok(number)
    }

    /// Durations as the seed writes them: `90s`, `1m`, `15m`, `2h`, `30d`, `500ms`;
    /// a bare number is seconds.
    pub(super) fn duration(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        let Some(text) = self.get(name) else { return Ok(default) };
        parse_duration(text)
            .ok_or_else(|| ConfigError::new(name, format!("{text:?} is not a duration like 90s, 15m or 2h")))
    }

    /// Key bytes from `<PREFIX>_B64` (base64 text) or `<PREFIX>_FILE` (a
    /// file holding base64 text or the raw 32 bytes). Both set is ambiguous.
    pub(super) fn key_material(&self, prefix: &str) -> Result<Option<Vec<u8>>, ConfigError> {
        let inline_name = format!("{prefix}_B64");
        let file_name = format!("{prefix}_FILE");
        match (self.get(&inline_name), self.get(&file_name)) {
            (Some(_), Some(_)) => {
                Err(ConfigError::new(&inline_name, format!("set either {inline_name} or {file_name}, not both")))
            }
            (Some(text), None) => decode_base64(&inline_name, text).map(Some),
            (None, Some(path)) => {
                let bytes = std::fs::read(path)
                    .map_err(|error| ConfigError::new(&file_name, format!("cannot read {path}: {error}")))?;
                if bytes.len() == 32 {
                    return Ok(Some(bytes));
                }
                let text = String::from_utf8(bytes)
                    .map_err(|_| ConfigError::new(&file_name, "neither 32 raw bytes nor base64 text"))?;
                decode_base64(&file_name, &text).map(Some)
            }
            (None, None) => Ok(None),
        }
    }
}

/// Parses `500ms`, `90s`, `15m`, `2h`, `30d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits.parse().ok()?;
    let seconds_per_unit = match unit {
        "ms" => return Some(Duration::from_millis(amount)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    amount.checked_mul(seconds_per_unit).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_seeds_notation() {
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5 days"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn file_keys_are_setting_names_and_typos_fail() {
        let settings =
            Settings::from_toml("APP_LISTEN_ADDR = \"127.0.0.1:9000\"\nRAP_WORKER_SLOTS = 4\n").expect("valid file");
        assert_eq!(settings.get("APP_LISTEN_ADDR"), Some("127.0.0.1:9000"));
        assert_eq!(settings.get("RAP_WORKER_SLOTS"), Some("4"));
        let typo = Settings::from_toml("APP_LISTEN_ADRR = \"x\"").expect_err("typo must fail");
        assert_eq!(typo, "unknown setting APP_LISTEN_ADRR");
    }
}
