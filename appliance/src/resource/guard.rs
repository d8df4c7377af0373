//! The production secret-readiness guard: credentials belong in the secret
//! store, never in a resource's free-form metadata.

use serde_json::Value;

/// Key fragments that mark a value as a credential, compared after
/// lowercasing and dropping everything but letters and digits, so that
/// `Password`, `admin_password`, `api-key` and `privateKey` all match.
const CREDENTIAL_FRAGMENTS: &[&str] =
    &["password", "passwd", "pwd", "passphrase", "secret", "token", "privatekey", "apikey", "credential", "accesskey"];

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
        ];
        for key in spellings {
            let metadata = json!({ key: "x" });
            assert_eq!(credential_like_paths(&metadata, "metadata"), vec![format!("metadata.{key}")], "{key}");
        }
        for harmless in ["username", "domain", "host_label", "owner", "notes", "keyboard_layout", "passenger"] {
            assert!(credential_like_paths(&json!({ harmless: "x" }), "metadata").is_empty(), "{harmless}");
        }
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
