//! Installation authority: who this appliance is, its first owner, and which
//! platform roles are real.
//!
//! In `strict` mode a platform role takes effect only with a grant row signed
//! by the installation key ([`grant`]), and the first owner needs an
//! activation manifest signed by the Product Root ([`manifest`]). In `legacy`
//! mode the `users.platform_role` column alone counts, and the first owner
//! needs the one-time set-up code the appliance writes to its data
//! directory ([`setup_code`]), or nothing with
//! `INSTALLATION_INSECURE_BOOTSTRAP_ENABLED` (tests).

pub mod grant;
pub mod manifest;
pub(crate) mod routes;
mod service;
pub mod setup_code;

pub use service::{
    BootstrapError, BootstrapOwner, BootstrapResult, InstallationService, InstallationSetting, InstallationView,
};
