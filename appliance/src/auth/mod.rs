//! Identity: users, logins, tokens, devices (the seed's auth foundation).
//!
//! - [`password`]: Argon2id hashing on the blocking pool.
//! - [`token`]: access tokens, checked without I/O.
//! - [`service`]: login with throttling, refresh rotation with reuse
//!   detection, logout, auth sessions, devices, users.
//! - Revocation is checked against live state, not the database, on every
//!   request: a revoked auth session's access tokens stop at once.

mod changes;
pub mod password;
pub(crate) mod routes;
pub mod service;
pub mod token;
pub mod validate;

use rap_storage::repo::UserRecord;
use rap_storage::{AuthSessionId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use changes::AccessChanges;
pub use password::Passwords;
pub use service::users::PrincipalLost;
pub use service::{
    AuthError, AuthService, DeviceRequestInput, LoginRequest, NewUserRequest, PlatformAuthority, TokenGrant,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformRole {
    PlatformAdmin,
    PlatformRecoveryAdmin,
}

impl PlatformRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformAdmin => "platform_admin",
            Self::PlatformRecoveryAdmin => "platform_recovery_admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "platform_admin" => Some(Self::PlatformAdmin),
            "platform_recovery_admin" => Some(Self::PlatformRecoveryAdmin),
            _ => None,
        }
    }
}

/// A user as the API shows it: never the password hash, and the platform
/// role that is in effect (not merely the column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub platform_role: Option<PlatformRole>,
    pub disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl UserView {
    pub fn new(user: &UserRecord, effective_role: Option<PlatformRole>) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            platform_role: effective_role,
            disabled: user.disabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: UserView,
    pub auth_session_id: AuthSessionId,
}

impl Principal {
    pub fn user_id(&self) -> UserId {
        self.user.id
    }

    pub fn is_platform_admin(&self) -> bool {
        // The recovery admin has the same reach: it exists to regain control.
        self.user.platform_role.is_some()
    }
}
