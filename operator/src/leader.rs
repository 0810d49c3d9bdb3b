//! Leader election, so that two or more replicas are safe: only the holder of the Lease
//! reconciles; the others wait, ready to take over within the lease duration.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::info;

/// Seconds a leader may go without renewing before another replica takes over.
const LEASE_SECONDS: u64 = 15;
/// Renewal margin: the leader renews this long before expiry.
const GRACE_SECONDS: u64 = 5;

pub struct Leadership {
    state: watch::Receiver<bool>,
}

impl Leadership {
    /// Joins the election for `lease` in `namespace` as `identity`.
    pub async fn join(
        client: Client,
        namespace: &str,
        lease: &str,
        identity: &str,
    ) -> anyhow::Result<Self> {
        let manager = LeaseManagerBuilder::new(client, lease)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .build()
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot use Lease {namespace}/{lease} for leader election: {e}")
            })?;
        let (state, _task) = manager.watch().await;
        Ok(Self { state })
    }

    /// Resolves once this replica holds the lease.
    pub async fn acquired(&mut self) {
        info!("waiting to become the leader");
        while !*self.state.borrow_and_update() {
            if self.state.changed().await.is_err() {
                // The manager stopped: never leader; wait for shutdown.
                std::future::pending::<()>().await;
            }
        }
        info!("became the leader");
    }

    /// Resolves when leadership is lost. The caller then stops reconciling at once: another
    /// replica may already be leader.
    pub async fn lost(mut self) {
        loop {
            if self.state.changed().await.is_err() || !*self.state.borrow_and_update() {
                tracing::warn!("lost the leadership");
                // Give the watch a moment to flush logs; the process exits right after.
                tokio::time::sleep(Duration::from_millis(10)).await;
                return;
            }
        }
    }
}
