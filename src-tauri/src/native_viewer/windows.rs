//! The native windows the app has open: each a `rap-viewer` process whose
//! standard input the app keeps, to hand it fresh tokens, and whose
//! standard output a thread reads for its requests until it closes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rap_wire::renewal::{RenewAnswer, RenewRequest};
use tauri::Url;

use super::{OpenRequest, gateway_url};

/// Requests a window may make before the app stops passing them on: a
/// viewer reconnecting with backoff asks a few times a minute at most, so
/// this only bounds one that misbehaves.
const MAX_REQUESTS_PER_WINDOW: u32 = 10_000;

/// The open windows, by the number the app gave each.
#[derive(Default)]
pub struct Windows {
    next: AtomicU64,
    open: Mutex<HashMap<u64, ChildStdin>>,
}

impl Windows {
    /// Gives `window` the console's answer. An answer for a window that
    /// closed meanwhile is dropped: nothing is waiting for it.
    pub fn answer(&self, window: u64, answer: &RenewAnswer) {
        let Ok(mut open) = self.open.lock() else { return };
        let Some(stdin) = open.get_mut(&window) else {
            tracing::debug!(window, "A token answer for a window that is not open");
            return;
        };
        if writeln!(stdin, "{answer}").and_then(|()| stdin.flush()).is_err() {
            open.remove(&window);
        }
    }
}

/// The viewer program: beside the app's own executable (where the bundle
/// and `cargo build` both put it).
pub fn viewer_program() -> std::io::Result<PathBuf> {
    let name = if cfg!(windows) { "rap-viewer.exe" } else { "rap-viewer" };
    Ok(std::env::current_exe()?.with_file_name(name))
}

/// Starts the viewer for `request` against the console's gateway (which
/// it verifies with `ca` when the console is another appliance's). The
/// window lives on its own: a thread passes its token requests to `ask`
/// (with the window's number, for [`Windows::answer`]) and reaps it when it
/// closes.
pub fn launch(
    console: &Url,
    request: OpenRequest,
    ca: Option<&Path>,
    windows: &Arc<Windows>,
    ask: impl Fn(u64, RenewRequest) + Send + 'static,
) -> anyhow::Result<()> {
    let program = viewer_program()?;
    let gateway = gateway_url(console).map_err(anyhow::Error::msg)?;
    let mut command = Command::new(&program);
    command.args(["--url", &gateway, "--token-stdin", "--renew-stdio", "--title", &format!("RAP — {}", request.title)]);
    if let Some(ca) = ca {
        command.arg("--ca").arg(ca);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| anyhow::anyhow!("starting {}: {error}", program.display()))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        anyhow::bail!("{} started without its pipes", program.display());
    };
    writeln!(stdin, "{}", request.token)?;
    stdin.flush()?;
    let window = windows.next.fetch_add(1, Ordering::Relaxed);
    windows.open.lock().map_err(|_| anyhow::anyhow!("the window list is poisoned"))?.insert(window, stdin);
    let windows = windows.clone();
    std::thread::spawn(move || {
        let mut requests = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match RenewRequest::parse(&line) {
                Some(request) if requests < MAX_REQUESTS_PER_WINDOW => {
                    requests += 1;
                    ask(window, request);
                }
                Some(_) => tracing::warn!(window, "A desktop window asked for too many tokens"),
                None => tracing::debug!(window, "A line from a desktop window that is no request"),
            }
        }
        if let Ok(mut open) = windows.open.lock() {
            open.remove(&window);
        }
        match child.wait() {
            Ok(status) if !status.success() => tracing::warn!(%status, "The desktop window ended with an error"),
            Err(error) => tracing::warn!(%error, "The desktop window could not be waited for"),
            Ok(_) => {}
        }
    });
    Ok(())
}
