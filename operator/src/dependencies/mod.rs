//! The dependencies stage: whether each data service an instance needs is ready, as one
//! condition per service (DatabaseReady, RedisReady, StorageReady, SearchReady) with a
//! reason a person can act on. The server's workloads are rolled out only once all four
//! hold (see `controller`), so a new instance never crash-loops against a database that
//! is still starting, and a running one is not changed while a dependency is down.
//!
//! Observing never fails the reconcile: whatever goes wrong is the dependency's condition.
//! Where the operator must act on a service beyond applying objects (bootstrapping a Redis
//! Cluster, preparing the media bucket), it does so here, idempotently.

mod database;
pub(crate) mod probe;
pub mod recent;
mod redis;
mod search;
mod storage;

use kube::{Client, ResourceExt};

use crate::capabilities::Capabilities;
use crate::crd::FediInstance;

pub const DATABASE_READY: &str = "DatabaseReady";
pub const REDIS_READY: &str = "RedisReady";
pub const STORAGE_READY: &str = "StorageReady";
pub const SEARCH_READY: &str = "SearchReady";

pub use database::watched_secrets as database_secrets;
pub use storage::{CACHE_PREFIX, PUBLIC_PREFIX, external_target as storage_target};

/// One dependency's state, as its condition will say it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl Readiness {
    pub fn ready(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ready: true,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn waiting(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// What the operator did to a dependency beyond applying objects, for a Normal event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub reason: String,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub database: Readiness,
    pub redis: Readiness,
    pub storage: Readiness,
    pub search: Readiness,
    pub actions: Vec<Action>,
}

impl Report {
    /// While suspended nothing is checked: the managed services are scaled to zero too.
    pub fn suspended() -> Self {
        Self::uniform(Readiness::waiting(
            "Suspended",
            "Not checked while spec.suspend is true (managed services are scaled to zero).",
        ))
    }

    /// Every dependency in the same state, nothing done.
    pub fn uniform(r: Readiness) -> Self {
        Self {
            database: r.clone(),
            redis: r.clone(),
            storage: r.clone(),
            search: r,
            actions: Vec::new(),
        }
    }

    pub fn conditions(&self) -> [(&'static str, &Readiness); 4] {
        [
            (DATABASE_READY, &self.database),
            (REDIS_READY, &self.redis),
            (STORAGE_READY, &self.storage),
            (SEARCH_READY, &self.search),
        ]
    }

    pub fn all_ready(&self) -> bool {
        self.conditions().iter().all(|(_, r)| r.ready)
    }

    /// `DatabaseReady (ClusterNotReady)`, for each dependency not ready.
    pub fn waiting_for(&self) -> Vec<String> {
        self.conditions()
            .iter()
            .filter(|(_, r)| !r.ready)
            .map(|(t, r)| format!("{t} ({})", r.reason))
            .collect()
    }
}

/// What an observer needs: the instance, where it lives, and what the cluster offers.
pub(crate) struct Scope<'a> {
    pub client: &'a Client,
    pub fedi: &'a FediInstance,
    pub namespace: &'a str,
    pub name: String,
    pub capabilities: Capabilities,
}

/// Observes (and where needed prepares) the four dependencies, concurrently.
pub async fn observe(
    client: &Client,
    fedi: &FediInstance,
    namespace: &str,
    capabilities: Capabilities,
) -> Report {
    let scope = Scope {
        client,
        fedi,
        namespace,
        name: fedi.name_any(),
        capabilities,
    };
    let (database, (redis, redis_actions), (storage, storage_actions), search) = tokio::join!(
        database::observe(&scope),
        redis::observe(&scope),
        storage::observe(&scope),
        search::observe(&scope),
    );
    Report {
        database,
        redis,
        storage,
        search,
        actions: redis_actions.into_iter().chain(storage_actions).collect(),
    }
}
