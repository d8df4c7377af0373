//! The one authorization function. Every service asks it before reading or
//! writing anything that belongs to an organization; nothing else decides.
//!
//! The seed's model: platform administrators act everywhere; `org_owner`
//! and `org_admin` manage their organization (only an owner may make or
//! unmake owners); `org_operator`, `org_member` and `org_viewer` read within
//! their organization and use resources through their own sessions
//! (viewers only read), and are denied every admin action. Someone with no
//! active membership learns nothing: the organization's objects are "not
//! found" to them.

pub use rap_storage::types::OrgRole;

/// Owners and admins manage their organization.
fn manages(role: OrgRole) -> bool {
    matches!(role, OrgRole::OrgOwner | OrgRole::OrgAdmin)
}

/// Everything that is authorized against an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ReadOrganization,
    UpdateOrganization,
    ReadMemberships,
    ManageMemberships,
    /// Make someone an owner, or change or remove an owner's membership.
    ManageOwners,
    ReadIdentitySources,
    ManageIdentitySources,
    ReadResources,
    ManageResources,
    WriteSecret,
    ReadAudit,
    /// Start and drive one's own remote sessions.
    UseResources,
    /// Watch, terminate or take over anyone's session in the organization.
    ManageSessions,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOrganization => "read_organization",
            Self::UpdateOrganization => "update_organization",
            Self::ReadMemberships => "read_memberships",
            Self::ManageMemberships => "manage_memberships",
            Self::ManageOwners => "manage_owners",
            Self::ReadIdentitySources => "read_identity_sources",
            Self::ManageIdentitySources => "manage_identity_sources",
            Self::ReadResources => "read_resources",
            Self::ManageResources => "manage_resources",
            Self::WriteSecret => "write_secret",
            Self::ReadAudit => "read_audit",
            Self::UseResources => "use_resources",
            Self::ManageSessions => "manage_sessions",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A member asked for more than the role allows: 403.
    Forbidden,
    /// Not a member: the object is not shown to exist (404).
    Hidden,
}

/// Who is asking, as far as one organization is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub platform_admin: bool,
    /// The caller's role if their membership is active.
    pub role: Option<OrgRole>,
}

pub fn authorize(standing: Standing, action: Action) -> Decision {
    if standing.platform_admin {
        return Decision::Allow;
    }
    let Some(role) = standing.role else { return Decision::Hidden };
    let allowed = match action {
        Action::ReadOrganization | Action::ReadMemberships | Action::ReadResources => true,
        Action::UseResources => role != OrgRole::OrgViewer,
        Action::ManageOwners => role == OrgRole::OrgOwner,
        Action::UpdateOrganization
        | Action::ManageMemberships
        | Action::ReadIdentitySources
        | Action::ManageIdentitySources
        | Action::ManageResources
        | Action::WriteSecret
        | Action::ReadAudit
        | Action::ManageSessions => manages(role),
    };
    if allowed { Decision::Allow } else { Decision::Forbidden }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIONS: [Action; 13] = [
        Action::ReadOrganization,
        Action::UpdateOrganization,
        Action::ReadMemberships,
        Action::ManageMemberships,
        Action::ManageOwners,
        Action::ReadIdentitySources,
        Action::ManageIdentitySources,
        Action::ReadResources,
        Action::ManageResources,
        Action::WriteSecret,
        Action::ReadAudit,
        Action::UseResources,
        Action::ManageSessions,
    ];

    /// The whole matrix, one row per standing: A = allow, F = forbidden,
    /// H = hidden, in the order of `ACTIONS`.
    #[test]
    fn the_role_matrix() {
        let row = |standing: Standing| -> String {
            ACTIONS
                .iter()
                .map(|action| match authorize(standing, *action) {
                    Decision::Allow => 'A',
                    Decision::Forbidden => 'F',
                    Decision::Hidden => 'H',
                })
                .collect()
        };
        let member = |role| Standing { platform_admin: false, role: Some(role) };
        assert_eq!(row(Standing { platform_admin: true, role: None }), "AAAAAAAAAAAAA");
        assert_eq!(row(member(OrgRole::OrgOwner)), "AAAAAAAAAAAAA");
        assert_eq!(row(member(OrgRole::OrgAdmin)), "AAAAFAAAAAAAA");
        assert_eq!(row(member(OrgRole::OrgOperator)), "AFAFFFFAFFFAF");
        assert_eq!(row(member(OrgRole::OrgMember)), "AFAFFFFAFFFAF");
        assert_eq!(row(member(OrgRole::OrgViewer)), "AFAFFFFAFFFFF");
        assert_eq!(row(Standing { platform_admin: false, role: None }), "HHHHHHHHHHHHH");
    }
}
