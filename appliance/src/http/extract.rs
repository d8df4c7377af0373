//! Extractors that turn a request into what services need: the caller
//! ([`CurrentUser`], [`PlatformAdmin`]) and the request's context.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;

use super::error::ApiError;
use super::trace::TraceId;
use crate::audit::RequestContext;
use crate::auth::Principal;
use crate::state::AppState;

/// The authenticated caller (any valid, unrevoked access token).
pub struct CurrentUser(pub Principal);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::from(crate::auth::AuthError::Unauthorized))?;
        let principal = state.auth().authenticate(token).await?;
        Ok(Self(principal))
    }
}

/// A caller with an effective platform role.
pub struct PlatformAdmin(pub Principal);

impl FromRequestParts<AppState> for PlatformAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let CurrentUser(principal) = CurrentUser::from_request_parts(parts, state).await?;
        if !principal.is_platform_admin() {
            return Err(crate::auth::AuthError::Forbidden.into());
        }
        Ok(Self(principal))
    }
}

/// Trace id, peer address and user agent, for audit records. The peer is
/// the socket's address: the appliance is reached directly on the LAN, so
/// forwarding headers would only let clients lie about where they are.
pub struct Context(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(RequestContext {
            trace_id: parts.extensions.get::<TraceId>().map(|trace| trace.0.clone()),
            ip: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string()),
            user_agent: parts.headers.get(USER_AGENT).and_then(|value| value.to_str().ok()).map(str::to_owned),
        }))
    }
}

/// The UUIDs of a route's `{id}`-like segments (`{id}`, `{membership_id}`,
/// …), parsed before the handler runs: a bad one is a 400 naming the
/// segment (`{"fields": {"id": "must be a UUID"}}`). `T` is the id's type
/// (`SessionId`, `OrgId`, … or `Uuid`) for one id, a pair for two, in route
/// order. Other segments (a command name) are left to `Path`.
pub struct PathId<T>(pub T);

/// One id a path segment can name.
pub trait PathSegmentId: Sized {
    fn from_segment(id: uuid::Uuid) -> Self;
}

impl PathSegmentId for uuid::Uuid {
    fn from_segment(id: uuid::Uuid) -> Self {
        id
    }
}

macro_rules! path_segment_ids {
    ($($id:ty),+) => {
        $(impl PathSegmentId for $id {
            fn from_segment(id: uuid::Uuid) -> Self {
                <$id>::from_uuid(id)
            }
        })+
    };
}

path_segment_ids!(
    rap_storage::OrgId,
    rap_storage::UserId,
    rap_storage::ResourceId,
    rap_storage::SessionId,
    rap_storage::DeviceId,
    rap_storage::AuthSessionId,
    rap_storage::WorkerId
);

/// What [`PathId`] can hold.
pub trait PathIds: Sized {
    fn from_ids(ids: &[uuid::Uuid]) -> Option<Self>;
}

impl<T: PathSegmentId> PathIds for T {
    fn from_ids(ids: &[uuid::Uuid]) -> Option<Self> {
        match ids {
            [id] => Some(T::from_segment(*id)),
            _ => None,
        }
    }
}

impl<A: PathSegmentId, B: PathSegmentId> PathIds for (A, B) {
    fn from_ids(ids: &[uuid::Uuid]) -> Option<Self> {
        match ids {
            [first, second] => Some((A::from_segment(*first), B::from_segment(*second))),
            _ => None,
        }
    }
}

impl<S: Send + Sync, T: PathIds> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(segments) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::not_found())?;
        let mut ids = Vec::with_capacity(segments.len());
        for (name, value) in &segments {
            if name == "id" || name.ends_with("_id") {
                let id = uuid::Uuid::parse_str(value).map_err(|_| {
                    ApiError::invalid_request("The request has invalid fields.")
                        .with_details(serde_json::json!({"fields": {name: "must be a UUID"}}))
                })?;
                ids.push(id);
            }
        }
        // INVARIANT: routes and handlers agree on how many ids a path has;
        // a mismatch is a bug, answered as an internal error.
        T::from_ids(&ids).map(PathId).ok_or_else(|| ApiError::internal(&"route and handler disagree on path ids"))
    }
}
