use super::*;

fn error_of(pairs: &[(&str, &str)]) -> String {
    match Config::from_pairs(pairs.iter().copied()) {
        Ok(_) => panic!("expected {pairs:?} to be refused"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn embedded_defaults_serve_loopback_in_development() {
    let config = Config::from_pairs([]).expect("defaults are valid");
    assert_eq!(config.listen_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.data_dir, PathBuf::from("./data"));
    assert_eq!(config.app_env, AppEnv::Development);
    assert_eq!(config.worker_slots, 8);
    assert_eq!(config.installation.authority_mode, AuthorityMode::Legacy);
    assert_eq!(config.data_plane.token_ttl, Duration::from_secs(60));
    assert_eq!(config.data_plane.backend_gateway_url, "/api/v1/gateway/ws");
    assert_eq!(config.database_path(), PathBuf::from("./data/rap.sqlite3"));
}

#[test]
fn each_bad_value_names_its_variable() {
    assert_eq!(
        error_of(&[("APP_LISTEN_ADDR", "localhost")]),
        "APP_LISTEN_ADDR: expected an address like 127.0.0.1:8080"
    );
    assert!(error_of(&[("APP_ENV", "staging")]).starts_with("APP_ENV: unknown environment"));
    assert_eq!(error_of(&[("RAP_WORKER_SLOTS", "zero")]), "RAP_WORKER_SLOTS: expected a whole number");
    assert_eq!(error_of(&[("RAP_WORKER_SLOTS", "0")]), "RAP_WORKER_SLOTS: 0 is outside 1..=1024");
    assert_eq!(error_of(&[("APP_ALLOW_PLAINTEXT_LAN", "maybe")]), "APP_ALLOW_PLAINTEXT_LAN: expected true or false");
    assert!(error_of(&[("DATA_PLANE_TOKEN_TTL", "soon")]).starts_with("DATA_PLANE_TOKEN_TTL: "));
    assert_eq!(error_of(&[("SECRET_ENCRYPTION_KEY_B64", "%%%")]), "SECRET_ENCRYPTION_KEY_B64: not valid base64");
    assert_eq!(
        error_of(&[("SECRET_ENCRYPTION_KEY_B64", "AAAA")]),
        "SECRET_ENCRYPTION_KEY_B64: expected 32 bytes, got 3"
    );
    assert!(
        error_of(&[("DATA_PLANE_DIRECT_WORKER_TLS_TRUST_MODE", "yolo")])
            .starts_with("DATA_PLANE_DIRECT_WORKER_TLS_TRUST_MODE: ")
    );
    assert_eq!(error_of(&[("APP_TLS", "files")]), "APP_TLS_CERT_FILE: required by the chosen mode");
    assert_eq!(error_of(&[("NOT_A_SETTING", "1")]), "NOT_A_SETTING: unknown setting");
}

#[test]
fn a_lan_address_is_served_with_tls_unless_plaintext_is_consented() {
    let lan = Config::from_pairs([("APP_LISTEN_ADDR", "0.0.0.0:8443")]).expect("LAN defaults are valid");
    assert_eq!(lan.tls.mode, TlsMode::Auto, "TLS by default off loopback");
    assert_eq!(lan.data_plane.direct_worker_tls_trust_mode, DirectWorkerTrust::PlatformCa);
    let loopback = Config::from_pairs([]).expect("defaults");
    assert_eq!(loopback.tls.mode, TlsMode::Off);
    let refused = error_of(&[("APP_LISTEN_ADDR", "0.0.0.0:8080"), ("APP_TLS", "off")]);
    assert!(refused.starts_with("APP_LISTEN_ADDR: 0.0.0.0:8080 is not loopback"), "{refused}");
    let consented = Config::from_pairs([("APP_LISTEN_ADDR", "0.0.0.0:8080"), ("APP_ALLOW_PLAINTEXT_LAN", "true")])
        .expect("explicit opt-out");
    assert_eq!(consented.tls.mode, TlsMode::Off);
    let forced = Config::from_pairs([("APP_TLS", "auto")]).expect("auto on loopback when asked");
    assert_eq!(forced.tls.mode, TlsMode::Auto);
}

#[test]
fn tls_names_origins_and_redirects_are_parsed_strictly() {
    let config = Config::from_pairs([
        ("APP_TLS", "auto"),
        ("APP_TLS_NAMES", " Rap.Office.LAN , 10.0.0.9,"),
        ("APP_ALLOWED_ORIGINS", "tauri://localhost, HTTPS://Desk.example:8443/"),
        ("APP_HTTP_REDIRECT_ADDR", "0.0.0.0:8080"),
    ])
    .expect("valid");
    assert_eq!(config.tls.extra_names, ["rap.office.lan", "10.0.0.9"]);
    assert_eq!(config.edge.allowed_origins, ["tauri://localhost", "https://desk.example:8443"]);
    assert_eq!(config.tls.redirect_addr.map(|addr| addr.port()), Some(8080));
    assert_eq!(
        error_of(&[("APP_TLS", "auto"), ("APP_TLS_NAMES", "bad name")]),
        "APP_TLS_NAMES: \"bad name\" is not a host name or IP address"
    );
    assert!(error_of(&[("APP_ALLOWED_ORIGINS", "https://x.example/path")]).starts_with("APP_ALLOWED_ORIGINS:"));
    assert!(error_of(&[("APP_ALLOWED_ORIGINS", "*")]).starts_with("APP_ALLOWED_ORIGINS:"));
    assert_eq!(
        error_of(&[("APP_HTTP_REDIRECT_ADDR", "0.0.0.0:80")]),
        "APP_HTTP_REDIRECT_ADDR: redirects to HTTPS, so it needs APP_TLS auto or files"
    );
    assert!(error_of(&[("APP_TLS", "sometimes")]).starts_with("APP_TLS: unknown mode"));
}

#[test]
fn edge_limits_have_safe_defaults_and_bounds() {
    let edge = Config::from_pairs([]).expect("defaults").edge;
    assert_eq!(edge.header_read_timeout, Duration::from_secs(10));
    assert_eq!(edge.max_idle_connections, 512);
    assert_eq!(edge.requests_per_second, 50);
    assert_eq!(edge.websockets_per_user, 20);
    assert!(error_of(&[("APP_HTTP_HEADER_TIMEOUT", "1ms")]).starts_with("APP_HTTP_HEADER_TIMEOUT:"));
    assert_eq!(
        error_of(&[("APP_MAX_CONNECTIONS", "100"), ("APP_MAX_IDLE_CONNECTIONS", "200")]),
        "APP_MAX_IDLE_CONNECTIONS: must not exceed APP_MAX_CONNECTIONS"
    );
    assert!(error_of(&[("RAP_SOCKET_MESSAGES_PER_SECOND", "0")]).starts_with("RAP_SOCKET_MESSAGES_PER_SECOND:"));
    let off = Config::from_pairs([("APP_RATE_LIMIT_PER_SECOND", "0")]).expect("0 turns the limit off");
    assert_eq!(off.edge.requests_per_second, 0);
}

#[test]
fn production_refuses_to_start_without_authority_and_keys() {
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let root = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    assert_eq!(
        error_of(&[("APP_ENV", "production")]),
        "INSTALLATION_PRODUCT_ROOT_PUBLIC_KEY_B64: production requires the Product Root public key (_B64 or _FILE)"
    );
    assert_eq!(
        error_of(&[("APP_ENV", "prod"), ("INSTALLATION_AUTHORITY_MODE", "legacy")]),
        "INSTALLATION_AUTHORITY_MODE: production requires strict"
    );
    assert_eq!(
        error_of(&[("APP_ENV", "prod"), ("INSTALLATION_PRODUCT_ROOT_PUBLIC_KEY_B64", &root)]),
        "SECRET_ENCRYPTION_KEY_B64: production requires the secret encryption key (_B64 or _FILE)"
    );
    let config = Config::from_pairs([
        ("APP_ENV", "prod"),
        ("INSTALLATION_PRODUCT_ROOT_PUBLIC_KEY_B64", root.as_str()),
        ("SECRET_ENCRYPTION_KEY_B64", key.as_str()),
    ])
    .expect("complete production config");
    assert_eq!(config.app_env, AppEnv::Production);
    assert_eq!(config.installation.authority_mode, AuthorityMode::Strict);
    assert_eq!(config.secrets.encryption_key, Some([7u8; 32]));
}

#[test]
fn key_files_hold_raw_bytes_or_base64() {
    let dir = tempfile::tempdir().expect("temp dir");
    let raw = dir.path().join("raw.key");
    std::fs::write(&raw, [5u8; 32]).expect("write");
    let text = dir.path().join("text.key");
    std::fs::write(&text, format!("{}\n", base64::engine::general_purpose::STANDARD.encode([6u8; 32]))).expect("write");
    for (path, expected) in [(&raw, [5u8; 32]), (&text, [6u8; 32])] {
        let path = path.to_string_lossy();
        let config = Config::from_pairs([("SECRET_ENCRYPTION_KEY_FILE", path.as_ref())]).expect("key file");
        assert_eq!(config.secrets.encryption_key, Some(expected));
    }
    assert!(
        error_of(&[("SECRET_ENCRYPTION_KEY_FILE", "/nonexistent/key")])
            .starts_with("SECRET_ENCRYPTION_KEY_FILE: cannot read")
    );
}

#[test]
fn retired_secret_keys_are_listed_by_id() {
    let key = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    let inline = format!("k0:{}, k00:{}", key(1), key(2));
    let config = Config::from_pairs([("SECRET_ENCRYPTION_RETIRED_KEYS", inline.as_str())]).expect("valid");
    assert_eq!(config.secrets.retired_keys, vec![("k0".to_owned(), [1; 32]), ("k00".to_owned(), [2; 32])]);
    assert_eq!(
        error_of(&[("SECRET_ENCRYPTION_RETIRED_KEYS", "nocolon")]),
        "SECRET_ENCRYPTION_RETIRED_KEYS: entries are key_id:base64"
    );
    let reused = format!("k1:{}", key(1));
    assert_eq!(
        error_of(&[("SECRET_ENCRYPTION_RETIRED_KEYS", reused.as_str())]),
        "SECRET_ENCRYPTION_RETIRED_KEYS: must not reuse the active SECRET_ENCRYPTION_KEY_ID"
    );
}

#[test]
fn a_trusted_ca_file_must_hold_usable_certificates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "just text").expect("write");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").expect("write");
    for path in [not_pem.to_str().expect("path"), garbage.to_str().expect("path"), "/nonexistent/ca.pem"] {
        let error = error_of(&[("RAP_RDP_TRUSTED_CA_FILE", path)]);
        assert!(error.starts_with("RAP_RDP_TRUSTED_CA_FILE"), "{path}: {error}");
    }
    assert!(Config::from_pairs([]).expect("defaults").broker.trusted_cas.is_empty());
}

#[test]
fn an_embedders_defaults_yield_to_the_settings_given() {
    let mut settings = Settings::from_pairs([("APP_LISTEN_ADDR", "127.0.0.1:9000")]).expect("settings");
    settings.default_to("APP_LISTEN_ADDR", "127.0.0.1:47080").expect("known");
    settings.default_to("APP_DATA_DIR", "/srv/rap").expect("known");
    assert_eq!(settings.get("APP_LISTEN_ADDR"), Some("127.0.0.1:9000"), "the environment wins");
    assert_eq!(settings.get("APP_DATA_DIR"), Some("/srv/rap"));
    assert!(settings.default_to("APP_NO_SUCH_THING", "x").is_err());
}
