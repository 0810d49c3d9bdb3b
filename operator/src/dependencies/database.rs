//! DatabaseReady: CloudNativePG's view of the managed cluster, or a TCP handshake with the
//! external server (the operator holds no database credentials to log in with).

use kube::Api;
use kube::api::DynamicObject;
use serde_json::Value;

use super::probe;
use super::{Readiness, Scope};
use crate::build::database::{self, Names};
use crate::crd::FediInstance;

/// Secrets whose appearance changes DatabaseReady: CloudNativePG's application Secret.
pub fn watched_secrets(fedi: &FediInstance) -> Vec<String> {
    use kube::ResourceExt;
    match fedi.spec.database.managed {
        Some(_) => vec![Names::of(&fedi.name_any()).app_secret()],
        None => Vec::new(),
    }
}

pub async fn observe(scope: &Scope<'_>) -> Readiness {
    let spec = &scope.fedi.spec.database;
    if let Some(external) = &spec.external {
        let port = u16::try_from(external.port).unwrap_or(5432);
        return match probe::tcp(&external.host, port).await {
            Ok(()) => Readiness::ready(
                "Reachable",
                format!(
                    "PostgreSQL at {}:{port} accepts connections.",
                    external.host
                ),
            ),
            Err(e) => Readiness::waiting("DatabaseUnreachable", e),
        };
    }
    if !scope.capabilities.cloudnative_pg {
        return Readiness::waiting(
            "CloudNativePGNotInstalled",
            "spec.database.managed runs PostgreSQL through CloudNativePG, whose CRDs \
             (postgresql.cnpg.io/v1) are not installed. Install CloudNativePG \
             (https://cloudnative-pg.io/documentation/current/installation_upgrade/) or set \
             spec.database.external.",
        );
    }
    let names = Names::of(&scope.name);
    let api: Api<DynamicObject> = Api::namespaced_with(
        scope.client.clone(),
        scope.namespace,
        &database::cluster_resource(),
    );
    let cluster = match api.get_opt(&names.cluster).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Readiness::waiting(
                "ClusterCreating",
                format!(
                    "CloudNativePG Cluster {} does not exist yet.",
                    names.cluster
                ),
            );
        }
        Err(e) => return probe::kube_error(e),
    };
    let verdict = cluster_verdict(&names.cluster, &cluster.data);
    if !verdict.ready {
        return verdict;
    }
    // The server's pods read their password from it: without it they could not start.
    if let Err(r) = probe::secret_value(scope, &names.app_secret(), "password").await {
        return Readiness::waiting("ClusterCreating", r.message);
    }
    verdict
}

/// Ready when CloudNativePG says so: its `Ready` condition, or, from versions without it,
/// every instance ready in the healthy phase.
fn cluster_verdict(name: &str, cluster: &Value) -> Readiness {
    let want = cluster["spec"]["instances"].as_i64().unwrap_or(1);
    let status = &cluster["status"];
    let ready_instances = status["readyInstances"].as_i64().unwrap_or(0);
    let phase = status["phase"].as_str().unwrap_or("unknown");
    let condition = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True");
    let healthy = match condition {
        Some(ready) => ready && ready_instances >= want,
        None => phase == "Cluster in healthy state" && ready_instances >= want,
    };
    let summary =
        format!("Cluster {name}: {ready_instances}/{want} instances ready, phase \"{phase}\".");
    if healthy {
        Readiness::ready("ClusterHealthy", summary)
    } else {
        Readiness::waiting("ClusterNotReady", summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cloudnative_pg_status_decides() {
        let cases = [
            ("no status yet", json!({"spec": {"instances": 2}}), false),
            (
                "healthy phase, every instance",
                json!({"spec": {"instances": 2}, "status": {"readyInstances": 2,
                    "phase": "Cluster in healthy state"}}),
                true,
            ),
            (
                "healthy phase, a standby missing",
                json!({"spec": {"instances": 2}, "status": {"readyInstances": 1,
                    "phase": "Cluster in healthy state"}}),
                false,
            ),
            (
                "Ready condition wins over the phase",
                json!({"spec": {"instances": 1}, "status": {"readyInstances": 1,
                    "phase": "Waiting for the instances to become active",
                    "conditions": [{"type": "Ready", "status": "True"}]}}),
                true,
            ),
            (
                "Ready=False",
                json!({"spec": {"instances": 1}, "status": {"readyInstances": 1,
                    "phase": "Cluster in healthy state",
                    "conditions": [{"type": "Ready", "status": "False"}]}}),
                false,
            ),
        ];
        for (what, cluster, want) in cases {
            let r = cluster_verdict("social-db", &cluster);
            assert_eq!(r.ready, want, "{what}: {r:?}");
            assert!(r.message.contains("social-db"), "{what}");
        }
    }
}
