//! OrganizationRepository: organizations by scope, unique slugs,
//! memberships and the last-owner rule.

use rap_storage::OrgId;
use rap_storage::repo::{LastOwner, MembershipChanges, MembershipRecord, OrgScope, OrganizationChanges};
use rap_storage::types::{MembershipStatus, OrgRole};
use rap_storage::{Repositories, StorageError};
use uuid::Uuid;

use super::support::{
    add_member, assert_audited, assert_not_audited, audit, create_organization, create_user, membership, now,
    organization, sorted,
};

fn role(role: OrgRole) -> MembershipChanges {
    MembershipChanges { role: Some(role), status: None }
}

fn status(status: MembershipStatus) -> MembershipChanges {
    MembershipChanges { role: None, status: Some(status) }
}

async fn stored(repos: &Repositories, membership: &MembershipRecord) -> Option<MembershipRecord> {
    repos.organizations.get_membership(membership.organization_id, membership.id).await.expect("get membership")
}

/// Asserts the change is refused with `LastOwner`, leaves the membership as
/// it was and writes no audit event.
async fn refused(repos: &Repositories, membership: &MembershipRecord, changes: MembershipChanges) {
    let event = audit("membership.updated");
    let outcome = repos
        .organizations
        .update_membership(membership.organization_id, membership.id, changes.clone(), now(), event.clone())
        .await
        .expect("update");
    assert_eq!(outcome, Err(LastOwner), "{changes:?} would leave no active owner");
    assert_eq!(stored(repos, membership).await.as_ref(), Some(membership), "a refused change writes nothing");
    assert_not_audited(repos, &event).await;
}

async fn refused_delete(repos: &Repositories, membership: &MembershipRecord) {
    let event = audit("membership.deleted");
    let outcome = repos
        .organizations
        .delete_membership(membership.organization_id, membership.id, event.clone())
        .await
        .expect("delete");
    assert_eq!(outcome, Err(LastOwner), "removing the last active owner");
    assert_eq!(stored(repos, membership).await.as_ref(), Some(membership));
    assert_not_audited(repos, &event).await;
}

async fn updated(repos: &Repositories, membership: &MembershipRecord, changes: MembershipChanges) -> MembershipRecord {
    let at = now();
    let event = audit("membership.updated");
    let outcome = repos
        .organizations
        .update_membership(membership.organization_id, membership.id, changes.clone(), at, event.clone())
        .await
        .expect("update");
    let changed = outcome.expect("allowed").expect("the membership exists");
    let expected = MembershipRecord {
        role: changes.role.unwrap_or(membership.role),
        status: changes.status.unwrap_or(membership.status),
        updated_at: at,
        ..membership.clone()
    };
    assert_eq!(changed, expected);
    assert_eq!(stored(repos, membership).await, Some(expected.clone()));
    assert_audited(repos, &event).await;
    expected
}

async fn deleted(repos: &Repositories, membership: &MembershipRecord) {
    let event = audit("membership.deleted");
    let outcome = repos.organizations.delete_membership(membership.organization_id, membership.id, event.clone()).await;
    assert_eq!(outcome.expect("delete"), Ok(true));
    assert_eq!(stored(repos, membership).await, None);
    assert_audited(repos, &event).await;
}

pub async fn organizations_round_trip_and_list_by_scope(repos: &Repositories) {
    let created = audit("organization.created");
    let acme = organization("acme");
    repos.organizations.create(acme.clone(), created.clone()).await.expect("create");
    let globex = create_organization(repos, "globex").await;
    let initech = create_organization(repos, "initech").await;
    assert_audited(repos, &created).await;

    assert_eq!(repos.organizations.get(acme.id).await.expect("get"), Some(acme.clone()));
    assert_eq!(repos.organizations.get(OrgId::generate()).await.expect("get"), None);

    let only = |ids: &[OrgId]| OrgScope::Only(ids.to_vec());
    let some = repos.organizations.list(only(&[initech.id, acme.id]), None, 10).await.expect("list");
    assert_eq!(some, sorted(&[acme.clone(), initech.clone()], |org| org.id), "only the scope, ordered by id");
    assert_eq!(repos.organizations.list(only(&[]), None, 10).await.expect("list"), vec![]);
    let all = repos.organizations.list(OrgScope::All, None, 1000).await.expect("list");
    for org in [&acme, &globex, &initech] {
        assert!(all.contains(org), "{} is in the full listing", org.slug);
    }
    assert_eq!(all, sorted(&all, |org| org.id), "ordered by id");

    let three = sorted(&[acme.clone(), globex.clone(), initech.clone()], |org| org.id);
    let scope = only(&[acme.id, globex.id, initech.id]);
    let first = repos.organizations.list(scope.clone(), None, 2).await.expect("page 1");
    assert_eq!(first, three[..2]);
    let second = repos.organizations.list(scope, Some(first[1].id), 2).await.expect("page 2");
    assert_eq!(second, three[2..], "`after` continues the previous page");
}

pub async fn a_taken_slug_is_a_conflict_on_create_and_update(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let twin = organization("acme");
    let refused = audit("organization.created");
    let error = repos.organizations.create(twin.clone(), refused.clone()).await.expect_err("the slug is taken");
    assert!(matches!(error, StorageError::Conflict(_)), "{error}");
    assert_eq!(repos.organizations.get(twin.id).await.expect("get"), None);
    assert_not_audited(repos, &refused).await;

    let globex = create_organization(repos, "globex").await;
    let renamed = audit("organization.updated");
    let changes = OrganizationChanges { name: Some("Acme too".into()), slug: Some("acme".into()) };
    let error = repos.organizations.update(globex.id, changes, now(), renamed.clone()).await.expect_err("taken");
    assert!(matches!(error, StorageError::Conflict(_)), "{error}");
    assert_eq!(repos.organizations.get(globex.id).await.expect("get"), Some(globex), "nothing of the update stays");
    assert_eq!(repos.organizations.get(acme.id).await.expect("get"), Some(acme));
    assert_not_audited(repos, &renamed).await;
}

pub async fn update_changes_only_the_given_fields(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let at = now();
    let renamed = audit("organization.updated");
    let changes = OrganizationChanges { name: Some("Acme Corporation".into()), slug: None };
    let after = repos.organizations.update(acme.id, changes, at, renamed.clone()).await.expect("update");
    let expected =
        rap_storage::repo::OrganizationRecord { name: "Acme Corporation".into(), updated_at: at, ..acme.clone() };
    assert_eq!(after, Some(expected.clone()));
    assert_audited(repos, &renamed).await;

    let at = now();
    let changes = OrganizationChanges { name: None, slug: Some("acme-corp".into()) };
    let after = repos.organizations.update(acme.id, changes, at, audit("organization.updated")).await.expect("update");
    let expected = rap_storage::repo::OrganizationRecord { slug: "acme-corp".into(), updated_at: at, ..expected };
    assert_eq!(after, Some(expected.clone()));
    assert_eq!(repos.organizations.get(acme.id).await.expect("get"), Some(expected));

    let missing = audit("organization.updated");
    let changes = OrganizationChanges { name: Some("Ghost".into()), slug: None };
    assert_eq!(
        repos.organizations.update(OrgId::generate(), changes, now(), missing.clone()).await.expect("update"),
        None
    );
    assert_not_audited(repos, &missing).await;
}

pub async fn memberships_are_added_updated_and_deleted(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let globex = create_organization(repos, "globex").await;
    let alice = create_user(repos, "alice@example.com").await;
    let bob = create_user(repos, "bob@example.com").await;
    let owner = add_member(repos, acme.id, alice.id, OrgRole::OrgOwner).await;
    let added = audit("membership.created");
    let member = membership(acme.id, bob.id, OrgRole::OrgMember);
    repos.organizations.add_membership(member.clone(), added.clone()).await.expect("add");
    assert_audited(repos, &added).await;

    assert_eq!(repos.organizations.membership_of(acme.id, bob.id).await.expect("of"), Some(member.clone()));
    assert_eq!(repos.organizations.membership_of(globex.id, bob.id).await.expect("of"), None);
    assert_eq!(stored(repos, &member).await, Some(member.clone()));
    assert_eq!(repos.organizations.get_membership(globex.id, member.id).await.expect("get"), None, "scoped to its org");
    let listed = repos.organizations.memberships(acme.id).await.expect("list");
    assert_eq!(sorted(&listed, |m| m.id), sorted(&[owner.clone(), member.clone()], |m| m.id));

    let twice = audit("membership.created");
    let error = repos
        .organizations
        .add_membership(membership(acme.id, bob.id, OrgRole::OrgAdmin), twice.clone())
        .await
        .expect_err("one membership per user and organization");
    assert!(matches!(error, StorageError::Conflict(_)), "{error}");
    assert_not_audited(repos, &twice).await;
    assert_eq!(repos.organizations.membership_of(acme.id, bob.id).await.expect("of"), Some(member.clone()));

    let member = updated(repos, &member, role(OrgRole::OrgOperator)).await;
    let member = updated(repos, &member, status(MembershipStatus::Disabled)).await;
    assert_eq!(
        repos.organizations.membership_of(acme.id, bob.id).await.expect("of"),
        Some(member.clone()),
        "a disabled membership is still found"
    );
    let missing = audit("membership.updated");
    let outcome = repos
        .organizations
        .update_membership(acme.id, Uuid::now_v7(), role(OrgRole::OrgAdmin), now(), missing.clone())
        .await;
    assert_eq!(outcome.expect("update"), Ok(None));
    assert_not_audited(repos, &missing).await;

    deleted(repos, &member).await;
    let gone = audit("membership.deleted");
    assert_eq!(
        repos.organizations.delete_membership(acme.id, member.id, gone.clone()).await.expect("delete"),
        Ok(false)
    );
    assert_not_audited(repos, &gone).await;
    assert_eq!(repos.organizations.memberships(acme.id).await.expect("list"), vec![owner]);
}

pub async fn the_last_active_owner_cannot_be_demoted_disabled_or_removed(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let alice = create_user(repos, "alice@example.com").await;
    let bob = create_user(repos, "bob@example.com").await;
    let carol = create_user(repos, "carol@example.com").await;
    let first = add_member(repos, acme.id, alice.id, OrgRole::OrgOwner).await;
    let member = add_member(repos, acme.id, carol.id, OrgRole::OrgMember).await;

    refused(repos, &first, role(OrgRole::OrgAdmin)).await;
    refused(repos, &first, status(MembershipStatus::Disabled)).await;
    refused_delete(repos, &first).await;
    let member = updated(repos, &member, role(OrgRole::OrgAdmin)).await;
    deleted(repos, &member).await;

    // With a second owner, either one may go, but not both.
    let second = add_member(repos, acme.id, bob.id, OrgRole::OrgOwner).await;
    let first = updated(repos, &first, role(OrgRole::OrgAdmin)).await;
    refused(repos, &second, role(OrgRole::OrgMember)).await;
    refused(repos, &second, status(MembershipStatus::Disabled)).await;
    refused_delete(repos, &second).await;

    // A disabled owner is no active owner.
    let first = updated(repos, &first, role(OrgRole::OrgOwner)).await;
    let first = updated(repos, &first, status(MembershipStatus::Disabled)).await;
    refused(repos, &second, role(OrgRole::OrgAdmin)).await;
    refused_delete(repos, &second).await;
    let first = updated(repos, &first, status(MembershipStatus::Active)).await;
    deleted(repos, &second).await;
    assert_eq!(repos.organizations.memberships(acme.id).await.expect("list"), vec![first]);
}

pub async fn an_organization_without_an_owner_may_still_be_managed(repos: &Repositories) {
    let lab = create_organization(repos, "lab").await;
    let alice = create_user(repos, "alice@example.com").await;
    let bob = create_user(repos, "bob@example.com").await;
    let admin = add_member(repos, lab.id, alice.id, OrgRole::OrgAdmin).await;
    let member = add_member(repos, lab.id, bob.id, OrgRole::OrgMember).await;

    let admin = updated(repos, &admin, role(OrgRole::OrgOperator)).await;
    let admin = updated(repos, &admin, status(MembershipStatus::Disabled)).await;
    deleted(repos, &admin).await;

    // Once it has an owner, the rule protects that owner.
    let owner = updated(repos, &member, role(OrgRole::OrgOwner)).await;
    refused(repos, &owner, role(OrgRole::OrgMember)).await;
    refused_delete(repos, &owner).await;
}
