//! `/api/v1/installation` and the first-owner bootstrap.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use rap_storage::repo::{GrantRecord, MembershipRecord, OrganizationRecord};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::manifest::Activation;
use super::service::{BootstrapError, BootstrapOwner, InstallationView};
use crate::auth::UserView;
use crate::http::extract::Context;
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/installation", get(installation))
        .route("/api/v1/installation/bootstrap-owner", post(bootstrap_owner))
}

impl From<BootstrapError> for ApiError {
    fn from(error: BootstrapError) -> Self {
        match error {
            BootstrapError::InvalidField((field, reason)) => ApiError::invalid_fields([(field, reason)]),
            BootstrapError::ActivationRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "A signed activation is required to bootstrap the owner.",
            )
            .with_details(json!({"reason": "activation_required"})),
            BootstrapError::NoProductRootKey => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", "This installation cannot verify activations.")
                    .with_details(json!({"reason": "product_root_key_missing"}))
            }
            BootstrapError::Activation(error) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", "The activation was refused.")
                    .with_details(json!({"reason": error.reason()}))
            }
            BootstrapError::AlreadyBootstrapped => {
                ApiError::new(StatusCode::CONFLICT, "already_bootstrapped", "The installation already has an owner.")
            }
            BootstrapError::Password(error) => ApiError::internal(&error),
            BootstrapError::Storage(error) => error.into(),
        }
    }
}

async fn installation(State(state): State<AppState>) -> Result<ApiJson<InstallationView>, ApiError> {
    let view = state.installation().view().await?;
    Ok(ApiJson(InstallationView { session_protocols: state.config().broker.runtime.protocols(), ..view }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapBody {
    email: String,
    password: String,
    display_name: String,
    #[serde(default)]
    activation: Option<Activation>,
}

#[derive(Serialize)]
struct OrganizationView {
    id: Uuid,
    slug: String,
    name: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(Serialize)]
struct MembershipView {
    id: Uuid,
    organization_id: Uuid,
    user_id: Uuid,
    role: rap_storage::types::OrgRole,
    status: rap_storage::types::MembershipStatus,
}

#[derive(Serialize)]
struct GrantView {
    id: Uuid,
    role: String,
    installation_id: Uuid,
    signing_key_id: String,
    #[serde(with = "time::serde::rfc3339")]
    granted_at: OffsetDateTime,
}

#[derive(Serialize)]
struct BootstrapResponse {
    /// The contract answers "with the user": its fields at the top level.
    #[serde(flatten)]
    created: UserView,
    user: UserView,
    organization: OrganizationView,
    membership: MembershipView,
    platform_role_grant: GrantView,
}

fn organization_view(organization: OrganizationRecord) -> OrganizationView {
    OrganizationView {
        id: organization.id,
        slug: organization.slug,
        name: organization.name,
        created_at: organization.created_at,
    }
}

fn membership_view(membership: MembershipRecord) -> MembershipView {
    MembershipView {
        id: membership.id,
        organization_id: membership.organization_id,
        user_id: membership.user_id,
        role: membership.role,
        status: membership.status,
    }
}

fn grant_view(grant: GrantRecord) -> GrantView {
    GrantView {
        id: grant.id,
        role: grant.role,
        installation_id: grant.installation_id,
        signing_key_id: grant.signing_key_id,
        granted_at: grant.granted_at,
    }
}

async fn bootstrap_owner(
    State(state): State<AppState>,
    Context(context): Context,
    ApiJson(body): ApiJson<BootstrapBody>,
) -> Result<(StatusCode, ApiJson<BootstrapResponse>), ApiError> {
    let request = BootstrapOwner {
        email: body.email,
        password: body.password,
        display_name: body.display_name,
        activation: body.activation,
    };
    let result = state.installation().bootstrap_owner(request, &context).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(BootstrapResponse {
            created: result.user.clone(),
            user: result.user,
            organization: organization_view(result.organization),
            membership: membership_view(result.membership),
            platform_role_grant: grant_view(result.grant),
        }),
    ))
}
