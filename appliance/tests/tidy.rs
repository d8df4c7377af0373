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
        // `net` is the edge below HTTP: connections, TLS, the redirect.
        relative.starts_with("http/")
            || relative.starts_with("net/")
            || relative.ends_with("routes.rs")
            || [
                "sessiongateway/connection.rs",
                "sessiongateway/connection/frames.rs",
                "sessiongateway/attach.rs",
                "sessiongateway/socket.rs",
            ]
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

/// `appliance/src/<module>` of a file: its top folder or file stem.
fn top_module(src: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(src).expect("under src");
    let first = relative.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The `crate::<module>` references in the production code of `path`.
fn crate_references(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read");
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| line.match_indices("crate::").map(move |(index, _)| &line[index + "crate::".len()..]))
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect()
}

/// The domain modules depend on each other without cycles. Left out: the
/// composition layer that sees everything by design (`lib`, `main`, `app`,
/// `state`) and the HTTP adapters (`routes.rs`, which sit on top of their
/// domain and the HTTP layer).
#[test]
fn the_modules_depend_on_each_other_without_cycles() {
    let src = source("appliance/src");
    let composition = ["lib", "main", "app", "state"];
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for path in rust_files(&src) {
        let module = top_module(&src, &path);
        if composition.contains(&module.as_str()) || path.file_name().is_some_and(|name| name == "routes.rs") {
            continue;
        }
        for target in crate_references(&path) {
            if target != module && !composition.contains(&target.as_str()) {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    // A cycle is an edge a → b with a path back from b to a.
    for (from, targets) in &edges {
        for to in targets {
            let mut stack = vec![vec![from.clone(), to.clone()]];
            let mut seen = std::collections::BTreeSet::new();
            while let Some(route) = stack.pop() {
                let last = route.last().expect("non-empty").clone();
                if &last == from && route.len() > 1 {
                    panic!("an import cycle: {}", route.join(" → "));
                }
                if !seen.insert(last.clone()) {
                    continue;
                }
                for next in edges.get(&last).into_iter().flatten() {
                    let mut longer = route.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
}

#[test]
fn no_source_file_is_over_six_hundred_lines() {
    let files = rust_files(&source("appliance/src")).into_iter().chain(rust_files(&source("storage/src")));
    let long: Vec<String> = files
        .filter_map(|path| {
            let lines = std::fs::read_to_string(&path).expect("read").lines().count();
            (lines > 600).then(|| format!("{} ({lines})", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these into smaller rooms: {long:?}");
}

#[test]
fn workers_never_reach_into_the_broker() {
    let offenders: Vec<_> = rust_files(&source("appliance/src/worker"))
        .into_iter()
        .filter(|path| {
            crate_references(path).iter().any(|target| target == "sessionbroker" || target == "sessiongateway")
        })
        .collect();
    assert!(offenders.is_empty(), "workers talk to the broker through the queues only: {offenders:?}");
}

#[test]
fn only_the_data_plane_signs_or_verifies_its_tokens() {
    let offenders: Vec<_> = rust_files(&source("appliance/src"))
        .into_iter()
        .filter(|path| !path.to_string_lossy().contains("dataplane"))
        .filter(|path| mentions(path, "rsa::") || mentions(path, "dataplane::verify") || mentions(path, "token::sign"))
        .collect();
    assert!(offenders.is_empty(), "data-plane tokens are signed and checked in dataplane alone: {offenders:?}");
}

#[test]
fn the_gateway_builds_json_only_in_its_envelope() {
    let offenders: Vec<_> = rust_files(&source("appliance/src/sessiongateway"))
        .into_iter()
        .filter(|path| !path.to_string_lossy().contains("envelope"))
        .filter(|path| mentions(path, "json!"))
        .collect();
    assert!(offenders.is_empty(), "wire messages are typed (envelope::ServerMessage): {offenders:?}");
}
