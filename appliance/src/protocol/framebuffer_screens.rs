//! The registry of running sessions' screens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rap_storage::SessionId;

use super::{PixelStore, Screen, ScreenCounts, opaque_black};

/// The screens of running sessions, shared by workers and the gateway.
#[derive(Clone, Default)]
pub struct Screens {
    inner: Arc<Mutex<HashMap<SessionId, Arc<Screen>>>>,
    counts: Arc<ScreenCounts>,
    /// Woken whenever a screen opens, for sockets waiting for their
    /// session's desktop.
    opened: Arc<tokio::sync::Notify>,
}

impl Screens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<Screen>>> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates (or replaces) the screen of `session_id`.
    pub fn open(&self, session_id: SessionId, width: u16, height: u16) -> Arc<Screen> {
        self.open_with(session_id, width, height, Box::new(opaque_black(width, height)))
    }

    /// [`Self::open`] over a decoder's own pixels.
    pub fn open_with(&self, session_id: SessionId, width: u16, height: u16, store: Box<dyn PixelStore>) -> Arc<Screen> {
        let screen = Screen::counted(width, height, store, self.counts.clone());
        self.lock().insert(session_id, screen.clone());
        self.opened.notify_waiters();
        screen
    }

    /// Completes at the next [`Self::open_with`]; create it before looking
    /// with [`Self::get`], so an opening in between is not missed.
    pub fn opened(&self) -> tokio::sync::futures::OwnedNotified {
        self.opened.clone().notified_owned()
    }

    pub fn get(&self, session_id: SessionId) -> Option<Arc<Screen>> {
        self.lock().get(&session_id).cloned()
    }

    pub fn close(&self, session_id: SessionId) {
        self.lock().remove(&session_id);
    }

    /// Screen updates published so far (decoded remote desktop updates).
    pub fn published(&self) -> u64 {
        self.counts.published.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Access units the appliance encoded so far, and their bytes.
    pub fn encoded(&self) -> (u64, u64) {
        let counts = &self.counts;
        let load = |count: &std::sync::atomic::AtomicU64| count.load(std::sync::atomic::Ordering::Relaxed);
        (load(&counts.encoded_frames), load(&counts.encoded_bytes))
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
