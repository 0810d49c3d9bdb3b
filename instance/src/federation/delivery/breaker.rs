//! A circuit breaker per inbox (Mastodon's Stoplight on `DeliveryWorker`): after
//! [`THRESHOLD`] failures in a row, deliveries to that inbox are not attempted for
//! [`COOL_OFF`], so that a burst of jobs for a dead server (a popular account's post) fails
//! fast instead of each waiting for its timeout. After the cool-off, one attempt decides:
//! success closes the circuit, failure opens it again.
//!
//! Kept in each worker process (Mastodon keeps it in Redis): a process learns of a dead
//! inbox within its own first failures, which is what the breaker is for; the durable
//! record is the per-domain failure days.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const THRESHOLD: u32 = 10;
pub const COOL_OFF: Duration = Duration::from_secs(60);
/// Bounds the memory of a process that has seen many failing inboxes.
const MAX_TRACKED: usize = 100_000;

#[derive(Default)]
pub struct Breakers {
    inboxes: Mutex<HashMap<String, State>>,
}

#[derive(Clone, Copy)]
struct State {
    failures: u32,
    opened_at: Option<Instant>,
}

impl Breakers {
    /// Whether a delivery to `inbox` may be attempted at `now`.
    pub fn allows(&self, inbox: &str, now: Instant) -> bool {
        let inboxes = self.inboxes.lock().expect("breaker lock");
        match inboxes.get(inbox).and_then(|s| s.opened_at) {
            Some(opened) => now.duration_since(opened) >= COOL_OFF,
            None => true,
        }
    }

    pub fn success(&self, inbox: &str) {
        self.inboxes.lock().expect("breaker lock").remove(inbox);
    }

    pub fn failure(&self, inbox: &str, now: Instant) {
        let mut inboxes = self.inboxes.lock().expect("breaker lock");
        if inboxes.len() >= MAX_TRACKED && !inboxes.contains_key(inbox) {
            inboxes.clear();
        }
        let state = inboxes.entry(inbox.to_string()).or_insert(State {
            failures: 0,
            opened_at: None,
        });
        state.failures += 1;
        // Reaching the threshold opens the circuit; a failed try after the cool-off (the
        // count is past it) opens it again.
        if state.failures >= THRESHOLD {
            state.opened_at = Some(now);
        }
    }
}

/// The process's breakers.
pub fn breakers() -> &'static Breakers {
    static BREAKERS: std::sync::OnceLock<Breakers> = std::sync::OnceLock::new();
    BREAKERS.get_or_init(Breakers::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_open_the_circuit_for_a_minute_and_one_try_decides() {
        let b = Breakers::default();
        let t0 = Instant::now();
        for _ in 0..THRESHOLD - 1 {
            b.failure("https://dead.example/inbox", t0);
        }
        assert!(
            b.allows("https://dead.example/inbox", t0),
            "nine are not enough"
        );
        b.failure("https://dead.example/inbox", t0);
        assert!(!b.allows("https://dead.example/inbox", t0));
        assert!(!b.allows("https://dead.example/inbox", t0 + Duration::from_secs(59)));
        assert!(b.allows("https://other.example/inbox", t0), "per inbox");
        let later = t0 + COOL_OFF;
        assert!(b.allows("https://dead.example/inbox", later), "half open");
        b.failure("https://dead.example/inbox", later);
        assert!(!b.allows("https://dead.example/inbox", later + Duration::from_secs(1)));
        b.success("https://dead.example/inbox");
        assert!(b.allows("https://dead.example/inbox", later + Duration::from_secs(1)));
    }
}
