//! `GET /api/v1/audit-events`.

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use rap_storage::format_timestamp;
use rap_storage::repo::{AuditCursor, AuditEvent};
use rap_storage::{OrgId, SessionId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::service::AuditError;
use crate::http::extract::{Context, CurrentUser};
use crate::http::page::{self, Page};
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/audit-events", get(list))
}

impl From<AuditError> for ApiError {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::Denied(denied) => denied.into(),
            AuditError::OrganizationRequired => {
                ApiError::invalid_fields([("organization_id", "is required unless you are a platform administrator")])
            }
            AuditError::Storage(error) => error.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditListQuery {
    organization_id: Option<OrgId>,
    session_id: Option<SessionId>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct AuditView {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
    organization_id: Option<OrgId>,
    session_id: Option<SessionId>,
    actor_user_id: Option<UserId>,
    actor_kind: String,
    action: String,
    target_kind: Option<String>,
    target_id: Option<String>,
    outcome: String,
    details: Value,
    trace_id: Option<String>,
    ip: Option<String>,
}

impl From<AuditEvent> for AuditView {
    fn from(event: AuditEvent) -> Self {
        Self {
            id: event.id,
            occurred_at: event.occurred_at,
            organization_id: event.organization_id,
            session_id: event.session_id,
            actor_user_id: event.actor_user_id,
            actor_kind: event.actor_kind,
            action: event.action,
            target_kind: event.target_kind,
            target_id: event.target_id,
            outcome: event.outcome,
            details: event.details,
            trace_id: event.trace_id,
            ip: event.ip,
        }
    }
}

fn cursor_of(event: &AuditView) -> String {
    format!("{}|{}", format_timestamp(event.occurred_at), event.id)
}

fn parse_cursor(position: &str) -> Option<AuditCursor> {
    let (at, id) = position.split_once('|')?;
    Some(AuditCursor { occurred_at: rap_storage::parse_timestamp(at).ok()?, id: Uuid::parse_str(id).ok()? })
}

async fn list(
    State(state): State<AppState>,
    Context(context): Context,
    CurrentUser(principal): CurrentUser,
    Query(query): Query<AuditListQuery>,
) -> Result<ApiJson<Page<AuditView>>, ApiError> {
    let limit = page::limit(query.limit)?;
    let before = page::decode_cursor(query.cursor.as_deref())?
        .map(|position| {
            parse_cursor(&position)
                .ok_or_else(|| ApiError::invalid_fields([("cursor", "is not a cursor this API issued")]))
        })
        .transpose()?;
    let events =
        state.audit().list(&principal, query.organization_id, query.session_id, before, limit + 1, &context).await?;
    let views = events.into_iter().map(AuditView::from).collect();
    Ok(ApiJson(Page::from_overfetch(views, limit, cursor_of)))
}
