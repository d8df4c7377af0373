//! Starting and stopping appliances for tests.

use std::net::SocketAddr;

use rap_appliance::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An appliance running in this process on an ephemeral loopback port,
/// with its own data directory.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
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
        let data_path = data_dir.path().to_string_lossy().into_owned();
        let mut pairs = vec![("APP_DATA_DIR", data_path.as_str())];
        pairs.extend_from_slice(settings);
        let config = Config::from_pairs(pairs).expect("valid test config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(rap_appliance::run(config, listener, async move {
            let _ = stop.await;
        }));
        Self { addr, client: reqwest::Client::new(), data_dir, shutdown: Some(shutdown), task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
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
