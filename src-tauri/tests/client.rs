//! Client-only mode against a real appliance serving HTTPS with its own CA
//! on 127.0.0.2 (standing in for the office appliance): the CA is pinned by
//! its fingerprint, the server verified with it, and a wrong fingerprint
//! refused with words that say what to check.

use std::time::{Duration, Instant};

use rap_desktop::Cli;
use rap_desktop::client::{self, Connect};
use rap_desktop::embedded::Embedded;

mod support;

async fn office_appliance(data: &std::path::Path) -> Embedded {
    let settings = support::lan_settings(data);
    let appliance = Embedded::start(&settings, "127.0.0.1:0".parse().expect("addr")).await.expect("started");
    let deadline = Instant::now() + Duration::from_secs(20);
    while appliance.ca_fingerprint().is_none() {
        assert!(Instant::now() < deadline && !appliance.has_ended(), "no CA");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    appliance
}

#[tokio::test]
async fn the_appliance_is_trusted_only_under_its_pinned_ca() {
    let data = tempfile::tempdir().expect("temp dir");
    let appliance = office_appliance(data.path()).await;
    let url = format!("https://127.0.0.2:{}/", appliance.listen_addr.port());
    let fingerprint = appliance.ca_fingerprint().expect("fingerprint");
    let shown = rap_desktop::embedded::grouped(&fingerprint);

    let pinned = client::pin(&Connect { url: url.clone(), fingerprint: shown.clone() }).await.expect("pinned");
    assert_eq!(pinned.host, "127.0.0.2");
    assert_eq!(pinned.url.as_str(), url);
    let ca_file = std::fs::read_to_string(data.path().join("tls/ca.pem")).expect("the appliance's CA");
    assert_eq!(pinned.ca_pem.trim(), ca_file.trim(), "the very CA the appliance holds");
    assert!(pinned.server_pem.starts_with("-----BEGIN CERTIFICATE-----"), "the server's certificate, for the webview");

    let mut wrong = fingerprint.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).expect("hex");
    let refused = client::pin(&Connect { url: url.clone(), fingerprint: wrong }).await.expect_err("refused");
    let words = format!("{refused:#}");
    assert!(words.contains(&shown) && words.contains("check both on the appliance"), "{words}");

    let closed = format!("https://127.0.0.2:{}/", appliance.listen_addr.port() ^ 1);
    assert!(client::pin(&Connect { url: closed, fingerprint: shown }).await.is_err(), "nobody there");
    appliance.stop().await.expect("a clean stop");
}

#[test]
fn the_choice_is_kept_and_forgotten_beside_the_apps_data() {
    let app_dir = tempfile::tempdir().expect("temp dir");
    assert_eq!(client::load(app_dir.path()).expect("nothing yet"), None);
    let connect = Connect { url: "https://appliance.lan:8443/".into(), fingerprint: "ab".repeat(32) };
    client::save(app_dir.path(), &connect).expect("saved");
    assert_eq!(client::load(app_dir.path()).expect("read"), Some(connect));
    client::forget(app_dir.path()).expect("forgotten");
    assert_eq!(client::load(app_dir.path()).expect("gone"), None);
    std::fs::write(app_dir.path().join("connect.toml"), "url = 3").expect("damaged");
    assert!(client::load(app_dir.path()).is_err(), "a damaged file is an error, not a silent switch");
}

#[test]
fn the_command_line_is_parsed_strictly() {
    let args = |list: &[&str]| Cli::parse(list.iter().map(|arg| (*arg).to_owned()));
    assert_eq!(args(&[]).expect("none"), Cli::default());
    let fingerprint = "AB:".repeat(31) + "AB";
    let cli = args(&["--connect", "https://appliance.lan:8443/", "--fingerprint", &fingerprint]).expect("connect");
    assert_eq!(cli.connect.expect("connect").url, "https://appliance.lan:8443/");
    assert!(args(&["--run-appliance"]).expect("run").run_appliance);
    for bad in [
        vec!["--connect", "https://appliance.lan/"],
        vec!["--connect", "http://appliance.lan/", "--fingerprint", &fingerprint],
        vec!["--connect", "https://appliance.lan/", "--fingerprint", "abc"],
        vec!["--connect", "https://appliance.lan/", "--fingerprint", &fingerprint, "--run-appliance"],
        vec!["--teleport"],
    ] {
        assert!(args(&bad).is_err(), "{bad:?}");
    }
}
