//! The volume provisioner the local control plane lacks: without it every StatefulSet's
//! claims stay Pending and the scheduler never places its pods. A PersistentVolume made for
//! a claim (pre-bound through `claimRef`) lets the controller manager bind it; nothing is
//! ever written to it (kwok's pods run nothing).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// The PersistentVolumes made so far (cluster-scoped: deleted by [`Volumes::delete_all`]).
#[derive(Default)]
pub struct Volumes {
    made: BTreeSet<String>,
}

impl Volumes {
    /// A volume for each Pending claim of namespace `ns` whose StatefulSet is in `ready`
    /// (claims are named `<template>-<statefulset>-<index>`).
    pub async fn bind_pending(
        &mut self,
        client: &Client,
        ns: &str,
        ready: &BTreeSet<String>,
    ) -> anyhow::Result<()> {
        let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await?;
        let volumes = Api::<PersistentVolume>::all(client.clone());
        for claim in claims {
            let name = claim.name_any();
            let owner_ready = ready.iter().any(|sts| {
                name.rsplit_once('-')
                    .is_some_and(|(rest, _)| rest.ends_with(&format!("-{sts}")))
            });
            let pending = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_ref())
                .is_none();
            if !owner_ready || !pending {
                continue;
            }
            let pv_name = format!("{ns}-{name}");
            if self.made.contains(&pv_name) {
                continue;
            }
            let spec = claim.spec.clone().unwrap_or_default();
            let size = spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage").cloned())
                .map(|q| q.0)
                .unwrap_or_else(|| "1Gi".into());
            let pv: PersistentVolume = serde_json::from_value(json!({
                "metadata": {"name": pv_name,
                    "labels": {"app.kubernetes.io/managed-by": "fedi-e2e"}},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": spec.access_modes.clone()
                        .unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
                    "storageClassName": spec.storage_class_name.clone().unwrap_or_default(),
                    "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into()),
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": format!("/nonexistent/fedi-e2e/{pv_name}")},
                    "claimRef": {"namespace": ns, "name": name, "uid": claim.uid()},
                }
            }))?;
            match volumes.create(&PostParams::default(), &pv).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
            self.made.insert(pv_name);
        }
        Ok(())
    }

    /// Deletes every volume made, from a thread of its own (called from `Drop`).
    pub fn delete_all(&mut self) {
        let names = std::mem::take(&mut self.made);
        if names.is_empty() {
            return;
        }
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(client) = Client::try_default().await {
                    let api = Api::<PersistentVolume>::all(client);
                    for name in &names {
                        let _ = api.delete(name, &DeleteParams::default()).await;
                    }
                }
            });
        })
        .join()
        .ok();
    }
}
