//! User administration (platform admins): create, list, disable; and the
//! principal behind a held grant, re-checked when access changes.

use rap_storage::StorageError;
use rap_storage::repo::UserRecord;
use rap_storage::{AuthSessionId, UserId};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AuthError, AuthService, NewUserRequest, SessionState, session_key, user_key};
use crate::audit::{self, Outcome, RequestContext};
use crate::auth::{Principal, UserView, validate};

/// Why a held grant's principal is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalLost {
    /// The auth session ended: logout, revoked, its device removed, expired.
    SignedOut,
    UserDisabled,
    UserRemoved,
}

impl PrincipalLost {
    pub fn reason(self) -> &'static str {
        match self {
            Self::SignedOut => "signed_out",
            Self::UserDisabled => "user_disabled",
            Self::UserRemoved => "user_removed",
        }
    }
}

impl AuthService {
    /// Creates a user (platform admins only).
    pub async fn create_user(
        &self,
        principal: &Principal,
        request: NewUserRequest,
        context: &RequestContext,
    ) -> Result<UserView, AuthError> {
        if !principal.is_platform_admin() {
            return Err(AuthError::Forbidden);
        }
        let email = validate::email(&request.email).map_err(AuthError::InvalidField)?;
        validate::new_password(&request.password).map_err(AuthError::InvalidField)?;
        let display_name = validate::display_name(&request.display_name).map_err(AuthError::InvalidField)?;
        if self.inner.repositories.users.find_by_email(&email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let now = OffsetDateTime::now_utc();
        let user = UserRecord {
            id: UserId::generate(),
            email,
            password_hash: Some(self.inner.passwords.hash(request.password).await?),
            display_name,
            platform_role: request.platform_role.map(|role| role.as_str().to_owned()),
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        let grant = match request.platform_role {
            Some(role) => Some(self.inner.installation.signed_grant(user.id, role, now).await?),
            None => None,
        };
        let event = audit::with(
            audit::on(
                audit::event(context, Some(principal.user_id()), "user.created", Outcome::Success, now),
                "user",
                user.id,
            ),
            json!({"platform_role": user.platform_role}),
        );
        match self.inner.repositories.users.create(user.clone(), grant, event).await {
            Ok(()) => {}
            // Lost a race for the same email.
            Err(StorageError::Conflict(_)) => return Err(AuthError::EmailTaken),
            Err(error) => return Err(error.into()),
        }
        Ok(self.user_view(&user).await?)
    }

    pub async fn list_users(
        &self,
        principal: &Principal,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<UserView>, AuthError> {
        if !principal.is_platform_admin() {
            return Err(AuthError::Forbidden);
        }
        let users = self.inner.repositories.users.list(after, limit).await?;
        let mut views = Vec::with_capacity(users.len());
        for user in &users {
            views.push(self.user_view(user).await?);
        }
        Ok(views)
    }

    /// Disables (or enables again) a user. Disabling revokes every auth
    /// session of theirs at once, so their tokens and open sockets end;
    /// nobody disables themselves (the last admin could lock everyone out).
    pub async fn set_disabled(
        &self,
        principal: &Principal,
        user_id: UserId,
        disabled: bool,
        context: &RequestContext,
    ) -> Result<UserView, AuthError> {
        if !principal.is_platform_admin() {
            return Err(AuthError::Forbidden);
        }
        if user_id == principal.user_id() && disabled {
            return Err(AuthError::InvalidField(("disabled", "you cannot disable yourself")));
        }
        let now = OffsetDateTime::now_utc();
        let action = if disabled { "user.disabled" } else { "user.enabled" };
        let event =
            audit::on(audit::event(context, Some(principal.user_id()), action, Outcome::Success, now), "user", user_id);
        let (user, revoked) = self
            .inner
            .repositories
            .auth
            .set_user_disabled(user_id, disabled, now, event)
            .await?
            .ok_or(AuthError::NotFound)?;
        for id in revoked {
            self.mark_revoked(id).await;
        }
        self.inner.live.users.remove(&user_key(user_id)).await;
        self.inner.changes.changed();
        tracing::info!(%user_id, disabled, "User access changed");
        Ok(self.user_view(&user).await?)
    }

    /// The principal behind a grant held open (an attached socket), as of
    /// now: its auth session still open and its user still enabled.
    pub async fn principal_for(
        &self,
        user_id: UserId,
        auth_session_id: Option<AuthSessionId>,
    ) -> Result<Principal, PrincipalLost> {
        let storage = |_: StorageError| PrincipalLost::SignedOut;
        // The user first: disabling one also signs them out, and the
        // reason a person is shown should be the first cause.
        let record: UserRecord =
            self.inner.repositories.users.get(user_id).await.map_err(storage)?.ok_or(PrincipalLost::UserRemoved)?;
        if record.disabled {
            return Err(PrincipalLost::UserDisabled);
        }
        if let Some(id) = auth_session_id {
            let open = match self.inner.live.sessions.get(&session_key(id)).await {
                Some(state) => state == SessionState::Open,
                None => {
                    let now = OffsetDateTime::now_utc();
                    self.inner.repositories.auth.get_session(id).await.map_err(storage)?.is_some_and(|session| {
                        session.user_id == user_id && session.revoked_at.is_none() && now < session.expires_at
                    })
                }
            };
            if !open {
                return Err(PrincipalLost::SignedOut);
            }
        }
        let user = self.user_view(&record).await.map_err(storage)?;
        Ok(Principal { user, auth_session_id: auth_session_id.unwrap_or(AuthSessionId::from_uuid(Uuid::nil())) })
    }
}
