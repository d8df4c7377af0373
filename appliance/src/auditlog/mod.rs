//! Reading the audit log (`GET /api/v1/audit-events`): who may read which
//! organization's events. Writing them is [`crate::audit`]'s, inside each
//! change's own transaction.

pub(crate) mod routes;
mod service;

pub use service::{AuditError, AuditService};
