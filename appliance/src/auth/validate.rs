//! Shape rules for identity input, shared by every endpoint that takes it.

use super::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};

/// A field and why it was refused, for `details.fields`.
pub type FieldError = (&'static str, &'static str);

/// Trims and lowercases an email address and checks its shape.
pub fn email(raw: &str) -> Result<String, FieldError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 320
        && !email.chars().any(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if valid { Ok(email) } else { Err(("email", "must be an email address")) }
}

pub fn new_password(password: &str) -> Result<(), FieldError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(("password", "must be at least 12 characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(("password", "must be at most 1024 bytes"));
    }
    Ok(())
}

pub fn display_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(("display_name", "must be 1 to 200 printable characters"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email("  Ada@Example.COM "), Ok("ada@example.com".to_owned()));
        for bad in ["", "ada", "@example.com", "ada@", "a da@example.com", "a@b@c"] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_and_names() {
        assert!(new_password("short").is_err());
        assert!(new_password("twelve chars").is_ok());
        assert!(new_password(&"x".repeat(1025)).is_err());
        assert_eq!(display_name("  Ada  "), Ok("Ada".to_owned()));
        assert!(display_name(" ").is_err());
        assert!(display_name("a\u{7}b").is_err());
    }
}
