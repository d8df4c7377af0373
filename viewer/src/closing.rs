//! What a window does when its socket closes, decided from the gateway's
//! close code as the web viewer decides it (the appliance's PROTOCOL.md
//! lists the codes): some closes are final, a takeover waits for the
//! person to take control back, the rest reconnect with backoff.

use std::time::Duration;

/// The gateway's close codes.
pub mod code {
    /// The attach token was refused (used, expired).
    pub const ATTACH_REFUSED: u16 = 4401;
    /// Signed out, disabled, or no longer allowed on the session.
    pub const ACCESS_REVOKED: u16 = 4403;
    /// The session is over.
    pub const SESSION_ENDED: u16 = 4409;
    /// Another device took the session over.
    pub const TAKEN_OVER: u16 = 4411;
    /// Too many messages, or too many sockets for the user.
    pub const RATE_LIMITED: u16 = 4429;
}

/// Reconnects wait 1, 2, 4, 8, 16, then 30 s.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A rate-limited socket waits at least the fourth step (8 s): sooner
/// would only meet the same limit.
const RATE_LIMITED_MIN_ATTEMPT: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterClose {
    /// Nothing to come back to: the words say why.
    Over(String),
    /// Another device holds the session; this one may take it back.
    TakenOver(String),
    /// The connection went; another after `delay`, `why` in words.
    Reconnect { delay: Duration, why: String },
}

/// The decision for a close with `code` (none when the socket just went),
/// `notice` the server's own words if it sent any, `attempt` the reconnects
/// since the last successful attach.
pub fn after_close(code: Option<u16>, notice: Option<String>, attempt: u32) -> AfterClose {
    let reconnect = |min_attempt: u32, why: &str| AfterClose::Reconnect {
        delay: backoff(attempt.max(min_attempt)),
        why: notice.clone().unwrap_or_else(|| why.to_owned()),
    };
    match code {
        Some(code::SESSION_ENDED) => AfterClose::Over(notice.unwrap_or_else(|| "The session ended.".to_owned())),
        Some(code::ACCESS_REVOKED) => {
            AfterClose::Over(notice.unwrap_or_else(|| "Access to this desktop ended.".to_owned()))
        }
        Some(code::TAKEN_OVER) => {
            AfterClose::TakenOver(notice.unwrap_or_else(|| "Another device took over.".to_owned()))
        }
        Some(code::RATE_LIMITED) => reconnect(RATE_LIMITED_MIN_ATTEMPT, "Rate limited by the appliance."),
        Some(code::ATTACH_REFUSED) => reconnect(1, "The attach token was refused."),
        _ => reconnect(0, "Connection lost."),
    }
}

/// The wait before reconnect number `attempt` (from 0).
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(5)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_closes_say_why_and_do_not_reconnect() {
        assert_eq!(after_close(Some(4409), None, 0), AfterClose::Over("The session ended.".into()));
        assert_eq!(
            after_close(Some(4409), Some("Terminated by an admin.".into()), 0),
            AfterClose::Over("Terminated by an admin.".into())
        );
        assert_eq!(after_close(Some(4403), None, 2), AfterClose::Over("Access to this desktop ended.".into()));
        assert_eq!(after_close(Some(4411), None, 0), AfterClose::TakenOver("Another device took over.".into()));
    }

    #[test]
    fn other_closes_reconnect_later_each_time_up_to_a_bound() {
        let delays: Vec<_> = (0..8)
            .map(|attempt| match after_close(None, None, attempt) {
                AfterClose::Reconnect { delay, .. } => delay.as_secs(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(
            after_close(Some(4429), None, 0),
            AfterClose::Reconnect { delay: Duration::from_secs(8), why: "Rate limited by the appliance.".into() }
        );
        assert_eq!(
            after_close(Some(4401), None, 0),
            AfterClose::Reconnect { delay: Duration::from_secs(2), why: "The attach token was refused.".into() }
        );
        assert_eq!(
            after_close(Some(1001), Some("The appliance is restarting.".into()), 0),
            AfterClose::Reconnect { delay: Duration::from_secs(1), why: "The appliance is restarting.".into() }
        );
    }
}
