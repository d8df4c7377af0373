//! ResourceRepository: resources with their policies, soft delete, and
//! encrypted secrets with conditional re-encryption.

use rap_storage::Repositories;
use rap_storage::ResourceId;
use rap_storage::repo::{OrgScope, ResourcePolicyRecord, ResourceRecord, SecretRecord};
use rap_storage::types::{CertificateMode, PolicyMode};
use uuid::Uuid;

use super::support::{
    assert_audited, assert_not_audited, audit, create_organization, create_resource, create_user, now, resource,
    sealed, sorted,
};

fn secret(resource_id: ResourceId, key_id: &str, seed: u8) -> SecretRecord {
    let blob = sealed(key_id, seed);
    let created_at = now();
    SecretRecord {
        id: Uuid::now_v7(),
        resource_id,
        key_id: blob.key_id,
        nonce: blob.nonce,
        ciphertext: blob.ciphertext,
        created_at,
        updated_at: created_at,
        rotated_at: None,
    }
}

async fn put(repos: &Repositories, resource_id: ResourceId, key_id: &str, seed: u8) -> SecretRecord {
    let written = secret(resource_id, key_id, seed);
    let stored = repos
        .resources
        .put_secret(written, format!("secret/{resource_id}"), audit("resource.secret_set"))
        .await
        .expect("put secret");
    assert_eq!(repos.resources.get_secret(resource_id).await.expect("get secret"), Some(stored.clone()));
    stored
}

fn same_bytes(secret: &SecretRecord, key_id: &str, seed: u8) -> bool {
    let blob = sealed(key_id, seed);
    (secret.key_id.as_str(), &secret.nonce, &secret.ciphertext) == (key_id, &blob.nonce, &blob.ciphertext)
}

pub async fn resources_round_trip_and_list_by_scope(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let globex = create_organization(repos, "globex").await;
    let alice = create_user(repos, "alice@example.com").await;
    let created = audit("resource.created");
    let desktop = ResourceRecord {
        created_by_user_id: Some(alice.id),
        certificate_verification_mode: CertificateMode::Ignore,
        certificate_fingerprint: None,
        secret_ref: Some("vault/desktop".into()),
        policy: ResourcePolicyRecord {
            clipboard_mode: PolicyMode::Bidirectional,
            file_transfer_mode: PolicyMode::ServerToClient,
        },
        ..resource(acme.id, "desktop")
    };
    repos.resources.create(desktop.clone(), created.clone()).await.expect("create");
    let build = create_resource(repos, acme.id, "build").await;
    let lab = create_resource(repos, acme.id, "lab").await;
    let theirs = create_resource(repos, globex.id, "theirs").await;
    assert_audited(repos, &created).await;

    assert_eq!(repos.resources.get(desktop.id).await.expect("get"), Some(desktop.clone()), "with its policy");
    assert_eq!(repos.resources.get(ResourceId::generate()).await.expect("get"), None);

    let acme_all = sorted(&[desktop.clone(), build.clone(), lab.clone()], |r| r.id);
    let listed = repos.resources.list(OrgScope::Only(vec![acme.id]), None, 10).await.expect("list");
    assert_eq!(listed, acme_all, "the scope's resources, ordered by id");
    let listed = repos.resources.list(OrgScope::Only(vec![globex.id]), None, 10).await.expect("list");
    assert_eq!(listed, vec![theirs.clone()]);
    let everything = repos.resources.list(OrgScope::All, None, 1000).await.expect("list");
    assert_eq!(everything, sorted(&[desktop, build, lab, theirs], |r| r.id));

    let first = repos.resources.list(OrgScope::Only(vec![acme.id]), None, 2).await.expect("page");
    assert_eq!(first, acme_all[..2]);
    let second = repos.resources.list(OrgScope::Only(vec![acme.id]), Some(first[1].id), 2).await.expect("page");
    assert_eq!(second, acme_all[2..]);
}

pub async fn update_replaces_the_mutable_fields(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let desktop = create_resource(repos, acme.id, "desktop").await;
    let changed = ResourceRecord {
        name: "desktop-2".into(),
        host: "10.0.0.7".into(),
        port: 13389,
        certificate_verification_mode: CertificateMode::Ignore,
        certificate_fingerprint: None,
        metadata: serde_json::json!({"note": "moved"}),
        policy: ResourcePolicyRecord {
            clipboard_mode: PolicyMode::Disabled,
            file_transfer_mode: PolicyMode::Bidirectional,
        },
        updated_at: now(),
        ..desktop.clone()
    };
    let updated = audit("resource.updated");
    assert!(repos.resources.update(changed.clone(), updated.clone()).await.expect("update"));
    assert_eq!(repos.resources.get(desktop.id).await.expect("get"), Some(changed), "every field, the policy too");
    assert_audited(repos, &updated).await;

    let missing = audit("resource.updated");
    let ghost = resource(acme.id, "ghost");
    assert!(!repos.resources.update(ghost.clone(), missing.clone()).await.expect("update"));
    assert_eq!(repos.resources.get(ghost.id).await.expect("get"), None, "an update creates nothing");
    assert_not_audited(repos, &missing).await;
}

pub async fn a_deleted_resource_is_gone_with_its_secret(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let desktop = create_resource(repos, acme.id, "desktop").await;
    let kept = create_resource(repos, acme.id, "kept").await;
    put(repos, desktop.id, "key-1", 1).await;
    let kept_secret = put(repos, kept.id, "key-1", 2).await;

    let deleted = audit("resource.deleted");
    assert!(repos.resources.delete(desktop.id, now(), deleted.clone()).await.expect("delete"));
    assert_audited(repos, &deleted).await;
    assert_eq!(repos.resources.get(desktop.id).await.expect("get"), None, "live resources only");
    let listed = repos.resources.list(OrgScope::Only(vec![acme.id]), None, 10).await.expect("list");
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![kept.id]);
    assert_eq!(repos.resources.get_secret(desktop.id).await.expect("secret"), None, "the secret went with it");
    let stale = repos.resources.secrets_not_under("key-9").await.expect("not under");
    assert_eq!(stale, vec![kept_secret], "a destroyed secret is not rotated either");

    let again = audit("resource.deleted");
    assert!(!repos.resources.delete(desktop.id, now(), again.clone()).await.expect("delete"));
    assert_not_audited(repos, &again).await;
    let revived = audit("resource.updated");
    assert!(!repos.resources.update(desktop.clone(), revived.clone()).await.expect("update"), "a deleted one stays so");
    assert_eq!(repos.resources.get(desktop.id).await.expect("get"), None);
    assert_not_audited(repos, &revived).await;
}

pub async fn a_secret_is_put_replaced_and_read_back(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let desktop = create_resource(repos, acme.id, "desktop").await;
    assert_eq!(repos.resources.get_secret(desktop.id).await.expect("secret"), None);

    let first = secret(desktop.id, "key-1", 1);
    let set = audit("resource.secret_set");
    let stored = repos.resources.put_secret(first.clone(), "secret/one".into(), set.clone()).await.expect("put secret");
    assert_eq!(stored, first, "a new secret is stored as given");
    assert_eq!(repos.resources.get_secret(desktop.id).await.expect("secret"), Some(first));
    let with_ref = repos.resources.get(desktop.id).await.expect("get").expect("live");
    assert_eq!(with_ref.secret_ref.as_deref(), Some("secret/one"), "secret_ref points at it");
    assert_audited(repos, &set).await;

    let replaced = repos
        .resources
        .put_secret(secret(desktop.id, "key-2", 7), "secret/two".into(), audit("resource.secret_set"))
        .await
        .expect("replace");
    assert!(same_bytes(&replaced, "key-2", 7), "the replacement's key and bytes");
    assert_eq!(replaced.resource_id, desktop.id);
    assert_eq!(repos.resources.get_secret(desktop.id).await.expect("secret"), Some(replaced.clone()));
    let with_ref = repos.resources.get(desktop.id).await.expect("get").expect("live");
    assert_eq!(with_ref.secret_ref.as_deref(), Some("secret/two"));
    let all = repos.resources.secrets_not_under("key-9").await.expect("not under");
    assert_eq!(all, vec![replaced], "one secret per resource");
}

pub async fn reencryption_is_conditional_on_the_previous_key(repos: &Repositories) {
    let acme = create_organization(repos, "acme").await;
    let globex = create_organization(repos, "globex").await;
    let desktop = create_resource(repos, acme.id, "desktop").await;
    let build = create_resource(repos, globex.id, "build").await;
    let current = create_resource(repos, acme.id, "current").await;
    let desktop_secret = put(repos, desktop.id, "key-1", 1).await;
    let build_secret = put(repos, build.id, "key-1", 2).await;
    let current_secret = put(repos, current.id, "key-2", 3).await;

    let stale = repos.resources.secrets_not_under("key-2").await.expect("not under");
    assert_eq!(sorted(&stale, |s| s.id), sorted(&[desktop_secret.clone(), build_secret.clone()], |s| s.id));
    let everything = repos.resources.secrets_not_under("key-3").await.expect("not under");
    assert_eq!(everything.len(), 3);
    assert!(everything.contains(&current_secret));

    let blob = sealed("key-2", 8);
    let rotated_at = now();
    let reencrypted = SecretRecord {
        key_id: blob.key_id,
        nonce: blob.nonce,
        ciphertext: blob.ciphertext,
        rotated_at: Some(rotated_at),
        ..desktop_secret.clone()
    };
    let rotated = audit("resource.secret_rotated");
    assert!(repos.resources.reencrypt_secret(reencrypted.clone(), "key-1", rotated.clone()).await.expect("reencrypt"));
    let after = repos.resources.get_secret(desktop.id).await.expect("secret").expect("kept");
    assert!(same_bytes(&after, "key-2", 8), "the new ciphertext under the new key");
    assert_eq!((after.id, after.rotated_at), (desktop_secret.id, Some(rotated_at)));
    assert_audited(repos, &rotated).await;

    // A second rotation that read the old version loses and changes nothing.
    let blob = sealed("key-3", 9);
    let late = SecretRecord { key_id: blob.key_id, nonce: blob.nonce, ciphertext: blob.ciphertext, ..desktop_secret };
    let lost = audit("resource.secret_rotated");
    assert!(!repos.resources.reencrypt_secret(late, "key-1", lost.clone()).await.expect("reencrypt"));
    assert_eq!(repos.resources.get_secret(desktop.id).await.expect("secret"), Some(after));
    assert_not_audited(repos, &lost).await;

    let stale = repos.resources.secrets_not_under("key-2").await.expect("not under");
    assert_eq!(stale, vec![build_secret.clone()]);
    assert_eq!(repos.resources.get_secret(build.id).await.expect("secret"), Some(build_secret), "others untouched");
}
