//! Organizations, memberships, identity sources and the role matrix,
//! through HTTP.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    OWNER_EMAIL, OWNER_PASSWORD, TestApp, assert_envelope, create_user, json_of, legacy_app_with_owner,
};

/// Two organizations, a user per role in the first, an owner of the second,
/// and a resource in each.
pub struct Office {
    pub app: TestApp,
    pub admin: String,
    pub org_a: String,
    pub org_b: String,
    pub resource_a: String,
    pub resource_b: String,
    /// (role name, access token) for org A's members and B's owner.
    pub actors: Vec<(&'static str, String)>,
}

pub const ROLES: [&str; 5] = ["org_owner", "org_admin", "org_operator", "org_member", "org_viewer"];

pub fn id(value: &Value) -> String {
    value["id"].as_str().unwrap_or_else(|| panic!("no id in {value}")).to_owned()
}

pub async fn office() -> Office {
    let app = legacy_app_with_owner(&[]).await;
    let admin = app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let org_a = id(&json_of(
        app.post("/api/v1/organizations", Some(&admin), json!({"name": "Alpha Dental", "slug": "alpha"})).await,
        201,
    )
    .await);
    let org_b = id(&json_of(
        app.post("/api/v1/organizations", Some(&admin), json!({"name": "Beta Law", "slug": "beta"})).await,
        201,
    )
    .await);
    let mut actors = Vec::new();
    for role in ROLES {
        let email = format!("{role}@alpha.example");
        let user_id = create_user(&app, &admin, &email, "member password 1").await;
        let body = json!({"user_id": user_id, "role": role});
        json_of(app.post(&format!("/api/v1/organizations/{org_a}/memberships"), Some(&admin), body).await, 201).await;
        actors.push((
            role,
            app.login(&email, "member password 1").await["access_token"].as_str().expect("token").to_owned(),
        ));
    }
    let outsider_id = create_user(&app, &admin, "owner@beta.example", "member password 1").await;
    let body = json!({"user_id": outsider_id, "role": "org_owner"});
    json_of(app.post(&format!("/api/v1/organizations/{org_b}/memberships"), Some(&admin), body).await, 201).await;
    actors.push((
        "outsider",
        app.login("owner@beta.example", "member password 1").await["access_token"].as_str().expect("token").to_owned(),
    ));

    let resource =
        |org: &str, name: &str| json!({"organization_id": org, "name": name, "protocol": "rdp", "host": "10.1.0.10"});
    let resource_a =
        id(&json_of(app.post("/api/v1/resources", Some(&admin), resource(&org_a, "Front desk")).await, 201).await);
    let resource_b =
        id(&json_of(app.post("/api/v1/resources", Some(&admin), resource(&org_b, "Partner PC")).await, 201).await);
    Office { app, admin, org_a, org_b, resource_a, resource_b, actors }
}

/// What a caller gets: the status, and the error code if any.
async fn outcome(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Option<String>) {
    let response = app.send(method, path, Some(token), body).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn the_role_matrix_holds_on_every_endpoint() {
    let office = office().await;
    let Office { app, org_a, resource_a, .. } = &office;
    let new_user = |tag: &str| format!("new-{tag}@alpha.example");

    // For each actor and endpoint: the expected status. Managers are
    // org_owner and org_admin; outsiders see nothing of org A.
    for (actor, token) in &office.actors {
        let manager = matches!(*actor, "org_owner" | "org_admin");
        let outsider = *actor == "outsider";
        let read = if outsider { 404 } else { 200 };
        let manage = |allowed: u16| {
            if outsider {
                404
            } else if manager {
                allowed
            } else {
                403
            }
        };

        let mut checks: Vec<(Method, String, Option<Value>, u16)> = vec![
            (Method::GET, format!("/api/v1/organizations/{org_a}"), None, read),
            (
                Method::PATCH,
                format!("/api/v1/organizations/{org_a}"),
                Some(json!({"name": "Alpha Dental"})),
                manage(200),
            ),
            (Method::GET, format!("/api/v1/organizations/{org_a}/memberships"), None, read),
            (Method::GET, format!("/api/v1/organizations/{org_a}/identity-sources"), None, manage(200)),
            (
                Method::POST,
                format!("/api/v1/organizations/{org_a}/identity-sources"),
                Some(json!({"kind": "ldap", "name": format!("LDAP {actor}"), "config": {"url": "ldap://dc.alpha"}})),
                manage(201),
            ),
            (Method::GET, format!("/api/v1/resources/{resource_a}"), None, read),
            (Method::PATCH, format!("/api/v1/resources/{resource_a}"), Some(json!({"port": 3390})), manage(200)),
            (
                Method::PUT,
                format!("/api/v1/resources/{resource_a}/secret"),
                Some(json!({"username": "svc", "password": "pw-1"})),
                manage(200),
            ),
            (
                Method::POST,
                "/api/v1/resources".into(),
                Some(
                    json!({"organization_id": org_a, "name": format!("PC of {actor}"), "protocol": "rdp", "host": "10.1.0.11"}),
                ),
                manage(201),
            ),
            (Method::GET, format!("/api/v1/audit-events?organization_id={org_a}"), None, manage(200)),
        ];
        let user_id = create_user(app, &office.admin, &new_user(actor), "member password 1").await;
        checks.push((
            Method::POST,
            format!("/api/v1/organizations/{org_a}/memberships"),
            Some(json!({"user_id": user_id, "role": "org_member"})),
            manage(201),
        ));
        let owner_grant = if outsider {
            404
        } else if *actor == "org_owner" {
            201
        } else {
            403
        };
        let second = create_user(app, &office.admin, &new_user(&format!("{actor}-owner")), "member password 1").await;
        checks.push((
            Method::POST,
            format!("/api/v1/organizations/{org_a}/memberships"),
            Some(json!({"user_id": second, "role": "org_owner"})),
            owner_grant,
        ));

        for (method, path, body, expected) in checks {
            let (status, code) = outcome(app, token, method.clone(), &path, body).await;
            assert_eq!(status, expected, "{actor} {method} {path}: {code:?}");
            match status {
                403 => assert_eq!(code.as_deref(), Some("forbidden")),
                404 if path.starts_with("/api/v1/resources/") => {
                    assert_eq!(code.as_deref(), Some("resource_not_found"))
                }
                404 => assert_eq!(code.as_deref(), Some("not_found")),
                _ => {}
            }
        }

        // Deleting: each manager removes a resource of their own making.
        let throwaway = json!({"organization_id": org_a, "name": "Throwaway", "protocol": "vnc", "host": "10.1.0.12"});
        let throwaway = id(&json_of(app.post("/api/v1/resources", Some(&office.admin), throwaway).await, 201).await);
        let (status, _) = outcome(app, token, Method::DELETE, &format!("/api/v1/resources/{throwaway}"), None).await;
        assert_eq!(status, manage(204), "{actor} DELETE resource");
    }
    office.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn no_listing_shows_another_organizations_objects() {
    let office = office().await;
    let Office { app, org_a, org_b, resource_a, resource_b, .. } = &office;
    let token_of = |wanted: &str| {
        office.actors.iter().find(|(role, _)| *role == wanted).map(|(_, token)| token.clone()).expect("actor")
    };

    let ids = |page: &Value| -> Vec<String> {
        page["items"].as_array().map(|items| items.iter().map(id).collect()).unwrap_or_default()
    };
    let outsider = token_of("outsider");
    let viewer = token_of("org_viewer");
    assert_eq!(
        ids(&json_of(app.get_as("/api/v1/resources", &outsider).await, 200).await),
        std::slice::from_ref(resource_b)
    );
    assert_eq!(
        ids(&json_of(app.get_as("/api/v1/resources", &viewer).await, 200).await),
        std::slice::from_ref(resource_a)
    );
    assert_eq!(
        ids(&json_of(app.get_as("/api/v1/organizations", &outsider).await, 200).await),
        std::slice::from_ref(org_b)
    );
    assert_eq!(
        ids(&json_of(app.get_as("/api/v1/organizations", &viewer).await, 200).await),
        std::slice::from_ref(org_a)
    );
    let everything = json_of(app.get_as("/api/v1/organizations", &office.admin).await, 200).await;
    assert_eq!(ids(&everything).len(), 3, "platform admins see every organization, default included");

    // Asking for the other organization by filter is "not found", not "forbidden".
    let response = app.get_as(&format!("/api/v1/resources?organization_id={org_a}"), &outsider).await;
    assert_envelope(response, 404, "not_found").await;
    let response = app.get_as(&format!("/api/v1/audit-events?organization_id={org_a}"), &outsider).await;
    assert_envelope(response, 404, "not_found").await;
    // The audit log of one's own organization names nothing of the other's.
    let beta_log =
        json_of(app.get_as(&format!("/api/v1/audit-events?organization_id={org_b}"), &outsider).await, 200).await;
    let text = beta_log.to_string();
    assert!(!text.contains(org_a.as_str()) && !text.contains(resource_a.as_str()), "{text}");
    let response = app.get_as("/api/v1/audit-events", &outsider).await;
    let error = assert_envelope(response, 400, "invalid_request").await;
    assert!(error["details"]["fields"]["organization_id"].is_string());
    office.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn an_organization_always_keeps_an_owner_and_only_owners_make_owners() {
    let office = office().await;
    let Office { app, org_a, .. } = &office;
    let token_of = |wanted: &str| {
        office.actors.iter().find(|(role, _)| *role == wanted).map(|(_, token)| token.clone()).expect("actor")
    };
    let members =
        json_of(app.get_as(&format!("/api/v1/organizations/{org_a}/memberships"), &office.admin).await, 200).await;
    let membership_of = |role: &str| {
        members["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|item| item["role"] == role)
            .map(id)
            .expect("membership")
    };
    let owner_membership = membership_of("org_owner");
    let member_membership = membership_of("org_member");
    let path = |membership: &str| format!("/api/v1/organizations/{org_a}/memberships/{membership}");

    // An admin cannot touch the owner, nor promote anyone to owner.
    let admin = token_of("org_admin");
    let response =
        app.send(Method::PATCH, &path(&owner_membership), Some(&admin), Some(json!({"role": "org_member"}))).await;
    assert_envelope(response, 403, "forbidden").await;
    let response =
        app.send(Method::PATCH, &path(&member_membership), Some(&admin), Some(json!({"role": "org_owner"}))).await;
    assert_envelope(response, 403, "forbidden").await;
    let response =
        app.send(Method::PATCH, &path(&member_membership), Some(&admin), Some(json!({"role": "org_operator"}))).await;
    assert_eq!(json_of(response, 200).await["role"], "org_operator");

    // The sole owner can neither step down nor leave, nor be disabled.
    let owner = token_of("org_owner");
    for (method, body) in [
        (Method::PATCH, Some(json!({"role": "org_admin"}))),
        (Method::PATCH, Some(json!({"status": "disabled"}))),
        (Method::DELETE, None),
    ] {
        let response = app.send(method, &path(&owner_membership), Some(&owner), body).await;
        let error = assert_envelope(response, 409, "conflict").await;
        assert_eq!(error["details"]["reason"], "last_owner");
    }
    // With a second owner, the first may leave.
    let response =
        app.send(Method::PATCH, &path(&member_membership), Some(&owner), Some(json!({"role": "org_owner"}))).await;
    json_of(response, 200).await;
    assert_eq!(app.send(Method::DELETE, &path(&owner_membership), Some(&owner), None).await.status(), 204);
    assert_envelope(app.get_as(&format!("/api/v1/organizations/{org_a}"), &owner).await, 404, "not_found").await;

    // Bad input.
    let body = json!({"user_id": "not-a-uuid", "role": "org_member"});
    assert_envelope(
        app.post(&format!("/api/v1/organizations/{org_a}/memberships"), Some(&office.admin), body).await,
        400,
        "invalid_request",
    )
    .await;
    let body = json!({"user_id": uuid::Uuid::now_v7(), "role": "org_member"});
    let error = assert_envelope(
        app.post(&format!("/api/v1/organizations/{org_a}/memberships"), Some(&office.admin), body).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(error["details"]["fields"]["user_id"], "no such user");
    let body = json!({"user_id": uuid::Uuid::now_v7(), "role": "org_emperor"});
    assert_envelope(
        app.post(&format!("/api/v1/organizations/{org_a}/memberships"), Some(&office.admin), body).await,
        400,
        "invalid_request",
    )
    .await;
    let response = app
        .send(Method::PATCH, &path(&member_membership), Some(&office.admin), Some(json!({"status": "paused"})))
        .await;
    assert_envelope(response, 400, "invalid_request").await;
    office.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn organizations_are_made_by_platform_admins_with_unique_slugs() {
    let office = office().await;
    let Office { app, .. } = &office;
    let owner = office.actors[0].1.clone();
    let body = json!({"name": "Gamma", "slug": "gamma"});
    assert_envelope(app.post("/api/v1/organizations", Some(&owner), body.clone()).await, 403, "forbidden").await;
    let error = assert_envelope(
        app.post("/api/v1/organizations", Some(&office.admin), json!({"name": "Again", "slug": "alpha"})).await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(error["details"]["fields"]["slug"], "is already in use");
    for slug in ["Upper", "-edge", "has space", ""] {
        let error = assert_envelope(
            app.post("/api/v1/organizations", Some(&office.admin), json!({"name": "X", "slug": slug})).await,
            400,
            "invalid_request",
        )
        .await;
        assert!(error["details"]["fields"]["slug"].is_string(), "{slug}");
    }
    let created = json_of(app.post("/api/v1/organizations", Some(&office.admin), body).await, 201).await;
    let renamed = json_of(
        app.send(
            Method::PATCH,
            &format!("/api/v1/organizations/{}", id(&created)),
            Some(&office.admin),
            Some(json!({"name": "Gamma Clinic"})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(renamed["name"], "Gamma Clinic");
    assert_eq!(renamed["slug"], "gamma");

    // Without a slug one is derived from the name, unique with a suffix.
    let mut derived = Vec::new();
    for name in ["Müller & Söhne Praxis", "Gamma", "Gamma!"] {
        derived.push(
            json_of(app.post("/api/v1/organizations", Some(&office.admin), json!({"name": name})).await, 201).await,
        );
    }
    assert_eq!(derived[0]["slug"], "muller-and-sohne-praxis");
    assert_eq!(derived[1]["slug"], "gamma-2", "gamma is taken");
    let third = derived.pop().expect("third");
    assert_eq!(third["slug"], "gamma-3");
    // And it can be changed afterwards.
    let edited = json_of(
        app.send(
            Method::PATCH,
            &format!("/api/v1/organizations/{}", id(&third)),
            Some(&office.admin),
            Some(json!({"slug": "gamma-north"})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(edited["slug"], "gamma-north");
    assert_envelope(
        app.get_as("/api/v1/organizations/00000000-0000-0000-0000-000000000000", &office.admin).await,
        404,
        "not_found",
    )
    .await;
    office.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn identity_sources_and_mappings_are_kept_as_a_model() {
    let office = office().await;
    let Office { app, org_a, .. } = &office;
    let path = format!("/api/v1/organizations/{org_a}/identity-sources");
    let body = json!({"kind": "ldap", "name": "Office AD", "config": {"url": "ldaps://dc.alpha", "bind_dn": "cn=svc", "bind_password": "s3cret!"}});
    let source = json_of(app.post(&path, Some(&office.admin), body).await, 201).await;
    assert_eq!(source["kind"], "ldap");
    assert_eq!(source["enabled"], true);
    assert_eq!(source["config"]["bind_password"], "[redacted]", "a stored bind password is never shown");
    assert!(!source.to_string().contains("s3cret!"));
    let listed = json_of(app.get_as(&path, &office.admin).await, 200).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));

    let bad = json!({"kind": "kerberos", "name": "K"});
    let error = assert_envelope(app.post(&path, Some(&office.admin), bad).await, 400, "invalid_request").await;
    assert!(error["details"]["fields"]["kind"].is_string());

    let mappings = format!("{path}/{}/mappings", id(&source));
    let group = json_of(
        app.post(
            &mappings,
            Some(&office.admin),
            json!({"external_kind": "group", "external_id": "CN=Front Desk", "role": "org_member"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(group["role"], "org_member");
    let duplicate = json!({"external_kind": "group", "external_id": "CN=Front Desk", "role": "org_viewer"});
    assert_envelope(app.post(&mappings, Some(&office.admin), duplicate).await, 409, "conflict").await;
    let pointless = json!({"external_kind": "subject", "external_id": "alice"});
    assert_envelope(app.post(&mappings, Some(&office.admin), pointless).await, 400, "invalid_request").await;
    assert_eq!(
        json_of(app.get_as(&mappings, &office.admin).await, 200).await["items"].as_array().map(Vec::len),
        Some(1)
    );
    let elsewhere = format!("/api/v1/organizations/{}/identity-sources/{}/mappings", office.org_b, id(&source));
    assert_envelope(app.get_as(&elsewhere, &office.admin).await, 404, "not_found").await;

    // Nobody grants more than they hold: an org admin may map a group to
    // any role up to admin, never to owner; an owner may.
    let actor = |role: &str| {
        office.actors.iter().find(|(name, _)| *name == role).map(|(_, token)| token.clone()).expect("actor")
    };
    let (org_admin, org_owner) = (actor("org_admin"), actor("org_owner"));
    let to_owner = json!({"external_kind": "group", "external_id": "CN=Partners", "role": "org_owner"});
    assert_envelope(app.post(&mappings, Some(&org_admin), to_owner.clone()).await, 403, "forbidden").await;
    let to_admin = json!({"external_kind": "group", "external_id": "CN=IT", "role": "org_admin"});
    json_of(app.post(&mappings, Some(&org_admin), to_admin).await, 201).await;
    json_of(app.post(&mappings, Some(&org_owner), to_owner).await, 201).await;
    let listed = json_of(app.get_as(&mappings, &office.admin).await, 200).await;
    let roles: Vec<&str> =
        listed["items"].as_array().expect("items").iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles.len(), 3, "the refused mapping was not stored: {roles:?}");

    // The bind password is encrypted at rest: not in the database's bytes.
    let database = app.database();
    let stored: Vec<u8> = ["", "-wal"]
        .iter()
        .flat_map(|suffix| std::fs::read(format!("{}{suffix}", database.display())).unwrap_or_default())
        .collect();
    assert!(!stored.is_empty(), "the database files were read");
    assert!(!stored.windows(7).any(|window| window == b"s3cret!"), "the bind password is not stored in clear");
    office.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn an_organization_without_an_owner_can_still_be_managed() {
    let office = office().await;
    let Office { app, admin, .. } = &office;
    let gamma = id(&json_of(
        app.post("/api/v1/organizations", Some(admin), json!({"name": "Gamma", "slug": "gamma"})).await,
        201,
    )
    .await);
    let user = create_user(app, admin, "gamma.staff@example.com", "member password 1").await;
    let path = format!("/api/v1/organizations/{gamma}/memberships");
    let membership =
        id(&json_of(app.post(&path, Some(admin), json!({"user_id": user, "role": "org_member"})).await, 201).await);
    let changed =
        app.send(Method::PATCH, &format!("{path}/{membership}"), Some(admin), Some(json!({"role": "org_admin"}))).await;
    assert_eq!(json_of(changed, 200).await["role"], "org_admin", "no owner to lose, nothing to refuse");
    assert_eq!(app.send(Method::DELETE, &format!("{path}/{membership}"), Some(admin), None).await.status(), 204);
    office.app.stop().await.expect("clean stop");
}

/// Every id in a path is checked before anything else, and a bad one is
/// named by its segment.
#[tokio::test]
async fn malformed_ids_in_paths_are_refused_by_name() {
    let office = office().await;
    let Office { app, admin, org_a, .. } = &office;
    let cases = [
        (Method::GET, "/api/v1/sessions/not-a-uuid".to_owned(), "id"),
        (Method::POST, "/api/v1/sessions/12345/attach".to_owned(), "id"),
        (Method::GET, "/api/v1/resources/../../etc".to_owned(), "id"),
        (Method::PATCH, format!("/api/v1/organizations/{org_a}/memberships/x"), "membership_id"),
        (Method::GET, format!("/api/v1/organizations/{org_a}/identity-sources/x/mappings"), "source_id"),
        (Method::GET, "/api/v1/organizations/x".to_owned(), "id"),
    ];
    for (method, path, field) in cases {
        let response = app.send(method.clone(), &path, Some(admin), Some(json!({}))).await;
        if response.status() == 404 {
            // `..` segments are resolved away before routing: not a path of ours.
            assert!(path.contains(".."), "{method} {path}");
            continue;
        }
        let error = assert_envelope(response, 400, "invalid_request").await;
        assert_eq!(error["details"]["fields"][field], "must be a UUID", "{method} {path}: {error}");
    }
    office.app.stop().await.expect("clean stop");
}
