//! Platform role grants are signed by the installation key over a fixed
//! byte string, so that a role written into the database by other means is
//! recognisably unsigned.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rap_storage::format_timestamp;
use rap_storage::repo::GrantRecord;

fn signed_bytes(grant: &GrantRecord) -> Vec<u8> {
    format!(
        "rap-platform-role-grant-v1\n{}\n{}\n{}\n{}\n{}",
        grant.id,
        grant.user_id,
        grant.role,
        grant.installation_id,
        format_timestamp(grant.granted_at)
    )
    .into_bytes()
}

/// Fills in `grant.signature`.
pub fn sign(mut grant: GrantRecord, key: &SigningKey) -> GrantRecord {
    grant.signature = key.sign(&signed_bytes(&grant)).to_bytes().to_vec();
    grant
}

pub fn verify(grant: &GrantRecord, key: &VerifyingKey) -> bool {
    Signature::from_slice(&grant.signature).is_ok_and(|signature| key.verify(&signed_bytes(grant), &signature).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rap_storage::UserId;
    use time::macros::datetime;
    use uuid::Uuid;

    #[test]
    fn a_grant_verifies_only_unchanged_and_under_its_key() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let grant = sign(
            GrantRecord {
                id: Uuid::from_u128(1),
                user_id: UserId::from_uuid(Uuid::from_u128(2)),
                role: "platform_admin".into(),
                installation_id: Uuid::from_u128(3),
                signature: Vec::new(),
                signing_key_id: "k".into(),
                granted_at: datetime!(2026-11-28 12:00 UTC),
            },
            &key,
        );
        assert!(verify(&grant, &key.verifying_key()));
        assert!(!verify(&grant, &SigningKey::from_bytes(&[4; 32]).verifying_key()));
        let moved = GrantRecord { user_id: UserId::from_uuid(Uuid::from_u128(9)), ..grant.clone() };
        assert!(!verify(&moved, &key.verifying_key()), "a grant cannot be moved to another user");
        let promoted = GrantRecord { role: "platform_recovery_admin".into(), ..grant.clone() };
        assert!(!verify(&promoted, &key.verifying_key()));
        let unsigned = GrantRecord { signature: vec![0; 64], ..grant };
        assert!(!verify(&unsigned, &key.verifying_key()));
    }
}
