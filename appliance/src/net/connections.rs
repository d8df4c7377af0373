//! Every open HTTP connection, idle or busy, on one board, so that idle
//! ones (half-sent requests, slow handshakes, forgotten keep-alives) cannot
//! take the file descriptors the appliance needs: past the idle limit, or
//! at the connection limit, the connection idle longest is closed to make
//! room for the new one. A connection with a request in progress is never
//! closed this way.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::throttle::LogThrottle;

const IDLE: &str = "idle";
const BUSY: &str = "busy";

static EVICTIONS_LOGGED: LogThrottle = LogThrottle::new(std::time::Duration::from_secs(10));
static REFUSALS_LOGGED: LogThrottle = LogThrottle::new(std::time::Duration::from_secs(10));

pub struct ConnectionBoard {
    board: Mutex<Board>,
    max_connections: usize,
    max_idle: usize,
    metrics: Metrics,
}

#[derive(Default)]
struct Board {
    next_id: u64,
    next_idle_order: u64,
    open: HashMap<u64, Entry>,
    /// Idle connections, oldest first: (order it became idle, id).
    idle: BTreeSet<(u64, u64)>,
    /// Connections told to close that have not closed yet.
    closing: usize,
}

struct Entry {
    requests: usize,
    idle_order: Option<u64>,
    /// Upgraded (a WebSocket): it leaves the board's accounting of HTTP work.
    pinned: bool,
    close: CancellationToken,
}

impl ConnectionBoard {
    pub fn new(max_connections: usize, max_idle: usize, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self { board: Mutex::new(Board::default()), max_connections, max_idle, metrics })
    }

    /// Admits a new connection (idle until its first request arrives),
    /// closing the longest-idle one if a limit is reached; `None` if every
    /// connection is busy and the connection limit is reached.
    pub fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut board = self.board.lock();
        let live = board.open.len() - board.closing;
        if live >= self.max_connections || board.idle.len() >= self.max_idle {
            if let Some((_, oldest)) = board.idle.pop_first() {
                board.closing += 1;
                if let Some(entry) = board.open.get_mut(&oldest) {
                    entry.idle_order = None;
                    entry.close.cancel();
                }
                self.metrics.connection_closed("evicted_idle");
                if let Some(held_back) = EVICTIONS_LOGGED.admit() {
                    tracing::warn!(
                        held_back,
                        "Closed the longest-idle connection to admit a new one (idle connection limit)"
                    );
                }
            } else if live >= self.max_connections {
                self.metrics.connection_closed("over_limit");
                if let Some(held_back) = REFUSALS_LOGGED.admit() {
                    tracing::warn!(
                        held_back,
                        max = self.max_connections,
                        "Refused a connection: every connection is busy"
                    );
                }
                return None;
            }
        }
        let id = board.next_id;
        board.next_id += 1;
        let order = board.next_idle_order;
        board.next_idle_order += 1;
        let close = CancellationToken::new();
        board.open.insert(id, Entry { requests: 0, idle_order: Some(order), pinned: false, close: close.clone() });
        board.idle.insert((order, id));
        self.metrics.connection_state(None, Some(IDLE));
        Some(Slot { board: self.clone(), id, close })
    }

    /// Open connections and how many of them are idle.
    pub fn counts(&self) -> (usize, usize) {
        let board = self.board.lock();
        (board.open.len(), board.idle.len())
    }
}

/// One admitted connection; dropping it takes it off the board.
pub struct Slot {
    board: Arc<ConnectionBoard>,
    id: u64,
    /// Cancelled when the board closes this connection to make room.
    pub close: CancellationToken,
}

impl Slot {
    /// Marks a request in progress until the returned guard drops (with
    /// the response body).
    pub fn busy(&self) -> Busy {
        let mut board = self.board.board.lock();
        let board = &mut *board;
        if let Some(entry) = board.open.get_mut(&self.id) {
            entry.requests += 1;
            if let Some(order) = entry.idle_order.take() {
                board.idle.remove(&(order, self.id));
                self.board.metrics.connection_state(Some(IDLE), Some(BUSY));
            }
        }
        Busy { board: self.board.clone(), id: self.id }
    }

    /// The connection was upgraded: never idle again while it lives.
    pub fn pin(&self) {
        if let Some(entry) = self.board.board.lock().open.get_mut(&self.id) {
            entry.pinned = true;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut board = self.board.board.lock();
        if let Some(entry) = board.open.remove(&self.id) {
            if entry.close.is_cancelled() {
                board.closing = board.closing.saturating_sub(1);
            }
            let state = match entry.idle_order {
                Some(order) => {
                    board.idle.remove(&(order, self.id));
                    IDLE
                }
                None if entry.requests > 0 || entry.pinned => BUSY,
                // Evicted: taken off the idle list when it was told to close.
                None => IDLE,
            };
            self.board.metrics.connection_state(Some(state), None);
        }
    }
}

pub struct Busy {
    board: Arc<ConnectionBoard>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut board = self.board.board.lock();
        let board = &mut *board;
        let Some(entry) = board.open.get_mut(&self.id) else { return };
        entry.requests = entry.requests.saturating_sub(1);
        if entry.requests == 0 && !entry.pinned && !entry.close.is_cancelled() {
            let order = board.next_idle_order;
            board.next_idle_order += 1;
            entry.idle_order = Some(order);
            board.idle.insert((order, self.id));
            self.board.metrics.connection_state(Some(BUSY), Some(IDLE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_gives_way_and_busy_ones_never_do() {
        let board = ConnectionBoard::new(3, 2, Metrics::new());
        let first = board.admit().expect("first");
        let second = board.admit().expect("second");
        let working = second.busy();
        let third = board.admit().expect("third");
        assert_eq!(board.counts(), (3, 2));
        // Limit reached: the oldest idle one (first) is told to close.
        let fourth = board.admit().expect("fourth");
        assert!(first.close.is_cancelled());
        assert!(!second.close.is_cancelled() && !third.close.is_cancelled());
        drop(first);
        assert_eq!(board.counts(), (3, 2));
        // Every other connection busy: the next one is refused.
        let _third_working = third.busy();
        let _fourth_working = fourth.busy();
        assert!(board.admit().is_none());
        drop(working);
        assert!(board.admit().is_some(), "second is idle again and gives way");
        assert!(second.close.is_cancelled());
    }

    #[test]
    fn upgraded_connections_stay_busy() {
        let board = ConnectionBoard::new(10, 1, Metrics::new());
        let socket = board.admit().expect("socket");
        let request = socket.busy();
        socket.pin();
        drop(request);
        assert_eq!(board.counts(), (1, 0));
        let _other = board.admit().expect("other");
        assert!(!socket.close.is_cancelled());
    }
}
