//! Builds `testing/rdp-test-server` (its own workspace: it needs an older
//! IronRDP set than the appliance) beside the appliance's build output, for
//! the RDP tests and the RDP benchmark.

use std::path::PathBuf;
use std::process::Command;

/// Builds the server (`release` or debug) and returns its binary.
pub fn build(release: bool) -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testing/rdp-test-server/Cargo.toml");
    // Beside the appliance's own build output (CI keeps it between runs).
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("rdp-test-server");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet"]);
    if release {
        command.arg("--release");
    }
    let status = command
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo for the RDP test server");
    assert!(status.success(), "the RDP test server builds");
    target.join(if release { "release" } else { "debug" }).join("rdp-test-server")
}
