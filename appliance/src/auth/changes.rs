//! A signal that someone's rights may have shrunk: an auth session revoked
//! (logout, device removed, token reuse), a user disabled, a membership
//! changed or removed. Whatever holds access open (an attached socket)
//! watches it and re-checks its own right when it fires, so access ends
//! when the right ends, not when a token or socket happens to expire.
//!
//! It carries no detail: a change is rare, a re-check is cheap, and one
//! signal for everything cannot be forgotten by a new kind of change that
//! calls [`AccessChanges::changed`].

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Clone)]
pub struct AccessChanges {
    sender: Arc<watch::Sender<u64>>,
}

impl AccessChanges {
    pub fn new() -> Self {
        Self { sender: Arc::new(watch::Sender::new(0)) }
    }

    /// Called once the change is committed (and live state updated), so a
    /// re-check that follows sees it.
    pub fn changed(&self) {
        self.sender.send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// A receiver that has seen every change so far.
    pub fn watch(&self) -> watch::Receiver<u64> {
        let mut receiver = self.sender.subscribe();
        receiver.mark_unchanged();
        receiver
    }
}

impl Default for AccessChanges {
    fn default() -> Self {
        Self::new()
    }
}
