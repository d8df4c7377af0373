//! Shared by the desktop app's test binaries.

use rap_appliance::config::Settings;

/// An appliance serving "the LAN" over HTTPS with its own CA, on 127.0.0.2
/// (standing in for the office address), with the scripted desktops.
pub fn lan_settings(data_dir: &std::path::Path) -> Settings {
    let data = data_dir.to_string_lossy().into_owned();
    Settings::from_pairs([
        ("APP_DATA_DIR", data.as_str()),
        ("APP_TLS", "auto"),
        ("APP_LISTEN_ADDR", "127.0.0.2:0"),
        ("RAP_WORKER_RUNTIME", "scripted"),
    ])
    .expect("settings")
}
