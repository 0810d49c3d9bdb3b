//! The limit on concurrent reconciles (`--max-concurrent-reconciles`): a fair queue in which
//! live (Ready) instances go first, first come first served among the live ones and among
//! the others.
//!
//! Why live first: while a fleet converges, every slot is taken by first installs that wait
//! seconds on a busy API server, and hundreds more queue behind them. A live instance whose
//! Deployment was deleted (an outage for its users) queued behind all of them: 133 s at
//! 1,000 instances. A live instance's reconcile is cheap when nothing changed, so putting
//! it first costs the installs little.
//!
//! Whether a waiter is live is asked again whenever a slot frees up, not only when it
//! started waiting: kube-runtime holds a new request for an instance while one is running,
//! and a waiting reconcile counts as running. An instance that became Ready while its
//! reconcile waited, and then lost a Deployment, was repaired only after the 217 s wait of
//! a first install.
//!
//! Why not kube-runtime's own limit (`Config::concurrency`): it takes held requests in hash
//! order, and with a fleet's requeues always waiting some instances never got their turn
//! (104 of 1,000 unreconciled after 19 minutes).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::crd::FediInstance;

#[derive(Clone)]
pub struct Slots {
    inner: Arc<Mutex<Inner>>,
}

/// Whether a waiter's instance is live at this moment.
pub type Live = Box<dyn Fn() -> bool + Send>;

struct Inner {
    free: usize,
    /// In the order they came.
    waiting: VecDeque<Waiter>,
}

struct Waiter {
    live: Live,
    tx: oneshot::Sender<Slot>,
}

/// One reconcile's slot, given back when dropped (to the next waiter, if any).
pub struct Slot {
    inner: Option<Arc<Mutex<Inner>>>,
}

impl Slots {
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                free: limit,
                waiting: VecDeque::new(),
            })),
        }
    }

    /// Waits for a slot; `live` says, when a slot frees up, whether this waiter's instance is
    /// live. Cancel-safe: a waiter given up on never holds a slot.
    pub async fn acquire(&self, live: Live) -> Slot {
        let rx = {
            let mut inner = self.inner.lock().expect("slots lock poisoned");
            if inner.free > 0 {
                inner.free -= 1;
                return Slot {
                    inner: Some(self.inner.clone()),
                };
            }
            let (tx, rx) = oneshot::channel();
            inner.waiting.push_back(Waiter { live, tx });
            rx
        };
        match rx.await {
            Ok(slot) => slot,
            // The sender is only dropped by `Slot::drop`, which sends first.
            Err(_) => unreachable!("a waiter's sender is dropped without a slot"),
        }
    }

    /// Reconciles waiting for a slot: (live, others).
    #[cfg(test)]
    fn waiting(&self) -> (usize, usize) {
        let inner = self.inner.lock().expect("slots lock poisoned");
        let live = inner.waiting.iter().filter(|w| (w.live)()).count();
        (live, inner.waiting.len() - live)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(shared) = self.inner.take() else {
            return;
        };
        let mut inner = shared.lock().expect("slots lock poisoned");
        // Waiters given up on leave their place in the queue here.
        inner.waiting.retain(|w| !w.tx.is_closed());
        loop {
            let next = inner
                .waiting
                .iter()
                .position(|w| (w.live)())
                .or((!inner.waiting.is_empty()).then_some(0));
            let Some(waiter) = next.and_then(|i| inner.waiting.remove(i)) else {
                inner.free += 1;
                return;
            };
            let handed = Slot {
                inner: Some(shared.clone()),
            };
            match waiter.tx.send(handed) {
                Ok(()) => return,
                // Given up on meanwhile: the slot goes to the next one. Emptied first, so
                // that dropping it does not give it back a second time.
                Err(mut unsent) => drop(unsent.inner.take()),
            }
        }
    }
}

/// Whether `fedi` is live: its Ready condition is True.
pub fn is_live(fedi: &FediInstance) -> bool {
    fedi.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == crate::status::READY && c.status == "True")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    fn never() -> Live {
        Box::new(|| false)
    }

    /// Starts a waiter for a slot of `class`, which records `name` when it gets one and
    /// lets go of it at once.
    fn waiter(
        slots: &Slots,
        live: &Arc<AtomicBool>,
        name: &'static str,
        order: &Arc<Mutex<Vec<&'static str>>>,
    ) -> tokio::task::JoinHandle<()> {
        let (slots, order, live) = (slots.clone(), order.clone(), live.clone());
        tokio::spawn(async move {
            let _slot = slots
                .acquire(Box::new(move || live.load(Ordering::SeqCst)))
                .await;
            order.lock().unwrap().push(name);
        })
    }

    fn flag(live: bool) -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(live))
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn live_instances_go_first_and_each_kind_is_first_come_first_served() {
        let slots = Slots::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = slots.acquire(never()).await;
        let mut tasks = Vec::new();
        for (live, name) in [
            (false, "install-1"),
            (true, "live-1"),
            (false, "install-2"),
            (true, "live-2"),
        ] {
            tasks.push(waiter(&slots, &flag(live), name, &order));
            settle().await;
        }
        assert_eq!(slots.waiting(), (2, 2));
        assert!(order.lock().unwrap().is_empty(), "no slot was free");
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            vec!["live-1", "live-2", "install-1", "install-2"]
        );
        assert_eq!(slots.waiting(), (0, 0));
        // Every slot came back.
        let _one = slots.acquire(never()).await;
    }

    #[tokio::test]
    async fn an_instance_that_became_live_while_waiting_goes_first() {
        let slots = Slots::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = slots.acquire(never()).await;
        let became_ready = flag(false);
        let first = waiter(&slots, &flag(false), "install", &order);
        settle().await;
        let second = waiter(&slots, &became_ready, "was-installing", &order);
        settle().await;
        assert_eq!(slots.waiting(), (0, 2));
        became_ready.store(true, Ordering::SeqCst);
        drop(held);
        first.await.unwrap();
        second.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec!["was-installing", "install"]);
    }

    #[tokio::test]
    async fn a_waiter_given_up_on_does_not_keep_the_slot() {
        let slots = Slots::new(1);
        let held = slots.acquire(never()).await;
        let abandoned = tokio::spawn({
            let slots = slots.clone();
            async move {
                let _slot = slots.acquire(Box::new(|| true)).await;
            }
        });
        settle().await;
        abandoned.abort();
        let _ = abandoned.await;
        drop(held);
        // The slot went back to the pool rather than to the gone waiter.
        let again = tokio::time::timeout(Duration::from_secs(1), slots.acquire(never())).await;
        assert!(
            again.is_ok(),
            "the only slot was lost to a cancelled waiter"
        );
        // And a slot is never handed out twice.
        let second = tokio::time::timeout(Duration::from_millis(100), slots.acquire(never())).await;
        assert!(second.is_err(), "one slot, two holders");
    }
}
