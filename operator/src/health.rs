//! What `/readyz` reports: whether this replica can do its job. A follower waiting for the
//! Lease is ready (it is healthy and will take over); a serving replica is ready once its
//! caches of FediInstances hold the cluster's state, so it never acts on a partial view.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}
