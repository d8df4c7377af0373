//! UserRepository: users by id and email (stored lowercased, unique
//! case-insensitively), their grants and memberships.
//!
//! Callers lowercase an email before storing or looking it up, so lookups
//! here use the stored form; whether another case also matches is left to
//! the backend (SQLite's `COLLATE NOCASE` matches it). Uniqueness, though,
//! is case-insensitive by contract.

use rap_storage::UserId;
use rap_storage::repo::{GrantRecord, UserRecord};
use rap_storage::types::OrgRole;
use rap_storage::{Repositories, StorageError};
use uuid::Uuid;

use super::support::{
    add_member, assert_audited, assert_not_audited, audit, create_organization, create_user, now, sorted, user,
};

pub async fn users_round_trip_by_id_and_email(repos: &Repositories) {
    let plain = user("alice@example.com");
    let created = audit("user.created");
    repos.users.create(plain.clone(), None, created.clone()).await.expect("create");
    let admin = UserRecord {
        platform_role: Some("platform_admin".into()),
        password_hash: None,
        disabled: true,
        ..user("root@example.com")
    };
    let grant = GrantRecord {
        id: Uuid::now_v7(),
        user_id: admin.id,
        role: "platform_admin".into(),
        installation_id: Uuid::now_v7(),
        signature: (0..64).collect(),
        signing_key_id: "key-1".into(),
        granted_at: now(),
    };
    repos.users.create(admin.clone(), Some(grant.clone()), audit("user.created")).await.expect("create with grant");

    assert_eq!(repos.users.get(plain.id).await.expect("get"), Some(plain.clone()));
    assert_eq!(repos.users.get(admin.id).await.expect("get"), Some(admin.clone()));
    assert_eq!(repos.users.find_by_email("alice@example.com").await.expect("find"), Some(plain.clone()));
    assert_eq!(repos.users.find_by_email("root@example.com").await.expect("find"), Some(admin.clone()));
    assert_eq!(repos.users.find_by_email("nobody@example.com").await.expect("find"), None);
    assert_eq!(repos.users.get(UserId::generate()).await.expect("get"), None);

    assert_eq!(
        repos.users.active_grants(admin.id).await.expect("grants"),
        vec![grant],
        "the grant comes with the user"
    );
    assert_eq!(repos.users.active_grants(plain.id).await.expect("grants"), vec![]);
    assert_audited(repos, &created).await;
}

pub async fn a_taken_email_is_a_conflict_in_any_case(repos: &Repositories) {
    let alice = user("alice@example.com");
    repos.users.create(alice.clone(), None, audit("user.created")).await.expect("create");

    for email in ["alice@example.com", "ALICE@Example.COM"] {
        let twin = user(email);
        let grant = GrantRecord {
            id: Uuid::now_v7(),
            user_id: twin.id,
            role: "platform_admin".into(),
            installation_id: Uuid::now_v7(),
            signature: vec![7; 64],
            signing_key_id: "key-1".into(),
            granted_at: now(),
        };
        let refused = audit("user.created");
        let error = repos
            .users
            .create(twin.clone(), Some(grant), refused.clone())
            .await
            .expect_err("emails are unique case-insensitively");
        assert!(matches!(error, StorageError::Conflict(_)), "{email}: {error}");
        assert_eq!(repos.users.get(twin.id).await.expect("get"), None, "{email}: no user was written");
        assert_eq!(repos.users.active_grants(twin.id).await.expect("grants"), vec![], "{email}: nor its grant");
        assert_not_audited(repos, &refused).await;
    }
    assert_eq!(repos.users.find_by_email("alice@example.com").await.expect("find"), Some(alice));
}

pub async fn users_list_in_id_order_and_page(repos: &Repositories) {
    let mut created = Vec::new();
    for index in 0..5 {
        let record = user(&format!("user{index}@example.com"));
        repos.users.create(record.clone(), None, audit("user.created")).await.expect("create");
        created.push(record);
    }
    let expected = sorted(&created, |user| user.id);
    assert_eq!(repos.users.list(None, 100).await.expect("list"), expected);

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = repos.users.list(after, 2).await.expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, expected, "pages continue after the last id, without gaps or repeats");
}

pub async fn a_users_memberships_name_their_organizations(repos: &Repositories) {
    let alice = create_user(repos, "alice@example.com").await;
    let acme = create_organization(repos, "acme").await;
    let globex = create_organization(repos, "globex").await;
    let in_acme = add_member(repos, acme.id, alice.id, OrgRole::OrgAdmin).await;
    let in_globex = add_member(repos, globex.id, alice.id, OrgRole::OrgViewer).await;

    let views = repos.users.memberships(alice.id).await.expect("memberships");
    let views = sorted(&views, |view| view.organization_slug.clone());
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].membership, in_acme);
    assert_eq!((views[0].organization_slug.as_str(), views[0].organization_name.as_str()), ("acme", "Org acme"));
    assert_eq!(views[1].membership, in_globex);
    assert_eq!((views[1].organization_slug.as_str(), views[1].organization_name.as_str()), ("globex", "Org globex"));
    assert_eq!(repos.users.memberships(UserId::generate()).await.expect("memberships"), vec![]);
}
