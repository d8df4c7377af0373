//! Builders for the records the cases write, and a look at the audit log,
//! all through the traits.

use rap_storage::{OrgId, ResourceId, SessionId, UserId};
use std::time::Duration;

use rap_storage::Repositories;
use rap_storage::repo::{
    AttachmentRecord, AuditEvent, AuditQuery, LeaseChange, LeaseRecord, MembershipRecord, OrganizationRecord,
    ResourcePolicyRecord, ResourceRecord, SealedBlob, SessionRecord, SessionTransition, UserRecord,
};
use rap_storage::types::{
    AttachmentRole, CertificateMode, MembershipStatus, OrgRole, PolicyMode, Protocol, SessionState,
};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// The worker kind the session cases use.
pub const KIND: &str = "rdp";
pub const TTL: Duration = Duration::from_secs(30);

/// Now, to the microsecond (what a backend keeps).
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_microsecond(now.microsecond()).expect("a microsecond is in range")
}

/// A fixed point in time, `seconds` after a fixed origin, where order matters.
pub fn at(seconds: i64) -> OffsetDateTime {
    datetime!(2026-03-02 09:00:00 UTC) + time::Duration::seconds(seconds)
}

pub fn std_seconds(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// `at + ttl` as a backend computes a lease's expiry.
pub fn plus(at: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    at + time::Duration::try_from(ttl).expect("a small ttl")
}

pub fn audit(action: &str) -> AuditEvent {
    audit_at(action, now())
}

pub fn audit_at(action: &str, occurred_at: OffsetDateTime) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        occurred_at,
        organization_id: None,
        session_id: None,
        actor_user_id: None,
        actor_kind: "system".into(),
        action: action.into(),
        target_kind: None,
        target_id: None,
        outcome: "success".into(),
        details: serde_json::json!({}),
        trace_id: None,
        ip: None,
    }
}

/// Every audit event of the store, newest first.
pub async fn audit_log(repos: &Repositories) -> Vec<AuditEvent> {
    repos.audit.list(AuditQuery { limit: 100_000, ..Default::default() }).await.expect("audit list")
}

pub async fn audited(repos: &Repositories, event_id: Uuid) -> Option<AuditEvent> {
    audit_log(repos).await.into_iter().find(|event| event.id == event_id)
}

pub async fn assert_audited(repos: &Repositories, event: &AuditEvent) {
    let stored = audited(repos, event.id).await;
    let stored = stored.unwrap_or_else(|| panic!("the {} event was written with its change", event.action));
    assert_eq!(stored.action, event.action);
}

pub async fn assert_not_audited(repos: &Repositories, event: &AuditEvent) {
    assert!(
        audited(repos, event.id).await.is_none(),
        "a change that did not happen left its {} event behind",
        event.action
    );
}

pub fn user(email: &str) -> UserRecord {
    let created_at = now();
    UserRecord {
        id: UserId::generate(),
        email: email.into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into()),
        display_name: email.split('@').next().unwrap_or(email).into(),
        platform_role: None,
        disabled: false,
        created_at,
        updated_at: created_at,
    }
}

pub async fn create_user(repos: &Repositories, email: &str) -> UserRecord {
    let record = user(email);
    repos.users.create(record.clone(), None, audit("user.created")).await.expect("create user");
    record
}

pub fn organization(slug: &str) -> OrganizationRecord {
    let created_at = now();
    OrganizationRecord {
        id: OrgId::generate(),
        slug: slug.into(),
        name: format!("Org {slug}"),
        created_at,
        updated_at: created_at,
    }
}

pub async fn create_organization(repos: &Repositories, slug: &str) -> OrganizationRecord {
    let record = organization(slug);
    repos.organizations.create(record.clone(), audit("organization.created")).await.expect("create organization");
    record
}

pub fn membership(organization_id: OrgId, user_id: UserId, role: OrgRole) -> MembershipRecord {
    let created_at = now();
    MembershipRecord {
        id: Uuid::now_v7(),
        organization_id,
        user_id,
        role,
        status: MembershipStatus::Active,
        created_at,
        updated_at: created_at,
    }
}

pub async fn add_member(
    repos: &Repositories,
    organization_id: OrgId,
    user_id: UserId,
    role: OrgRole,
) -> MembershipRecord {
    let record = membership(organization_id, user_id, role);
    repos.organizations.add_membership(record.clone(), audit("membership.created")).await.expect("add membership");
    record
}

pub fn resource(organization_id: OrgId, name: &str) -> ResourceRecord {
    let created_at = now();
    ResourceRecord {
        id: ResourceId::generate(),
        organization_id,
        name: name.into(),
        protocol: Protocol::Rdp,
        host: format!("{name}.example.internal"),
        port: 3389,
        certificate_verification_mode: CertificateMode::Strict,
        certificate_fingerprint: Some("sha256:00:11:22".into()),
        metadata: serde_json::json!({"domain": "EXAMPLE", "tags": ["lab", 3]}),
        secret_ref: None,
        policy: ResourcePolicyRecord {
            clipboard_mode: PolicyMode::ClientToServer,
            file_transfer_mode: PolicyMode::Disabled,
        },
        created_by_user_id: None,
        created_at,
        updated_at: created_at,
    }
}

pub async fn create_resource(repos: &Repositories, organization_id: OrgId, name: &str) -> ResourceRecord {
    let record = resource(organization_id, name);
    repos.resources.create(record.clone(), audit("resource.created")).await.expect("create resource");
    record
}

/// Encryption output as a backend must keep it: every byte value, zeros too.
pub fn sealed(key_id: &str, seed: u8) -> SealedBlob {
    SealedBlob {
        key_id: key_id.into(),
        nonce: (0..12).map(|index| seed.wrapping_add(index)).collect(),
        ciphertext: (0..=255u8).rev().chain([0, 0, seed]).collect(),
    }
}

/// An organization with an owner and one resource: what a session needs.
pub struct World {
    pub organization: OrganizationRecord,
    pub owner: UserRecord,
    pub resource: ResourceRecord,
}

impl World {
    pub async fn build(repos: &Repositories, slug: &str) -> Self {
        let organization = create_organization(repos, slug).await;
        let owner = create_user(repos, &format!("owner@{slug}.example")).await;
        add_member(repos, organization.id, owner.id, OrgRole::OrgOwner).await;
        let resource = create_resource(repos, organization.id, &format!("{slug}-desktop")).await;
        Self { organization, owner, resource }
    }

    /// A pending session of `owner` on this world's resource, created at `created_at`.
    pub fn session(&self, owner: UserId, created_at: OffsetDateTime) -> SessionRecord {
        SessionRecord {
            id: SessionId::generate(),
            organization_id: self.organization.id,
            resource_id: self.resource.id,
            owner_user_id: owner,
            device_id: None,
            state: SessionState::Pending,
            worker_id: None,
            width: Some(1280),
            height: Some(720),
            failure_reason: None,
            detach_reason: None,
            metadata: serde_json::json!({"secret_ref": "resource/1"}),
            created_at,
            updated_at: created_at,
            started_at: None,
            ended_at: None,
            last_attached_at: None,
            detached_at: None,
        }
    }

    /// Creates a session of the owner at `created_at`; panics without capacity.
    pub async fn start(&self, repos: &Repositories, created_at: OffsetDateTime) -> (SessionRecord, LeaseRecord) {
        let record = self.session(self.owner.id, created_at);
        repos
            .sessions
            .create(record, KIND, TTL, audit_at("session.created", created_at))
            .await
            .expect("create session")
            .expect("a worker has room")
    }
}

/// A transition that changes only the state (reason, attachments and lease
/// left alone), for the cases to adjust.
pub fn transition(
    session_id: SessionId,
    from: &[SessionState],
    to: SessionState,
    at: OffsetDateTime,
) -> SessionTransition {
    SessionTransition {
        session_id,
        from: from.to_vec(),
        to,
        now: at,
        reason: None,
        end_controller: None,
        open_attachment: None,
        lease: LeaseChange::Keep,
        width: None,
        height: None,
        audit: AuditEvent { session_id: Some(session_id), ..audit_at("session.state_changed", at) },
    }
}

pub fn attachment(
    session_id: SessionId,
    user_id: UserId,
    role: AttachmentRole,
    at: OffsetDateTime,
) -> AttachmentRecord {
    AttachmentRecord {
        id: Uuid::now_v7(),
        session_id,
        user_id,
        device_id: None,
        role,
        attached_at: at,
        detached_at: None,
        end_reason: None,
    }
}

/// Sorted copies, for listings whose order the contract leaves open.
pub fn sorted<T: Clone, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort_by_key(key);
    items
}
