//! Starting and stopping appliances for tests.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use ed25519_dalek::SigningKey;
use rap_appliance::Config;
use rap_appliance::installation::manifest::{self, ActivationManifest};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// An appliance running in this process on an ephemeral loopback port,
/// with its own data directory.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    /// Set when the appliance serves TLS: a client config that trusts only
    /// the appliance's own CA (read from its data directory).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with embedded defaults plus `settings` (setting name → value).
    pub async fn start_with(settings: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(data_dir, settings).await
    }

    pub async fn start_in(data_dir: tempfile::TempDir, settings: &[(&str, &str)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::launch(data_dir, listener, settings).await
    }

    /// Starts with `APP_TLS=auto` on `ip` (a loopback address other than
    /// 127.0.0.1 stands in for an office LAN address), once its CA exists;
    /// `client` trusts that CA and nothing else.
    pub async fn start_tls_on(ip: &str, settings: &[(&str, &str)]) -> Self {
        Self::start_tls_in(tempfile::tempdir().expect("temp dir"), ip, settings).await
    }

    pub async fn start_tls_in(data_dir: tempfile::TempDir, ip: &str, settings: &[(&str, &str)]) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind");
        let listen = listener.local_addr().expect("addr").to_string();
        let mut all = vec![("APP_TLS", "auto"), ("APP_LISTEN_ADDR", listen.as_str())];
        all.extend_from_slice(settings);
        let mut app = Self::launch(data_dir, listener, &all).await;
        let ca = app.data_dir.path().join("tls").join("ca.pem");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let pem = loop {
            match std::fs::read(&ca) {
                Ok(pem) if !pem.is_empty() => break pem,
                _ => {
                    assert!(std::time::Instant::now() < deadline, "no CA at {}", ca.display());
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        };
        let tls = trusting(&pem);
        app.client = https_client(&tls);
        app.tls = Some(tls);
        app
    }

    async fn launch(data_dir: tempfile::TempDir, listener: TcpListener, settings: &[(&str, &str)]) -> Self {
        let data_path = data_dir.path().to_string_lossy().into_owned();
        // The stand-in desktop unless a test asks for the RDP runtime; no
        // request limit unless a test asks for one, as every test client
        // shares one address.
        let mut pairs = vec![
            ("APP_DATA_DIR", data_path.as_str()),
            ("RAP_WORKER_RUNTIME", "scripted"),
            ("APP_RATE_LIMIT_PER_SECOND", "0"),
        ];
        pairs.extend_from_slice(settings);
        let config = Config::from_pairs(pairs).expect("valid test config");
        let addr = listener.local_addr().expect("addr");
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(rap_appliance::run(config, listener, async move {
            let _ = stop.await;
        }));
        Self { addr, client: crate::support::client(), data_dir, tls: None, shutdown: Some(shutdown), task }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// The live-plane URL, `ws` or `wss` as served.
    pub fn ws_url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// Stops the appliance and hands back its data directory, to start
    /// another appliance on the same data (a restart).
    pub async fn data_dir_handle(mut self) -> tempfile::TempDir {
        let data_dir = std::mem::replace(&mut self.data_dir, tempfile::tempdir().expect("temp dir"));
        self.stop().await.expect("clean stop");
        data_dir
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        tokio::time::timeout(std::time::Duration::from_secs(10), &mut self.task)
            .await
            .expect("appliance stops within 10 s")
            .expect("run task")
    }
}

/// An HTTP client builder. The tests' reqwest has no TLS provider of its
/// own (the appliance uses ring, and a second one would be built for tests
/// alone): ring is installed as the process default first.
pub fn client_builder() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

pub fn client() -> reqwest::Client {
    client_builder().build().expect("client")
}

/// A TLS client config that trusts the certificates in `ca_pem` alone.
pub fn trusting(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("PEM certificate")).expect("a usable root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub fn https_client(tls: &Arc<rustls::ClientConfig>) -> reqwest::Client {
    crate::support::client_builder().tls_backend_preconfigured(tls.as_ref().clone()).build().expect("client")
}

/// Asserts the API.md error envelope and returns its `error` object.
pub async fn assert_envelope(response: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let header_trace = response
        .headers()
        .get("x-trace-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .expect("X-Trace-Id header");
    let content_type = response.headers().get("content-type").and_then(|value| value.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let body: serde_json::Value = response.json().await.expect("JSON body");
    let error = body.get("error").cloned().unwrap_or_else(|| panic!("no error object in {body}"));
    assert_eq!(body.as_object().map(|object| object.len()), Some(1), "only `error` at the top: {body}");
    assert_eq!(error["code"], code, "{body}");
    assert_eq!(error["message_key"], format!("error.{code}"));
    assert!(error["fallback_message"].as_str().is_some_and(|text| !text.is_empty()), "{body}");
    assert!(error["details"].is_object(), "{body}");
    assert_eq!(error["trace_id"], header_trace, "the body names the same trace as the header");
    let mut keys: Vec<_> = error.as_object().map(|object| object.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    assert_eq!(keys, ["code", "details", "fallback_message", "message_key", "trace_id"]);
    error
}

impl TestApp {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: serde_json::Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, Some(token), None).await
    }

    /// Path of this appliance's SQLite file.
    pub fn database(&self) -> std::path::PathBuf {
        self.data_dir.path().join(rap_storage::sqlite::DATABASE_FILE_NAME)
    }

    /// Logs in and returns the token response.
    pub async fn login(&self, email: &str, password: &str) -> serde_json::Value {
        let response =
            self.post("/api/v1/auth/login", None, serde_json::json!({"email": email, "password": password})).await;
        assert_eq!(response.status(), 200, "login of {email}");
        response.json().await.expect("json")
    }
}

/// JSON body of a response with the expected status.
pub async fn json_of(response: reqwest::Response, status: u16) -> serde_json::Value {
    let actual = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    assert_eq!(actual, status, "{body}");
    body
}

pub const OWNER_EMAIL: &str = "owner@example.com";
pub const OWNER_PASSWORD: &str = "owner password 1";

/// An appliance in legacy mode whose owner was bootstrapped without
/// activation (development convenience, as an installer would allow).
pub async fn legacy_app_with_owner(settings: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true")];
    all.extend_from_slice(settings);
    with_owner(TestApp::start_with(&all).await).await
}

/// `app` (started with the insecure bootstrap switch) with its owner.
pub async fn with_owner(app: TestApp) -> TestApp {
    let response = app
        .post(
            "/api/v1/installation/bootstrap-owner",
            None,
            serde_json::json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD, "display_name": "Owner"}),
        )
        .await;
    json_of(response, 201).await;
    app
}

/// Creates a user through the API as `admin_token` and returns its id.
pub async fn create_user(app: &TestApp, admin_token: &str, email: &str, password: &str) -> String {
    let body = serde_json::json!({"email": email, "password": password, "display_name": email});
    let created = json_of(app.post("/api/v1/users", Some(admin_token), body).await, 201).await;
    created["id"].as_str().expect("id").to_owned()
}

pub struct StrictApp {
    pub app: TestApp,
    pub root: SigningKey,
    pub installation_id: Uuid,
}

pub async fn strict_app(settings: &[(&str, &str)]) -> StrictApp {
    let root = SigningKey::from_bytes(&rap_appliance::keys::random_bytes());
    let public = base64::engine::general_purpose::STANDARD.encode(root.verifying_key().as_bytes());
    let mut all =
        vec![("INSTALLATION_AUTHORITY_MODE", "strict"), ("INSTALLATION_PRODUCT_ROOT_PUBLIC_KEY_B64", public.as_str())];
    all.extend_from_slice(settings);
    let app = TestApp::start_with(&all).await;
    let status = json_of(app.get("/api/v1/installation").await, 200).await;
    let installation_id =
        status["installation_id"].as_str().and_then(|id| Uuid::parse_str(id).ok()).expect("installation id");
    StrictApp { app, root, installation_id }
}

pub fn activation(root: &SigningKey, installation_id: Uuid, email: &str, expires_in: time::Duration) -> Value {
    let now = OffsetDateTime::now_utc();
    let manifest = ActivationManifest {
        installation_id,
        owner_email: email.to_owned(),
        issued_at: now - time::Duration::minutes(1),
        expires_at: now + expires_in,
        nonce: Uuid::now_v7().to_string(),
    };
    serde_json::to_value(manifest::sign(&manifest, root)).expect("json")
}

pub fn bootstrap_body(activation: Option<Value>) -> Value {
    let mut body = json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD, "display_name": "Office Owner"});
    if let Some(activation) = activation {
        body["activation"] = activation;
    }
    body
}

/// A strict-mode appliance (with `settings`) whose owner was bootstrapped
/// with a valid activation; returns it with the owner's access token.
pub async fn strict_app_with_owner(settings: &[(&str, &str)]) -> (TestApp, String) {
    let StrictApp { app, root, installation_id } = strict_app(settings).await;
    let body = json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD, "display_name": "Owner",
        "activation": activation(&root, installation_id, OWNER_EMAIL, time::Duration::hours(1))});
    json_of(app.post("/api/v1/installation/bootstrap-owner", None, body).await, 201).await;
    let token = app.login(OWNER_EMAIL, OWNER_PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    (app, token)
}
