//! "Open in window": the console asks for a desktop in a native window by
//! navigating to [`OPEN_WINDOW_PATH`] on its own origin with the attach
//! block in the URL's fragment. The app intercepts that navigation (it is
//! never made, and a fragment is never sent to a server anyway), checks
//! it strictly, and launches `rap-viewer` beside its own executable with
//! the single-use token on the viewer's standard input, never in its
//! command line where other users' `ps` would see it.
//!
//! A window that needs another token (its connection dropped, another
//! device took over) asks the app on its standard output
//! ([`rap_wire::renewal`]); the app asks the console with a
//! `rap-desktop-renew` page event, and the console, signed in, answers by
//! navigating to [`RENEW_WINDOW_PATH`] with the token or why there is
//! none, which the app writes to that window's standard input.
//!
//! The console window keeps having no IPC: these are navigations the app
//! chooses to handle, carrying nothing but tokens the page already held.

mod windows;

pub use windows::{Windows, launch};

use rap_wire::renewal::{RenewAnswer, RenewRequest, is_attach_token};
use tauri::Url;

/// Where the console sends an "Open in window" request.
pub const OPEN_WINDOW_PATH: &str = "/desktop-app/open-window";

/// Where the console answers a window's request for a fresh token.
pub const RENEW_WINDOW_PATH: &str = "/desktop-app/renew-window";

/// What pages learn from the app: that desktops can open in windows.
pub const PAGE_SCRIPT: &str = "window.rapDesktopApp = Object.freeze({ nativeViewer: true });";

/// Script the app runs in the console page to tell the person why a window
/// did not open (the page shows it as a warning). The app speaks to the
/// page; the page still has no way to speak to the app.
pub fn notice_script(words: &str) -> String {
    format!("window.dispatchEvent(new CustomEvent('rap-desktop-notice', {{ detail: {} }}));", js_string(words))
}

/// Script asking the console for a fresh token for `window`, which the
/// page answers at [`RENEW_WINDOW_PATH`]. Every value in it is checked
/// already (a number, a canonical UUID, `attach` or `takeover`).
pub fn renew_script(window: u64, request: &RenewRequest) -> String {
    format!(
        "window.dispatchEvent(new CustomEvent('rap-desktop-renew', {{ detail: {{ window: {window}, session: {}, how: {} }} }}));",
        js_string(&request.session_id),
        js_string(request.renew.as_str()),
    )
}

/// `words` as a JavaScript string literal (a JSON one, with `<`, `>`, `&`
/// escaped too so no text ever reads as markup).
fn js_string(words: &str) -> String {
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
    literal
}

const MAX_TITLE_CHARS: usize = 120;

/// One request from the console, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleRequest {
    /// A new window.
    Open(OpenRequest),
    /// A fresh token for an open window (or why there is none).
    Answer { window: u64, answer: RenewAnswer },
}

/// A new window's attach token and title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    pub token: String,
    pub title: String,
}

/// The request in `url`, if it is one: same origin as the console, one of
/// the app's paths, well-formed fields. `None` for every other navigation
/// (which then goes ahead as usual).
pub fn console_request(url: &Url, console: &Url) -> Option<Result<ConsoleRequest, &'static str>> {
    if url.origin() != console.origin() {
        return None;
    }
    let fragment = url.fragment().unwrap_or_default();
    match url.path() {
        OPEN_WINDOW_PATH => Some(parse_open(fragment).map(ConsoleRequest::Open)),
        RENEW_WINDOW_PATH => Some(parse_answer(fragment)),
        _ => None,
    }
}

/// The fragment's fields, each named in `known` and given at most once.
fn fields<const N: usize>(fragment: &str, known: [&str; N]) -> Result<[Option<String>; N], &'static str> {
    let mut values = [const { None }; N];
    for (name, value) in url::form_urlencoded::parse(fragment.as_bytes()) {
        let at = known.iter().position(|known| *known == name).ok_or("unknown field in a request to the app")?;
        if values[at].replace(value.into_owned()).is_some() {
            return Err("a field given twice in a request to the app");
        }
    }
    Ok(values)
}

fn parse_open(fragment: &str) -> Result<OpenRequest, &'static str> {
    let [token, title] = fields(fragment, ["token", "title"])?;
    let token = token.ok_or("an open-window request without a token")?;
    if !is_attach_token(&token) {
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

fn parse_answer(fragment: &str) -> Result<ConsoleRequest, &'static str> {
    let [window, token, refused, later] = fields(fragment, ["window", "token", "refused", "later"])?;
    let window = window
        .filter(|window| window.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|window| window.parse().ok())
        .ok_or("a token answer without a window")?;
    let answer = match (token, refused, later) {
        (Some(token), None, None) if is_attach_token(&token) => RenewAnswer::Token(token),
        (Some(_), None, None) => return Err("a token answer with a malformed token"),
        (None, Some(words), None) => RenewAnswer::refused(&words),
        (None, None, Some(words)) => RenewAnswer::later(&words),
        _ => return Err("a token answer needs one of a token, a refusal or a later"),
    };
    Ok(ConsoleRequest::Answer { window, answer })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn console() -> Url {
        Url::parse("http://127.0.0.1:47080/").expect("url")
    }

    fn request(text: &str) -> Option<Result<OpenRequest, &'static str>> {
        console_request(&Url::parse(text).expect("url"), &console()).map(|request| match request {
            Ok(ConsoleRequest::Open(open)) => Ok(open),
            Ok(other) => panic!("not an open request: {other:?}"),
            Err(why) => Err(why),
        })
    }

    fn answer(fragment: &str) -> Result<ConsoleRequest, &'static str> {
        let url = Url::parse(&format!("http://127.0.0.1:47080{RENEW_WINDOW_PATH}#{fragment}")).expect("url");
        console_request(&url, &console()).expect("a request to the app")
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
                "a field given twice in a request to the app",
            ),
            (
                "http://127.0.0.1:47080/desktop-app/open-window#token=a&url=ws://evil",
                "unknown field in a request to the app",
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
    fn token_answers_name_a_window_and_carry_a_token_or_a_refusal() {
        assert_eq!(
            answer("window=7&token=abc_DEF"),
            Ok(ConsoleRequest::Answer { window: 7, answer: RenewAnswer::Token("abc_DEF".into()) })
        );
        assert_eq!(
            answer("window=0&refused=Sign+in+again.%0A"),
            Ok(ConsoleRequest::Answer { window: 0, answer: RenewAnswer::Refused("Sign in again.".into()) })
        );
        assert_eq!(
            answer("window=2&later=Unreachable."),
            Ok(ConsoleRequest::Answer { window: 2, answer: RenewAnswer::Later("Unreachable.".into()) })
        );
        for (fragment, why) in [
            ("token=abc", "a token answer without a window"),
            ("window=-1&token=abc", "a token answer without a window"),
            ("window=%2B1&token=abc", "a token answer without a window"),
            ("window=99999999999999999999&token=abc", "a token answer without a window"),
            ("window=1&token=a%0Ab", "a token answer with a malformed token"),
            ("window=1", "a token answer needs one of a token, a refusal or a later"),
            ("window=1&token=abc&refused=no", "a token answer needs one of a token, a refusal or a later"),
            ("window=1&refused=no&later=no", "a token answer needs one of a token, a refusal or a later"),
            ("window=1&window=2&token=abc", "a field given twice in a request to the app"),
            ("window=1&token=abc&url=ws://elsewhere", "unknown field in a request to the app"),
        ] {
            assert_eq!(answer(fragment), Err(why), "{fragment}");
        }
        let elsewhere =
            Url::parse(&format!("http://127.0.0.1:9999{RENEW_WINDOW_PATH}#window=1&token=abc")).expect("url");
        assert_eq!(console_request(&elsewhere, &console()), None, "another origin");
    }

    #[test]
    fn token_requests_reach_the_page_as_checked_values() {
        let request = RenewRequest::parse("renew takeover 0193a5b2-7c1d-7e2f-8a3b-4c5d6e7f8091").expect("request");
        assert_eq!(
            renew_script(3, &request),
            "window.dispatchEvent(new CustomEvent('rap-desktop-renew', { detail: { window: 3, session: \"0193a5b2-7c1d-7e2f-8a3b-4c5d6e7f8091\", how: \"takeover\" } }));"
        );
    }

    #[test]
    fn the_gateway_follows_the_consoles_scheme_and_address() {
        assert_eq!(gateway_url(&console()), Ok("ws://127.0.0.1:47080/api/v1/gateway/ws".into()));
        let lan = Url::parse("https://appliance.local/").expect("url");
        assert_eq!(gateway_url(&lan), Ok("wss://appliance.local:443/api/v1/gateway/ws".into()));
    }
}
