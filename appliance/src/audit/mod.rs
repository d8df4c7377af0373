//! Building audit events. Every service writes its events through these
//! helpers, into the same transaction as the change they record.

use rap_storage::UserId;
use rap_storage::repo::AuditEvent;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// Who is asking and from where: what a service needs of the request
/// without seeing HTTP.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub trace_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// Starts an audit event for `action` by `actor` (a user, or the system when
/// `None`); fill in the rest with struct update syntax or the helpers.
pub fn event(
    context: &RequestContext,
    actor: Option<UserId>,
    action: &str,
    outcome: Outcome,
    now: OffsetDateTime,
) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        occurred_at: now,
        organization_id: None,
        session_id: None,
        actor_user_id: actor,
        actor_kind: if actor.is_some() { "user" } else { "anonymous" }.to_owned(),
        action: action.to_owned(),
        target_kind: None,
        target_id: None,
        outcome: outcome.as_str().to_owned(),
        details: Value::Object(serde_json::Map::new()),
        trace_id: context.trace_id.clone(),
        ip: context.ip.clone(),
    }
}

/// Sets the event's target.
pub fn on(mut event: AuditEvent, kind: &str, id: impl ToString) -> AuditEvent {
    event.target_kind = Some(kind.to_owned());
    event.target_id = Some(id.to_string());
    event
}

/// Adds `details` (a JSON object) to the event.
pub fn with(mut event: AuditEvent, details: Value) -> AuditEvent {
    if let (Value::Object(target), Value::Object(extra)) = (&mut event.details, details) {
        target.extend(extra);
    }
    event
}
