//! How a native viewer window gets a fresh attach token from the desktop
//! app that launched it, to reconnect after a dropped connection or to take
//! control back after a takeover. Attach tokens are single-use and the
//! viewer holds no sign-in, so only the console (signed in, in the app's
//! webview) can ask the appliance for another; the app carries the asking
//! and the answer over the viewer's standard output and input, one line
//! each:
//!
//! ```text
//! viewer → app   renew attach 7f1c…-…   (reconnect)
//!                renew takeover 7f1c…-… (take control back)
//! app → viewer   token <attach token>
//!                refused <words for the person>
//!                later <words>   (the appliance is unreachable or busy:
//!                                 a reconnect asks again after its backoff)
//! ```
//!
//! Both sides parse strictly: a line that is not exactly one of these is
//! ignored by its reader, never half-understood.

use std::fmt;

/// Attach tokens are URL-safe base64 of a few dozen bytes; anything longer
/// or with other characters is not one of ours.
pub const MAX_TOKEN_LEN: usize = 512;

/// Words in a refusal at most (one line of a window title).
pub const MAX_REFUSAL_CHARS: usize = 200;

/// Whether `token` looks like an attach token (it is still only the
/// appliance that says whether it is one).
pub fn is_attach_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// What a fresh token is for: the session API's `attach` or `takeover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renew {
    Attach,
    Takeover,
}

impl Renew {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attach => "attach",
            Self::Takeover => "takeover",
        }
    }
}

/// A viewer's request: a token for `session_id` (a UUID in its canonical
/// lowercase hyphenated form, as the gateway names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewRequest {
    pub renew: Renew,
    pub session_id: String,
}

impl RenewRequest {
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.trim_end_matches(['\r', '\n']).split(' ');
        let (Some("renew"), Some(renew), Some(session_id), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return None;
        };
        let renew = match renew {
            "attach" => Renew::Attach,
            "takeover" => Renew::Takeover,
            _ => return None,
        };
        is_canonical_uuid(session_id).then(|| Self { renew, session_id: session_id.to_owned() })
    }
}

impl fmt::Display for RenewRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "renew {} {}", self.renew.as_str(), self.session_id)
    }
}

/// The app's answer to a [`RenewRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewAnswer {
    Token(String),
    /// Why there is no token (signed out of the console, the session
    /// ended, someone else in control), said to the person.
    Refused(String),
    /// No token yet (the appliance is unreachable or busy); worth asking
    /// again later.
    Later(String),
}

impl RenewAnswer {
    /// A refusal in words fit for one line.
    pub fn refused(words: &str) -> Self {
        Self::Refused(one_line(words))
    }

    /// A "not now" in words fit for one line.
    pub fn later(words: &str) -> Self {
        Self::Later(one_line(words))
    }

    pub fn parse(line: &str) -> Option<Self> {
        let line = line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_once(' ')?;
        // Words only as `one_line` would have written them.
        let words = || Some(rest.to_owned()).filter(|rest| *rest == one_line(rest));
        match kind {
            "token" => is_attach_token(rest).then(|| Self::Token(rest.to_owned())),
            "refused" => words().map(Self::Refused),
            "later" => words().map(Self::Later),
            _ => None,
        }
    }
}

impl fmt::Display for RenewAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(token) => write!(f, "token {token}"),
            Self::Refused(words) => write!(f, "refused {words}"),
            Self::Later(words) => write!(f, "later {words}"),
        }
    }
}

/// Words for a window title: controls dropped, bounded, never empty.
fn one_line(words: &str) -> String {
    let words: String = words.chars().filter(|c| !c.is_control()).take(MAX_REFUSAL_CHARS).collect();
    let words = words.trim();
    if words.is_empty() { "The console gave no token.".to_owned() } else { words.to_owned() }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase hex.
fn is_canonical_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(at, byte)| match at {
            8 | 13 | 18 | 23 => byte == b'-',
            _ => byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = "0193a5b2-7c1d-7e2f-8a3b-4c5d6e7f8091";

    #[test]
    fn requests_round_trip_and_nothing_else_parses() {
        for renew in [Renew::Attach, Renew::Takeover] {
            let request = RenewRequest { renew, session_id: SESSION.to_owned() };
            assert_eq!(RenewRequest::parse(&format!("{request}\n")), Some(request));
        }
        for line in [
            "",
            "renew",
            "renew attach",
            &format!("renew shadow {SESSION}"),
            &format!("renew attach {SESSION} extra"),
            &format!("renew  attach {SESSION}"),
            &format!("renew attach {}", SESSION.to_uppercase()),
            "renew attach 0193a5b2-7c1d-7e2f-8a3b-4c5d6e7f809",
            "renew attach ../../etc/passwd",
            &format!("RENEW attach {SESSION}"),
        ] {
            assert_eq!(RenewRequest::parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn answers_round_trip_and_nothing_else_parses() {
        for answer in [
            RenewAnswer::Token("abc_DEF-1.2".into()),
            RenewAnswer::refused("Sign in to the console again."),
            RenewAnswer::later("The appliance could not be reached."),
        ] {
            assert_eq!(RenewAnswer::parse(&format!("{answer}\n")), Some(answer));
        }
        for line in [
            "token",
            "token ",
            "token a b",
            &format!("token {}", "a".repeat(MAX_TOKEN_LEN + 1)),
            "refused ",
            &format!("refused {}", "x".repeat(MAX_REFUSAL_CHARS + 1)),
            "refused a\u{7}b",
            "refused  padded",
            "later ",
            "granted abc",
        ] {
            assert_eq!(RenewAnswer::parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn refusals_are_one_bounded_line() {
        assert_eq!(RenewAnswer::refused("two\nlines\u{1b}[31m"), RenewAnswer::Refused("twolines[31m".into()));
        assert_eq!(RenewAnswer::refused(" \n "), RenewAnswer::Refused("The console gave no token.".into()));
        let RenewAnswer::Refused(long) = RenewAnswer::refused(&"é".repeat(500)) else { panic!("refused") };
        assert_eq!(long.chars().count(), MAX_REFUSAL_CHARS);
    }
}
