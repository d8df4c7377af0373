//! HealthRepository and InstallationRepository: the installation row, and
//! the first-owner bootstrap that writes everything at once, once.

use rap_storage::repo::{Bootstrap, GrantRecord, InstallationRecord, UserRecord};
use rap_storage::types::{MembershipStatus, OrgRole};
use rap_storage::{Repositories, StorageError};
use time::macros::datetime;
use uuid::Uuid;

use super::support::{
    assert_audited, assert_not_audited, audit, create_organization, create_user, membership, organization, user,
};

fn installation(authority_mode: &str) -> InstallationRecord {
    InstallationRecord {
        installation_id: Uuid::now_v7(),
        authority_mode: authority_mode.into(),
        created_at: datetime!(2026-03-01 08:00:00.123456 UTC),
    }
}

async fn installed(repos: &Repositories) -> InstallationRecord {
    repos.installation.get_or_create(installation("strict")).await.expect("installation")
}

fn grant(owner: &UserRecord, installation_id: Uuid) -> GrantRecord {
    GrantRecord {
        id: Uuid::now_v7(),
        user_id: owner.id,
        role: "platform_admin".into(),
        installation_id,
        signature: vec![0, 1, 2, 254, 255, 0, 42],
        signing_key_id: "installation-key-1".into(),
        granted_at: owner.created_at,
    }
}

fn first_owner(email: &str, slug: &str, installation_id: Uuid) -> Bootstrap {
    let owner = UserRecord { platform_role: Some("platform_admin".into()), ..user(email) };
    let default_organization = organization(slug);
    let membership = membership(default_organization.id, owner.id, OrgRole::OrgOwner);
    Bootstrap {
        grant: grant(&owner, installation_id),
        owner,
        default_organization,
        membership,
        audit: audit("installation.bootstrapped"),
    }
}

pub async fn a_migrated_store_is_ready(repos: &Repositories) {
    repos.health.check_ready().await.expect("a migrated store answers");
}

pub async fn the_installation_is_created_once(repos: &Repositories) {
    assert_eq!(repos.installation.status().await.expect("status"), None, "a fresh store has no installation");

    let first = installation("legacy");
    assert_eq!(repos.installation.get_or_create(first.clone()).await.expect("create"), first);
    let other = installation("strict");
    assert_eq!(
        repos.installation.get_or_create(other).await.expect("read"),
        first,
        "later calls return the stored row, whatever the candidate"
    );

    let status = repos.installation.status().await.expect("status").expect("installed");
    assert_eq!(status.record, first);
    assert_eq!(status.bootstrapped_at, None);
}

pub async fn bootstrap_writes_owner_grant_organization_membership_and_audit(repos: &Repositories) {
    let installation = installed(repos).await;
    let bootstrap = first_owner("founder@example.com", "founders", installation.installation_id);

    let written = repos.installation.bootstrap(bootstrap.clone()).await.expect("bootstrap").expect("first bootstrap");
    assert_eq!(written.organization, bootstrap.default_organization, "a free slug: the organization is created");
    assert_eq!(written.membership, bootstrap.membership);

    let users = &repos.users;
    assert_eq!(users.get(bootstrap.owner.id).await.expect("get"), Some(bootstrap.owner.clone()));
    assert_eq!(users.find_by_email("founder@example.com").await.expect("find"), Some(bootstrap.owner.clone()));
    assert_eq!(users.active_grants(bootstrap.owner.id).await.expect("grants"), vec![bootstrap.grant.clone()]);

    let organizations = &repos.organizations;
    let organization_id = bootstrap.default_organization.id;
    assert_eq!(organizations.get(organization_id).await.expect("get"), Some(bootstrap.default_organization.clone()));
    let owner_membership = organizations.membership_of(organization_id, bootstrap.owner.id).await.expect("membership");
    assert_eq!(owner_membership, Some(bootstrap.membership.clone()));
    assert_eq!(owner_membership.map(|m| (m.role, m.status)), Some((OrgRole::OrgOwner, MembershipStatus::Active)));
    let views = users.memberships(bootstrap.owner.id).await.expect("views");
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].organization_slug, "founders");

    assert_audited(repos, &bootstrap.audit).await;
    let status = repos.installation.status().await.expect("status").expect("installed");
    assert_eq!(status.record, installation);
    assert!(status.bootstrapped_at.is_some(), "the installation remembers it was bootstrapped");
}

pub async fn a_second_bootstrap_is_refused_and_writes_nothing(repos: &Repositories) {
    let installation = installed(repos).await;
    let first = first_owner("founder@example.com", "founders", installation.installation_id);
    repos.installation.bootstrap(first.clone()).await.expect("bootstrap").expect("first bootstrap");
    let bootstrapped_at = repos.installation.status().await.expect("status").and_then(|s| s.bootstrapped_at);

    let second = first_owner("intruder@example.com", "intruders", installation.installation_id);
    let outcome = repos.installation.bootstrap(second.clone()).await.expect("a refusal is not an error");
    assert!(outcome.is_none(), "a second bootstrap is Ok(None)");

    assert_eq!(repos.users.get(second.owner.id).await.expect("get"), None);
    assert_eq!(repos.users.find_by_email("intruder@example.com").await.expect("find"), None);
    assert_eq!(repos.users.active_grants(second.owner.id).await.expect("grants"), vec![]);
    assert_eq!(repos.organizations.get(second.default_organization.id).await.expect("get"), None);
    assert_not_audited(repos, &second.audit).await;
    let status = repos.installation.status().await.expect("status").expect("installed");
    assert_eq!(status.bootstrapped_at, bootstrapped_at, "the first bootstrap stays the one recorded");
    assert_eq!(repos.users.get(first.owner.id).await.expect("get"), Some(first.owner));
}

pub async fn bootstrap_joins_an_existing_organization_with_its_slug(repos: &Repositories) {
    let installation = installed(repos).await;
    let existing = create_organization(repos, "acme").await;
    let bootstrap = first_owner("founder@acme.example", "acme", installation.installation_id);
    assert_ne!(bootstrap.default_organization.id, existing.id);

    let written = repos.installation.bootstrap(bootstrap.clone()).await.expect("bootstrap").expect("first bootstrap");
    assert_eq!(written.organization, existing, "the organization actually used is the one with the slug");
    assert_eq!(written.membership.organization_id, existing.id);
    assert_eq!(written.membership.id, bootstrap.membership.id);
    assert_eq!(repos.organizations.get(bootstrap.default_organization.id).await.expect("get"), None);
    let joined = repos.organizations.membership_of(existing.id, bootstrap.owner.id).await.expect("membership");
    assert_eq!(joined, Some(written.membership));
}

pub async fn a_failed_bootstrap_leaves_the_installation_unbootstrapped(repos: &Repositories) {
    let installation = installed(repos).await;
    create_user(repos, "taken@example.com").await;
    let clash = first_owner("taken@example.com", "founders", installation.installation_id);

    let error = repos.installation.bootstrap(clash.clone()).await.expect_err("the owner's email is taken");
    assert!(matches!(error, StorageError::Conflict(_)), "{error}");
    let status = repos.installation.status().await.expect("status").expect("installed");
    assert_eq!(status.bootstrapped_at, None, "one transaction: nothing of it stays");
    assert_eq!(repos.organizations.get(clash.default_organization.id).await.expect("get"), None);
    assert_eq!(repos.users.active_grants(clash.owner.id).await.expect("grants"), vec![]);
    assert_not_audited(repos, &clash.audit).await;

    let retry = first_owner("founder@example.com", "founders", installation.installation_id);
    let written = repos.installation.bootstrap(retry).await.expect("bootstrap");
    assert!(written.is_some(), "the bootstrap can still happen");
}
