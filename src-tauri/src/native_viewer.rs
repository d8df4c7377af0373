//! "Open in window": the console asks for a desktop in a native window by
//! navigating to [`OPEN_WINDOW_PATH`] on its own origin with the attach
//! block in the URL's fragment. The app intercepts that navigation (it is
//! never made, and a fragment is never sent to a server anyway), checks
//! it strictly, and launches `rap-viewer` beside its own executable with
//! the single-use token on the viewer's standard input, never in its
//! command line where other users' `ps` would see it.
//!
//! The console window keeps having no IPC: this is a navigation the app
//! chooses to handle, carrying nothing but a token the page already held.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use tauri::Url;

/// Where the console sends an "Open in window" request.
pub const OPEN_WINDOW_PATH: &str = "/desktop-app/open-window";

/// What pages learn from the app: that desktops can open in windows.
pub const PAGE_SCRIPT: &str = "window.rapDesktopApp = Object.freeze({ nativeViewer: true });";

/// Script the app runs in the console page to tell the person why a window
/// did not open (the page shows it as a warning). The app speaks to the
/// page; the page still has no way to speak to the app.
pub fn notice_script(words: &str) -> String {
    // A JSON string literal is a JavaScript string literal; `<`, `>`, `&`
    // escaped too so no text ever reads as markup.
    let mut literal = String::from("\"");
    for c in words.chars() {
        match c {
            '"' => literal.push_str("\\\""),
            '\\' => literal.push_str("\\\\"),
            c if c.is_control() || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                literal.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c => literal.push(c),
        }
    }
    literal.push('"');
    format!("window.dispatchEvent(new CustomEvent('rap-desktop-notice', {{ detail: {literal} }}));")
}

/// Attach tokens are URL-safe base64 of a few dozen bytes; anything else
/// is not one of ours.
const MAX_TOKEN_LEN: usize = 512;
const MAX_TITLE_CHARS: usize = 120;

/// One request from the console, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    pub token: String,
    pub title: String,
}

/// The request in `url`, if it is one: same origin as the console, the
/// open-window path, a well-formed token. `None` for every other
/// navigation (which then goes ahead as usual).
pub fn open_request(url: &Url, console: &Url) -> Option<Result<OpenRequest, &'static str>> {
    if url.origin() != console.origin() || url.path() != OPEN_WINDOW_PATH {
        return None;
    }
    Some(parse_fragment(url.fragment().unwrap_or_default()))
}

fn parse_fragment(fragment: &str) -> Result<OpenRequest, &'static str> {
    let mut token = None;
    let mut title = None;
    for (name, value) in url::form_urlencoded::parse(fragment.as_bytes()) {
        let slot = match name.as_ref() {
            "token" => &mut token,
            "title" => &mut title,
            _ => return Err("unknown field in an open-window request"),
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err("a field given twice in an open-window request");
        }
    }
    let token = token.ok_or("an open-window request without a token")?;
    let well_formed = !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
    if !well_formed {
        return Err("an open-window request with a malformed token");
    }
    // A name for a title bar: printable, one line, bounded.
    let title: String = title
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TITLE_CHARS)
        .collect::<String>()
        .trim()
        .to_owned();
    Ok(OpenRequest { token, title: if title.is_empty() { "Remote desktop".to_owned() } else { title } })
}

/// The viewer program: beside the app's own executable (where the bundle
/// and `cargo build` both put it).
pub fn viewer_program() -> std::io::Result<PathBuf> {
    let name = if cfg!(windows) { "rap-viewer.exe" } else { "rap-viewer" };
    Ok(std::env::current_exe()?.with_file_name(name))
}

/// The gateway socket of the console at `console`.
pub fn gateway_url(console: &Url) -> Result<String, &'static str> {
    let scheme = match console.scheme() {
        "http" => "ws",
        "https" => "wss",
        _ => return Err("the console is neither http nor https"),
    };
    let host = console.host_str().ok_or("the console has no host")?;
    let port = console.port_or_known_default().ok_or("the console has no port")?;
    Ok(format!("{scheme}://{host}:{port}/api/v1/gateway/ws"))
}

/// Starts the viewer for `request` against the console's gateway (which
/// it verifies with `ca` when the console is another appliance's). The
/// window lives on its own: the app does not wait for it, a thread reaps
/// it when it closes.
pub fn launch(console: &Url, request: OpenRequest, ca: Option<&std::path::Path>) -> anyhow::Result<()> {
    let program = viewer_program()?;
    let gateway = gateway_url(console).map_err(anyhow::Error::msg)?;
    let mut command = Command::new(&program);
    command.args(["--url", &gateway, "--token-stdin", "--title", &format!("RAP — {}", request.title)]);
    if let Some(ca) = ca {
        command.arg("--ca").arg(ca);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|error| anyhow::anyhow!("starting {}: {error}", program.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("{}\n", request.token).as_bytes())?;
    }
    std::thread::spawn(move || match child.wait() {
        Ok(status) if !status.success() => tracing::warn!(%status, "The desktop window ended with an error"),
        Err(error) => tracing::warn!(%error, "The desktop window could not be waited for"),
        Ok(_) => {}
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console() -> Url {
        Url::parse("http://127.0.0.1:47080/").expect("url")
    }

    fn request(text: &str) -> Option<Result<OpenRequest, &'static str>> {
        open_request(&Url::parse(text).expect("url"), &console())
    }

    #[test]
    fn only_the_consoles_own_open_window_navigation_is_taken() {
        assert_eq!(
            request("http://127.0.0.1:47080/desktop-app/open-window#token=abc_DEF-1.2&title=Front+desk+PC"),
            Some(Ok(OpenRequest { token: "abc_DEF-1.2".into(), title: "Front desk PC".into() }))
        );
        assert_eq!(request("http://127.0.0.1:47080/#/viewer/1"), None, "the console's own pages go ahead");
        assert_eq!(request("http://127.0.0.1:9999/desktop-app/open-window#token=abc"), None, "another origin");
        assert_eq!(request("https://127.0.0.1:47080/desktop-app/open-window#token=abc"), None, "another scheme");
    }

    #[test]
    fn malformed_requests_are_refused_not_launched() {
        for (text, why) in [
            ("http://127.0.0.1:47080/desktop-app/open-window", "an open-window request without a token"),
            ("http://127.0.0.1:47080/desktop-app/open-window#token=", "an open-window request with a malformed token"),
            (
                "http://127.0.0.1:47080/desktop-app/open-window#token=a%20b",
                "an open-window request with a malformed token",
            ),
            (
                "http://127.0.0.1:47080/desktop-app/open-window#token=a&token=b",
                "a field given twice in an open-window request",
            ),
            (
                "http://127.0.0.1:47080/desktop-app/open-window#token=a&url=ws://evil",
                "unknown field in an open-window request",
            ),
        ] {
            assert_eq!(request(text), Some(Err(why)), "{text}");
        }
        let long = format!("http://127.0.0.1:47080/desktop-app/open-window#token={}", "a".repeat(513));
        assert!(matches!(request(&long), Some(Err(_))));
    }

    #[test]
    fn titles_are_one_bounded_printable_line() {
        let Some(Ok(open)) = request("http://127.0.0.1:47080/desktop-app/open-window#token=t&title=%0Aline%07two")
        else {
            panic!("parsed")
        };
        assert_eq!(open.title, "linetwo");
        let Some(Ok(open)) = request("http://127.0.0.1:47080/desktop-app/open-window#token=t") else {
            panic!("parsed")
        };
        assert_eq!(open.title, "Remote desktop");
        let long = format!("http://127.0.0.1:47080/desktop-app/open-window#token=t&title={}", "é".repeat(300));
        let Some(Ok(open)) = request(&long) else { panic!("parsed") };
        assert_eq!(open.title.chars().count(), 120);
    }

    #[test]
    fn notices_reach_the_page_as_one_plain_string() {
        assert_eq!(
            notice_script("No \"window\" <b>\n"),
            r#"window.dispatchEvent(new CustomEvent('rap-desktop-notice', { detail: "No \"window\" \u003cb\u003e\u000a" }));"#
        );
        assert!(notice_script("a\\b").contains(r#""a\\b""#));
    }

    #[test]
    fn the_gateway_follows_the_consoles_scheme_and_address() {
        assert_eq!(gateway_url(&console()), Ok("ws://127.0.0.1:47080/api/v1/gateway/ws".into()));
        let lan = Url::parse("https://appliance.local/").expect("url");
        assert_eq!(gateway_url(&lan), Ok("wss://appliance.local:443/api/v1/gateway/ws".into()));
    }
}
