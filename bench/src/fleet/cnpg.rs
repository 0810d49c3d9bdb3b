//! CloudNativePG's controller, played for the bench's Clusters as the e2e suite plays it
//! (`fedi_e2e::played::cloudnative_pg`): the application Secret and a healthy status. Once
//! per Cluster, remembered, so that the bench's own load on the API server stays one LIST a
//! pass, not a GET per Cluster.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

pub async fn play(client: &Client, ns: &str, done: &mut BTreeSet<String>) -> anyhow::Result<()> {
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &fedi_operator::build::database::cluster_resource(),
    );
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    for cluster in clusters.list(&ListParams::default()).await? {
        let name = cluster.name_any();
        if done.contains(&name) {
            continue;
        }
        let owner = cluster.data["spec"]["bootstrap"]["initdb"]["owner"]
            .as_str()
            .unwrap_or("app");
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-app")},
            "type": "kubernetes.io/basic-auth",
            "stringData": {"username": owner,
                "password": fedi_e2e::played::programs::random_secret()}}))?;
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        let instances = cluster.data["spec"]["instances"].as_i64().unwrap_or(1);
        let status = json!({"status": {"instances": instances, "readyInstances": instances,
            "phase": "Cluster in healthy state",
            "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterIsReady",
                "message": "Cluster is Ready",
                "lastTransitionTime": "2026-11-27T00:00:00Z"}]}});
        clusters
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        done.insert(name);
    }
    Ok(())
}
