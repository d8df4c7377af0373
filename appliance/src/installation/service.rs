use rap_storage::{OrgId, UserId};
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use rap_storage::StorageError;
use rap_storage::repo::{
    Bootstrap, GrantRecord, InstallationRecord, MembershipRecord, OrganizationRecord, Repositories, UserRecord,
};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::grant;
use super::manifest::{self, Activation, ActivationError};
use super::setup_code::{SetupCode, SetupCodeError};
use crate::audit::{self, Outcome, RequestContext};
use crate::auth::password::{PasswordError, Passwords};
use crate::auth::validate::{self, FieldError};
use crate::auth::{PlatformRole, UserView};
use crate::config::{AppEnv, AuthorityMode, InstallationConfig};
use crate::keys::KeyRing;

/// Slug of the organization every bootstrap owner lands in.
pub const DEFAULT_ORGANIZATION_SLUG: &str = "default";

#[derive(Debug, Clone, serde::Serialize)]
pub struct InstallationView {
    pub installation_id: Uuid,
    pub bootstrapped: bool,
    pub authority_mode: &'static str,
    pub app_env: &'static str,
    /// Resource protocols sessions can be started on here.
    pub session_protocols: &'static [&'static str],
    pub tls: crate::tls::TlsView,
    /// What creating the first owner asks for: `activation` (strict),
    /// `setup_code` (legacy) or `none` (insecure bootstrap, for tests);
    /// `null` once there is an owner.
    pub bootstrap_method: Option<&'static str>,
}

/// What `bootstrap-owner` is asked to do.
#[derive(Debug, Clone)]
pub struct BootstrapOwner {
    pub email: String,
    pub password: String,
    pub display_name: String,
    pub activation: Option<Activation>,
    /// The one-time code from `APP_DATA_DIR/setup-code` (legacy mode).
    pub setup_code: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BootstrapResult {
    pub user: UserView,
    pub organization: OrganizationRecord,
    pub membership: MembershipRecord,
    pub grant: GrantRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("invalid field {}: {}", .0.0, .0.1)]
    InvalidField(FieldError),
    #[error("activation required")]
    ActivationRequired,
    #[error("set-up code required")]
    SetupCodeRequired,
    #[error("wrong set-up code")]
    SetupCodeWrong,
    #[error("too many wrong set-up codes")]
    SetupCodeThrottled { retry_after: std::time::Duration },
    #[error("activation refused: {0}")]
    Activation(ActivationError),
    #[error("the set-up code file: {0}")]
    SetupCodeFile(String),
    #[error("no Product Root key is configured")]
    NoProductRootKey,
    #[error("already bootstrapped")]
    AlreadyBootstrapped,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The installation's identity and authority rules.
#[derive(Clone)]
pub struct InstallationService {
    inner: Arc<Inner>,
}

struct Inner {
    repositories: Repositories,
    config: InstallationConfig,
    app_env: AppEnv,
    keys: KeyRing,
    passwords: Passwords,
    record: OnceCell<InstallationRecord>,
    session_protocols: &'static [&'static str],
    tls: crate::tls::TlsView,
    setup_code: parking_lot::RwLock<Arc<SetupCode>>,
    data_dir: std::path::PathBuf,
}

/// What the installation serves with, beside its own configuration.
pub struct InstallationSetting {
    pub app_env: AppEnv,
    pub data_dir: std::path::PathBuf,
    pub session_protocols: &'static [&'static str],
    pub tls: crate::tls::TlsView,
}

impl InstallationService {
    pub fn new(
        repositories: Repositories,
        config: InstallationConfig,
        setting: InstallationSetting,
        keys: KeyRing,
        passwords: Passwords,
    ) -> Self {
        let setup_code = parking_lot::RwLock::new(Arc::new(SetupCode::none(&setting.data_dir)));
        Self {
            inner: Arc::new(Inner {
                repositories,
                config,
                app_env: setting.app_env,
                keys,
                passwords,
                record: OnceCell::new(),
                session_protocols: setting.session_protocols,
                tls: setting.tls,
                setup_code,
                data_dir: setting.data_dir,
            }),
        }
    }

    /// Whether the first owner is proven by a set-up code here.
    fn uses_setup_code(&self) -> bool {
        self.inner.config.authority_mode == AuthorityMode::Legacy && !self.inner.config.insecure_bootstrap_enabled
    }

    /// At start: while there is no owner (and the mode asks for it), makes
    /// or reloads the set-up code and says where it is; once there is one,
    /// deletes a code left behind.
    pub async fn prepare_first_run(&self) -> Result<(), BootstrapError> {
        let bootstrapped = self.view().await?.bootstrapped;
        let data_dir = self.inner.data_dir.clone();
        if bootstrapped || !self.uses_setup_code() {
            if bootstrapped {
                let stale = SetupCode::none(&data_dir);
                let _ = tokio::task::spawn_blocking(move || stale.retire()).await;
            }
            return Ok(());
        }
        let code = tokio::task::spawn_blocking(move || SetupCode::load_or_create(&data_dir))
            .await
            .map_err(|error| BootstrapError::SetupCodeFile(error.to_string()))?
            .map_err(|error| BootstrapError::SetupCodeFile(error.to_string()))?;
        tracing::warn!(
            path = %code.path().display(),
            "No owner yet: open the appliance in a browser and enter the one-time set-up code from this file"
        );
        *self.inner.setup_code.write() = Arc::new(code);
        Ok(())
    }

    pub fn authority_mode(&self) -> AuthorityMode {
        self.inner.config.authority_mode
    }

    /// The installation row, created on first use and cached for the process.
    pub async fn record(&self) -> Result<&InstallationRecord, StorageError> {
        self.inner
            .record
            .get_or_try_init(|| async {
                let candidate = InstallationRecord {
                    installation_id: Uuid::now_v7(),
                    authority_mode: self.inner.config.authority_mode.as_str().to_owned(),
                    created_at: OffsetDateTime::now_utc(),
                };
                self.inner.repositories.installation.get_or_create(candidate).await
            })
            .await
    }

    pub async fn view(&self) -> Result<InstallationView, StorageError> {
        let record = self.record().await?;
        let status = self.inner.repositories.installation.status().await?;
        let bootstrapped = status.is_some_and(|status| status.bootstrapped_at.is_some());
        let bootstrap_method = match self.inner.config.authority_mode {
            _ if bootstrapped => None,
            AuthorityMode::Strict => Some("activation"),
            AuthorityMode::Legacy if self.inner.config.insecure_bootstrap_enabled => Some("none"),
            AuthorityMode::Legacy => Some("setup_code"),
        };
        Ok(InstallationView {
            installation_id: record.installation_id,
            bootstrapped,
            authority_mode: self.inner.config.authority_mode.as_str(),
            app_env: self.inner.app_env.as_str(),
            session_protocols: self.inner.session_protocols,
            tls: self.inner.tls.clone(),
            bootstrap_method,
        })
    }

    /// The platform role `user` really has: in strict mode only what a grant
    /// signed by this installation's key backs.
    pub async fn effective_platform_role(&self, user: &UserRecord) -> Result<Option<PlatformRole>, StorageError> {
        let Some(claimed) = user.platform_role.as_deref().and_then(PlatformRole::parse) else { return Ok(None) };
        if self.inner.config.authority_mode == AuthorityMode::Legacy {
            return Ok(Some(claimed));
        }
        let installation_id = self.record().await?.installation_id;
        let key = self.inner.keys.installation_signing.verifying_key();
        let grants = self.inner.repositories.users.active_grants(user.id).await?;
        let backed = grants.iter().any(|grant| {
            grant.role == claimed.as_str() && grant.installation_id == installation_id && grant::verify(grant, &key)
        });
        if !backed {
            tracing::warn!(user_id = %user.id, role = claimed.as_str(), "Platform role without a valid signed grant ignored");
        }
        Ok(backed.then_some(claimed))
    }

    /// A signed grant of `role` to `user_id`, ready to store.
    pub async fn signed_grant(
        &self,
        user_id: UserId,
        role: PlatformRole,
        now: OffsetDateTime,
    ) -> Result<GrantRecord, StorageError> {
        let installation_id = self.record().await?.installation_id;
        let unsigned = GrantRecord {
            id: Uuid::now_v7(),
            user_id,
            role: role.as_str().to_owned(),
            installation_id,
            signature: Vec::new(),
            signing_key_id: self.inner.keys.installation_key_id.clone(),
            granted_at: now,
        };
        Ok(grant::sign(unsigned, &self.inner.keys.installation_signing))
    }

    fn product_root_key(&self) -> Result<VerifyingKey, BootstrapError> {
        let bytes = self.inner.config.product_root_public_key.ok_or(BootstrapError::NoProductRootKey)?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| BootstrapError::NoProductRootKey)
    }

    /// Creates the first owner: a platform admin with a signed grant and
    /// `org_owner` of the `default` organization. Once only.
    pub async fn bootstrap_owner(
        &self,
        request: BootstrapOwner,
        context: &RequestContext,
    ) -> Result<BootstrapResult, BootstrapError> {
        let email = validate::email(&request.email).map_err(BootstrapError::InvalidField)?;
        validate::new_password(&request.password).map_err(BootstrapError::InvalidField)?;
        let display_name = validate::display_name(&request.display_name).map_err(BootstrapError::InvalidField)?;
        let now = OffsetDateTime::now_utc();
        let installation_id = self.record().await?.installation_id;
        // Public knowledge (GET /installation), so it is answered first.
        if self.view().await?.bootstrapped {
            return Err(BootstrapError::AlreadyBootstrapped);
        }

        let outcome = self.check_proof(&request, installation_id, &email, now, context);
        if let Err(error) = &outcome {
            let event = audit::with(
                audit::event(context, None, "installation.bootstrap_owner", Outcome::Denied, now),
                json!({"reason": bootstrap_denial_reason(error), "email": email}),
            );
            self.inner.repositories.audit.append(event).await?;
            outcome?;
        }

        let password_hash = self.inner.passwords.hash(request.password).await?;
        let owner = UserRecord {
            id: UserId::generate(),
            email,
            password_hash: Some(password_hash),
            display_name,
            platform_role: Some(PlatformRole::PlatformAdmin.as_str().to_owned()),
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        let grant = self.signed_grant(owner.id, PlatformRole::PlatformAdmin, now).await?;
        let organization = OrganizationRecord {
            id: OrgId::generate(),
            slug: DEFAULT_ORGANIZATION_SLUG.to_owned(),
            name: "Default".to_owned(),
            created_at: now,
            updated_at: now,
        };
        let membership = MembershipRecord {
            id: Uuid::now_v7(),
            organization_id: organization.id,
            user_id: owner.id,
            role: rap_storage::types::OrgRole::OrgOwner,
            status: rap_storage::types::MembershipStatus::Active,
            created_at: now,
            updated_at: now,
        };
        let event = audit::with(
            audit::on(
                audit::event(context, Some(owner.id), "installation.bootstrap_owner", Outcome::Success, now),
                "user",
                owner.id,
            ),
            json!({
                "activation": request.activation.is_some(),
                "setup_code": request.activation.is_none() && request.setup_code.is_some(),
                "authority_mode": self.authority_mode().as_str(),
            }),
        );
        let written = self
            .inner
            .repositories
            .installation
            .bootstrap(Bootstrap {
                owner: owner.clone(),
                grant: grant.clone(),
                default_organization: organization,
                membership,
                audit: event,
            })
            .await?
            .ok_or(BootstrapError::AlreadyBootstrapped)?;
        tracing::info!(user_id = %owner.id, "First owner bootstrapped");
        let used = self.inner.setup_code.read().clone();
        let _ = tokio::task::spawn_blocking(move || used.retire()).await;
        Ok(BootstrapResult {
            user: UserView::new(&owner, Some(PlatformRole::PlatformAdmin)),
            organization: written.organization,
            membership: written.membership,
            grant,
        })
    }

    /// Whatever proves the caller may create the owner: an activation
    /// (any mode), else the set-up code (legacy), else nothing only with
    /// insecure bootstrap enabled.
    fn check_proof(
        &self,
        request: &BootstrapOwner,
        installation_id: Uuid,
        email: &str,
        now: OffsetDateTime,
        context: &RequestContext,
    ) -> Result<(), BootstrapError> {
        if let Some(activation) = &request.activation {
            let root = self.product_root_key()?;
            return manifest::verify(activation, &root, installation_id, email, now)
                .map(drop)
                .map_err(BootstrapError::Activation);
        }
        match self.inner.config.authority_mode {
            AuthorityMode::Strict => Err(BootstrapError::ActivationRequired),
            AuthorityMode::Legacy if self.inner.config.insecure_bootstrap_enabled => Ok(()),
            AuthorityMode::Legacy => {
                let given = request.setup_code.as_deref().ok_or(BootstrapError::SetupCodeRequired)?;
                let source = context.ip.as_deref().and_then(|ip| ip.parse().ok());
                let code = self.inner.setup_code.read().clone();
                code.check(given, source).map_err(|error| match error {
                    SetupCodeError::Wrong | SetupCodeError::NotIssued => BootstrapError::SetupCodeWrong,
                    SetupCodeError::Throttled { retry_after } => BootstrapError::SetupCodeThrottled { retry_after },
                })
            }
        }
    }
}

fn bootstrap_denial_reason(error: &BootstrapError) -> &'static str {
    match error {
        BootstrapError::Activation(error) => error.reason(),
        BootstrapError::ActivationRequired => "activation_required",
        BootstrapError::NoProductRootKey => "product_root_key_missing",
        BootstrapError::SetupCodeRequired => "setup_code_required",
        BootstrapError::SetupCodeWrong => "setup_code_invalid",
        BootstrapError::SetupCodeThrottled { .. } => "setup_code_throttled",
        _ => "other",
    }
}

#[async_trait::async_trait]
impl crate::auth::PlatformAuthority for InstallationService {
    async fn effective_platform_role(&self, user: &UserRecord) -> Result<Option<PlatformRole>, StorageError> {
        InstallationService::effective_platform_role(self, user).await
    }

    async fn signed_grant(
        &self,
        user_id: UserId,
        role: PlatformRole,
        now: OffsetDateTime,
    ) -> Result<GrantRecord, StorageError> {
        InstallationService::signed_grant(self, user_id, role, now).await
    }
}
