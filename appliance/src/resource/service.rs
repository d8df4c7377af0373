use rap_storage::StorageError;
use rap_storage::repo::{Repositories, ResourcePolicyRecord, ResourceRecord, SecretRecord};
use rap_storage::{OrgId, ResourceId};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{CertificateMode, PolicyMode, Protocol};
use crate::audit::{self, Outcome, RequestContext};
use crate::auth::Principal;
use crate::auth::validate::FieldError;
use crate::config::AppEnv;
use crate::organization::policy::Action;
use crate::organization::{Denied, Gate};
use crate::secrets::credential_like_paths;
use crate::secrets::{Credentials, SecretService, SecretStoreError};

/// Largest metadata document accepted, serialized.
const MAX_METADATA_BYTES: usize = 64 * 1024;
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The resource is not there for this caller (or at all).
    #[error("resource not found")]
    NotFound,
    /// The organization named in the request is not there for this caller.
    #[error(transparent)]
    Organization(Denied),
    #[error("forbidden")]
    Forbidden,
    #[error("invalid field {}: {}", .0.0, .0.1)]
    InvalidField(FieldError),
    /// Production refuses credential-like metadata; these paths carry some.
    #[error("plaintext credentials in metadata")]
    PlaintextSecretForbidden(Vec<String>),
    #[error(transparent)]
    Secret(#[from] SecretStoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ResourceError {
    /// A denial about an existing resource: "hidden" reads as not found.
    fn about_resource(denied: Denied) -> Self {
        match denied {
            Denied::Hidden => Self::NotFound,
            Denied::Forbidden => Self::Forbidden,
            Denied::Storage(error) => Self::Storage(error),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    pub clipboard_mode: Option<String>,
    pub file_transfer_mode: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ResourceInput {
    pub organization_id: OrgId,
    pub name: String,
    pub protocol: String,
    pub host: String,
    pub port: Option<u16>,
    pub certificate_verification_mode: Option<String>,
    pub certificate_fingerprint: Option<String>,
    pub metadata: Option<Value>,
    pub policy: Option<PolicyInput>,
}

/// Absent fields stay as they are; `certificate_fingerprint: Some(None)`
/// removes the pin.
#[derive(Debug, Clone, Default)]
pub struct ResourcePatch {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub certificate_verification_mode: Option<String>,
    pub certificate_fingerprint: Option<Option<String>>,
    pub metadata: Option<Value>,
    pub policy: Option<PolicyInput>,
}

#[derive(Clone)]
pub struct SecretInput {
    pub username: String,
    pub password: String,
    pub domain: Option<String>,
}

fn valid_name(raw: &str) -> Result<String, ResourceError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ResourceError::InvalidField(("name", "must be 1 to 200 printable characters")));
    }
    Ok(name.to_owned())
}

/// A hostname or an IP address; no scheme, path, user or whitespace.
fn valid_host(raw: &str) -> Result<String, ResourceError> {
    let host = raw.trim();
    let bracketed_v6 =
        host.starts_with('[') && host.ends_with(']') && host[1..host.len() - 1].parse::<std::net::Ipv6Addr>().is_ok();
    let plain = !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if bracketed_v6 || plain {
        Ok(host.to_owned())
    } else {
        Err(ResourceError::InvalidField(("host", "must be a hostname or an IP address")))
    }
}

fn valid_port(port: u16) -> Result<u16, ResourceError> {
    if port == 0 { Err(ResourceError::InvalidField(("port", "must be between 1 and 65535"))) } else { Ok(port) }
}

fn valid_verification(mode: &str) -> Result<CertificateMode, ResourceError> {
    CertificateMode::parse(mode)
        .ok_or(ResourceError::InvalidField(("certificate_verification_mode", "must be strict or ignore")))
}

/// `sha256:` and 64 hex digits, colons allowed between bytes; stored in
/// one canonical form.
fn valid_fingerprint(raw: &str) -> Result<String, ResourceError> {
    let hex: String =
        raw.trim().trim_start_matches("sha256:").chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(format!("sha256:{hex}"))
    } else {
        Err(ResourceError::InvalidField(("certificate_fingerprint", "must be sha256: followed by 64 hex digits")))
    }
}

fn valid_metadata(metadata: Value) -> Result<Value, ResourceError> {
    if !metadata.is_object() {
        return Err(ResourceError::InvalidField(("metadata", "must be an object")));
    }
    if metadata.to_string().len() > MAX_METADATA_BYTES {
        return Err(ResourceError::InvalidField(("metadata", "must be at most 64 KiB")));
    }
    Ok(metadata)
}

fn valid_mode(mode: &str, field: &'static str) -> Result<PolicyMode, ResourceError> {
    PolicyMode::parse(mode).ok_or(ResourceError::InvalidField((
        field,
        "must be disabled, client_to_server, server_to_client or bidirectional",
    )))
}

fn apply_policy(
    mut policy: ResourcePolicyRecord,
    input: Option<PolicyInput>,
) -> Result<ResourcePolicyRecord, ResourceError> {
    if let Some(input) = input {
        if let Some(mode) = input.clipboard_mode {
            policy.clipboard_mode = valid_mode(&mode, "policy.clipboard_mode")?;
        }
        if let Some(mode) = input.file_transfer_mode {
            policy.file_transfer_mode = valid_mode(&mode, "policy.file_transfer_mode")?;
        }
    }
    Ok(policy)
}

#[derive(Clone)]
pub struct ResourceService {
    repositories: Repositories,
    gate: Gate,
    secrets: SecretService,
    app_env: AppEnv,
}

impl ResourceService {
    pub fn new(repositories: Repositories, gate: Gate, secrets: SecretService, app_env: AppEnv) -> Self {
        Self { repositories, gate, secrets, app_env }
    }

    /// The production guard on metadata: credentials go to the secret store.
    fn guard_metadata(&self, metadata: &Value) -> Result<(), ResourceError> {
        if !self.app_env.is_production() {
            return Ok(());
        }
        let paths = credential_like_paths(metadata, "metadata");
        if paths.is_empty() { Ok(()) } else { Err(ResourceError::PlaintextSecretForbidden(paths)) }
    }

    fn event(
        &self,
        context: &RequestContext,
        principal: &Principal,
        action: &str,
        resource: &ResourceRecord,
    ) -> rap_storage::repo::AuditEvent {
        let event = audit::on(
            audit::event(context, Some(principal.user_id()), action, Outcome::Success, OffsetDateTime::now_utc()),
            "resource",
            resource.id,
        );
        rap_storage::repo::AuditEvent { organization_id: Some(resource.organization_id), ..event }
    }

    pub async fn create(
        &self,
        principal: &Principal,
        input: ResourceInput,
        context: &RequestContext,
    ) -> Result<ResourceRecord, ResourceError> {
        self.gate
            .check(principal, input.organization_id, Action::ManageResources, context)
            .await
            .map_err(ResourceError::Organization)?;
        let protocol = Protocol::parse(&input.protocol)
            .ok_or(ResourceError::InvalidField(("protocol", "must be rdp, vnc or ssh")))?;
        let metadata = valid_metadata(input.metadata.unwrap_or_else(|| json!({})))?;
        self.guard_metadata(&metadata)?;
        let now = OffsetDateTime::now_utc();
        let resource = ResourceRecord {
            id: ResourceId::generate(),
            organization_id: input.organization_id,
            name: valid_name(&input.name)?,
            port: valid_port(input.port.unwrap_or_else(|| protocol.default_port()))?,
            protocol,
            host: valid_host(&input.host)?,
            certificate_verification_mode: valid_verification(
                input.certificate_verification_mode.as_deref().unwrap_or("strict"),
            )?,
            certificate_fingerprint: input.certificate_fingerprint.as_deref().map(valid_fingerprint).transpose()?,
            metadata,
            secret_ref: None,
            policy: apply_policy(
                ResourcePolicyRecord { clipboard_mode: PolicyMode::Disabled, file_transfer_mode: PolicyMode::Disabled },
                input.policy,
            )?,
            created_by_user_id: Some(principal.user_id()),
            created_at: now,
            updated_at: now,
        };
        let event = audit::with(
            self.event(context, principal, "resource.created", &resource),
            json!({"protocol": resource.protocol, "host": resource.host, "port": resource.port}),
        );
        self.repositories.resources.create(resource.clone(), event).await?;
        Ok(resource)
    }

    /// Resources the caller may see: one organization's (`organization_id`),
    /// or every organization the caller belongs to (all for platform admins).
    pub async fn list(
        &self,
        principal: &Principal,
        organization_id: Option<OrgId>,
        after: Option<ResourceId>,
        limit: usize,
        context: &RequestContext,
    ) -> Result<Vec<ResourceRecord>, ResourceError> {
        let scope = self
            .gate
            .list_scope(principal, organization_id, Action::ReadResources, context)
            .await
            .map_err(ResourceError::Organization)?;
        Ok(self.repositories.resources.list(scope, after, limit).await?)
    }

    /// The resource, if the caller may do `action` to it.
    async fn authorized(
        &self,
        principal: &Principal,
        id: ResourceId,
        action: Action,
        context: &RequestContext,
    ) -> Result<ResourceRecord, ResourceError> {
        let resource = self.repositories.resources.get(id).await?.ok_or(ResourceError::NotFound)?;
        self.gate
            .check(principal, resource.organization_id, action, context)
            .await
            .map_err(ResourceError::about_resource)?;
        Ok(resource)
    }

    pub async fn get(
        &self,
        principal: &Principal,
        id: ResourceId,
        context: &RequestContext,
    ) -> Result<ResourceRecord, ResourceError> {
        self.authorized(principal, id, Action::ReadResources, context).await
    }

    pub async fn update(
        &self,
        principal: &Principal,
        id: ResourceId,
        patch: ResourcePatch,
        context: &RequestContext,
    ) -> Result<ResourceRecord, ResourceError> {
        let mut resource = self.authorized(principal, id, Action::ManageResources, context).await?;
        if let Some(name) = &patch.name {
            resource.name = valid_name(name)?;
        }
        if let Some(host) = &patch.host {
            resource.host = valid_host(host)?;
        }
        if let Some(port) = patch.port {
            resource.port = valid_port(port)?;
        }
        if let Some(mode) = &patch.certificate_verification_mode {
            resource.certificate_verification_mode = valid_verification(mode)?;
        }
        if let Some(fingerprint) = &patch.certificate_fingerprint {
            resource.certificate_fingerprint = fingerprint.as_deref().map(valid_fingerprint).transpose()?;
        }
        if let Some(metadata) = patch.metadata {
            resource.metadata = valid_metadata(metadata)?;
        }
        // Also refuses to keep plaintext that an older, laxer setting stored.
        self.guard_metadata(&resource.metadata)?;
        resource.policy = apply_policy(resource.policy, patch.policy)?;
        resource.updated_at = OffsetDateTime::now_utc();
        let event = audit::with(
            self.event(context, principal, "resource.updated", &resource),
            json!({"clipboard_mode": resource.policy.clipboard_mode, "file_transfer_mode": resource.policy.file_transfer_mode,
                   "certificate_verification_mode": resource.certificate_verification_mode}),
        );
        if !self.repositories.resources.update(resource.clone(), event).await? {
            return Err(ResourceError::NotFound);
        }
        Ok(resource)
    }

    pub async fn delete(
        &self,
        principal: &Principal,
        id: ResourceId,
        context: &RequestContext,
    ) -> Result<(), ResourceError> {
        let resource = self.authorized(principal, id, Action::ManageResources, context).await?;
        let event = self.event(context, principal, "resource.deleted", &resource);
        if !self.repositories.resources.delete(id, OffsetDateTime::now_utc(), event).await? {
            return Err(ResourceError::NotFound);
        }
        Ok(())
    }

    /// Creates or rotates the resource's credentials.
    pub async fn put_secret(
        &self,
        principal: &Principal,
        id: ResourceId,
        input: SecretInput,
        context: &RequestContext,
    ) -> Result<(SecretRecord, String), ResourceError> {
        let resource = self.authorized(principal, id, Action::WriteSecret, context).await?;
        let username = input.username.trim();
        if username.is_empty() || username.len() > 256 || username.chars().any(char::is_control) {
            return Err(ResourceError::InvalidField(("username", "must be 1 to 256 printable characters")));
        }
        if input.password.is_empty() || input.password.len() > 1024 {
            return Err(ResourceError::InvalidField(("password", "must be 1 to 1024 bytes")));
        }
        let domain = input.domain.as_deref().map(str::trim).filter(|domain| !domain.is_empty());
        if domain.is_some_and(|domain| domain.len() > 256 || domain.chars().any(char::is_control)) {
            return Err(ResourceError::InvalidField(("domain", "must be at most 256 printable characters")));
        }
        let credentials = Credentials {
            username: username.to_owned(),
            password: input.password.clone(),
            domain: domain.map(str::to_owned),
        };
        let action = if resource.secret_ref.is_some() { "resource.secret_rotated" } else { "resource.secret_set" };
        let event = audit::with(
            self.event(context, principal, action, &resource),
            json!({"key_id": self.secrets.active_key_id()}),
        );
        match self.secrets.store(&resource, &credentials, event).await {
            // Deleted between the check and the write.
            Err(SecretStoreError::Storage(StorageError::Conflict(_))) => Err(ResourceError::NotFound),
            outcome => Ok(outcome?),
        }
    }
}
