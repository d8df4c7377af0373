use rap_storage::StorageError;
use rap_storage::repo::{AuditCursor, AuditEvent, AuditQuery, Repositories};
use rap_storage::{OrgId, SessionId};

use crate::audit::RequestContext;
use crate::auth::Principal;
use crate::organization::policy::Action;
use crate::organization::{Denied, Gate};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Only platform admins may read across organizations.
    #[error("organization_id is required")]
    OrganizationRequired,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Reading the audit log: platform admins everything, organization owners
/// and admins their organization's events.
#[derive(Clone)]
pub struct AuditService {
    repositories: Repositories,
    gate: Gate,
}

impl AuditService {
    pub fn new(repositories: Repositories, gate: Gate) -> Self {
        Self { repositories, gate }
    }

    pub async fn list(
        &self,
        principal: &Principal,
        organization_id: Option<OrgId>,
        session_id: Option<SessionId>,
        before: Option<AuditCursor>,
        limit: usize,
        context: &RequestContext,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        match organization_id {
            Some(id) => {
                self.gate.check(principal, id, Action::ReadAudit, context).await?;
            }
            None if principal.is_platform_admin() => {}
            None => return Err(AuditError::OrganizationRequired),
        }
        Ok(self.repositories.audit.list(AuditQuery { organization_id, session_id, limit, before }).await?)
    }
}
