//! An attached socket lives only as long as its principal's right to it:
//! each way a right ends closes the socket within a second, with the
//! reason, and the controller's session is detached, not lost.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::gateway::{Live, Socket, closed_with, live, next_frame, next_of};
use crate::support::{create_user, json_of};
use crate::tenancy::id;

/// A second person in the owner's organization, signed in on a device.
struct Staff {
    user_id: String,
    membership_id: String,
    access: String,
    auth_session_id: String,
    device_id: String,
}

impl Live {
    async fn staff(&self, email: &str, role: &str) -> Staff {
        let user_id = create_user(&self.app, &self.admin, email, "staff password 1").await;
        let body = json!({"user_id": user_id, "role": role});
        let path = format!("/api/v1/organizations/{}/memberships", self.org);
        let membership = json_of(self.app.post(&path, Some(&self.admin), body).await, 201).await;
        let staff = self.sign_in(email).await;
        Staff { user_id, membership_id: id(&membership), ..staff }
    }

    async fn sign_in(&self, email: &str) -> Staff {
        let body = json!({"email": email, "password": "staff password 1", "device": {"name": "Front desk PC"}});
        let tokens = json_of(self.app.post("/api/v1/auth/login", None, body).await, 200).await;
        let text = |value: &Value| value.as_str().expect("text").to_owned();
        Staff {
            user_id: text(&tokens["user"]["id"]),
            membership_id: String::new(),
            access: text(&tokens["access_token"]),
            auth_session_id: text(&tokens["auth_session_id"]),
            device_id: text(&tokens["device"]["id"]),
        }
    }

    /// A session `staff` starts on a new resource, and their attached socket.
    async fn staff_session(&self, staff: &Staff, host: &str) -> (String, Socket) {
        let body = json!({"organization_id": self.org, "name": host, "protocol": "rdp", "host": host});
        let resource = id(&json_of(self.app.post("/api/v1/resources", Some(&self.admin), body).await, 201).await);
        let body = json!({"resource_id": resource, "width": 160, "height": 100});
        let started = json_of(self.app.post("/api/v1/sessions", Some(&staff.access), body).await, 201).await;
        let token = started["attach"]["attach_token"].as_str().expect("token");
        let (mut socket, _) = self.attach(token, "binary_v1", "full_color").await;
        next_frame(&mut socket).await;
        let session = id(&started["session"]);
        self.wait_state(&session, "active").await;
        (session, socket)
    }

    async fn patch(&self, path: &str, body: Value) -> Value {
        json_of(self.app.send(Method::PATCH, path, Some(&self.admin), Some(body)).await, 200).await
    }

    fn membership(&self, staff: &Staff) -> String {
        format!("/api/v1/organizations/{}/memberships/{}", self.org, staff.membership_id)
    }
}

/// The socket is told why (`session.access_revoked` with `reason`) and
/// closed with 4403 within a second of `started`.
async fn revoked(socket: &mut Socket, reason: &str, started: Instant) {
    let notice = next_of(socket, "session.access_revoked").await;
    assert_eq!(notice["payload"]["reason"], reason, "{notice}");
    assert_eq!(notice["event"]["code"], "access_revoked");
    assert_eq!(notice["event"]["details"]["reason"], reason);
    assert!(notice["event"]["fallback_message"].as_str().is_some_and(|text| !text.is_empty()));
    assert_eq!(closed_with(socket).await, 4403);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "closed {elapsed:?} after the right ended");
}

async fn detached_because_access_ended(live: &Live, session: &str) {
    live.wait_state(session, "detached").await;
    let stored = json_of(live.app.get_as(&format!("/api/v1/sessions/{session}"), &live.admin).await, 200).await;
    assert_eq!(stored["detach_reason"], "access_revoked", "{stored}");
}

#[tokio::test]
async fn signing_out_in_any_way_closes_the_socket_and_detaches_the_session() {
    let live = live(&[]).await;
    let staff = live.staff("pat@office.example", "org_member").await;

    // Logout.
    let (session, mut socket) = live.staff_session(&staff, "pc1.office.lan").await;
    let started = Instant::now();
    let logout = live.app.send(Method::POST, "/api/v1/auth/logout", Some(&staff.access), None).await;
    assert_eq!(logout.status(), 204);
    revoked(&mut socket, "signed_out", started).await;
    detached_because_access_ended(&live, &session).await;

    // The auth session revoked from another device.
    let first = live.sign_in("pat@office.example").await;
    let other = live.sign_in("pat@office.example").await;
    let (_, mut socket) = live.staff_session(&first, "pc2.office.lan").await;
    let started = Instant::now();
    let path = format!("/api/v1/auth/sessions/{}", first.auth_session_id);
    assert_eq!(live.app.send(Method::DELETE, &path, Some(&other.access), None).await.status(), 204);
    revoked(&mut socket, "signed_out", started).await;

    // The device removed.
    let lost_laptop = live.sign_in("pat@office.example").await;
    let desk = live.sign_in("pat@office.example").await;
    let (_, mut socket) = live.staff_session(&lost_laptop, "pc3.office.lan").await;
    // Both logins named the same device by name only: each has its own id.
    assert_ne!(lost_laptop.device_id, desk.device_id);
    let started = Instant::now();
    let path = format!("/api/v1/auth/devices/{}", lost_laptop.device_id);
    assert_eq!(live.app.send(Method::DELETE, &path, Some(&desk.access), None).await.status(), 204);
    revoked(&mut socket, "signed_out", started).await;
    assert_eq!(staff.user_id, desk.user_id);
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn disabling_a_user_closes_their_sockets_and_they_cannot_sign_in_again() {
    let live = live(&[]).await;
    let staff = live.staff("sam@office.example", "org_member").await;
    let (session, mut socket) = live.staff_session(&staff, "pc1.office.lan").await;
    let started = Instant::now();
    let user = live.patch(&format!("/api/v1/users/{}", staff.user_id), json!({"disabled": true})).await;
    assert_eq!(user["disabled"], true);
    revoked(&mut socket, "user_disabled", started).await;
    detached_because_access_ended(&live, &session).await;
    let body = json!({"email": "sam@office.example", "password": "staff password 1"});
    assert_eq!(live.app.post("/api/v1/auth/login", None, body.clone()).await.status(), 401);

    // Enabled again, they sign in and resume their detached session.
    live.patch(&format!("/api/v1/users/{}", staff.user_id), json!({"disabled": false})).await;
    let back = live.sign_in("sam@office.example").await;
    let path = format!("/api/v1/sessions/{session}/attach");
    let resumed = json_of(live.app.send(Method::POST, &path, Some(&back.access), None).await, 200).await;
    let token = resumed["attach"]["attach_token"].as_str().expect("token");
    let (mut again, _) = live.attach(token, "binary_v1", "full_color").await;
    next_frame(&mut again).await;

    // Nobody disables themselves.
    let me = json_of(live.app.get_as("/api/v1/auth/me", &live.admin).await, 200).await;
    let path = format!("/api/v1/users/{}", me["user"]["id"].as_str().expect("id"));
    let refused = live.app.send(Method::PATCH, &path, Some(&live.admin), Some(json!({"disabled": true}))).await;
    crate::support::assert_envelope(refused, 400, "invalid_request").await;
    let unknown = live.app.send(Method::PATCH, &path, Some(&live.admin), Some(json!({"disabled": true, "x": 1}))).await;
    crate::support::assert_envelope(unknown, 400, "invalid_request").await;
    let staff_try = format!("/api/v1/users/{}", staff.user_id);
    let forbidden = live.app.send(Method::PATCH, &staff_try, Some(&back.access), Some(json!({"disabled": true}))).await;
    crate::support::assert_envelope(forbidden, 403, "forbidden").await;
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn removing_or_demoting_a_membership_closes_the_controller_and_the_shadow() {
    let live = live(&[]).await;
    // A member's own session: demoted to viewer, they may not use it.
    let member = live.staff("lee@office.example", "org_member").await;
    let (session, mut socket) = live.staff_session(&member, "pc1.office.lan").await;
    let started = Instant::now();
    live.patch(&live.membership(&member), json!({"role": "org_viewer"})).await;
    revoked(&mut socket, "access_removed", started).await;
    detached_because_access_ended(&live, &session).await;

    // Promoted back, then the membership removed.
    live.patch(&live.membership(&member), json!({"role": "org_member"})).await;
    let (_, mut socket) = live.staff_session(&member, "pc2.office.lan").await;
    let started = Instant::now();
    let removed = live.app.send(Method::DELETE, &live.membership(&member), Some(&live.admin), None).await;
    assert_eq!(removed.status(), 204);
    revoked(&mut socket, "access_removed", started).await;

    // An admin shadowing the owner's session, demoted to member: the shadow
    // closes, the controller keeps going.
    let admin = live.staff("ada@office.example", "org_admin").await;
    let (session, owners_token) = live.start("pc3.office.lan", (160, 100)).await;
    let (mut controller, _) = live.attach(&owners_token, "binary_v1", "full_color").await;
    next_frame(&mut controller).await;
    live.wait_state(&session, "active").await;
    let path = format!("/api/v1/sessions/{session}/shadow");
    let shadow = json_of(live.app.send(Method::POST, &path, Some(&admin.access), None).await, 200).await;
    let token = shadow["attach"]["attach_token"].as_str().expect("token");
    let (mut watching, attached) = live.attach(token, "binary_v1", "full_color").await;
    assert_eq!(attached["payload"]["role"], "viewer");
    next_frame(&mut watching).await;
    let started = Instant::now();
    live.patch(&live.membership(&admin), json!({"role": "org_member"})).await;
    revoked(&mut watching, "access_removed", started).await;
    let click = json!({"type": "input.mouse", "payload": {"x": 20, "y": 20, "buttons": 0}});
    controller.send(Message::text(click.to_string())).await.expect("send");
    let frame = next_frame(&mut controller).await;
    assert_eq!(frame.rect.x, 20, "the owner's socket is untouched: {:?}", frame.rect);
    live.wait_state(&session, "active").await;
    live.app.stop().await.expect("clean stop");
}
