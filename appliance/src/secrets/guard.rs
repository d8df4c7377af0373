//! Recognising credentials in free-form JSON: the production secret-
//! readiness guard (credentials belong in the secret store, never in a
//! resource's metadata), response redaction, and taking them out of an
//! identity source's configuration to be sealed.

use serde_json::Value;

/// Key fragments that mark a value as a credential, compared after
/// lowercasing and dropping everything but letters and digits, so that
/// `Password`, `admin_password`, `api-key`, `privateKey`, `pass`, `db_pw`
/// all match. Deliberately broad (`pass` also matches `bypass`): a key
/// wrongly taken for a credential is only hidden, one missed is leaked.
const CREDENTIAL_FRAGMENTS: &[&str] =
    &["pass", "pw", "secret", "token", "privatekey", "apikey", "credential", "accesskey"];

fn is_credential_key(key: &str) -> bool {
    let normalized: String = key.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    CREDENTIAL_FRAGMENTS.iter().any(|fragment| normalized.contains(fragment))
}

/// Paths (`metadata.rdp.password`) of credential-like keys at any depth.
pub fn credential_like_paths(value: &Value, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    collect(value, prefix, &mut found);
    found
}

fn collect(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if is_credential_key(key) {
                    found.push(child_path.clone());
                }
                collect(child, &child_path, found);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                collect(item, &format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

/// Splits credentials out of `value`: a copy with every credential-like
/// key's value replaced by `"[redacted]"`, and those values by their path
/// (`bind_password`, `oidc.client_secret`), for encryption at rest.
pub fn split_credentials(value: &Value) -> (Value, serde_json::Map<String, Value>) {
    let mut secrets = serde_json::Map::new();
    let public = split(value, "", &mut secrets);
    (public, secrets)
}

fn split(value: &Value, path: &str, secrets: &mut serde_json::Map<String, Value>) -> Value {
    let at = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, child)| {
                    let kept = if is_credential_key(key) {
                        secrets.insert(at(key), child.clone());
                        Value::from("[redacted]")
                    } else {
                        split(child, &at(key), secrets)
                    };
                    (key.clone(), kept)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items.iter().enumerate().map(|(index, item)| split(item, &format!("{path}[{index}]"), secrets)).collect(),
        ),
        other => other.clone(),
    }
}

/// A copy with the value of every credential-like key replaced, for
/// responses: no API answer carries a password, even one stored in
/// development metadata.
pub fn redact_credentials(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, child)| {
                    let shown =
                        if is_credential_key(key) { Value::from("[redacted]") } else { redact_credentials(child) };
                    (key.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_credentials).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_spelling_of_a_credential_is_caught() {
        let spellings = [
            "password",
            "Password",
            "PASSWORD",
            "passwd",
            "pwd",
            "user_pwd",
            "secret",
            "client_secret",
            "token",
            "accessToken",
            "private_key",
            "privateKey",
            "PRIVATE-KEY",
            "api_key",
            "apiKey",
            "passphrase",
            "credentials",
            "aws_access_key",
            "admin_password",
            "pass",
            "pw",
            "db_pw",
            "PassCode",
            "smtpPass",
        ];
        for key in spellings {
            let metadata = json!({ key: "x" });
            assert_eq!(credential_like_paths(&metadata, "metadata"), vec![format!("metadata.{key}")], "{key}");
        }
        for harmless in ["username", "domain", "host_label", "owner", "notes", "keyboard_layout", "port"] {
            assert!(credential_like_paths(&json!({ harmless: "x" }), "metadata").is_empty(), "{harmless}");
        }
    }

    #[test]
    fn credentials_split_out_by_path_leave_the_rest_as_it_was() {
        let config = json!({"url": "ldaps://dc", "bind_password": "s3cret", "oidc": {"client_secret": "x", "id": "app"}, "tls": [{"key_pass": "k"}]});
        let (public, secrets) = split_credentials(&config);
        assert_eq!(
            public,
            json!({"url": "ldaps://dc", "bind_password": "[redacted]", "oidc": {"client_secret": "[redacted]", "id": "app"}, "tls": [{"key_pass": "[redacted]"}]})
        );
        assert_eq!(
            Value::Object(secrets),
            json!({"bind_password": "s3cret", "oidc.client_secret": "x", "tls[0].key_pass": "k"})
        );
        assert_eq!(public, redact_credentials(&config), "what is kept is what responses show");
    }

    #[test]
    fn nested_credentials_are_found_and_redacted() {
        let metadata = json!({"rdp": {"gateway": {"token": "t"}}, "hosts": [{"pwd": "p"}], "username": "u"});
        let mut paths = credential_like_paths(&metadata, "metadata");
        paths.sort();
        assert_eq!(paths, ["metadata.hosts[0].pwd", "metadata.rdp.gateway.token"]);
        assert_eq!(
            redact_credentials(&metadata),
            json!({"rdp": {"gateway": {"token": "[redacted]"}}, "hosts": [{"pwd": "[redacted]"}], "username": "u"})
        );
    }
}
