//! `/api/v1/installation` and the first-owner bootstrap.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rap_storage::repo::{GrantRecord, MembershipRecord, OrganizationRecord};
use rap_storage::{OrgId, UserId};
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
        .route("/api/v1/installation/ca.pem", get(ca_certificate))
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
            BootstrapError::SetupCodeRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Enter the one-time set-up code from the file setup-code in the appliance's data directory.",
            )
            .with_details(json!({"reason": "setup_code_required"})),
            BootstrapError::SetupCodeWrong => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", "The set-up code is not right.")
                    .with_details(json!({"reason": "setup_code_invalid"}))
            }
            BootstrapError::SetupCodeThrottled { retry_after } => ApiError::rate_limited(
                "Too many wrong set-up codes; try again later.",
                "setup_code_failures",
                retry_after.as_secs(),
            ),
            BootstrapError::SetupCodeFile(reason) => ApiError::internal(&reason),
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
    Ok(ApiJson(state.installation().view().await?))
}

/// The platform CA, for clients to trust (no authentication: it is public,
/// and needed before anything else is trusted). Only `APP_TLS=auto` has one.
async fn ca_certificate(State(state): State<AppState>) -> Response {
    match state.tls().and_then(crate::tls::Tls::ca) {
        Some(ca) => {
            let mut response = ca.cert_pem.clone().into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file"));
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"rap-appliance-ca.pem\""),
            );
            response
        }
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "This appliance has no platform CA: it serves plain HTTP or a certificate from another CA.",
        )
        .with_details(json!({"reason": "no_platform_ca", "tls_mode": crate::tls::Tls::view(state.tls()).mode}))
        .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapBody {
    email: String,
    password: String,
    display_name: String,
    #[serde(default)]
    activation: Option<Activation>,
    #[serde(default)]
    setup_code: Option<String>,
}

#[derive(Serialize)]
struct OrganizationView {
    id: OrgId,
    slug: String,
    name: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(Serialize)]
struct MembershipView {
    id: Uuid,
    organization_id: OrgId,
    user_id: UserId,
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
        setup_code: body.setup_code,
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
