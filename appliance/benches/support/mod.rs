//! An appliance on 127.0.0.1:0 with a bootstrapped owner, driven through its
//! HTTP API, for the benchmarks that measure whole requests.

use serde_json::{Value, json};

pub struct Appliance {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    /// The owner's organization.
    pub org: Value,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _data: tempfile::TempDir,
}

impl Appliance {
    /// Starts an appliance with `settings` on top of a fresh data directory
    /// and insecure bootstrap, and logs its first owner in.
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let data_dir = data.path().to_string_lossy().into_owned();
        // Every bench client shares one address: no request limit.
        let mut pairs = vec![
            ("APP_DATA_DIR", data_dir.as_str()),
            ("INSTALLATION_INSECURE_BOOTSTRAP_ENABLED", "true"),
            ("APP_RATE_LIMIT_PER_SECOND", "0"),
        ];
        pairs.extend_from_slice(settings);
        let config = rap_appliance::Config::from_pairs(pairs).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(rap_appliance::run(config, listener, async move {
            let _ = stopped.await;
        }));
        // The benches' reqwest has no TLS provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let owner = json!({"email": "owner@example.com", "password": "owner password 1", "display_name": "Owner"});
        http.post(format!("{base}/api/v1/installation/bootstrap-owner")).json(&owner).send().await.unwrap();
        let login: Value = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": "owner@example.com", "password": "owner password 1"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().unwrap().to_owned();
        let mut appliance = Self { http, base, token, org: Value::Null, stop, server, _data: data };
        let me = appliance.call(reqwest::Method::GET, "/api/v1/auth/me", None).await;
        appliance.org = me["memberships"][0]["organization_id"].clone();
        appliance
    }

    /// Sends an authenticated request and returns its JSON body; any
    /// non-success status fails the benchmark.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }

    /// An RDP resource at `host:port` (any certificate) signing in as
    /// `credentials`, and a session on it once it is active: the start
    /// response (session, attach block).
    #[allow(dead_code)] // only the RDP benches start sessions
    pub async fn start_session(&self, host: &str, port: u16, credentials: (&str, &str), size: (u16, u16)) -> Value {
        let body = json!({"organization_id": self.org, "name": format!("PC {port}"), "protocol": "rdp",
            "host": host, "port": port, "certificate_verification_mode": "ignore"});
        let resource = self.call(reqwest::Method::POST, "/api/v1/resources", Some(body)).await["id"].clone();
        let secret = json!({"username": credentials.0, "password": credentials.1});
        let path = format!("/api/v1/resources/{}/secret", resource.as_str().unwrap());
        self.call(reqwest::Method::PUT, &path, Some(secret)).await;
        let body = json!({"resource_id": resource, "width": size.0, "height": size.1});
        let started = self.call(reqwest::Method::POST, "/api/v1/sessions", Some(body)).await;
        let id = started["session"]["id"].as_str().unwrap().to_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let session = self.call(reqwest::Method::GET, &format!("/api/v1/sessions/{id}"), None).await;
            match session["state"].as_str().unwrap() {
                "active" => return started,
                "pending" | "starting" => {}
                other => panic!("session {id} ended up {other}: {session}"),
            }
            assert!(std::time::Instant::now() < deadline, "session {id} never became active");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}
