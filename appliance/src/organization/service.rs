use rap_storage::StorageError;
use rap_storage::repo::{
    IdentityMappingRecord, IdentitySourceRecord, MembershipChanges, MembershipRecord, OrganizationChanges,
    OrganizationRecord, Repositories,
};
use rap_storage::types::MembershipStatus;
use rap_storage::{OrgId, UserId};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::gate::{Denied, Gate};
use super::policy::{Action, OrgRole};
use crate::audit::{self, Outcome, RequestContext};
use crate::auth::Principal;
use crate::auth::validate::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The organization is visible but the named object in it is not there.
    #[error("not found")]
    NotFound,
    #[error("invalid field {}: {}", .0.0, .0.1)]
    InvalidField(FieldError),
    #[error("conflict on {}: {}", .0.0, .0.1)]
    Conflict(FieldError),
    #[error("the organization must keep an active owner")]
    LastOwner,
    #[error(transparent)]
    Storage(StorageError),
    /// The secret key ring could not seal (a broken configuration).
    #[error(transparent)]
    Secret(crate::secrets::SecretError),
}

impl From<StorageError> for OrgError {
    fn from(error: StorageError) -> Self {
        Self::Storage(error)
    }
}

#[derive(Debug, Clone)]
pub struct OrganizationInput {
    pub name: String,
    /// Derived from the name when absent (and then made unique).
    pub slug: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    pub slug: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MembershipInput {
    pub user_id: UserId,
    pub role: OrgRole,
}

#[derive(Debug, Clone, Default)]
pub struct MembershipPatch {
    pub role: Option<OrgRole>,
    /// `active` or `disabled`.
    pub status: Option<String>,
}

#[derive(Debug, Clone)]
pub struct IdentitySourceInput {
    pub kind: String,
    pub name: String,
    pub config: serde_json::Value,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct MappingInput {
    pub external_kind: String,
    pub external_id: String,
    pub user_id: Option<UserId>,
    pub role: Option<OrgRole>,
}

fn name(raw: &str, field: &'static str) -> Result<String, OrgError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(OrgError::InvalidField((field, "must be 1 to 200 printable characters")));
    }
    Ok(name.to_owned())
}

fn slug(raw: &str) -> Result<String, OrgError> {
    let slug = raw.trim();
    let valid = (1..=63).contains(&slug.len())
        && slug.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if valid {
        Ok(slug.to_owned())
    } else {
        Err(OrgError::InvalidField(("slug", "must be 1 to 63 of a-z, 0-9 and inner hyphens")))
    }
}

/// Longest slug.
const SLUG_MAX: usize = 63;
/// Derived slugs tried with a suffix before giving up on uniqueness.
const SLUG_SUFFIXES: u32 = 100;

/// A slug from an organization's name: lower-case ASCII letters and digits,
/// common accented Latin letters folded (`ä` → `a`, `ß` → `ss`), everything
/// else one dash, no dash at either end, at most 63 characters cut at a
/// dash. A name with nothing usable gives `org`.
pub fn derive_slug(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for character in name.chars().flat_map(char::to_lowercase) {
        let folded = fold(character);
        for letter in folded.chars() {
            if letter.is_ascii_alphanumeric() {
                slug.push(letter);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.len() > SLUG_MAX {
        let cut = &slug[..SLUG_MAX];
        cut.rfind('-').filter(|&dash| dash > SLUG_MAX / 2).map_or(cut, |dash| &cut[..dash])
    } else {
        slug
    };
    if slug.is_empty() { "org".to_owned() } else { slug.to_owned() }
}

/// `base` with `-n`, still within the length limit.
fn with_suffix(base: &str, n: u32) -> String {
    let suffix = format!("-{n}");
    let keep = base.len().min(SLUG_MAX - suffix.len());
    format!("{}{suffix}", base[..keep].trim_end_matches('-'))
}

fn fold(letter: char) -> &'static str {
    match letter {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'ı' => "i",
        'ł' | 'ľ' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ř' => "r",
        'ś' | 'š' | 'ş' => "s",
        'ß' => "ss",
        'ť' | 'ţ' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        '&' => "-and-",
        _ if letter.is_ascii_alphanumeric() => ascii(letter),
        _ => "-",
    }
}

fn ascii(letter: char) -> &'static str {
    const ALPHABET: &str = "0123456789abcdefghijklmnopqrstuvwxyz";
    let index = ALPHABET.find(letter).unwrap_or(0);
    &ALPHABET[index..=index]
}

/// What granting `role` takes: only an owner makes owners, so nobody
/// grants more than they hold (memberships and identity mappings alike).
fn granting(role: OrgRole) -> Action {
    if role == OrgRole::OrgOwner { Action::ManageOwners } else { Action::ManageMemberships }
}

/// Organizations, memberships, identity sources.
#[derive(Clone)]
pub struct OrganizationService {
    repositories: Repositories,
    gate: Gate,
    /// Seals identity sources' credentials (bind passwords, client secrets).
    secrets: crate::secrets::SecretService,
    /// A membership changed or removed may end someone's open access.
    changes: crate::auth::AccessChanges,
}

impl OrganizationService {
    pub fn new(
        repositories: Repositories,
        gate: Gate,
        secrets: crate::secrets::SecretService,
        changes: crate::auth::AccessChanges,
    ) -> Self {
        Self { repositories, gate, secrets, changes }
    }

    fn event(
        &self,
        context: &RequestContext,
        principal: &Principal,
        action: &str,
        organization_id: OrgId,
    ) -> rap_storage::repo::AuditEvent {
        let event =
            audit::event(context, Some(principal.user_id()), action, Outcome::Success, OffsetDateTime::now_utc());
        rap_storage::repo::AuditEvent { organization_id: Some(organization_id), ..event }
    }

    /// Platform admins create organizations.
    pub async fn create(
        &self,
        principal: &Principal,
        input: OrganizationInput,
        context: &RequestContext,
    ) -> Result<OrganizationRecord, OrgError> {
        if !principal.is_platform_admin() {
            return Err(Denied::Forbidden.into());
        }
        let now = OffsetDateTime::now_utc();
        let name = name(&input.name, "name")?;
        let (base, derived) = match &input.slug {
            Some(given) => (slug(given)?, false),
            None => (derive_slug(&name), true),
        };
        let id = OrgId::generate();
        // A slug the caller chose is theirs or a conflict; a derived one
        // takes the first free suffix (`office`, `office-2`, ...).
        for attempt in 1..=if derived { SLUG_SUFFIXES } else { 1 } {
            let slug = if attempt == 1 { base.clone() } else { with_suffix(&base, attempt) };
            let organization = OrganizationRecord { id, slug, name: name.clone(), created_at: now, updated_at: now };
            let event = audit::on(self.event(context, principal, "organization.created", id), "organization", id);
            match self.repositories.organizations.create(organization.clone(), event).await {
                Ok(()) => return Ok(organization),
                Err(StorageError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(OrgError::Conflict(("slug", "is already in use")))
    }

    /// Every organization for platform admins; one's own otherwise.
    pub async fn list(
        &self,
        principal: &Principal,
        after: Option<OrgId>,
        limit: usize,
    ) -> Result<Vec<OrganizationRecord>, OrgError> {
        let scope = self.gate.list_scope(principal, None, Action::ReadOrganization, &RequestContext::default()).await?;
        Ok(self.repositories.organizations.list(scope, after, limit).await?)
    }

    pub async fn get(
        &self,
        principal: &Principal,
        id: OrgId,
        context: &RequestContext,
    ) -> Result<OrganizationRecord, OrgError> {
        self.gate.check(principal, id, Action::ReadOrganization, context).await?;
        self.repositories.organizations.get(id).await?.ok_or(Denied::Hidden.into())
    }

    pub async fn update(
        &self,
        principal: &Principal,
        id: OrgId,
        patch: OrganizationPatch,
        context: &RequestContext,
    ) -> Result<OrganizationRecord, OrgError> {
        self.gate.check(principal, id, Action::UpdateOrganization, context).await?;
        let changes = OrganizationChanges {
            name: patch.name.as_deref().map(|raw| name(raw, "name")).transpose()?,
            slug: patch.slug.as_deref().map(slug).transpose()?,
        };
        let event = audit::with(
            audit::on(self.event(context, principal, "organization.updated", id), "organization", id),
            json!({"name": changes.name, "slug": changes.slug}),
        );
        match self.repositories.organizations.update(id, changes, OffsetDateTime::now_utc(), event).await {
            Ok(Some(organization)) => Ok(organization),
            Ok(None) => Err(Denied::Hidden.into()),
            Err(StorageError::Conflict(_)) => Err(OrgError::Conflict(("slug", "is already in use"))),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn memberships(
        &self,
        principal: &Principal,
        id: OrgId,
        context: &RequestContext,
    ) -> Result<Vec<MembershipRecord>, OrgError> {
        self.gate.check(principal, id, Action::ReadMemberships, context).await?;
        Ok(self.repositories.organizations.memberships(id).await?)
    }

    pub async fn add_membership(
        &self,
        principal: &Principal,
        organization_id: OrgId,
        input: MembershipInput,
        context: &RequestContext,
    ) -> Result<MembershipRecord, OrgError> {
        self.gate.check(principal, organization_id, granting(input.role), context).await?;
        if self.repositories.users.get(input.user_id).await?.is_none() {
            return Err(OrgError::InvalidField(("user_id", "no such user")));
        }
        let now = OffsetDateTime::now_utc();
        let membership = MembershipRecord {
            id: Uuid::now_v7(),
            organization_id,
            user_id: input.user_id,
            role: input.role,
            status: MembershipStatus::Active,
            created_at: now,
            updated_at: now,
        };
        let event = audit::with(
            audit::on(
                self.event(context, principal, "membership.created", organization_id),
                "membership",
                membership.id,
            ),
            json!({"user_id": input.user_id, "role": input.role.as_str()}),
        );
        match self.repositories.organizations.add_membership(membership.clone(), event).await {
            Ok(()) => Ok(membership),
            Err(StorageError::Conflict(_)) => Err(OrgError::Conflict(("user_id", "is already a member"))),
            Err(error) => Err(error.into()),
        }
    }

    /// Owners' memberships (and making owners) need `ManageOwners`.
    async fn existing_membership(
        &self,
        principal: &Principal,
        organization_id: OrgId,
        id: Uuid,
        grants_owner: bool,
        context: &RequestContext,
    ) -> Result<MembershipRecord, OrgError> {
        self.gate.check(principal, organization_id, Action::ManageMemberships, context).await?;
        let membership =
            self.repositories.organizations.get_membership(organization_id, id).await?.ok_or(OrgError::NotFound)?;
        if grants_owner || membership.role == OrgRole::OrgOwner {
            self.gate.check(principal, organization_id, Action::ManageOwners, context).await?;
        }
        Ok(membership)
    }

    pub async fn update_membership(
        &self,
        principal: &Principal,
        organization_id: OrgId,
        id: Uuid,
        patch: MembershipPatch,
        context: &RequestContext,
    ) -> Result<MembershipRecord, OrgError> {
        let status = match patch.status.as_deref() {
            None => None,
            Some(text) => Some(
                MembershipStatus::parse(text)
                    .ok_or(OrgError::InvalidField(("status", "must be active or disabled")))?,
            ),
        };
        let grants_owner = patch.role == Some(OrgRole::OrgOwner);
        self.existing_membership(principal, organization_id, id, grants_owner, context).await?;
        let changes = MembershipChanges { role: patch.role, status };
        let event = audit::with(
            audit::on(self.event(context, principal, "membership.updated", organization_id), "membership", id),
            json!({"role": changes.role, "status": changes.status}),
        );
        match self
            .repositories
            .organizations
            .update_membership(organization_id, id, changes, OffsetDateTime::now_utc(), event)
            .await?
        {
            Ok(Some(membership)) => {
                self.changes.changed();
                Ok(membership)
            }
            Ok(None) => Err(OrgError::NotFound),
            Err(_) => Err(OrgError::LastOwner),
        }
    }

    pub async fn delete_membership(
        &self,
        principal: &Principal,
        organization_id: OrgId,
        id: Uuid,
        context: &RequestContext,
    ) -> Result<(), OrgError> {
        let membership = self.existing_membership(principal, organization_id, id, false, context).await?;
        let event = audit::with(
            audit::on(self.event(context, principal, "membership.deleted", organization_id), "membership", id),
            json!({"user_id": membership.user_id, "role": membership.role}),
        );
        match self.repositories.organizations.delete_membership(organization_id, id, event).await? {
            Ok(true) => {
                self.changes.changed();
                Ok(())
            }
            Ok(false) => Err(OrgError::NotFound),
            Err(_) => Err(OrgError::LastOwner),
        }
    }

    pub async fn identity_sources(
        &self,
        principal: &Principal,
        organization_id: OrgId,
        context: &RequestContext,
    ) -> Result<Vec<IdentitySourceRecord>, OrgError> {
        self.gate.check(principal, organization_id, Action::ReadIdentitySources, context).await?;
        Ok(self.repositories.identity_sources.list(organization_id).await?)
    }

    pub async fn create_identity_source(
        &self,
        principal: &Principal,
        organization_id: OrgId,
        input: IdentitySourceInput,
        context: &RequestContext,
    ) -> Result<IdentitySourceRecord, OrgError> {
        self.gate.check(principal, organization_id, Action::ManageIdentitySources, context).await?;
        if !matches!(input.kind.as_str(), "local" | "ldap" | "oidc") {
            return Err(OrgError::InvalidField(("kind", "must be local, ldap or oidc")));
        }
        if !input.config.is_object() {
            return Err(OrgError::InvalidField(("config", "must be an object")));
        }
        let now = OffsetDateTime::now_utc();
        let id = Uuid::now_v7();
        // Credentials never reach the database in clear: sealed apart, and
        // "[redacted]" in their place in the stored configuration.
        let (config, secrets) = crate::secrets::split_credentials(&input.config);
        let sealed_secrets = self.secrets.seal_source_secrets(id, secrets).map_err(OrgError::Secret)?;
        let source = IdentitySourceRecord {
            id,
            organization_id,
            kind: input.kind,
            name: name(&input.name, "name")?,
            config,
            enabled: input.enabled,
            sealed_secrets,
            created_at: now,
            updated_at: now,
        };
        let event = audit::with(
            audit::on(
                self.event(context, principal, "identity_source.created", organization_id),
                "identity_source",
                source.id,
            ),
            json!({"kind": source.kind}),
        );
        self.repositories.identity_sources.create(source.clone(), event).await?;
        Ok(source)
    }

    async fn source(&self, organization_id: OrgId, id: Uuid) -> Result<IdentitySourceRecord, OrgError> {
        self.repositories.identity_sources.get(organization_id, id).await?.ok_or(OrgError::NotFound)
    }

    pub async fn mappings(
        &self,
        principal: &Principal,
        organization_id: OrgId,
        source_id: Uuid,
        context: &RequestContext,
    ) -> Result<Vec<IdentityMappingRecord>, OrgError> {
        self.gate.check(principal, organization_id, Action::ReadIdentitySources, context).await?;
        let source = self.source(organization_id, source_id).await?;
        Ok(self.repositories.identity_sources.mappings(source.id).await?)
    }

    pub async fn add_mapping(
        &self,
        principal: &Principal,
        organization_id: OrgId,
        source_id: Uuid,
        input: MappingInput,
        context: &RequestContext,
    ) -> Result<IdentityMappingRecord, OrgError> {
        self.gate.check(principal, organization_id, Action::ManageIdentitySources, context).await?;
        // A mapping grants its role to whoever the directory puts in the
        // group: its author needs the right to grant that role directly.
        if let Some(role) = input.role {
            self.gate.check(principal, organization_id, granting(role), context).await?;
        }
        let source = self.source(organization_id, source_id).await?;
        match (input.external_kind.as_str(), input.user_id, input.role) {
            ("subject" | "group", None, None) => {
                return Err(OrgError::InvalidField(("role", "a mapping needs a user_id or a role")));
            }
            ("group", Some(_), _) => {
                return Err(OrgError::InvalidField(("user_id", "a group maps to a role, not a user")));
            }
            ("subject" | "group", _, _) => {}
            _ => return Err(OrgError::InvalidField(("external_kind", "must be subject or group"))),
        }
        let external_id = input.external_id.trim();
        if external_id.is_empty() || external_id.len() > 512 {
            return Err(OrgError::InvalidField(("external_id", "must be 1 to 512 bytes")));
        }
        if let Some(user_id) = input.user_id
            && self.repositories.users.get(user_id).await?.is_none()
        {
            return Err(OrgError::InvalidField(("user_id", "no such user")));
        }
        let now = OffsetDateTime::now_utc();
        let mapping = IdentityMappingRecord {
            id: Uuid::now_v7(),
            identity_source_id: source.id,
            external_kind: input.external_kind,
            external_id: external_id.to_owned(),
            user_id: input.user_id,
            role: input.role,
            created_at: now,
            updated_at: now,
        };
        let event = audit::on(
            self.event(context, principal, "identity_mapping.created", organization_id),
            "identity_mapping",
            mapping.id,
        );
        match self.repositories.identity_sources.add_mapping(mapping.clone(), event).await {
            Ok(()) => Ok(mapping),
            Err(StorageError::Conflict(_)) => Err(OrgError::Conflict(("external_id", "is already mapped"))),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod slug_tests {
    use super::{derive_slug, slug, with_suffix};

    #[test]
    fn slugs_derived_from_names_are_valid_readable_and_bounded() {
        let cases = [
            ("Office", "office"),
            ("Müller & Söhne GmbH", "muller-and-sohne-gmbh"),
            ("  Front   Desk -- 2nd floor! ", "front-desk-2nd-floor"),
            ("Straße 7", "strasse-7"),
            ("東京オフィス", "org"),
            ("---", "org"),
            ("Ærø Kontor", "aero-kontor"),
        ];
        for (name, expected) in cases {
            assert_eq!(derive_slug(name), expected, "{name}");
        }
        let long = derive_slug(&"word ".repeat(30));
        assert!(long.len() <= 63 && !long.ends_with('-'), "{long}");
        for name in ["Office", "a b", &"x".repeat(80), "東京"] {
            let derived = derive_slug(name);
            assert_eq!(slug(&derived).ok().as_deref(), Some(derived.as_str()), "derived slugs pass the rule: {name}");
            let suffixed = with_suffix(&derived, 42);
            assert!(suffixed.ends_with("-42") && slug(&suffixed).is_ok(), "{suffixed}");
        }
    }
}
