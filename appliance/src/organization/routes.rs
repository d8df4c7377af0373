//! `/api/v1/organizations/*`: organizations, memberships, identity sources.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use rap_storage::repo::{IdentityMappingRecord, IdentitySourceRecord, MembershipRecord, OrganizationRecord};
use rap_storage::{OrgId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::gate::Denied;
use super::policy::OrgRole;
use super::service::{
    IdentitySourceInput, MappingInput, MembershipInput, MembershipPatch, OrgError, OrganizationInput, OrganizationPatch,
};
use crate::http::extract::{Context, CurrentUser, PathId};
use crate::http::page::{ListQuery, Page};
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/organizations", get(list).post(create))
        .route("/api/v1/organizations/{id}", get(show).patch(update))
        .route("/api/v1/organizations/{id}/memberships", get(list_memberships).post(add_membership))
        .route(
            "/api/v1/organizations/{id}/memberships/{membership_id}",
            axum::routing::patch(update_membership).delete(delete_membership),
        )
        .route("/api/v1/organizations/{id}/identity-sources", get(list_sources).post(create_source))
        .route("/api/v1/organizations/{id}/identity-sources/{source_id}/mappings", get(list_mappings).post(add_mapping))
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Hidden => ApiError::not_found(),
            Denied::Forbidden => ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Your role does not allow this."),
            Denied::Storage(error) => error.into(),
        }
    }
}

impl From<OrgError> for ApiError {
    fn from(error: OrgError) -> Self {
        match error {
            OrgError::Denied(denied) => denied.into(),
            OrgError::NotFound => ApiError::not_found(),
            OrgError::InvalidField((field, reason)) => ApiError::invalid_fields([(field, reason)]),
            OrgError::Conflict((field, reason)) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "This conflicts with existing data.")
                    .with_details(json!({"fields": {field: reason}}))
            }
            OrgError::LastOwner => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "An organization must keep at least one active owner.")
                    .with_details(json!({"reason": "last_owner"}))
            }
            OrgError::Storage(error) => error.into(),
            OrgError::Secret(error) => ApiError::internal(&error),
        }
    }
}

#[derive(Serialize)]
struct OrganizationView {
    id: OrgId,
    slug: String,
    name: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<OrganizationRecord> for OrganizationView {
    fn from(record: OrganizationRecord) -> Self {
        Self {
            id: record.id,
            slug: record.slug,
            name: record.name,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    slug: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, ApiJson<OrganizationView>), ApiError> {
    let input = OrganizationInput { name: body.name, slug: body.slug };
    let organization = state.organizations().create(&principal, input, &context).await?;
    Ok((StatusCode::CREATED, ApiJson(organization.into())))
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<ApiJson<Page<OrganizationView>>, ApiError> {
    let (after, limit) = query.id_page()?;
    let organizations = state.organizations().list(&principal, after, limit + 1).await?;
    let views = organizations.into_iter().map(OrganizationView::from).collect();
    Ok(ApiJson(Page::from_overfetch(views, limit, |organization: &OrganizationView| organization.id.to_string())))
}

async fn show(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<OrgId>,
) -> Result<ApiJson<OrganizationView>, ApiError> {
    Ok(ApiJson(state.organizations().get(&principal, id, &context).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    slug: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<OrgId>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<ApiJson<OrganizationView>, ApiError> {
    let patch = OrganizationPatch { name: body.name, slug: body.slug };
    Ok(ApiJson(state.organizations().update(&principal, id, patch, &context).await?.into()))
}

#[derive(Serialize)]
struct MembershipView {
    id: Uuid,
    organization_id: OrgId,
    user_id: UserId,
    role: OrgRole,
    status: rap_storage::types::MembershipStatus,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<MembershipRecord> for MembershipView {
    fn from(record: MembershipRecord) -> Self {
        Self {
            id: record.id,
            organization_id: record.organization_id,
            user_id: record.user_id,
            role: record.role,
            status: record.status,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

async fn list_memberships(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<OrgId>,
) -> Result<ApiJson<Page<MembershipView>>, ApiError> {
    let memberships = state.organizations().memberships(&principal, id, &context).await?;
    Ok(ApiJson(Page { items: memberships.into_iter().map(MembershipView::from).collect(), next_cursor: None }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembershipBody {
    user_id: UserId,
    role: OrgRole,
}

async fn add_membership(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<OrgId>,
    ApiJson(body): ApiJson<MembershipBody>,
) -> Result<(StatusCode, ApiJson<MembershipView>), ApiError> {
    let input = MembershipInput { user_id: body.user_id, role: body.role };
    let membership = state.organizations().add_membership(&principal, id, input, &context).await?;
    Ok((StatusCode::CREATED, ApiJson(membership.into())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembershipPatchBody {
    role: Option<OrgRole>,
    status: Option<String>,
}

async fn update_membership(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId((id, membership_id)): PathId<(OrgId, Uuid)>,
    ApiJson(body): ApiJson<MembershipPatchBody>,
) -> Result<ApiJson<MembershipView>, ApiError> {
    let patch = MembershipPatch { role: body.role, status: body.status };
    Ok(ApiJson(state.organizations().update_membership(&principal, id, membership_id, patch, &context).await?.into()))
}

async fn delete_membership(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId((id, membership_id)): PathId<(OrgId, Uuid)>,
) -> Result<StatusCode, ApiError> {
    state.organizations().delete_membership(&principal, id, membership_id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct SourceView {
    id: Uuid,
    organization_id: OrgId,
    kind: String,
    name: String,
    config: serde_json::Value,
    enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<IdentitySourceRecord> for SourceView {
    fn from(record: IdentitySourceRecord) -> Self {
        Self {
            id: record.id,
            organization_id: record.organization_id,
            kind: record.kind,
            name: record.name,
            config: crate::secrets::redact_credentials(&record.config),
            enabled: record.enabled,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

async fn list_sources(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<OrgId>,
) -> Result<ApiJson<Page<SourceView>>, ApiError> {
    let sources = state.organizations().identity_sources(&principal, id, &context).await?;
    Ok(ApiJson(Page { items: sources.into_iter().map(SourceView::from).collect(), next_cursor: None }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceBody {
    kind: String,
    name: String,
    #[serde(default = "empty_object")]
    config: serde_json::Value,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

fn empty_object() -> serde_json::Value {
    json!({})
}

fn enabled_by_default() -> bool {
    true
}

async fn create_source(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId(id): PathId<OrgId>,
    ApiJson(body): ApiJson<SourceBody>,
) -> Result<(StatusCode, ApiJson<SourceView>), ApiError> {
    let input = IdentitySourceInput { kind: body.kind, name: body.name, config: body.config, enabled: body.enabled };
    let source = state.organizations().create_identity_source(&principal, id, input, &context).await?;
    Ok((StatusCode::CREATED, ApiJson(source.into())))
}

#[derive(Serialize)]
struct MappingView {
    id: Uuid,
    identity_source_id: Uuid,
    external_kind: String,
    external_id: String,
    user_id: Option<UserId>,
    role: Option<OrgRole>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<IdentityMappingRecord> for MappingView {
    fn from(record: IdentityMappingRecord) -> Self {
        Self {
            id: record.id,
            identity_source_id: record.identity_source_id,
            external_kind: record.external_kind,
            external_id: record.external_id,
            user_id: record.user_id,
            role: record.role,
            created_at: record.created_at,
        }
    }
}

async fn list_mappings(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId((id, source_id)): PathId<(OrgId, Uuid)>,
) -> Result<ApiJson<Page<MappingView>>, ApiError> {
    let mappings = state.organizations().mappings(&principal, id, source_id, &context).await?;
    Ok(ApiJson(Page { items: mappings.into_iter().map(MappingView::from).collect(), next_cursor: None }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingBody {
    external_kind: String,
    external_id: String,
    user_id: Option<UserId>,
    role: Option<OrgRole>,
}

async fn add_mapping(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    PathId((id, source_id)): PathId<(OrgId, Uuid)>,
    ApiJson(body): ApiJson<MappingBody>,
) -> Result<(StatusCode, ApiJson<MappingView>), ApiError> {
    let input = MappingInput {
        external_kind: body.external_kind,
        external_id: body.external_id,
        user_id: body.user_id,
        role: body.role,
    };
    let mapping = state.organizations().add_mapping(&principal, id, source_id, input, &context).await?;
    Ok((StatusCode::CREATED, ApiJson(mapping.into())))
}
