//! Tidy tests: the architecture invariants of docs/ARCHITECTURE.md, checked
//! on the source text.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

fn source(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// Whether the production code of `path` (not comments, not its
/// `#[cfg(test)]` module) contains `needle`.
fn mentions(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .any(|line| !line.trim_start().starts_with("//") && line.contains(needle))
}

#[test]
fn only_the_http_layer_routes_and_the_socket_code_touch_axum() {
    let src = source("appliance/src");
    let allowed = |path: &Path| {
        let relative = path.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
        relative.starts_with("http/")
            || relative.ends_with("routes.rs")
            || ["sessiongateway/connection.rs", "sessiongateway/attach.rs", "sessiongateway/socket.rs"]
                .contains(&relative.as_str())
            || relative == "lib.rs"
            || relative == "app.rs"
    };
    let offenders: Vec<_> =
        rust_files(&src).into_iter().filter(|path| mentions(path, "axum") && !allowed(path)).collect();
    assert!(offenders.is_empty(), "services must not see HTTP types: {offenders:?}");
}

#[test]
fn nothing_above_storage_names_sqlite() {
    let offenders: Vec<_> =
        rust_files(&source("appliance/src")).into_iter().filter(|path| mentions(path, "rusqlite")).collect();
    assert!(offenders.is_empty(), "the appliance talks to repository traits only: {offenders:?}");
    for neutral in [
        "storage/src/repo/mod.rs",
        "storage/src/repo/sessions.rs",
        "storage/src/types.rs",
        "storage/src/live/mod.rs",
        "storage/src/live/memory.rs",
    ] {
        assert!(!mentions(&source(neutral), "rusqlite"), "{neutral} must stay backend-neutral");
        assert!(!mentions(&source(neutral), "axum"), "{neutral} knows nothing of HTTP");
    }
}

#[test]
fn only_the_session_broker_writes_session_transitions() {
    let offenders: Vec<_> = rust_files(&source("appliance/src"))
        .into_iter()
        .filter(|path| !path.to_string_lossy().contains("sessionbroker"))
        .filter(|path| mentions(path, ".transition(") || mentions(path, "SessionTransition"))
        .collect();
    assert!(offenders.is_empty(), "session state changes belong to the broker: {offenders:?}");
}

#[test]
fn only_the_rdp_worker_speaks_ironrdp() {
    let offenders: Vec<_> = rust_files(&source("appliance/src"))
        .into_iter()
        .filter(|path| !path.to_string_lossy().contains("worker/rdp"))
        .filter(|path| mentions(path, "ironrdp"))
        .collect();
    assert!(offenders.is_empty(), "IronRDP stays behind the worker runtime: {offenders:?}");
}
