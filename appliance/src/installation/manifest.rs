//! Activation manifests: the Product Root's signed permission to bootstrap
//! one installation's first owner.
//!
//! `manifest_b64` is base64 of JSON bytes; `signature_b64` is the Ed25519
//! signature over exactly those bytes. The bytes are verified before they are
//! parsed, and never re-serialized, so no canonical form is needed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Clocks disagree; a manifest "issued" this far in the future still counts.
const ALLOWED_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationManifest {
    pub installation_id: Uuid,
    pub owner_email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub nonce: String,
}

/// The wire form in `bootstrap-owner` requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activation {
    pub manifest_b64: String,
    pub signature_b64: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error("activation is not valid base64 or JSON")]
    Malformed,
    #[error("activation signature does not verify against the Product Root key")]
    BadSignature,
    #[error("activation is for another installation")]
    WrongInstallation,
    #[error("activation is for another owner email")]
    WrongOwner,
    #[error("activation has expired")]
    Expired,
    #[error("activation is not valid yet")]
    NotYetValid,
}

impl ActivationError {
    /// A stable reason code for logs, audit and error details.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "activation_malformed",
            Self::BadSignature => "activation_signature_invalid",
            Self::WrongInstallation => "activation_installation_mismatch",
            Self::WrongOwner => "activation_owner_mismatch",
            Self::Expired => "activation_expired",
            Self::NotYetValid => "activation_not_yet_valid",
        }
    }
}

/// Signs `manifest` (the Product Root's side; used by the CLI and tests).
pub fn sign(manifest: &ActivationManifest, root: &SigningKey) -> Activation {
    let bytes = serde_json::to_vec(manifest).unwrap_or_default();
    let signature = root.sign(&bytes);
    Activation { manifest_b64: STANDARD.encode(&bytes), signature_b64: STANDARD.encode(signature.to_bytes()) }
}

/// Verifies `activation` for this installation and owner at `now`.
pub fn verify(
    activation: &Activation,
    root: &VerifyingKey,
    installation_id: Uuid,
    owner_email: &str,
    now: OffsetDateTime,
) -> Result<ActivationManifest, ActivationError> {
    let bytes = STANDARD.decode(activation.manifest_b64.trim()).map_err(|_| ActivationError::Malformed)?;
    let signature = STANDARD.decode(activation.signature_b64.trim()).map_err(|_| ActivationError::Malformed)?;
    let signature = Signature::from_slice(&signature).map_err(|_| ActivationError::Malformed)?;
    root.verify(&bytes, &signature).map_err(|_| ActivationError::BadSignature)?;
    let manifest: ActivationManifest = serde_json::from_slice(&bytes).map_err(|_| ActivationError::Malformed)?;
    if manifest.installation_id != installation_id {
        return Err(ActivationError::WrongInstallation);
    }
    if !manifest.owner_email.trim().eq_ignore_ascii_case(owner_email.trim()) {
        return Err(ActivationError::WrongOwner);
    }
    if now >= manifest.expires_at {
        return Err(ActivationError::Expired);
    }
    if manifest.issued_at > now + ALLOWED_CLOCK_SKEW {
        return Err(ActivationError::NotYetValid);
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

    fn manifest() -> ActivationManifest {
        ActivationManifest {
            installation_id: Uuid::from_u128(7),
            owner_email: "Owner@Example.com".into(),
            issued_at: datetime!(2026-11-28 11:00 UTC),
            expires_at: datetime!(2026-11-29 11:00 UTC),
            nonce: "n-1".into(),
        }
    }

    fn check(
        manifest: &ActivationManifest,
        signer: &SigningKey,
        email: &str,
    ) -> Result<ActivationManifest, ActivationError> {
        let root = SigningKey::from_bytes(&[1; 32]);
        verify(&sign(manifest, signer), &root.verifying_key(), Uuid::from_u128(7), email, NOW)
    }

    #[test]
    fn each_rule_of_the_activation() {
        let root = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        assert_eq!(check(&manifest(), &root, "owner@example.com"), Ok(manifest()), "email compares case-insensitively");
        assert_eq!(check(&manifest(), &other, "owner@example.com"), Err(ActivationError::BadSignature));
        assert_eq!(check(&manifest(), &root, "someone@example.com"), Err(ActivationError::WrongOwner));
        let elsewhere = ActivationManifest { installation_id: Uuid::from_u128(8), ..manifest() };
        assert_eq!(check(&elsewhere, &root, "owner@example.com"), Err(ActivationError::WrongInstallation));
        let expired = ActivationManifest { expires_at: NOW, ..manifest() };
        assert_eq!(check(&expired, &root, "owner@example.com"), Err(ActivationError::Expired));
        let future = ActivationManifest { issued_at: NOW + time::Duration::minutes(10), ..manifest() };
        assert_eq!(check(&future, &root, "owner@example.com"), Err(ActivationError::NotYetValid));
    }

    #[test]
    fn the_signature_covers_the_exact_bytes() {
        let root = SigningKey::from_bytes(&[1; 32]);
        let mut activation = sign(&manifest(), &root);
        // Same JSON meaning, different bytes (a space): no longer signed.
        let bytes = STANDARD.decode(&activation.manifest_b64).expect("base64");
        let mut spaced = b" ".to_vec();
        spaced.extend_from_slice(&bytes);
        activation.manifest_b64 = STANDARD.encode(spaced);
        let outcome = verify(&activation, &root.verifying_key(), Uuid::from_u128(7), "owner@example.com", NOW);
        assert_eq!(outcome, Err(ActivationError::BadSignature));
        let garbage = Activation { manifest_b64: "%%%".into(), signature_b64: "AAAA".into() };
        let outcome = verify(&garbage, &root.verifying_key(), Uuid::from_u128(7), "owner@example.com", NOW);
        assert_eq!(outcome, Err(ActivationError::Malformed));
    }
}
