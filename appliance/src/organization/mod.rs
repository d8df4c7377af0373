//! Tenancy: organizations, memberships and roles, identity sources, and the
//! one authorization function every service uses ([`policy::authorize`],
//! applied by [`Gate`]).

mod gate;
pub mod policy;
pub(crate) mod routes;
mod service;

pub use gate::{Denied, Gate};
pub use service::{
    IdentitySourceInput, MappingInput, MembershipInput, MembershipPatch, OrgError, OrganizationInput,
    OrganizationPatch, OrganizationService,
};
