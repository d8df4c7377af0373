//! `/api/v1/resources/*`.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use rap_storage::repo::ResourceRecord;
use rap_storage::{OrgId, ResourceId, UserId};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::service::{PolicyInput, ResourceError, ResourceInput, ResourcePatch, SecretInput};
use super::{CertificateMode, PolicyMode, Protocol};
use crate::http::extract::{Context, CurrentUser, PathId};
use crate::http::page::{self, Page};
use crate::http::{ApiError, ApiJson};
use crate::secrets::redact_credentials;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/resources", get(list).post(create))
        .route("/api/v1/resources/{id}", get(show).patch(update).delete(delete))
        .route("/api/v1/resources/{id}/secret", put(put_secret))
}

impl From<ResourceError> for ApiError {
    fn from(error: ResourceError) -> Self {
        match error {
            ResourceError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "resource_not_found", "Resource not found.")
            }
            ResourceError::Organization(denied) => denied.into(),
            ResourceError::Forbidden => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Your role does not allow this.")
            }
            ResourceError::InvalidField((field, reason)) => ApiError::invalid_fields([(field, reason)]),
            ResourceError::PlaintextSecretForbidden(paths) => {
                let fields: serde_json::Map<String, Value> = paths
                    .into_iter()
                    .map(|path| {
                        (
                            path,
                            Value::from(
                                "credential-like keys are not allowed here in production; use the resource secret",
                            ),
                        )
                    })
                    .collect();
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "plaintext_secret_forbidden",
                    "Credentials must be stored as the resource's secret, not in its metadata.",
                )
                .with_details(json!({ "fields": fields }))
            }
            ResourceError::Secret(error) => ApiError::internal(&error),
            ResourceError::Storage(error) => error.into(),
        }
    }
}

#[derive(Serialize)]
struct PolicyView {
    clipboard_mode: PolicyMode,
    file_transfer_mode: PolicyMode,
    /// The seed's legacy flags, derived from the modes.
    clipboard_enabled: bool,
    file_transfer_enabled: bool,
}

#[derive(Serialize)]
struct ResourceView {
    id: ResourceId,
    organization_id: OrgId,
    name: String,
    protocol: Protocol,
    host: String,
    port: u16,
    certificate_verification_mode: CertificateMode,
    certificate_fingerprint: Option<String>,
    metadata: Value,
    policy: PolicyView,
    secret_ref: Option<String>,
    created_by_user_id: Option<UserId>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<ResourceRecord> for ResourceView {
    fn from(record: ResourceRecord) -> Self {
        Self {
            id: record.id,
            organization_id: record.organization_id,
            name: record.name,
            protocol: record.protocol,
            host: record.host,
            port: record.port,
            certificate_verification_mode: record.certificate_verification_mode,
            certificate_fingerprint: record.certificate_fingerprint,
            metadata: redact_credentials(&record.metadata),
            policy: PolicyView {
                clipboard_enabled: record.policy.clipboard_mode != PolicyMode::Disabled,
                file_transfer_enabled: record.policy.file_transfer_mode != PolicyMode::Disabled,
                clipboard_mode: record.policy.clipboard_mode,
                file_transfer_mode: record.policy.file_transfer_mode,
            },
            secret_ref: record.secret_ref,
            created_by_user_id: record.created_by_user_id,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    clipboard_mode: Option<String>,
    file_transfer_mode: Option<String>,
}

impl From<PolicyBody> for PolicyInput {
    fn from(body: PolicyBody) -> Self {
        Self { clipboard_mode: body.clipboard_mode, file_transfer_mode: body.file_transfer_mode }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    organization_id: OrgId,
    name: String,
    protocol: String,
    host: String,
    port: Option<u16>,
    certificate_verification_mode: Option<String>,
    certificate_fingerprint: Option<String>,
    metadata: Option<Value>,
    policy: Option<PolicyBody>,
}

async fn create(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, ApiJson<ResourceView>), ApiError> {
    let input = ResourceInput {
        organization_id: body.organization_id,
        name: body.name,
        protocol: body.protocol,
        host: body.host,
        port: body.port,
        certificate_verification_mode: body.certificate_verification_mode,
        certificate_fingerprint: body.certificate_fingerprint,
        metadata: body.metadata,
        policy: body.policy.map(PolicyInput::from),
    };
    let resource = state.resources().create(&principal, input, &context).await?;
    Ok((StatusCode::CREATED, ApiJson(resource.into())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    organization_id: Option<OrgId>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<ApiJson<Page<ResourceView>>, ApiError> {
    let (after, limit) = page::ListQuery { limit: query.limit, cursor: query.cursor }.id_page()?;
    let resources = state.resources().list(&principal, query.organization_id, after, limit + 1, &context).await?;
    let views = resources.into_iter().map(ResourceView::from).collect();
    Ok(ApiJson(Page::from_overfetch(views, limit, |resource: &ResourceView| resource.id.to_string())))
}

async fn show(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<ResourceId>,
) -> Result<ApiJson<ResourceView>, ApiError> {
    Ok(ApiJson(state.resources().get(&principal, id, &context).await?.into()))
}

/// Tells `"field": null` (clear it) from an absent field (keep it).
fn explicit<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    certificate_verification_mode: Option<String>,
    #[serde(default, deserialize_with = "explicit")]
    certificate_fingerprint: Option<Option<String>>,
    metadata: Option<Value>,
    policy: Option<PolicyBody>,
}

async fn update(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<ResourceId>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<ApiJson<ResourceView>, ApiError> {
    let patch = ResourcePatch {
        name: body.name,
        host: body.host,
        port: body.port,
        certificate_verification_mode: body.certificate_verification_mode,
        certificate_fingerprint: body.certificate_fingerprint,
        metadata: body.metadata,
        policy: body.policy.map(PolicyInput::from),
    };
    Ok(ApiJson(state.resources().update(&principal, id, patch, &context).await?.into()))
}

async fn delete(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<ResourceId>,
) -> Result<StatusCode, ApiError> {
    state.resources().delete(&principal, id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    username: String,
    password: String,
    domain: Option<String>,
}

#[derive(Serialize)]
struct SecretView {
    secret_ref: String,
    key_id: String,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

async fn put_secret(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<ResourceId>,
    ApiJson(body): ApiJson<SecretBody>,
) -> Result<ApiJson<SecretView>, ApiError> {
    let input = SecretInput { username: body.username, password: body.password, domain: body.domain };
    let (secret, secret_ref) = state.resources().put_secret(&principal, id, input, &context).await?;
    Ok(ApiJson(SecretView { secret_ref, key_id: secret.key_id, updated_at: secret.updated_at }))
}
