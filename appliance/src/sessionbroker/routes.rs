//! `/api/v1/sessions/*` and `/api/v1/workers`.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rap_storage::repo::{AttachmentRecord, SessionRecord};
use rap_storage::{DeviceId, OrgId, ResourceId, SessionId, UserId, WorkerId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::state::SessionState;
use super::{AttachOffer, BrokerError, SessionView, StartRequest};
use crate::auth::Principal;
use crate::http::extract::{Context, CurrentUser, PathId, PlatformAdmin};
use crate::http::page::{self, Page};
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sessions", get(list).post(start))
        .route("/api/v1/sessions/{id}", get(show))
        .route("/api/v1/sessions/{id}/{command}", post(command))
        .route("/api/v1/workers", get(workers))
}

impl From<BrokerError> for ApiError {
    fn from(error: BrokerError) -> Self {
        match error {
            BrokerError::ResourceNotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "resource_not_found", "Resource not found.")
            }
            BrokerError::SessionNotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "session_not_found", "Session not found.")
            }
            BrokerError::Forbidden => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Your role does not allow this.")
            }
            BrokerError::Illegal(illegal) => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_session_state",
                "The session is not in a state that allows this.",
            )
            .with_details(json!({"state": illegal.state.as_str(), "command": illegal.command.as_str()})),
            BrokerError::Raced => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_session_state",
                "The session changed meanwhile; try again.",
            ),
            BrokerError::ProtocolUnsupported(protocol) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "protocol_unsupported",
                "This appliance cannot start sessions on this resource's protocol yet.",
            )
            .with_details(json!({"protocol": protocol})),
            BrokerError::SecretRequired => ApiError::new(
                StatusCode::BAD_REQUEST,
                "secret_required",
                "This resource has no stored credentials; an administrator must set its secret.",
            ),
            BrokerError::PlaintextSecretForbidden(paths) => {
                let fields: serde_json::Map<String, Value> = paths
                    .into_iter()
                    .map(|path| (path, Value::from("credential-like keys are not allowed in production")))
                    .collect();
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "plaintext_secret_forbidden",
                    "This resource keeps credentials in its metadata.",
                )
                .with_details(json!({ "fields": fields }))
            }
            BrokerError::NoCapacity => {
                ApiError::busy("capacity_exhausted", "Every remote session slot is in use; try again shortly.")
            }
            BrokerError::InvalidField((field, reason)) => ApiError::invalid_fields([(field, reason)]),
            BrokerError::SecretUnavailable(reason) => ApiError::internal(&reason),
            BrokerError::Storage(error) => error.into(),
        }
    }
}

fn failure(error: BrokerError) -> Response {
    let busy = matches!(error, BrokerError::NoCapacity);
    let mut response = ApiError::from(error).into_response();
    if busy {
        response.headers_mut().insert(RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
    }
    response
}

#[derive(Serialize)]
struct ControllerView {
    attachment_id: Uuid,
    user_id: UserId,
    device_id: Option<DeviceId>,
    #[serde(with = "time::serde::rfc3339")]
    attached_at: OffsetDateTime,
}

impl From<AttachmentRecord> for ControllerView {
    fn from(attachment: AttachmentRecord) -> Self {
        Self {
            attachment_id: attachment.id,
            user_id: attachment.user_id,
            device_id: attachment.device_id,
            attached_at: attachment.attached_at,
        }
    }
}

#[derive(Serialize)]
struct SessionBody {
    id: SessionId,
    state: SessionState,
    resource_id: ResourceId,
    organization_id: OrgId,
    owner_user_id: UserId,
    device_id: Option<DeviceId>,
    worker_id: Option<WorkerId>,
    width: Option<u16>,
    height: Option<u16>,
    failure_reason: Option<String>,
    /// Why a detached session is detached: `detached`, `transport_closed`
    /// or `appliance_restarted` (it resumes on a new connection).
    detach_reason: Option<String>,
    controller: Option<ControllerView>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    ended_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_attached_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    detached_at: Option<OffsetDateTime>,
}

fn session_body(session: SessionRecord, controller: Option<AttachmentRecord>) -> SessionBody {
    SessionBody {
        id: session.id,
        state: session.state,
        resource_id: session.resource_id,
        organization_id: session.organization_id,
        owner_user_id: session.owner_user_id,
        device_id: session.device_id,
        worker_id: session.worker_id,
        width: session.width,
        height: session.height,
        failure_reason: session.failure_reason,
        detach_reason: session.detach_reason,
        controller: controller.map(ControllerView::from),
        created_at: session.created_at,
        updated_at: session.updated_at,
        started_at: session.started_at,
        ended_at: session.ended_at,
        last_attached_at: session.last_attached_at,
        detached_at: session.detached_at,
    }
}

impl From<SessionView> for SessionBody {
    fn from(view: SessionView) -> Self {
        session_body(view.session, view.controller)
    }
}

#[derive(Serialize)]
struct SessionResponse {
    session: SessionBody,
}

#[derive(Serialize)]
struct AttachResponse {
    session: SessionBody,
    attach: AttachOffer,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_plane: Option<crate::dataplane::Offer>,
}

/// The answer to start/attach/takeover/shadow, with the data-plane offer
/// when a signing key is configured.
fn attach_response(state: &AppState, principal: &Principal, view: SessionView, attach: AttachOffer) -> AttachResponse {
    let data_plane = match (state.data_plane(), view.session.worker_id) {
        (Some(data_plane), Some(worker_id)) => Some(data_plane.offer(
            principal.user_id(),
            principal.auth_session_id,
            view.session.id,
            worker_id,
            attach.attachment_id,
        )),
        _ => None,
    };
    AttachResponse { session: view.into(), attach, data_plane }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    resource_id: ResourceId,
    device_id: Option<DeviceId>,
    width: Option<u16>,
    height: Option<u16>,
}

async fn start(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    ApiJson(body): ApiJson<StartBody>,
) -> Response {
    let request = StartRequest {
        resource_id: body.resource_id,
        device_id: body.device_id,
        width: body.width,
        height: body.height,
    };
    match state.broker().start(&principal, request, &context).await {
        Ok((view, attach)) => {
            (StatusCode::CREATED, ApiJson(attach_response(&state, &principal, view, attach))).into_response()
        }
        Err(error) => failure(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    organization_id: Option<OrgId>,
    /// Comma-separated states.
    state: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<ApiJson<Page<SessionBody>>, ApiError> {
    let (after, limit) = page::ListQuery { limit: query.limit, cursor: query.cursor }.id_page()?;
    let states: Vec<SessionState> = query
        .state
        .as_deref()
        .map(|states| states.split(',').map(str::trim).map(SessionState::parse).collect::<Option<_>>())
        .unwrap_or(Some(Vec::new()))
        .ok_or_else(|| ApiError::invalid_fields([("state", "must be session states separated by commas")]))?;
    let sessions = state.broker().list(&principal, query.organization_id, states, after, limit + 1, &context).await?;
    // Each with its controller: what an admin's live-sessions list shows.
    let mut bodies = Vec::with_capacity(sessions.len());
    for session in sessions {
        bodies.push(SessionBody::from(state.broker().view(session).await?));
    }
    Ok(ApiJson(Page::from_overfetch(bodies, limit, |session: &SessionBody| session.id.to_string())))
}

async fn show(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<SessionId>,
) -> Result<ApiJson<SessionBody>, ApiError> {
    Ok(ApiJson(state.broker().get(&principal, id).await?.into()))
}

/// The three ways to get an attach block for an existing session.
/// `POST /api/v1/sessions/{id}/{command}`: the session commands. Attach,
/// takeover and shadow answer with a new attach block; detach and
/// terminate with the session.
async fn command(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<SessionId>,
    Path((_, command)): Path<(String, String)>,
) -> Response {
    let broker = state.broker();
    let offered = |result: Result<_, BrokerError>| match result {
        Ok((view, attach)) => ApiJson(attach_response(&state, &principal, view, attach)).into_response(),
        Err(error) => failure(error),
    };
    let ended = |result: Result<SessionView, BrokerError>| match result {
        Ok(session) => ApiJson(SessionResponse { session: session.into() }).into_response(),
        Err(error) => failure(error),
    };
    match command.as_str() {
        "attach" => offered(broker.attach(&principal, id, &context).await),
        "takeover" => offered(broker.takeover(&principal, id, &context).await),
        "shadow" => offered(broker.shadow(&principal, id, &context).await),
        "detach" => ended(broker.detach(&principal, id, &context).await),
        "terminate" => ended(broker.terminate(&principal, id, &context).await),
        _ => ApiError::not_found().into_response(),
    }
}

#[derive(Serialize)]
struct LeaseView {
    session_id: SessionId,
    #[serde(with = "time::serde::rfc3339")]
    acquired_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

#[derive(Serialize)]
struct WorkerView {
    id: WorkerId,
    kind: String,
    name: String,
    status: String,
    capacity: u32,
    active_sessions: usize,
    #[serde(with = "time::serde::rfc3339::option")]
    last_heartbeat_at: Option<OffsetDateTime>,
    /// Seconds since the last heartbeat; `null` before the first one.
    heartbeat_age_seconds: Option<f64>,
    leases: Vec<LeaseView>,
}

async fn workers(
    State(state): State<AppState>,
    PlatformAdmin(_): PlatformAdmin,
) -> Result<ApiJson<Page<WorkerView>>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let workers = state.broker().workers().await?;
    let items = workers
        .into_iter()
        .map(|status| WorkerView {
            id: status.worker.id,
            kind: status.worker.kind,
            name: status.worker.name,
            status: status.worker.status,
            capacity: status.worker.capacity,
            active_sessions: status.leases.len(),
            heartbeat_age_seconds: status.worker.last_heartbeat_at.map(|at| (now - at).as_seconds_f64().max(0.0)),
            last_heartbeat_at: status.worker.last_heartbeat_at,
            leases: status
                .leases
                .into_iter()
                .map(|lease| LeaseView {
                    session_id: lease.session_id,
                    acquired_at: lease.acquired_at,
                    expires_at: lease.expires_at,
                })
                .collect(),
        })
        .collect();
    Ok(ApiJson(Page { items, next_cursor: None }))
}
