//! Optional APIs of the cluster (CRDs of other projects), found by discovery.
//!
//! A watch on a kind the API server does not serve fails forever, so the controller watches
//! optional kinds only when they exist, and `changed` tells it when to start over because
//! one was installed or removed. Discovery needs no RBAC beyond what every account has.

use std::time::Duration;

use kube::Client;
use kube::api::ApiResource;
use tracing::{debug, info};

use crate::build;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Gateway API's HTTPRoute (`gateway.networking.k8s.io/v1`).
    pub http_route: bool,
    /// CloudNativePG's Cluster (`postgresql.cnpg.io/v1`), which a managed database needs.
    pub cloudnative_pg: bool,
    /// KEDA's ScaledObject (`keda.sh/v1alpha1`), for worker autoscaling through Prometheus.
    pub keda: bool,
}

impl Capabilities {
    pub async fn discover(client: &Client) -> Result<Self, kube::Error> {
        Ok(Self {
            http_route: served(client, &build::http_route_resource()).await?,
            cloudnative_pg: served(client, &build::database::cluster_resource()).await?,
            keda: served(client, &build::worker_scaling::scaled_object_resource()).await?,
        })
    }

    /// Resolves once discovery differs from `self` (checked every `every`); transient
    /// discovery errors are retried, never taken for "not installed".
    pub async fn changed(self, client: Client, every: Duration) -> Self {
        loop {
            tokio::time::sleep(every).await;
            match Self::discover(&client).await {
                Ok(now) if now != self => {
                    info!(before = ?self, now = ?now, "the cluster's optional APIs changed");
                    return now;
                }
                Ok(_) => {}
                Err(e) => debug!(error = %e, "discovery failed; retrying"),
            }
        }
    }
}

/// Whether the API server serves `resource`: its group version lists the plural.
async fn served(client: &Client, resource: &ApiResource) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(&resource.api_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == resource.plural)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}
