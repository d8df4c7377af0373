use rap_storage::{AuthSessionId, DeviceId, UserId};
use std::sync::Arc;
use std::time::Duration;

use rap_storage::StorageError;
use rap_storage::live::{Counters, TtlMap};
use rap_storage::repo::{
    AuthSessionRecord, DeviceRecord, DeviceRequest, NewLogin, RefreshTokenRecord, Repositories, RotateOutcome,
    UserRecord,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::password::{self, PasswordError, Passwords};
use super::token::{AccessClaims, AccessTokens, TokenError};
use super::validate::FieldError;
use super::{AccessChanges, PlatformRole, Principal, UserView};
use crate::audit::{self, Outcome, RequestContext};
use crate::config::AuthConfig;
use crate::keys::random_bytes;

/// Who vouches for platform roles: the installation's authority. Logins
/// ask it which platform role a user really has, and user creation asks it
/// to sign grants; defined here so that `auth` depends on no authority
/// (the installation implements it).
#[async_trait::async_trait]
pub trait PlatformAuthority: Send + Sync {
    /// The platform role `user` really has (in strict mode only what a
    /// valid signed grant backs).
    async fn effective_platform_role(&self, user: &UserRecord) -> Result<Option<PlatformRole>, StorageError>;
    /// A signed grant of `role` to `user_id`, ready to store.
    async fn signed_grant(
        &self,
        user_id: UserId,
        role: PlatformRole,
        now: OffsetDateTime,
    ) -> Result<rap_storage::repo::GrantRecord, StorageError>;
}

/// How long a user's snapshot (name, effective role) and an auth session's
/// "still open" are trusted between database reads. Revocations in this
/// process take effect at once; this bounds only how stale a snapshot gets.
const SNAPSHOT_TTL: Duration = Duration::from_secs(30);

/// What live state knows about an auth session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SessionState {
    Open,
    Revoked,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("authentication required")]
    Unauthorized,
    #[error("token expired")]
    TokenExpired,
    #[error("refresh token reused; auth session revoked")]
    RefreshTokenReused,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("email already in use")]
    EmailTaken,
    #[error("invalid field {}: {}", .0.0, .0.1)]
    InvalidField(FieldError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Clone, Default)]
pub struct DeviceRequestInput {
    pub id: Option<DeviceId>,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    pub device: DeviceRequestInput,
}

#[derive(Debug, Clone)]
pub struct NewUserRequest {
    pub email: String,
    pub password: String,
    pub display_name: String,
    pub platform_role: Option<PlatformRole>,
}

/// A fresh access + refresh pair and what it belongs to.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: String,
    pub access_expires_at: OffsetDateTime,
    pub refresh_token: String,
    pub refresh_expires_at: OffsetDateTime,
    pub auth_session_id: AuthSessionId,
    pub device: DeviceRecord,
    pub user: UserView,
}

/// The live state auth keeps outside the database. Every entry can be lost
/// (eviction, restart) without harm: a miss is answered from SQLite.
#[derive(Clone)]
pub struct AuthLiveState {
    /// `auth_session:<id>` → open (briefly) or revoked (as long as its
    /// access tokens can live).
    pub sessions: Arc<dyn TtlMap<SessionState>>,
    /// `user:<id>` → snapshot with the effective platform role.
    pub users: Arc<dyn TtlMap<UserView>>,
    /// `login:account:<sha256 of email>`, `login:ip:<ip>` → login attempts.
    pub counters: Arc<dyn Counters>,
}

#[derive(Clone)]
pub struct AuthService {
    inner: Arc<Inner>,
}

struct Inner {
    repositories: Repositories,
    installation: Arc<dyn PlatformAuthority>,
    live: AuthLiveState,
    tokens: AccessTokens,
    config: AuthConfig,
    passwords: Passwords,
    changes: AccessChanges,
}

pub mod users;

fn session_key(auth_session_id: AuthSessionId) -> String {
    format!("auth_session:{auth_session_id}")
}

fn user_key(user_id: UserId) -> String {
    format!("user:{user_id}")
}

fn hash_refresh_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn new_refresh_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes())
}

fn duration(std: Duration) -> time::Duration {
    time::Duration::try_from(std).unwrap_or(time::Duration::MAX)
}

impl AuthService {
    pub fn new(
        repositories: Repositories,
        installation: Arc<dyn PlatformAuthority>,
        live: AuthLiveState,
        token_key: &[u8; 32],
        config: AuthConfig,
        passwords: Passwords,
        changes: AccessChanges,
    ) -> Self {
        let tokens = AccessTokens::new(token_key);
        Self { inner: Arc::new(Inner { repositories, installation, live, tokens, config, passwords, changes }) }
    }

    /// Records a revocation in live state for as long as any access token of
    /// the session can live.
    async fn mark_revoked(&self, auth_session_id: AuthSessionId) {
        let ttl = self.inner.config.access_token_ttl;
        self.inner.live.sessions.insert(&session_key(auth_session_id), SessionState::Revoked, ttl).await;
    }

    /// Whether the auth session behind a token is open: live state first,
    /// SQLite on a miss (at most once per session per snapshot period).
    async fn session_is_open(&self, claims: &AccessClaims) -> Result<bool, StorageError> {
        if let Some(state) = self.inner.live.sessions.get(&session_key(claims.sid)).await {
            return Ok(state == SessionState::Open);
        }
        let now = OffsetDateTime::now_utc();
        let open = self.inner.repositories.auth.get_session(claims.sid).await?.is_some_and(|session| {
            session.user_id == claims.sub && session.revoked_at.is_none() && now < session.expires_at
        });
        if open {
            self.inner.live.sessions.insert(&session_key(claims.sid), SessionState::Open, SNAPSHOT_TTL).await;
        } else {
            self.mark_revoked(claims.sid).await;
        }
        Ok(open)
    }

    async fn user_view(&self, user: &UserRecord) -> Result<UserView, StorageError> {
        let role = self.inner.installation.effective_platform_role(user).await?;
        Ok(UserView::new(user, role))
    }

    /// Resolves a bearer token to its principal: MAC and expiry first (no
    /// I/O), then revocation and the user snapshot from live state.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = self.inner.tokens.verify(bearer, now).map_err(|error| match error {
            TokenError::Expired => AuthError::TokenExpired,
            TokenError::Malformed | TokenError::BadSignature => AuthError::Unauthorized,
        })?;
        if !self.session_is_open(&claims).await? {
            return Err(AuthError::Unauthorized);
        }
        let user = match self.inner.live.users.get(&user_key(claims.sub)).await {
            Some(user) => user,
            None => {
                let record = self.inner.repositories.users.get(claims.sub).await?.ok_or(AuthError::Unauthorized)?;
                let view = self.user_view(&record).await?;
                self.inner.live.users.insert(&user_key(claims.sub), view.clone(), SNAPSHOT_TTL).await;
                view
            }
        };
        if user.disabled {
            return Err(AuthError::Unauthorized);
        }
        Ok(Principal { user, auth_session_id: claims.sid })
    }

    fn issue_access(
        &self,
        user_id: UserId,
        auth_session_id: AuthSessionId,
        now: OffsetDateTime,
    ) -> (String, OffsetDateTime) {
        let expires_at = now + duration(self.inner.config.access_token_ttl);
        let claims = AccessClaims {
            sub: user_id,
            sid: auth_session_id,
            iat: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
            jti: Uuid::now_v7(),
        };
        (self.inner.tokens.issue(&claims), expires_at)
    }

    pub async fn login(&self, request: LoginRequest, context: &RequestContext) -> Result<TokenGrant, AuthError> {
        let now = OffsetDateTime::now_utc();
        let email = request.email.trim().to_lowercase();
        let config = &self.inner.config;
        let counters = &self.inner.live.counters;
        // Keyed by a digest: whatever was typed as an email, the key is short.
        let account_key = format!("login:account:{:x}", Sha256::digest(email.as_bytes()));
        let ip_key = context.ip.as_ref().map(|ip| format!("login:ip:{ip}"));
        // Every attempt counts before the slow password check, so parallel
        // guesses cannot all slip in under the limit.
        let mut retry_after_secs = None;
        let attempts = [
            Some((&account_key, config.max_failures_per_account)),
            ip_key.as_ref().map(|key| (key, config.max_failures_per_ip)),
        ];
        for (key, limit) in attempts.into_iter().flatten() {
            let window = counters.hit(key, config.failure_window).await;
            if window.count > limit {
                retry_after_secs = Some(retry_after_secs.unwrap_or(0).max(window.resets_in.as_secs().max(1)));
            }
        }
        if let Some(retry_after_secs) = retry_after_secs {
            tracing::warn!(retry_after_secs, "Login throttled");
            return Err(AuthError::RateLimited { retry_after_secs });
        }

        let plausible = email.len() <= 320 && request.password.len() <= password::MAX_PASSWORD_BYTES;
        let user = if plausible { self.inner.repositories.users.find_by_email(&email).await? } else { None };
        // Unknown users are checked against a dummy hash: same work, same time.
        let stored_hash = user.as_ref().and_then(|user| user.password_hash.clone());
        let matches = self.inner.passwords.verify(stored_hash, request.password).await;
        let user = match user {
            Some(user) if matches && !user.disabled => user,
            other => {
                let reason = match &other {
                    None => "unknown_user",
                    Some(user) if user.disabled => "user_disabled",
                    Some(_) => "wrong_password",
                };
                // The typed email is kept only when it names a real account:
                // a mistyped password in the email field must not be stored.
                let event = audit::with(
                    audit::event(context, other.as_ref().map(|user| user.id), "auth.login", Outcome::Failure, now),
                    json!({"reason": reason, "email": other.as_ref().map(|user| user.email.clone())}),
                );
                self.inner.repositories.audit.append(event).await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        // A success clears the account's count and does not count against
        // the address.
        counters.reset(&account_key).await;
        if let Some(ip_key) = &ip_key {
            counters.release(ip_key).await;
        }

        let session_id = AuthSessionId::generate();
        let refresh_token = new_refresh_token();
        let refresh_expires_at = now + duration(config.refresh_token_ttl);
        let device_name = request.device.name.map(|name| name.trim().chars().take(200).collect::<String>());
        let login = NewLogin {
            device: DeviceRequest {
                id: request.device.id,
                name: device_name.filter(|name| !name.is_empty()),
                fresh_id: DeviceId::generate(),
            },
            session: AuthSessionRecord {
                id: session_id,
                user_id: user.id,
                device_id: DeviceId::from_uuid(Uuid::nil()),
                created_at: now,
                last_used_at: now,
                expires_at: refresh_expires_at,
                revoked_at: None,
                revoke_reason: None,
                ip: context.ip.clone(),
                user_agent: context.user_agent.as_ref().map(|agent| agent.chars().take(512).collect()),
            },
            refresh_token: RefreshTokenRecord {
                id: Uuid::now_v7(),
                auth_session_id: session_id,
                token_hash: hash_refresh_token(&refresh_token),
                parent_id: None,
                created_at: now,
                expires_at: refresh_expires_at,
                rotated_at: None,
            },
            audit: audit::on(
                audit::event(context, Some(user.id), "auth.login", Outcome::Success, now),
                "auth_session",
                session_id,
            ),
        };
        let device = self.inner.repositories.auth.open_session(login).await?;
        let (access_token, access_expires_at) = self.issue_access(user.id, session_id, now);
        tracing::info!(user_id = %user.id, auth_session_id = %session_id, "Logged in");
        Ok(TokenGrant {
            access_token,
            access_expires_at,
            refresh_token,
            refresh_expires_at,
            auth_session_id: session_id,
            device,
            user: self.user_view(&user).await?,
        })
    }

    async fn revoke(
        &self,
        auth_session_id: AuthSessionId,
        reason: &str,
        event: rap_storage::repo::AuditEvent,
    ) -> Result<bool, StorageError> {
        let now = OffsetDateTime::now_utc();
        let revoked = self.inner.repositories.auth.revoke_session(auth_session_id, reason, now, event).await?;
        self.mark_revoked(auth_session_id).await;
        self.inner.changes.changed();
        Ok(revoked)
    }

    pub async fn refresh(&self, refresh_token: &str, context: &RequestContext) -> Result<TokenGrant, AuthError> {
        let now = OffsetDateTime::now_utc();
        let (token, session) = self
            .inner
            .repositories
            .auth
            .find_refresh_token(hash_refresh_token(refresh_token))
            .await?
            .ok_or(AuthError::Unauthorized)?;
        if token.rotated_at.is_some() {
            return Err(self.reused(&session, context, now).await);
        }
        if session.revoked_at.is_some() {
            return Err(AuthError::Unauthorized);
        }
        if now >= token.expires_at || now >= session.expires_at {
            return Err(AuthError::TokenExpired);
        }
        let next_token = new_refresh_token();
        let refresh_expires_at = now + duration(self.inner.config.refresh_token_ttl);
        let next = RefreshTokenRecord {
            id: Uuid::now_v7(),
            auth_session_id: session.id,
            token_hash: hash_refresh_token(&next_token),
            parent_id: Some(token.id),
            created_at: now,
            expires_at: refresh_expires_at,
            rotated_at: None,
        };
        match self.inner.repositories.auth.rotate_refresh_token(token.id, next, now).await? {
            RotateOutcome::Rotated => {}
            // Lost a race against another use of the same token: that is reuse.
            RotateOutcome::AlreadyRotated => return Err(self.reused(&session, context, now).await),
            RotateOutcome::SessionClosed => return Err(AuthError::Unauthorized),
        }
        let user = self.inner.repositories.users.get(session.user_id).await?.ok_or(AuthError::Unauthorized)?;
        if user.disabled {
            return Err(AuthError::Unauthorized);
        }
        let device = self
            .inner
            .repositories
            .auth
            .list_devices(user.id)
            .await?
            .into_iter()
            .find(|device| device.id == session.device_id)
            .ok_or(AuthError::Unauthorized)?;
        let (access_token, access_expires_at) = self.issue_access(user.id, session.id, now);
        Ok(TokenGrant {
            access_token,
            access_expires_at,
            refresh_token: next_token,
            refresh_expires_at,
            auth_session_id: session.id,
            device,
            user: self.user_view(&user).await?,
        })
    }

    /// A rotated refresh token came back: someone holds a copy. The whole
    /// family is revoked so that neither copy works any more.
    async fn reused(&self, session: &AuthSessionRecord, context: &RequestContext, now: OffsetDateTime) -> AuthError {
        let event = audit::on(
            audit::event(context, Some(session.user_id), "auth.refresh_token_reused", Outcome::Denied, now),
            "auth_session",
            session.id,
        );
        tracing::warn!(auth_session_id = %session.id, user_id = %session.user_id, "Refresh token reuse; revoking the auth session");
        match self.revoke(session.id, "refresh_token_reused", event).await {
            Ok(_) => AuthError::RefreshTokenReused,
            Err(error) => AuthError::Storage(error),
        }
    }

    pub async fn logout(&self, principal: &Principal, context: &RequestContext) -> Result<(), AuthError> {
        let now = OffsetDateTime::now_utc();
        let event = audit::on(
            audit::event(context, Some(principal.user_id()), "auth.logout", Outcome::Success, now),
            "auth_session",
            principal.auth_session_id,
        );
        self.revoke(principal.auth_session_id, "logout", event).await?;
        Ok(())
    }

    pub async fn sessions(&self, principal: &Principal) -> Result<Vec<AuthSessionRecord>, AuthError> {
        Ok(self.inner.repositories.auth.list_sessions(principal.user_id()).await?)
    }

    /// Revokes one of the caller's own auth sessions; anyone else's is 404.
    pub async fn revoke_session(
        &self,
        principal: &Principal,
        id: AuthSessionId,
        context: &RequestContext,
    ) -> Result<(), AuthError> {
        let session = self.inner.repositories.auth.get_session(id).await?;
        match session {
            Some(session) if session.user_id == principal.user_id() => {
                let now = OffsetDateTime::now_utc();
                let event = audit::on(
                    audit::event(context, Some(principal.user_id()), "auth.session_revoked", Outcome::Success, now),
                    "auth_session",
                    id,
                );
                self.revoke(id, "revoked_by_user", event).await?;
                Ok(())
            }
            _ => Err(AuthError::NotFound),
        }
    }

    pub async fn devices(&self, principal: &Principal) -> Result<Vec<DeviceRecord>, AuthError> {
        Ok(self.inner.repositories.auth.list_devices(principal.user_id()).await?)
    }

    pub async fn set_device_trust(
        &self,
        principal: &Principal,
        device_id: DeviceId,
        trusted: bool,
        context: &RequestContext,
    ) -> Result<DeviceRecord, AuthError> {
        let now = OffsetDateTime::now_utc();
        let action = if trusted { "auth.device_trusted" } else { "auth.device_untrusted" };
        let event = audit::on(
            audit::event(context, Some(principal.user_id()), action, Outcome::Success, now),
            "device",
            device_id,
        );
        self.inner
            .repositories
            .auth
            .set_device_trust(principal.user_id(), device_id, trusted, now, event)
            .await?
            .ok_or(AuthError::NotFound)
    }

    /// Revokes the device and every auth session on it, at once.
    pub async fn revoke_device(
        &self,
        principal: &Principal,
        device_id: DeviceId,
        context: &RequestContext,
    ) -> Result<(), AuthError> {
        let now = OffsetDateTime::now_utc();
        let event = audit::on(
            audit::event(context, Some(principal.user_id()), "auth.device_revoked", Outcome::Success, now),
            "device",
            device_id,
        );
        let revoked = self
            .inner
            .repositories
            .auth
            .revoke_device(principal.user_id(), device_id, now, event)
            .await?
            .ok_or(AuthError::NotFound)?;
        for id in revoked {
            self.mark_revoked(id).await;
        }
        self.inner.changes.changed();
        Ok(())
    }

    pub async fn me(&self, principal: &Principal) -> Result<Vec<rap_storage::repo::MembershipView>, AuthError> {
        Ok(self.inner.repositories.users.memberships(principal.user_id()).await?)
    }
}
