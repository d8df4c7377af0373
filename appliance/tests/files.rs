//! File transfer on the live plane (API.md "Live plane" 7) through a real
//! WebSocket client: uploads into the session's transfer folder, downloads
//! from its `ToClient` folder, and every refusal a client can cause.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::SinkExt;
use serde_json::{Value, json};
use sha2::Digest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::gateway::{Live, Socket, WAIT, closed_with, live, next_of};
use crate::support::json_of;

const CHUNK: usize = 256 * 1024;

fn transfers_of(live: &Live, session: &str) -> PathBuf {
    live.app.data_dir.path().join("transfers").join(session)
}

async fn send(socket: &mut Socket, kind: &str, payload: Value) {
    socket.send(Message::text(json!({"type": kind, "payload": payload}).to_string())).await.expect("send");
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn b64_decode(message: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(message["payload"]["data"].as_str().expect("data"))
        .expect("base64")
}

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The next `file_upload.*` reply (progress, completed or blocked).
async fn upload_reply(socket: &mut Socket) -> Value {
    next_of_any(socket, &["file_upload.progress", "file_upload.completed", "file_upload.blocked"]).await
}

async fn next_of_any(socket: &mut Socket, kinds: &[&str]) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "none of {kinds:?} in time");
        let message = crate::gateway::next_message(socket).await;
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("json");
            if kinds.iter().any(|kind| value["type"] == *kind) {
                return value;
            }
        }
    }
}

/// Uploads `content` as `name` in chunks; the `file_upload.completed` payload.
async fn upload(socket: &mut Socket, name: &str, content: &[u8]) -> Value {
    let transfer_id = Uuid::new_v4().to_string();
    send(socket, "file_upload.start", json!({"transfer_id": transfer_id, "file_name": name, "size": content.len()}))
        .await;
    let mut reply = upload_reply(socket).await;
    for (index, chunk) in content.chunks(CHUNK).enumerate() {
        assert_eq!(reply["type"], "file_upload.progress", "{reply}");
        assert_eq!(reply["payload"]["received"], index * CHUNK);
        let payload = json!({"transfer_id": transfer_id, "offset": index * CHUNK, "data": b64(chunk)});
        send(socket, "file_upload.chunk", payload).await;
        reply = upload_reply(socket).await;
    }
    assert_eq!(reply["type"], "file_upload.completed", "{reply}");
    assert_eq!(reply["payload"]["transfer_id"], transfer_id);
    reply["payload"].clone()
}

fn blocked_reason(reply: &Value) -> &str {
    assert!(reply["type"].as_str().is_some_and(|kind| kind.ends_with(".blocked")), "{reply}");
    assert_eq!(reply["event"]["code"], reply["payload"]["reason"], "{reply}");
    assert!(reply["event"]["fallback_message"].as_str().is_some_and(|text| !text.is_empty()));
    reply["payload"]["reason"].as_str().expect("reason")
}

async fn audit_actions(live: &Live, session: &str) -> Vec<Value> {
    let events =
        json_of(live.app.get_as(&format!("/api/v1/audit-events?session_id={session}"), &live.admin).await, 200).await;
    events["items"]
        .as_array()
        .or(events["events"].as_array())
        .expect("audit items")
        .iter()
        .filter(|event| event["action"].as_str().is_some_and(|action| action.starts_with("file.")))
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_upload_lands_whole_in_the_session_folder_and_is_audited() {
    let live = live(&[]).await;
    let (mut socket, session, _) = live.session_with_policy(json!({"file_transfer_mode": "bidirectional"})).await;
    let content: Vec<u8> = (0..CHUNK + 1000).map(|i| (i * 7) as u8).collect();
    let done = upload(&mut socket, "Quarterly report.txt", &content).await;
    assert_eq!(done["file_name"], "Quarterly report.txt");
    assert_eq!(done["size"], content.len());
    assert_eq!(done["sha256"], sha256(&content));
    let folder = transfers_of(&live, &session);
    assert_eq!(std::fs::read(folder.join("Quarterly report.txt")).expect("uploaded file"), content);

    // The same name again is kept beside, never over, the first.
    let again = upload(&mut socket, "Quarterly report.txt", b"second").await;
    assert_eq!(again["file_name"], "Quarterly report (1).txt");
    assert_eq!(std::fs::read(folder.join("Quarterly report.txt")).expect("first file"), content);
    let empty = upload(&mut socket, "empty.txt", b"").await;
    assert_eq!(empty["size"], 0);

    let audited = audit_actions(&live, &session).await;
    assert_eq!(audited.len(), 3, "{audited:?}");
    assert!(audited.iter().all(|event| event["action"] == "file.uploaded"));
    assert!(audited.iter().any(|event| event["details"]["file_name"] == "Quarterly report (1).txt"));
    assert!(audited.iter().all(|event| event["details"].get("data").is_none()), "never the contents");
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn bad_upload_requests_are_refused_without_losing_what_arrived() {
    let live = live(&[]).await;
    let (mut socket, session, _) = live.session_with_policy(json!({"file_transfer_mode": "client_to_server"})).await;
    let refusals = [
        (json!({"transfer_id": "not-a-uuid", "file_name": "a.txt", "size": 1}), "invalid_transfer_id"),
        (json!({"transfer_id": Uuid::new_v4(), "file_name": "../../etc/passwd", "size": 1}), "unsafe_file_name"),
        (json!({"transfer_id": Uuid::new_v4(), "file_name": "CON.txt", "size": 1}), "unsafe_file_name"),
        (json!({"transfer_id": Uuid::new_v4(), "file_name": ".hidden", "size": 1}), "unsafe_file_name"),
        (
            json!({"transfer_id": Uuid::new_v4(), "file_name": "big.iso", "size": 25 * 1024 * 1024 + 1}),
            "file_too_large",
        ),
    ];
    for (payload, reason) in refusals {
        send(&mut socket, "file_upload.start", payload.clone()).await;
        assert_eq!(blocked_reason(&upload_reply(&mut socket).await), reason, "{payload}");
    }

    let transfer_id = Uuid::new_v4().to_string();
    let content = vec![b'x'; 1000];
    send(&mut socket, "file_upload.start", json!({"transfer_id": transfer_id, "file_name": "keep.txt", "size": 1000}))
        .await;
    assert_eq!(upload_reply(&mut socket).await["type"], "file_upload.progress");
    send(
        &mut socket,
        "file_upload.chunk",
        json!({"transfer_id": transfer_id, "offset": 0, "data": b64(&content[..400])}),
    )
    .await;
    assert_eq!(upload_reply(&mut socket).await["payload"]["received"], 400);
    let mistakes = [
        (json!({"transfer_id": transfer_id, "offset": 0, "data": b64(&content[..10])}), "unexpected_offset"),
        (json!({"transfer_id": transfer_id, "offset": 400, "data": "%%% not base64"}), "invalid_chunk_data"),
        (json!({"transfer_id": transfer_id, "offset": 400, "data": b64(&vec![0; CHUNK + 1])}), "chunk_too_large"),
        (json!({"transfer_id": transfer_id, "offset": 400, "data": b64(&[0; 601])}), "size_mismatch"),
        (json!({"transfer_id": Uuid::new_v4(), "offset": 0, "data": b64(b"x")}), "unknown_transfer"),
    ];
    for (payload, reason) in mistakes {
        send(&mut socket, "file_upload.chunk", payload.clone()).await;
        let reply = upload_reply(&mut socket).await;
        assert_eq!(blocked_reason(&reply), reason, "{payload}");
        if reason != "unknown_transfer" {
            assert_eq!(reply["payload"]["received"], 400, "the upload keeps its place: {reply}");
        }
    }
    send(
        &mut socket,
        "file_upload.chunk",
        json!({"transfer_id": transfer_id, "offset": 400, "data": b64(&content[400..])}),
    )
    .await;
    assert_eq!(upload_reply(&mut socket).await["type"], "file_upload.completed");
    assert_eq!(std::fs::read(transfers_of(&live, &session).join("keep.txt")).expect("file"), content);

    // A malformed request is refused like the others, and the socket stays usable.
    let malformed = Uuid::new_v4().to_string();
    send(&mut socket, "file_upload.start", json!({"transfer_id": malformed, "name": "x"})).await;
    let refused = upload_reply(&mut socket).await;
    assert_eq!(blocked_reason(&refused), "invalid_request");
    assert_eq!(refused["payload"]["transfer_id"], malformed);
    assert_eq!(refused["payload"]["field"], "payload.name", "{refused}");
    assert_eq!(refused["payload"]["error"], "payload.name is not a known field.", "{refused}");
    send(&mut socket, "file_download.ack", json!({"transfer_id": malformed, "offset": -1})).await;
    assert_eq!(blocked_reason(&next_of(&mut socket, "file_download.blocked").await), "invalid_request");
    let tail = upload(&mut socket, "after.txt", b"still here").await;
    assert_eq!(tail["file_name"], "after.txt");
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn transfers_cross_only_where_the_policy_allows_and_only_for_the_controller() {
    let live = live(&[]).await;
    for mode in ["disabled", "server_to_client"] {
        let (mut socket, session, _) = live.session_with_policy(json!({"file_transfer_mode": mode})).await;
        let start = json!({"transfer_id": Uuid::new_v4(), "file_name": "secret.docx", "size": 5});
        send(&mut socket, "file_upload.start", start).await;
        let reply = upload_reply(&mut socket).await;
        assert_eq!(blocked_reason(&reply), "policy_denied", "{mode}");
        assert_eq!(reply["event"]["message_key"], "event.policy_denied");
        assert!(!transfers_of(&live, &session).join("secret.docx").exists());
        assert_eq!(
            transfers_of(&live, &session).exists(),
            mode != "disabled",
            "a folder (and a redirected drive) only where some transfer is allowed"
        );
    }
    for mode in ["disabled", "client_to_server"] {
        let (mut socket, _, _) = live.session_with_policy(json!({"file_transfer_mode": mode})).await;
        send(&mut socket, "file_download.start", json!({"transfer_id": Uuid::new_v4(), "file_name": "a.txt"})).await;
        let reply = next_of(&mut socket, "file_download.blocked").await;
        assert_eq!(blocked_reason(&reply), "policy_denied", "{mode}");
    }

    // A shadowing admin watches but moves no files.
    let (_controller, session, _) = live.session_with_policy(json!({"file_transfer_mode": "bidirectional"})).await;
    let (mut viewer, _) = live.attach_by(&session, "shadow", "full_color").await;
    send(&mut viewer, "file_upload.start", json!({"transfer_id": Uuid::new_v4(), "file_name": "a.txt", "size": 1}))
        .await;
    assert_eq!(blocked_reason(&upload_reply(&mut viewer).await), "not_controller");
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn files_in_to_client_are_offered_and_download_paced_by_acks() {
    let live = live(&[]).await;
    let (mut socket, session, attached) =
        live.session_with_policy(json!({"file_transfer_mode": "server_to_client"})).await;
    let policy = &attached["payload"]["policy"];
    assert_eq!(policy["file_transfer_mode"], "server_to_client", "the viewer learns the policy on attach: {attached}");
    assert_eq!(policy["clipboard_mode"], "disabled");

    // The remote user saves a file into RAPXfer\ToClient.
    let content: Vec<u8> = (0..5 * CHUNK + 123).map(|i| (i % 251) as u8).collect();
    let to_client = transfers_of(&live, &session).join("ToClient");
    std::fs::write(to_client.join("scan.pdf"), &content).expect("write");
    let offered = next_of(&mut socket, "file_download.available").await;
    let files = offered["payload"]["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{offered}");
    assert_eq!(files[0]["file_name"], "scan.pdf");
    assert_eq!(files[0]["size"], content.len());

    let transfer_id = Uuid::new_v4().to_string();
    send(&mut socket, "file_download.start", json!({"transfer_id": transfer_id, "file_name": "scan.pdf"})).await;
    let started = next_of(&mut socket, "file_download.started").await;
    assert_eq!(started["payload"]["size"], content.len());
    // Without acks the server sends one window (4 chunks) and waits.
    let mut received = Vec::new();
    for _ in 0..4 {
        let chunk = next_of(&mut socket, "file_download.chunk").await;
        assert_eq!(chunk["payload"]["offset"], received.len());
        received.extend(b64_decode(&chunk));
    }
    let quiet = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            let message = crate::gateway::next_message(&mut socket).await;
            if let Message::Text(text) = message
                && text.contains("file_download.chunk")
            {
                return;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a fifth chunk came before any ack");
    send(&mut socket, "file_download.ack", json!({"transfer_id": transfer_id, "offset": received.len()})).await;
    let mut unacked = 0;
    let completed = loop {
        let message = next_of_any(&mut socket, &["file_download.chunk", "file_download.completed"]).await;
        if message["type"] == "file_download.completed" {
            break message;
        }
        assert_eq!(message["payload"]["offset"], received.len());
        received.extend(b64_decode(&message));
        unacked += 1;
        // Ack every other chunk: the window must still move.
        if unacked == 2 || received.len() == content.len() {
            send(&mut socket, "file_download.ack", json!({"transfer_id": transfer_id, "offset": received.len()})).await;
            unacked = 0;
        }
    };
    assert_eq!(received, content);
    assert_eq!(completed["payload"]["sha256"], sha256(&content));
    let audited = audit_actions(&live, &session).await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["action"], "file.downloaded");

    for (name, reason) in [("missing.pdf", "file_not_found"), ("../ToClient/scan.pdf", "unsafe_file_name")] {
        send(&mut socket, "file_download.start", json!({"transfer_id": Uuid::new_v4(), "file_name": name})).await;
        assert_eq!(blocked_reason(&next_of(&mut socket, "file_download.blocked").await), reason);
    }
    std::fs::remove_file(to_client.join("scan.pdf")).expect("remove");
    let emptied = next_of(&mut socket, "file_download.available").await;
    assert_eq!(emptied["payload"]["files"], json!([]));
    live.app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_takeover_ends_the_old_controllers_upload_and_the_folder_goes_with_the_session() {
    let live = live(&[]).await;
    let (mut old, session, _) = live.session_with_policy(json!({"file_transfer_mode": "client_to_server"})).await;
    let transfer_id = Uuid::new_v4().to_string();
    send(&mut old, "file_upload.start", json!({"transfer_id": transfer_id, "file_name": "half.bin", "size": 10})).await;
    upload_reply(&mut old).await;
    send(&mut old, "file_upload.chunk", json!({"transfer_id": transfer_id, "offset": 0, "data": b64(b"12345")})).await;
    assert_eq!(upload_reply(&mut old).await["payload"]["received"], 5);
    let drive_entries = std::fs::read_dir(transfers_of(&live, &session)).expect("folder").count();
    assert_eq!(drive_entries, 1, "only ToClient: a half upload is not on the remote desktop's drive");
    assert_eq!(std::fs::read_dir(live.app.data_dir.path().join("transfers").join(".parts")).expect("parts").count(), 1);

    let (mut new, _) = live.attach_by(&session, "takeover", "full_color").await;
    let ended = upload_reply(&mut old).await;
    assert_eq!(blocked_reason(&ended), "not_controller");
    assert_eq!(ended["payload"]["transfer_id"], transfer_id);
    let folder = transfers_of(&live, &session);
    // Part files wait outside the remote desktop's drive.
    let leftovers = || {
        std::fs::read_dir(live.app.data_dir.path().join("transfers").join(".parts"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + WAIT;
    while leftovers() != 0 {
        assert!(Instant::now() < deadline, "the abandoned part file is deleted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The old device is told and closed: no later chunk can reach the drive.
    next_of(&mut old, "session.taken_over").await;
    assert_eq!(closed_with(&mut old).await, 4411);
    upload(&mut new, "whole.bin", b"1234567890").await;

    live.command(&session, "terminate").await;
    let deadline = Instant::now() + WAIT;
    while folder.exists() {
        assert!(Instant::now() < deadline, "the session's folder is removed when it ends");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    live.app.stop().await.expect("clean stop");
}
