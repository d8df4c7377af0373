//! Who may open a live-plane socket, checked before the upgrade: a page of
//! the appliance's own origin (or an allowed one), from an address under
//! its socket limit. After `attach`, the user's own limit applies too. The
//! socket's task holds what it was admitted with, so the counts and the
//! connection limit cover it until it closes. The check itself is
//! [`super::routes::admit`]; this room keeps the counts.

use rap_storage::UserId;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// Live WebSockets per user and per source address.
pub struct SocketCounts {
    per_user: usize,
    per_address: usize,
    users: Arc<Mutex<HashMap<UserId, usize>>>,
    addresses: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One socket counted; dropping it uncounts it.
pub struct Claim {
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

fn claim<K: Hash + Eq + Copy + Send + Sync + 'static>(
    counts: &Arc<Mutex<HashMap<K, usize>>>,
    key: K,
    limit: usize,
) -> Option<Claim> {
    let mut map = counts.lock();
    let count = map.entry(key).or_insert(0);
    if *count >= limit {
        return None;
    }
    *count += 1;
    let counts = counts.clone();
    Some(Claim {
        release: Some(Box::new(move || {
            let mut map = counts.lock();
            if let Some(count) = map.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&key);
                }
            }
        })),
    })
}

impl SocketCounts {
    pub fn new(per_user: usize, per_address: usize) -> Self {
        Self { per_user, per_address, users: Default::default(), addresses: Default::default() }
    }

    pub fn claim_user(&self, user_id: UserId) -> Option<Claim> {
        claim(&self.users, user_id, self.per_user)
    }

    pub(super) fn claim_address(&self, address: IpAddr) -> Option<Claim> {
        claim(&self.addresses, address, self.per_address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_up_to_the_limit_and_back_down_on_drop() {
        let counts = SocketCounts::new(2, 1);
        let user = UserId::generate();
        let first = counts.claim_user(user).expect("first");
        let _second = counts.claim_user(user).expect("second");
        assert!(counts.claim_user(user).is_none());
        assert!(counts.claim_user(UserId::generate()).is_some(), "another user has their own count");
        drop(first);
        assert!(counts.claim_user(user).is_some());
        let address: IpAddr = "192.168.1.5".parse().expect("ip");
        let held = counts.claim_address(address).expect("address");
        assert!(counts.claim_address(address).is_none());
        drop(held);
        assert!(counts.claim_address(address).is_some());
        assert!(counts.addresses.lock().is_empty(), "released entries leave the map");
    }
}
