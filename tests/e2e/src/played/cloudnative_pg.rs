//! CloudNativePG's controller, played as `tests/cloudnative_pg.rs` does: for each Cluster
//! of the namespace, the application Secret (`<cluster>-app`, user and password of the
//! `initdb` owner) and a healthy status with every instance ready. The operator reads no
//! more than that: the server's pods, which would connect, do not run here.
//!
//! A pass over settled Clusters is one LIST: the Secret is made before the status says
//! ready, so a ready Cluster needs nothing (the operator bench plays 1,000 of them).

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::programs::random_secret;

/// One pass over the namespace's Clusters; nothing to do while CloudNativePG's CRDs are
/// not served.
pub async fn play(client: &Client, ns: &str) -> anyhow::Result<()> {
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &fedi_operator::build::database::cluster_resource(),
    );
    let list = match clusters.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    for cluster in list {
        let name = cluster.name_any();
        let instances = cluster.data["spec"]["instances"].as_i64().unwrap_or(1);
        if cluster.data["status"]["readyInstances"].as_i64() == Some(instances) {
            continue;
        }
        let app = format!("{name}-app");
        if secrets.get_opt(&app).await?.is_none() {
            let owner = cluster.data["spec"]["bootstrap"]["initdb"]["owner"]
                .as_str()
                .unwrap_or("app");
            let secret: Secret = serde_json::from_value(json!({
                "metadata": {"name": app},
                "type": "kubernetes.io/basic-auth",
                "stringData": {"username": owner, "password": random_secret()}}))?;
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let status = json!({"status": {"instances": instances, "readyInstances": instances,
            "phase": "Cluster in healthy state",
            "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterIsReady",
                "message": "Cluster is Ready",
                "lastTransitionTime": "2026-11-27T00:00:00Z"}]}});
        clusters
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
    }
    Ok(())
}
