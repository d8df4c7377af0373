//! Applies [`authorize`](super::policy::authorize) to a caller and an
//! organization: looks up the caller's standing, decides, and records
//! refusals that are worth knowing about (a member reaching past their role).

use rap_storage::OrgId;
use rap_storage::StorageError;
use rap_storage::repo::OrgScope;
use rap_storage::repo::Repositories;
use rap_storage::types::MembershipStatus;
use serde_json::json;
use time::OffsetDateTime;

use super::policy::{Action, Decision, OrgRole, Standing, authorize};
use crate::audit::{self, Outcome, RequestContext};
use crate::auth::Principal;

/// Why access was refused.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// Not a member (or no such organization): answered as "not found".
    #[error("not visible to the caller")]
    Hidden,
    #[error("not allowed for the caller's role")]
    Forbidden,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Clone)]
pub struct Gate {
    repositories: Repositories,
}

impl Gate {
    pub fn new(repositories: Repositories) -> Self {
        Self { repositories }
    }

    /// The caller's standing in `organization_id`: their role only if the
    /// membership is active.
    pub async fn standing(&self, principal: &Principal, organization_id: OrgId) -> Result<Standing, StorageError> {
        let membership = self.repositories.organizations.membership_of(organization_id, principal.user_id()).await?;
        let role = membership
            .filter(|membership| membership.status == MembershipStatus::Active)
            .map(|membership| membership.role);
        Ok(Standing { platform_admin: principal.is_platform_admin(), role })
    }

    /// Allows `action` in `organization_id` or says why not. An organization
    /// that does not exist is hidden even from platform admins.
    pub async fn check(
        &self,
        principal: &Principal,
        organization_id: OrgId,
        action: Action,
        context: &RequestContext,
    ) -> Result<Standing, Denied> {
        let standing = self.standing(principal, organization_id).await?;
        match authorize(standing, action) {
            Decision::Allow => {
                if standing.platform_admin
                    && standing.role.is_none()
                    && self.repositories.organizations.get(organization_id).await?.is_none()
                {
                    return Err(Denied::Hidden);
                }
                Ok(standing)
            }
            Decision::Hidden => Err(Denied::Hidden),
            Decision::Forbidden => {
                let event = audit::with(
                    audit::event(
                        context,
                        Some(principal.user_id()),
                        "authz.denied",
                        Outcome::Denied,
                        OffsetDateTime::now_utc(),
                    ),
                    json!({"action": action.as_str(), "role": standing.role.map(OrgRole::as_str)}),
                );
                self.repositories
                    .audit
                    .append(rap_storage::repo::AuditEvent { organization_id: Some(organization_id), ..event })
                    .await?;
                tracing::info!(user_id = %principal.user_id(), %organization_id, action = action.as_str(), "Denied by role");
                Err(Denied::Forbidden)
            }
        }
    }

    /// Which organizations a list may show the caller: the one asked for if
    /// the caller may do `action` there (refused as [`Self::check`] does),
    /// otherwise every organization for platform admins and the caller's
    /// own (active memberships) for everyone else. Every list asks this.
    pub async fn list_scope(
        &self,
        principal: &Principal,
        organization_id: Option<OrgId>,
        action: Action,
        context: &RequestContext,
    ) -> Result<OrgScope, Denied> {
        match organization_id {
            Some(id) => {
                self.check(principal, id, action, context).await?;
                Ok(OrgScope::Only(vec![id]))
            }
            None if principal.is_platform_admin() => Ok(OrgScope::All),
            None => Ok(OrgScope::Only(self.member_organizations(principal).await.map_err(Denied::Storage)?)),
        }
    }

    /// Organizations the caller has an active membership in.
    pub async fn member_organizations(&self, principal: &Principal) -> Result<Vec<OrgId>, StorageError> {
        let memberships = self.repositories.users.memberships(principal.user_id()).await?;
        Ok(memberships
            .into_iter()
            .filter(|view| view.membership.status == MembershipStatus::Active)
            .map(|view| view.membership.organization_id)
            .collect())
    }
}
