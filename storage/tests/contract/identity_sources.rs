//! IdentitySourceRepository: sources with their sealed secrets kept byte
//! for byte, key rotation (`sealed_not_under`, conditional `reseal`), and
//! external-id mappings.

use rap_storage::repo::{IdentityMappingRecord, IdentitySourceRecord, SealedBlob};
use rap_storage::types::OrgRole;
use rap_storage::{OrgId, UserId};
use rap_storage::{Repositories, StorageError};
use uuid::Uuid;

use super::support::{
    assert_audited, assert_not_audited, audit, create_organization, create_user, now, sealed, sorted,
};

fn source(organization_id: OrgId, kind: &str, sealed_secrets: Option<SealedBlob>) -> IdentitySourceRecord {
    let created_at = now();
    IdentitySourceRecord {
        id: Uuid::now_v7(),
        organization_id,
        kind: kind.into(),
        name: format!("{kind} directory"),
        config: serde_json::json!({"url": format!("{kind}://directory.example"), "bind_password": "[redacted]", "ports": [389, 636]}),
        enabled: true,
        sealed_secrets,
        created_at,
        updated_at: created_at,
    }
}

async fn created(repos: &Repositories, source: IdentitySourceRecord) -> IdentitySourceRecord {
    repos.identity_sources.create(source.clone(), audit("identity_source.created")).await.expect("create");
    source
}

async fn stored(repos: &Repositories, source: &IdentitySourceRecord) -> IdentitySourceRecord {
    let found = repos.identity_sources.get(source.organization_id, source.id).await.expect("get");
    found.expect("the source exists")
}

fn ids(sources: &[IdentitySourceRecord]) -> Vec<Uuid> {
    sorted(sources, |source| source.id).iter().map(|source| source.id).collect()
}

pub async fn sources_round_trip_with_and_without_sealed_secrets(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let globex = create_organization(repos, "globex").await;
    let ldap = source(acme.id, "ldap", Some(sealed("key-1", 0)));
    let written = audit("identity_source.created");
    repos.identity_sources.create(ldap.clone(), written.clone()).await.expect("create sealed");
    let oidc = created(repos, IdentitySourceRecord { enabled: false, ..source(acme.id, "oidc", None) }).await;
    let other = created(repos, source(globex.id, "local", None)).await;
    assert_audited(repos, &written).await;

    let read = stored(repos, &ldap).await;
    assert_eq!(read, ldap, "every field, the sealed bytes exactly");
    assert_eq!(read.sealed_secrets, Some(sealed("key-1", 0)));
    assert_eq!(stored(repos, &oidc).await, oidc);
    assert_eq!(stored(repos, &oidc).await.sealed_secrets, None);

    let listed = repos.identity_sources.list(acme.id).await.expect("list");
    assert_eq!(sorted(&listed, |s| s.id), sorted(&[ldap.clone(), oidc], |s| s.id), "the organization's, with secrets");
    assert_eq!(repos.identity_sources.list(globex.id).await.expect("list"), vec![other]);
    assert_eq!(repos.identity_sources.get(globex.id, ldap.id).await.expect("get"), None, "scoped to its organization");
    assert_eq!(repos.identity_sources.get(acme.id, Uuid::now_v7()).await.expect("get"), None);
}

pub async fn sealed_not_under_lists_the_sources_under_other_keys(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let globex = create_organization(repos, "globex").await;
    let old = created(repos, source(acme.id, "ldap", Some(sealed("key-1", 1)))).await;
    let current = created(repos, source(acme.id, "oidc", Some(sealed("key-2", 2)))).await;
    let elsewhere = created(repos, source(globex.id, "ldap", Some(sealed("key-1", 3)))).await;
    created(repos, source(acme.id, "local", None)).await;

    let stale = repos.identity_sources.sealed_not_under("key-2").await.expect("not under");
    assert_eq!(ids(&stale), ids(&[old.clone(), elsewhere.clone()]), "across organizations, never unsealed ones");
    assert!(stale.contains(&old), "listed with their sealed secrets");
    let all = repos.identity_sources.sealed_not_under("key-3").await.expect("not under");
    assert_eq!(ids(&all), ids(&[old.clone(), current, elsewhere]));
    let none = repos.identity_sources.sealed_not_under("key-1").await.expect("not under");
    assert!(none.iter().all(|source| source.sealed_secrets.as_ref().is_some_and(|s| s.key_id != "key-1")));
}

pub async fn reseal_is_conditional_on_the_previous_key(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let ldap = created(repos, source(acme.id, "ldap", Some(sealed("key-1", 1)))).await;
    let plain = created(repos, source(acme.id, "oidc", None)).await;

    let rotated = audit("identity_source.resealed");
    let resealed =
        repos.identity_sources.reseal(ldap.id, sealed("key-2", 9), "key-1", rotated.clone()).await.expect("reseal");
    assert!(resealed);
    let after = stored(repos, &ldap).await;
    assert_eq!(after.sealed_secrets, Some(sealed("key-2", 9)), "the new blob, byte for byte");
    assert_eq!(IdentitySourceRecord { sealed_secrets: ldap.sealed_secrets.clone(), ..after.clone() }, ldap);
    assert_audited(repos, &rotated).await;
    assert_eq!(repos.identity_sources.sealed_not_under("key-2").await.expect("not under"), vec![]);

    // A rotation that read the old key loses to the one that already resealed.
    let stale = audit("identity_source.resealed");
    let resealed =
        repos.identity_sources.reseal(ldap.id, sealed("key-3", 5), "key-1", stale.clone()).await.expect("reseal");
    assert!(!resealed, "a stale previous key id changes nothing");
    assert_eq!(stored(repos, &ldap).await, after);
    assert_not_audited(repos, &stale).await;

    let unsealed = audit("identity_source.resealed");
    let resealed =
        repos.identity_sources.reseal(plain.id, sealed("key-2", 4), "key-1", unsealed.clone()).await.expect("reseal");
    assert!(!resealed, "a source without secrets is under no key");
    assert_eq!(stored(repos, &plain).await.sealed_secrets, None);
    assert_not_audited(repos, &unsealed).await;
    let missing = repos.identity_sources.reseal(Uuid::now_v7(), sealed("key-2", 4), "key-1", audit("x")).await;
    assert!(!missing.expect("reseal"));
}

pub async fn mappings_are_unique_per_external_id(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let alice = create_user(repos, "alice@example.com").await;
    let ldap = created(repos, source(acme.id, "ldap", None)).await;
    let oidc = created(repos, source(acme.id, "oidc", None)).await;
    let mapping = |source: Uuid, kind: &str, external: &str, user: Option<UserId>, role: Option<OrgRole>| {
        let created_at = now();
        IdentityMappingRecord {
            id: Uuid::now_v7(),
            identity_source_id: source,
            external_kind: kind.into(),
            external_id: external.into(),
            user_id: user,
            role,
            created_at,
            updated_at: created_at,
        }
    };
    let subject = mapping(ldap.id, "subject", "uid=alice,ou=people", Some(alice.id), None);
    let group = mapping(ldap.id, "group", "cn=admins,ou=groups", None, Some(OrgRole::OrgAdmin));
    let added = audit("identity_mapping.created");
    repos.identity_sources.add_mapping(subject.clone(), added.clone()).await.expect("subject");
    repos.identity_sources.add_mapping(group.clone(), audit("identity_mapping.created")).await.expect("group");
    assert_audited(repos, &added).await;
    let elsewhere = mapping(oidc.id, "subject", "uid=alice,ou=people", Some(alice.id), None);
    repos
        .identity_sources
        .add_mapping(elsewhere.clone(), audit("identity_mapping.created"))
        .await
        .expect("other source");

    let twin = mapping(ldap.id, "subject", "uid=alice,ou=people", None, Some(OrgRole::OrgViewer));
    let refused = audit("identity_mapping.created");
    let error = repos.identity_sources.add_mapping(twin.clone(), refused.clone()).await.expect_err("same external id");
    assert!(matches!(error, StorageError::Conflict(_)), "{error}");
    assert_not_audited(repos, &refused).await;

    let listed = repos.identity_sources.mappings(ldap.id).await.expect("mappings");
    assert_eq!(sorted(&listed, |m| m.id), sorted(&[subject, group], |m| m.id));
    assert_eq!(repos.identity_sources.mappings(oidc.id).await.expect("mappings"), vec![elsewhere]);
}
