//! Data Plane v1: an optional offer, in session start/attach/takeover
//! answers, of a short-lived RS256 token and the endpoints it is good for.
//!
//! The appliance holds the private key; a direct worker endpoint needs only
//! the public key to check a token ([`verify`]). A token whose header says
//! anything but `RS256` (`none`, `HS256` signed with the public key as a
//! secret, …) is refused before any signature is looked at.

pub(crate) mod routes;
mod token;

pub use token::{Claims, TokenError, verify};

use rap_storage::{AuthSessionId, SessionId, UserId, WorkerId};
use std::path::Path;
use std::sync::Arc;

use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::{SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::signature::Keypair;
use serde::Serialize;
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::{AppEnv, DataPlaneConfig, DirectWorkerTrust};

/// Bits of a generated development key.
const GENERATED_KEY_BITS: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("DATA_PLANE_TOKEN_PRIVATE_KEY_{0}: not an RSA private key in PEM (PKCS#8 or PKCS#1)")]
    Unreadable(&'static str),
    #[error("DATA_PLANE_TOKEN_PRIVATE_KEY_FILE: {0}")]
    File(String),
}

/// One endpoint a client may use for the session's live traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub kind: &'static str,
    pub url: String,
    pub data_capable: bool,
    pub runtime_transport: &'static str,
    pub render_transport: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supported_color_modes: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_color_mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_trust_mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production_trusted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoke_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_ref: Option<String>,
}

/// The `data_plane` block of session answers.
#[derive(Debug, Clone, Serialize)]
pub struct Offer {
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub candidates: Vec<Candidate>,
}

/// Issues data-plane tokens and offers, and redeems tokens at the direct
/// endpoint: the only signer and verifier of data-plane tokens.
#[derive(Clone)]
pub struct DataPlane {
    signing: Arc<SigningKey<Sha256>>,
    verifying: VerifyingKey<Sha256>,
    config: DataPlaneConfig,
    app_env: AppEnv,
    /// Token ids already used (single use), until they would expire anyway.
    used: Arc<dyn rap_storage::live::TtlMap<bool>>,
}

/// Redeemed tokens remembered at most; far above a small office's traffic.
const USED_TOKENS_CAPACITY: u64 = 100_000;

fn trust_name(trust: DirectWorkerTrust) -> &'static str {
    match trust {
        DirectWorkerTrust::SmokeInsecure => "smoke_insecure",
        DirectWorkerTrust::PublicCa => "public_ca",
        DirectWorkerTrust::PlatformCa => "platform_ca",
    }
}

/// The candidates, with the seed's gating: the backend gateway always; the
/// direct worker endpoint when a URL template is configured, data-capable
/// only with the JSON runtime, `binary_v1` only with binary render on top,
/// and never in production while its TLS trust is `smoke_insecure`.
pub fn candidates(config: &DataPlaneConfig, app_env: AppEnv, worker_id: WorkerId) -> Vec<Candidate> {
    let mut candidates = vec![Candidate {
        kind: "backend_gateway",
        url: config.backend_gateway_url.clone(),
        data_capable: true,
        runtime_transport: "json_v1",
        render_transport: "json_base64",
        supported_color_modes: None,
        default_color_mode: None,
        tls_trust_mode: None,
        production_trusted: None,
        smoke_only: None,
        tls_ca_ref: None,
    }];
    let Some(template) = &config.direct_worker_wss_url_template else { return candidates };
    let trust = config.direct_worker_tls_trust_mode;
    if app_env.is_production() && trust == DirectWorkerTrust::SmokeInsecure {
        return candidates;
    }
    let data_capable = config.direct_worker_json_runtime;
    let binary = data_capable && config.direct_worker_binary_render;
    candidates.push(Candidate {
        kind: "direct_worker_wss",
        url: template.replace("{worker_id}", &worker_id.to_string()),
        data_capable,
        runtime_transport: if data_capable { "json_v1" } else { "none" },
        render_transport: if binary { "binary_v1" } else { "json_base64" },
        supported_color_modes: binary.then(|| vec!["full_color", "grayscale"]),
        default_color_mode: binary.then_some("full_color"),
        tls_trust_mode: Some(trust_name(trust)),
        production_trusted: Some(trust != DirectWorkerTrust::SmokeInsecure),
        smoke_only: Some(trust == DirectWorkerTrust::SmokeInsecure),
        tls_ca_ref: config.direct_worker_tls_ca_ref.clone(),
    });
    candidates
}

/// How the direct worker endpoint may serve, when it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectService {
    /// `binary_v1` render (the default there); otherwise `json_base64` only.
    pub binary_render: bool,
}

/// Whether the direct worker endpoint serves at all: exactly when the
/// offer advertises it as data-capable (the seed's gating, applied to the
/// endpoint itself, not only to what clients are told). `Err` is the
/// reason code of the refusal.
pub fn direct_service(config: &DataPlaneConfig, app_env: AppEnv) -> Result<DirectService, &'static str> {
    if config.direct_worker_wss_url_template.is_none() {
        return Err("direct_worker_not_configured");
    }
    if app_env.is_production() && config.direct_worker_tls_trust_mode == DirectWorkerTrust::SmokeInsecure {
        return Err("direct_worker_untrusted");
    }
    if !config.direct_worker_json_runtime {
        return Err("direct_worker_runtime_disabled");
    }
    Ok(DirectService { binary_render: config.direct_worker_binary_render })
}

impl DataPlane {
    /// The configured key (inline PEM, or file), or `None`: without a key
    /// there is no offer, as in the seed. Outside production a configured
    /// file that does not exist yet is created with a new key.
    pub fn load(config: &DataPlaneConfig, app_env: AppEnv) -> Result<Option<Self>, KeyError> {
        let private = match (&config.private_key_file, &config.private_key_pem) {
            (Some(path), _) => load_or_generate(path, app_env)?,
            (None, Some(pem)) => parse_pem(pem).ok_or(KeyError::Unreadable("PEM"))?,
            (None, None) => return Ok(None),
        };
        let signing = SigningKey::<Sha256>::new(private);
        let verifying = signing.verifying_key();
        let used = Arc::new(rap_storage::live::memory::MemoryTtlMap::new(USED_TOKENS_CAPACITY));
        Ok(Some(Self { signing: Arc::new(signing), verifying, config: config.clone(), app_env, used }))
    }

    /// Whether (and how) the direct worker endpoint serves.
    pub fn direct_service(&self) -> Result<DirectService, &'static str> {
        direct_service(&self.config, self.app_env)
    }

    /// The public half, all a direct endpoint needs.
    pub fn verifying_key(&self) -> &VerifyingKey<Sha256> {
        &self.verifying
    }

    /// Checks a token presented at `worker_id`'s direct endpoint: its
    /// signature and lifetime, that it names this worker, and that it has
    /// not been used; then marks it used. `Err` is the refusal's reason code.
    pub async fn redeem(&self, token: &str, worker_id: WorkerId) -> Result<Claims, &'static str> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = verify(token, &self.verifying, now).map_err(|error| {
            tracing::info!(%error, "Data-plane token refused");
            "data_plane_token_invalid"
        })?;
        if claims.wid != worker_id {
            return Err("data_plane_wrong_worker");
        }
        let lifetime = std::time::Duration::from_secs(u64::try_from(claims.exp - now).unwrap_or(0).max(1));
        if !self.used.insert_if_absent(&format!("jti:{}", claims.jti), true, lifetime).await {
            return Err("data_plane_token_invalid");
        }
        Ok(claims)
    }

    pub fn offer(
        &self,
        user_id: UserId,
        auth_session_id: AuthSessionId,
        session_id: SessionId,
        worker_id: WorkerId,
        attachment_id: Uuid,
    ) -> Offer {
        let now = OffsetDateTime::now_utc();
        let expires_at = now + time::Duration::try_from(self.config.token_ttl).unwrap_or(time::Duration::MINUTE);
        let claims = Claims {
            sub: user_id,
            sid: session_id,
            wid: worker_id,
            aid: attachment_id,
            asid: Some(auth_session_id),
            iat: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
            jti: Uuid::now_v7(),
        };
        Offer {
            token: token::sign(&claims, &self.signing),
            expires_at,
            candidates: candidates(&self.config, self.app_env, worker_id),
        }
    }
}

fn parse_pem(pem: &str) -> Option<RsaPrivateKey> {
    RsaPrivateKey::from_pkcs8_pem(pem).ok().or_else(|| RsaPrivateKey::from_pkcs1_pem(pem).ok())
}

fn load_or_generate(path: &Path, app_env: AppEnv) -> Result<RsaPrivateKey, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => parse_pem(&pem).ok_or(KeyError::Unreadable("FILE")),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !app_env.is_production() => {
            let key = RsaPrivateKey::new(&mut rand_core::OsRng, GENERATED_KEY_BITS)
                .map_err(|error| KeyError::File(error.to_string()))?;
            let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|error| KeyError::File(error.to_string()))?;
            crate::keys::write_private_file(path, pem.as_bytes())
                .map_err(|error| KeyError::File(format!("{}: {error}", path.display())))?;
            tracing::info!(path = %path.display(), "Generated data-plane signing key");
            Ok(key)
        }
        Err(error) => Err(KeyError::File(format!("{}: {error}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(template: Option<&str>, json: bool, binary: bool, trust: DirectWorkerTrust) -> DataPlaneConfig {
        DataPlaneConfig {
            token_ttl: Duration::from_secs(60),
            private_key_pem: None,
            private_key_file: None,
            backend_gateway_url: "/api/v1/gateway/ws".into(),
            direct_worker_wss_url_template: template.map(str::to_owned),
            direct_worker_json_runtime: json,
            direct_worker_binary_render: binary,
            direct_worker_tls_trust_mode: trust,
            direct_worker_tls_ca_ref: Some("ca-2026".into()),
        }
    }

    #[test]
    fn the_direct_endpoint_serves_exactly_when_it_is_offered_as_data_capable() {
        use DirectWorkerTrust::{PlatformCa, PublicCa, SmokeInsecure};
        let template = Some("wss://office/dp/{worker_id}/ws");
        let binary = Ok(DirectService { binary_render: true });
        let json_only = Ok(DirectService { binary_render: false });
        let table = [
            (None, true, true, PlatformCa, AppEnv::Development, Err("direct_worker_not_configured")),
            (template, false, true, PlatformCa, AppEnv::Development, Err("direct_worker_runtime_disabled")),
            (template, true, false, PlatformCa, AppEnv::Development, json_only),
            (template, true, true, PlatformCa, AppEnv::Development, binary),
            (template, true, true, SmokeInsecure, AppEnv::Development, binary),
            (template, true, true, SmokeInsecure, AppEnv::Production, Err("direct_worker_untrusted")),
            (template, true, true, PublicCa, AppEnv::Production, binary),
        ];
        for (template, json, bin, trust, env, expected) in table {
            let config = config(template, json, bin, trust);
            assert_eq!(
                direct_service(&config, env),
                expected,
                "{template:?} json={json} binary={bin} {trust:?} {env:?}"
            );
            let offered = candidates(&config, env, WorkerId::from_uuid(Uuid::from_u128(1)));
            let data_capable =
                offered.iter().any(|candidate| candidate.kind == "direct_worker_wss" && candidate.data_capable);
            assert_eq!(data_capable, expected.is_ok(), "the offer and the endpoint agree");
        }
    }

    #[test]
    fn the_seeds_candidate_gating() {
        let worker = WorkerId::from_uuid(Uuid::from_u128(7));
        let kinds = |candidates: Vec<Candidate>| candidates.iter().map(|candidate| candidate.kind).collect::<Vec<_>>();
        assert_eq!(
            kinds(candidates(&config(None, true, true, DirectWorkerTrust::PlatformCa), AppEnv::Development, worker)),
            ["backend_gateway"]
        );

        let template = Some("wss://office:8443/dp/{worker_id}/ws");
        let visible =
            candidates(&config(template, false, true, DirectWorkerTrust::SmokeInsecure), AppEnv::Development, worker);
        assert_eq!(visible[1].url, format!("wss://office:8443/dp/{worker}/ws"));
        assert!(!visible[1].data_capable, "present for visibility, not data-capable without the JSON runtime");
        assert_eq!(visible[1].render_transport, "json_base64", "binary needs the JSON runtime too");
        assert_eq!((visible[1].smoke_only, visible[1].production_trusted), (Some(true), Some(false)));

        let full = candidates(&config(template, true, true, DirectWorkerTrust::PlatformCa), AppEnv::Production, worker);
        assert_eq!(full[1].render_transport, "binary_v1");
        assert_eq!(full[1].supported_color_modes, Some(vec!["full_color", "grayscale"]));
        assert_eq!(full[1].default_color_mode, Some("full_color"));
        assert_eq!((full[1].tls_trust_mode, full[1].production_trusted), (Some("platform_ca"), Some(true)));
        assert_eq!(full[1].tls_ca_ref.as_deref(), Some("ca-2026"));

        let refused =
            candidates(&config(template, true, true, DirectWorkerTrust::SmokeInsecure), AppEnv::Production, worker);
        assert_eq!(kinds(refused), ["backend_gateway"], "production never advertises smoke_insecure");
    }
}
