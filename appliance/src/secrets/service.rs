use rap_storage::ResourceId;
use std::sync::Arc;

use rap_storage::StorageError;
use rap_storage::repo::{AuditEvent, Repositories, ResourceRecord, SealedBlob, SecretRecord};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::cipher::{Credentials, SecretError, SecretKeyRing};
use crate::audit::{self, Outcome, RequestContext};

#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RotationReport {
    pub active_key_id: String,
    pub reencrypted: usize,
    /// Secrets that could not be opened (their key is not configured, or
    /// they are damaged); they are left as they are. Resources' ids and
    /// identity sources' ids: both kinds of record hold sealed secrets.
    pub failed: Vec<Uuid>,
}

/// Stores, resolves and rotates resource secrets.
#[derive(Clone)]
pub struct SecretService {
    repositories: Repositories,
    ring: Arc<SecretKeyRing>,
}

/// The stable reference a resource carries to its secret.
pub fn secret_ref(resource_id: ResourceId) -> String {
    format!("resource-secret:{resource_id}")
}

impl SecretService {
    pub fn new(repositories: Repositories, ring: Arc<SecretKeyRing>) -> Self {
        Self { repositories, ring }
    }

    pub fn active_key_id(&self) -> &str {
        self.ring.active_key_id()
    }

    /// Encrypts and stores (or replaces) `resource`'s credentials.
    pub async fn store(
        &self,
        resource: &ResourceRecord,
        credentials: &Credentials,
        audit: AuditEvent,
    ) -> Result<(SecretRecord, String), SecretStoreError> {
        let sealed = self.ring.seal(resource.id, credentials)?;
        let now = OffsetDateTime::now_utc();
        let record = SecretRecord {
            id: Uuid::now_v7(),
            resource_id: resource.id,
            key_id: sealed.key_id,
            nonce: sealed.nonce.to_vec(),
            ciphertext: sealed.ciphertext,
            created_at: now,
            updated_at: now,
            rotated_at: None,
        };
        let reference = secret_ref(resource.id);
        let stored = self.repositories.resources.put_secret(record, reference.clone(), audit).await?;
        Ok((stored, reference))
    }

    /// The plaintext credentials of `resource`, if it has a secret. Only the
    /// session broker calls this, to put them into a transient assignment.
    #[allow(dead_code)]
    pub(crate) async fn resolve(&self, resource: &ResourceRecord) -> Result<Option<Credentials>, SecretStoreError> {
        if resource.secret_ref.is_none() {
            return Ok(None);
        }
        let Some(secret) = self.repositories.resources.get_secret(resource.id).await? else { return Ok(None) };
        Ok(Some(self.ring.open(resource.id, &secret.key_id, &secret.nonce, &secret.ciphertext)?))
    }

    /// Encrypts an identity source's credential-like settings; `None` when
    /// it has none.
    pub fn seal_source_secrets(
        &self,
        source_id: Uuid,
        secrets: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<SealedBlob>, SecretError> {
        if secrets.is_empty() {
            return Ok(None);
        }
        let sealed = self.ring.seal_source_secrets(source_id, &serde_json::Value::Object(secrets))?;
        Ok(Some(SealedBlob { key_id: sealed.key_id, nonce: sealed.nonce.to_vec(), ciphertext: sealed.ciphertext }))
    }

    /// The credential-like settings of an identity source, by path (for
    /// the directory connector, and tests).
    pub fn open_source_secrets(&self, source_id: Uuid, sealed: &SealedBlob) -> Result<serde_json::Value, SecretError> {
        self.ring.open_source_secrets(source_id, &sealed.key_id, &sealed.nonce, &sealed.ciphertext)
    }

    /// Re-encrypts every secret (resources' and identity sources') that is
    /// not under the active key.
    pub async fn rotate(&self, context: &RequestContext) -> Result<RotationReport, StorageError> {
        let mut report =
            RotationReport { active_key_id: self.ring.active_key_id().to_owned(), ..RotationReport::default() };
        self.rotate_source_secrets(context, &mut report).await?;
        for secret in self.repositories.resources.secrets_not_under(self.ring.active_key_id()).await? {
            let credentials = match self.ring.open(
                secret.resource_id,
                &secret.key_id,
                &secret.nonce,
                &secret.ciphertext,
            ) {
                Ok(credentials) => credentials,
                Err(error) => {
                    tracing::warn!(resource_id = %secret.resource_id, key_id = %secret.key_id, %error, "Secret left under its old key");
                    report.failed.push(secret.resource_id.into());
                    continue;
                }
            };
            let sealed = match self.ring.seal(secret.resource_id, &credentials) {
                Ok(sealed) => sealed,
                Err(error) => {
                    tracing::warn!(resource_id = %secret.resource_id, %error, "Re-encryption failed");
                    report.failed.push(secret.resource_id.into());
                    continue;
                }
            };
            let now = OffsetDateTime::now_utc();
            let event = audit::with(
                audit::on(
                    audit::event(context, None, "resource.secret_reencrypted", Outcome::Success, now),
                    "resource",
                    secret.resource_id,
                ),
                json!({"from_key_id": secret.key_id, "to_key_id": sealed.key_id}),
            );
            let previous_key_id = secret.key_id.clone();
            let updated = SecretRecord {
                key_id: sealed.key_id,
                nonce: sealed.nonce.to_vec(),
                ciphertext: sealed.ciphertext,
                rotated_at: Some(now),
                ..secret
            };
            if self.repositories.resources.reencrypt_secret(updated, &previous_key_id, event).await? {
                report.reencrypted += 1;
            }
        }
        Ok(report)
    }
}

impl SecretService {
    async fn rotate_source_secrets(
        &self,
        context: &RequestContext,
        report: &mut RotationReport,
    ) -> Result<(), StorageError> {
        for source in self.repositories.identity_sources.sealed_not_under(self.ring.active_key_id()).await? {
            let Some(old) = source.sealed_secrets else { continue };
            let resealed = self
                .open_source_secrets(source.id, &old)
                .and_then(|secrets| self.ring.seal_source_secrets(source.id, &secrets));
            let sealed = match resealed {
                Ok(sealed) => sealed,
                Err(error) => {
                    tracing::warn!(identity_source_id = %source.id, key_id = %old.key_id, %error, "Identity source secrets left under their old key");
                    report.failed.push(source.id);
                    continue;
                }
            };
            let event = audit::with(
                audit::on(
                    audit::event(
                        context,
                        None,
                        "identity_source.secret_reencrypted",
                        Outcome::Success,
                        OffsetDateTime::now_utc(),
                    ),
                    "identity_source",
                    source.id,
                ),
                json!({"from_key_id": old.key_id, "to_key_id": sealed.key_id}),
            );
            let event = AuditEvent { organization_id: Some(source.organization_id), ..event };
            let blob =
                SealedBlob { key_id: sealed.key_id, nonce: sealed.nonce.to_vec(), ciphertext: sealed.ciphertext };
            if self.repositories.identity_sources.reseal(source.id, blob, &old.key_id, event).await? {
                report.reencrypted += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rap_storage::OrgId;
    use rap_storage::repo::{OrganizationRecord, ResourcePolicyRecord};
    use rap_storage::sqlite::{DATABASE_FILE_NAME, SqliteStore};

    use super::*;

    fn ring(active: (&str, u8), retired: &[(&str, u8)]) -> Arc<SecretKeyRing> {
        let retired = retired.iter().map(|(id, byte)| ((*id).to_owned(), [*byte; 32])).collect();
        Arc::new(SecretKeyRing::new((active.0.to_owned(), [active.1; 32]), retired).expect("ring"))
    }

    fn event() -> AuditEvent {
        audit::event(&RequestContext::default(), None, "test", Outcome::Success, OffsetDateTime::now_utc())
    }

    async fn resource_in(store: &SqliteStore) -> ResourceRecord {
        let repositories = store.repositories();
        let now = OffsetDateTime::now_utc();
        let organization = OrganizationRecord {
            id: OrgId::generate(),
            slug: format!("o-{}", Uuid::now_v7().simple()),
            name: "O".into(),
            created_at: now,
            updated_at: now,
        };
        repositories.organizations.create(organization.clone(), event()).await.expect("org");
        let resource = ResourceRecord {
            id: ResourceId::generate(),
            organization_id: organization.id,
            name: "Desk".into(),
            protocol: rap_storage::types::Protocol::Rdp,
            host: "10.0.0.5".into(),
            port: 3389,
            certificate_verification_mode: rap_storage::types::CertificateMode::Strict,
            certificate_fingerprint: None,
            metadata: serde_json::json!({}),
            secret_ref: None,
            policy: ResourcePolicyRecord {
                clipboard_mode: rap_storage::types::PolicyMode::Disabled,
                file_transfer_mode: rap_storage::types::PolicyMode::Disabled,
            },
            created_by_user_id: None,
            created_at: now,
            updated_at: now,
        };
        repositories.resources.create(resource.clone(), event()).await.expect("resource");
        resource
    }

    fn credentials() -> Credentials {
        Credentials { username: "office\\svc".into(), password: "correct horse battery staple".into(), domain: None }
    }

    #[tokio::test]
    async fn the_broker_gets_plaintext_and_a_rotation_keeps_old_records_readable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::start(dir.path().join(DATABASE_FILE_NAME), 1).expect("store");
        store.migrate().await.expect("migrate");
        let resource = resource_in(&store).await;
        let old = SecretService::new(store.repositories(), ring(("k1", 1), &[]));
        let (record, reference) = old.store(&resource, &credentials(), event()).await.expect("store");
        assert_eq!(record.key_id, "k1");
        let resource = store.repositories().resources.get(resource.id).await.expect("get").expect("resource");
        assert_eq!(resource.secret_ref.as_deref(), Some(reference.as_str()));
        assert_eq!(old.resolve(&resource).await.expect("resolve"), Some(credentials()));

        // The new key is active, the old one retired: old records still open.
        let rotated = SecretService::new(store.repositories(), ring(("k2", 2), &[("k1", 1)]));
        assert_eq!(rotated.resolve(&resource).await.expect("resolve"), Some(credentials()));
        let report = rotated.rotate(&RequestContext::default()).await.expect("rotate");
        assert_eq!(report, RotationReport { active_key_id: "k2".into(), reencrypted: 1, failed: vec![] });
        let stored = store.repositories().resources.get_secret(resource.id).await.expect("get").expect("secret");
        assert_eq!(stored.key_id, "k2");
        assert!(stored.rotated_at.is_some());
        // With the old key gone entirely, the rotated record still opens.
        let new_only = SecretService::new(store.repositories(), ring(("k2", 2), &[]));
        assert_eq!(new_only.resolve(&resource).await.expect("resolve"), Some(credentials()));
        assert_eq!(
            new_only.rotate(&RequestContext::default()).await.expect("rotate").reencrypted,
            0,
            "nothing left to do"
        );
        store.close().await;
    }

    #[tokio::test]
    async fn a_wrong_key_or_a_tampered_record_fails_closed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(DATABASE_FILE_NAME);
        let store = SqliteStore::start(path.clone(), 1).expect("store");
        store.migrate().await.expect("migrate");
        let resource = resource_in(&store).await;
        let service = SecretService::new(store.repositories(), ring(("k1", 1), &[]));
        service.store(&resource, &credentials(), event()).await.expect("store");
        let resource = store.repositories().resources.get(resource.id).await.expect("get").expect("resource");

        let impostor = SecretService::new(store.repositories(), ring(("k1", 9), &[]));
        assert!(matches!(impostor.resolve(&resource).await, Err(SecretStoreError::Secret(SecretError::Undecryptable))));
        let unknown = SecretService::new(store.repositories(), ring(("k2", 2), &[]));
        assert!(matches!(unknown.resolve(&resource).await, Err(SecretStoreError::Secret(SecretError::UnknownKey(_)))));
        let report = unknown.rotate(&RequestContext::default()).await.expect("rotate");
        assert_eq!(report.failed, vec![resource.id.as_uuid()], "an unreadable record is reported, not destroyed");

        store.close().await;
        let conn = rusqlite::Connection::open(&path).expect("open");
        let mut ciphertext: Vec<u8> =
            conn.query_row("SELECT ciphertext FROM resource_secrets", [], |row| row.get(0)).expect("read");
        ciphertext[3] ^= 0x01;
        conn.execute("UPDATE resource_secrets SET ciphertext = ?1", [ciphertext]).expect("tamper");
        drop(conn);
        let store = SqliteStore::start(path, 1).expect("store");
        store.migrate().await.expect("migrate");
        let service = SecretService::new(store.repositories(), ring(("k1", 1), &[]));
        assert!(matches!(service.resolve(&resource).await, Err(SecretStoreError::Secret(SecretError::Undecryptable))));
        store.close().await;
    }

    #[tokio::test]
    async fn identity_source_secrets_are_sealed_per_source_and_rotated_with_the_rest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::start(dir.path().join(DATABASE_FILE_NAME), 1).expect("store");
        store.migrate().await.expect("migrate");
        let resource = resource_in(&store).await;
        let old = SecretService::new(store.repositories(), ring(("k1", 1), &[]));
        let now = OffsetDateTime::now_utc();
        let id = Uuid::now_v7();
        let secrets = serde_json::json!({"bind_password": "s3cret!"}).as_object().cloned().expect("object");
        let sealed = old.seal_source_secrets(id, secrets).expect("seal").expect("something to seal");
        assert!(old.seal_source_secrets(id, serde_json::Map::new()).expect("seal").is_none(), "nothing to seal");
        assert!(old.open_source_secrets(Uuid::now_v7(), &sealed).is_err(), "bound to its own source");
        let source = rap_storage::repo::IdentitySourceRecord {
            id,
            organization_id: resource.organization_id,
            kind: "ldap".into(),
            name: "AD".into(),
            config: serde_json::json!({"bind_password": "[redacted]"}),
            enabled: true,
            sealed_secrets: Some(sealed),
            created_at: now,
            updated_at: now,
        };
        store.repositories().identity_sources.create(source, event()).await.expect("create");

        let rotated = SecretService::new(store.repositories(), ring(("k2", 2), &[("k1", 1)]));
        let report = rotated.rotate(&RequestContext::default()).await.expect("rotate");
        assert_eq!(report.reencrypted, 1, "{report:?}");
        let stored = store
            .repositories()
            .identity_sources
            .get(resource.organization_id, id)
            .await
            .expect("get")
            .expect("source");
        let sealed = stored.sealed_secrets.expect("sealed");
        assert_eq!(sealed.key_id, "k2");
        let new_only = SecretService::new(store.repositories(), ring(("k2", 2), &[]));
        assert_eq!(
            new_only.open_source_secrets(id, &sealed).expect("open"),
            serde_json::json!({"bind_password": "s3cret!"})
        );
        store.close().await;
    }
}
