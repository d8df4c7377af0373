//! `/api/v1/auth/*` and `/api/v1/users`.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use rap_storage::repo::{AuthSessionRecord, DeviceRecord, MembershipView};
use rap_storage::{AuthSessionId, DeviceId, OrgId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::service::{AuthError, DeviceRequestInput, LoginRequest, NewUserRequest, TokenGrant};
use super::{PlatformRole, UserView};
use crate::http::extract::{Context, CurrentUser, PathId, PlatformAdmin};
use crate::http::page::{ListQuery, Page};
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
        .route("/api/v1/auth/sessions", get(list_sessions))
        .route("/api/v1/auth/sessions/{id}", delete(revoke_session))
        .route("/api/v1/auth/devices", get(list_devices))
        .route("/api/v1/auth/devices/{id}", delete(revoke_device))
        .route("/api/v1/auth/devices/{id}/trust", post(trust_device).delete(untrust_device))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}", patch(update_user))
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "The email or password is incorrect.")
            }
            AuthError::RateLimited { retry_after_secs } => {
                ApiError::rate_limited("Too many failed attempts; try again later.", "login_failures", retry_after_secs)
            }
            AuthError::Unauthorized => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication is required.")
            }
            AuthError::TokenExpired => {
                ApiError::new(StatusCode::UNAUTHORIZED, "token_expired", "The token has expired.")
            }
            AuthError::RefreshTokenReused => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "This refresh token was already used; the session has been signed out everywhere.",
            ),
            AuthError::Forbidden => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", "You are not allowed to do this.")
            }
            AuthError::NotFound => ApiError::not_found(),
            AuthError::EmailTaken => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "A user with this email already exists.")
                    .with_details(json!({"fields": {"email": "is already in use"}}))
            }
            AuthError::InvalidField((field, reason)) => ApiError::invalid_fields([(field, reason)]),
            AuthError::Password(error) => ApiError::internal(&error),
            AuthError::Storage(error) => error.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    device: Option<DeviceBody>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeviceBody {
    id: Option<DeviceId>,
    name: Option<String>,
}

#[derive(Serialize)]
struct DeviceView {
    id: DeviceId,
    name: Option<String>,
    trusted: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    trusted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    last_seen_at: Option<OffsetDateTime>,
}

impl From<DeviceRecord> for DeviceView {
    fn from(device: DeviceRecord) -> Self {
        Self {
            id: device.id,
            name: device.name,
            trusted: device.trusted,
            trusted_at: device.trusted_at,
            created_at: device.created_at,
            last_seen_at: device.last_seen_at,
        }
    }
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    #[serde(with = "time::serde::rfc3339")]
    access_expires_at: OffsetDateTime,
    refresh_token: String,
    #[serde(with = "time::serde::rfc3339")]
    refresh_expires_at: OffsetDateTime,
    auth_session_id: AuthSessionId,
    device: DeviceView,
    user: UserView,
}

impl From<TokenGrant> for TokenResponse {
    fn from(grant: TokenGrant) -> Self {
        Self {
            access_token: grant.access_token,
            access_expires_at: grant.access_expires_at,
            refresh_token: grant.refresh_token,
            refresh_expires_at: grant.refresh_expires_at,
            auth_session_id: grant.auth_session_id,
            device: grant.device.into(),
            user: grant.user,
        }
    }
}

async fn login(
    State(state): State<AppState>,
    Context(context): Context,
    ApiJson(body): ApiJson<LoginBody>,
) -> Response {
    let device = body.device.unwrap_or_default();
    let request = LoginRequest {
        email: body.email,
        password: body.password,
        device: DeviceRequestInput { id: device.id, name: device.name },
    };
    match state.auth().login(request, &context).await {
        Ok(grant) => ApiJson(TokenResponse::from(grant)).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    Context(context): Context,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<ApiJson<TokenResponse>, ApiError> {
    Ok(ApiJson(state.auth().refresh(&body.refresh_token, &context).await?.into()))
}

async fn logout(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
) -> Result<StatusCode, ApiError> {
    state.auth().logout(&principal, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct MembershipEntry {
    id: Uuid,
    organization_id: OrgId,
    organization_slug: String,
    organization_name: String,
    role: rap_storage::types::OrgRole,
    status: rap_storage::types::MembershipStatus,
}

impl From<MembershipView> for MembershipEntry {
    fn from(view: MembershipView) -> Self {
        Self {
            id: view.membership.id,
            organization_id: view.membership.organization_id,
            organization_slug: view.organization_slug,
            organization_name: view.organization_name,
            role: view.membership.role,
            status: view.membership.status,
        }
    }
}

#[derive(Serialize)]
struct MeResponse {
    user: UserView,
    platform_role: Option<PlatformRole>,
    memberships: Vec<MembershipEntry>,
    auth_session_id: AuthSessionId,
}

async fn me(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<ApiJson<MeResponse>, ApiError> {
    let memberships = state.auth().me(&principal).await?;
    Ok(ApiJson(MeResponse {
        platform_role: principal.user.platform_role,
        auth_session_id: principal.auth_session_id,
        memberships: memberships.into_iter().map(MembershipEntry::from).collect(),
        user: principal.user,
    }))
}

#[derive(Serialize)]
struct AuthSessionView {
    id: AuthSessionId,
    device_id: DeviceId,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_used_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
    revoke_reason: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    /// The session this request was made with.
    current: bool,
}

fn session_view(session: AuthSessionRecord, current: AuthSessionId) -> AuthSessionView {
    AuthSessionView {
        current: session.id == current,
        id: session.id,
        device_id: session.device_id,
        created_at: session.created_at,
        last_used_at: session.last_used_at,
        expires_at: session.expires_at,
        revoked_at: session.revoked_at,
        revoke_reason: session.revoke_reason,
        ip: session.ip,
        user_agent: session.user_agent,
    }
}

async fn list_sessions(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<ApiJson<Page<AuthSessionView>>, ApiError> {
    let sessions = state.auth().sessions(&principal).await?;
    let items = sessions.into_iter().map(|session| session_view(session, principal.auth_session_id)).collect();
    Ok(ApiJson(Page { items, next_cursor: None }))
}

async fn revoke_session(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<AuthSessionId>,
) -> Result<StatusCode, ApiError> {
    state.auth().revoke_session(&principal, id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_devices(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<ApiJson<Page<DeviceView>>, ApiError> {
    let devices = state.auth().devices(&principal).await?;
    Ok(ApiJson(Page { items: devices.into_iter().map(DeviceView::from).collect(), next_cursor: None }))
}

async fn trust_device(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<DeviceId>,
) -> Result<ApiJson<DeviceView>, ApiError> {
    Ok(ApiJson(state.auth().set_device_trust(&principal, id, true, &context).await?.into()))
}

async fn untrust_device(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<DeviceId>,
) -> Result<ApiJson<DeviceView>, ApiError> {
    Ok(ApiJson(state.auth().set_device_trust(&principal, id, false, &context).await?.into()))
}

async fn revoke_device(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<DeviceId>,
) -> Result<StatusCode, ApiError> {
    state.auth().revoke_device(&principal, id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    email: String,
    password: String,
    display_name: String,
    #[serde(default)]
    platform_role: Option<PlatformRole>,
}

async fn create_user(
    State(state): State<AppState>,
    Context(context): Context,
    PlatformAdmin(principal): PlatformAdmin,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<(StatusCode, ApiJson<UserView>), ApiError> {
    let request = NewUserRequest {
        email: body.email,
        password: body.password,
        display_name: body.display_name,
        platform_role: body.platform_role,
    };
    Ok((StatusCode::CREATED, ApiJson(state.auth().create_user(&principal, request, &context).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatchBody {
    disabled: bool,
}

/// `PATCH /api/v1/users/{id}` `{"disabled": true|false}`: a disabled user
/// is signed out everywhere at once, sockets included.
async fn update_user(
    State(state): State<AppState>,
    Context(context): Context,
    PlatformAdmin(principal): PlatformAdmin,
    PathId(id): PathId<UserId>,
    ApiJson(body): ApiJson<UserPatchBody>,
) -> Result<ApiJson<UserView>, ApiError> {
    Ok(ApiJson(state.auth().set_disabled(&principal, id, body.disabled, &context).await?))
}

async fn list_users(
    State(state): State<AppState>,
    PlatformAdmin(principal): PlatformAdmin,
    Query(query): Query<ListQuery>,
) -> Result<ApiJson<Page<UserView>>, ApiError> {
    let (after, limit) = query.id_page()?;
    let users = state.auth().list_users(&principal, after, limit + 1).await?;
    Ok(ApiJson(Page::from_overfetch(users, limit, |user| user.id.to_string())))
}
