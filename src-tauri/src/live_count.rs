//! The tray's live line ("2 live sessions, 1 viewer attached"), read every
//! few seconds from the appliance's own `GET /metrics` on the window's
//! loopback console listener: the same numbers an operator's Prometheus
//! sees, with no new door into the appliance.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How often the tray's line is refreshed.
pub const REFRESH: Duration = Duration::from_secs(5);

/// A metrics page is a few KiB; more than this is not one.
const MAX_ANSWER: u64 = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveCounts {
    /// Remote sessions that are not terminated or failed.
    pub sessions: u64,
    /// Viewers attached to them right now.
    pub viewers: u64,
}

/// The counts in an OpenMetrics page, if both are there.
pub fn parse_metrics(text: &str) -> Option<LiveCounts> {
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|number| number.trim().parse::<f64>().ok())
            .filter(|number| number.is_finite() && *number >= 0.0)
            .map(|number| number as u64)
    };
    Some(LiveCounts { sessions: value("rap_active_sessions")?, viewers: value("rap_attached_viewers")? })
}

/// The tray's words for the counts (or for not knowing them).
pub fn line(counts: Option<LiveCounts>) -> String {
    let plural = |count: u64, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
    match counts {
        None => "Live sessions: not known right now".to_owned(),
        Some(LiveCounts { sessions: 0, .. }) => "No live sessions".to_owned(),
        Some(LiveCounts { sessions, viewers }) => format!(
            "{}, {} attached",
            plural(sessions, "live session", "live sessions"),
            plural(viewers, "viewer", "viewers")
        ),
    }
}

/// `GET /metrics` from the console listener at `console` (plain HTTP on
/// loopback), bounded in time and size.
pub fn fetch(console: SocketAddr) -> std::io::Result<LiveCounts> {
    let mut stream = TcpStream::connect_timeout(&console, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {console}\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.take(MAX_ANSWER).read_to_string(&mut answer)?;
    let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(|| invalid("no HTTP answer"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(invalid("metrics not served"));
    }
    parse_metrics(body).ok_or_else(|| invalid("no session counts in the metrics"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_the_metrics_page() {
        let page = "# HELP rap_active_sessions Remote sessions\n# TYPE rap_active_sessions gauge\nrap_active_sessions 3\n\
                    rap_attached_viewers 2\nrap_active_sessions_other 9\n# EOF\n";
        assert_eq!(parse_metrics(page), Some(LiveCounts { sessions: 3, viewers: 2 }));
        assert_eq!(parse_metrics("rap_active_sessions 1\n"), None, "both are needed");
        assert_eq!(parse_metrics("rap_active_sessions -1\nrap_attached_viewers 0\n"), None);
        assert_eq!(parse_metrics("rap_active_sessions NaN\nrap_attached_viewers 0\n"), None);
    }

    #[test]
    fn the_line_says_it_as_a_person_would() {
        assert_eq!(line(None), "Live sessions: not known right now");
        assert_eq!(line(Some(LiveCounts { sessions: 0, viewers: 0 })), "No live sessions");
        assert_eq!(line(Some(LiveCounts { sessions: 1, viewers: 1 })), "1 live session, 1 viewer attached");
        assert_eq!(line(Some(LiveCounts { sessions: 2, viewers: 0 })), "2 live sessions, 0 viewers attached");
    }
}
