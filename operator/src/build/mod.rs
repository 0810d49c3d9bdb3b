//! The build stage: spec in, every desired child object out. Pure: no client, no clock, so
//! each builder is tested with plain fixtures.

mod config_map;
pub mod database;
mod deployments;
mod env;
mod hpa;
mod http_route;
mod ingress;
mod keys_secret;
pub mod migration_job;
mod network_policy;
mod object_store;
mod pdb;
mod redis;
mod search;
pub mod search_index_job;
mod service_account;
mod services;
mod size;
pub mod worker_scaling;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::crd::FediInstance;

pub use deployments::Workload;
pub(crate) use env::managed;
pub use env::{S3_ACCESS_KEY_ID_KEY, S3_SECRET_ACCESS_KEY_KEY};
pub use http_route::resource as http_route_resource;
pub use keys_secret::{
    generated as generated_keys_secret, generated_credentials, keys_secret_name,
};

/// What the operator knows beyond the spec: where its release's server image lives.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub image_repository: String,
    pub version: String,
    /// Images of the managed data services (permissively licensed, pinned).
    pub redis_image: String,
    pub s3_image: String,
    pub search_image: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            image_repository: "ghcr.io/fedi-dev/fedi-server".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // Valkey: the BSD-licensed continuation of Redis, protocol- and cluster-compatible.
            redis_image: "docker.io/valkey/valkey:8.1.4".into(),
            s3_image: "docker.io/chrislusf/seaweedfs:3.97".into(),
            search_image: "docker.io/opensearchproject/opensearch:2.19.3".into(),
        }
    }
}

/// One desired child, untyped so that the apply stage handles every kind alike.
#[derive(Clone, Debug)]
pub struct Child {
    pub resource: ApiResource,
    pub object: DynamicObject,
}

impl Child {
    fn new<K>(typed: &K) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let object = serde_json::from_value(serde_json::to_value(typed).expect("serializable"))
            .expect("a Kubernetes object is a DynamicObject");
        Self {
            resource: ApiResource::erase::<K>(&()),
            object,
        }
    }

    pub fn name(&self) -> String {
        self.object.name_any()
    }

    /// `Kind/name`, for logs and events.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.resource.kind, self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("the FediInstance has no {0}; it has not been stored by the API server yet")]
    Incomplete(&'static str),
}

/// Every child of `fedi`, in the order they are applied.
pub fn children(fedi: &FediInstance, defaults: &Defaults) -> Result<Vec<Child>, BuildError> {
    let ctx = Ctx::new(fedi, defaults)?;
    let config = config_map::build(&ctx);
    let checksum = config_map::checksum(&config);
    let mut out = vec![
        Child::new(&service_account::build(&ctx)),
        Child::new(&config),
    ];
    // The data services, which the server's workloads wait for.
    out.extend(database::build(&ctx));
    out.extend(redis::build(&ctx));
    out.extend(object_store::build(&ctx));
    out.extend(search::build(&ctx));
    for workload in Workload::all(fedi) {
        out.push(Child::new(&deployments::build(&ctx, &workload, &checksum)));
        if let Some(service) = services::build(&ctx, &workload) {
            out.push(Child::new(&service));
        }
        if let Some(hpa) = hpa::build(&ctx, &workload) {
            out.push(Child::new(&hpa));
        }
        if let Some(hpa) = worker_scaling::hpa(&ctx, &workload) {
            out.push(Child::new(&hpa));
        }
        if let Some(scaled) = worker_scaling::scaled_object(&ctx, &workload) {
            out.push(scaled);
        }
        if let Some(pdb) = pdb::build(&ctx, &workload) {
            out.push(Child::new(&pdb));
        }
    }
    out.push(Child::new(&network_policy::build(&ctx)));
    if let Some(ingress) = ingress::build(&ctx) {
        out.push(Child::new(&ingress));
    }
    out.extend(http_route::build(&ctx));
    suspension(&mut out, fedi.spec.suspend);
    Ok(out)
}

/// CloudNativePG's declarative hibernation: the Cluster's pods go, its volumes stay.
pub const HIBERNATION_ANNOTATION: &str = "cnpg.io/hibernation";

/// `spec.suspend` on the data services: StatefulSets and the pooler at zero, the database
/// cluster hibernated; volumes and Secrets are untouched. The hibernation annotation is
/// always written (`off` when running), since the apply stage never removes a field.
fn suspension(children: &mut [Child], suspended: bool) {
    for child in children {
        match child.resource.kind.as_str() {
            "StatefulSet" if suspended => child.object.data["spec"]["replicas"] = 0.into(),
            "Pooler" if suspended => child.object.data["spec"]["instances"] = 0.into(),
            "Cluster" if child.resource.group == database::GROUP => {
                child
                    .object
                    .metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(
                        HIBERNATION_ANNOTATION.into(),
                        if suspended { "on" } else { "off" }.into(),
                    );
            }
            _ => {}
        }
    }
}

/// The image the spec asks for.
pub fn image(fedi: &FediInstance, defaults: &Defaults) -> String {
    let repository = fedi
        .spec
        .image
        .as_ref()
        .and_then(|i| i.repository.clone())
        .unwrap_or_else(|| defaults.image_repository.clone());
    let version = fedi.spec.version.as_deref().unwrap_or(&defaults.version);
    format!("{repository}:{version}")
}

/// The migration Job of `phase` for the image the spec asks for (coming from `from`), and
/// that image.
pub fn migration(
    fedi: &FediInstance,
    defaults: &Defaults,
    phase: migration_job::Phase,
    from: Option<&str>,
) -> Result<(Child, String), BuildError> {
    let ctx = Ctx::new(fedi, defaults)?;
    let checksum = config_map::checksum(&config_map::build(&ctx));
    let job = migration_job::build(&ctx, &checksum, phase, from);
    let image = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    Ok((Child::new(&job), image))
}

/// The search reindex Job for the image the spec asks for, coming from `from` (the image
/// last indexed), and that image.
pub fn search_index(
    fedi: &FediInstance,
    defaults: &Defaults,
    from: Option<&str>,
) -> Result<(Child, String), BuildError> {
    let ctx = Ctx::new(fedi, defaults)?;
    let checksum = config_map::checksum(&config_map::build(&ctx));
    let job = search_index_job::build(&ctx, &checksum, from);
    let image = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    Ok((Child::new(&job), image))
}

/// What every builder needs: the instance, its identity and the defaults.
pub(crate) struct Ctx<'a> {
    pub fedi: &'a FediInstance,
    pub name: String,
    pub namespace: String,
    pub defaults: &'a Defaults,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
}

impl<'a> Ctx<'a> {
    fn new(fedi: &'a FediInstance, defaults: &'a Defaults) -> Result<Self, BuildError> {
        Ok(Self {
            name: fedi.name_any(),
            namespace: fedi
                .namespace()
                .ok_or(BuildError::Incomplete("namespace"))?,
            owner: fedi
                .controller_owner_ref(&())
                .ok_or(BuildError::Incomplete("uid"))?,
            fedi,
            defaults,
        })
    }

    /// Labels shared by every child; `component` narrows them to one workload.
    pub fn labels(&self, component: Option<&str>) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                "fedi-server".to_string(),
            ),
            ("app.kubernetes.io/instance".to_string(), self.name.clone()),
            (
                "app.kubernetes.io/managed-by".to_string(),
                "fedi-operator".to_string(),
            ),
            ("app.kubernetes.io/part-of".to_string(), "fedi".to_string()),
        ]);
        if let Some(c) = component {
            l.insert("app.kubernetes.io/component".into(), c.into());
        }
        l
    }

    /// The labels a workload's pods are selected by: stable for the life of the instance,
    /// because a Deployment's selector cannot change.
    pub fn selector(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/instance".to_string(), self.name.clone()),
            (
                "app.kubernetes.io/component".to_string(),
                component.to_string(),
            ),
        ])
    }

    pub fn metadata(&self, name: String, component: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }

    pub fn child_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A stored instance: a name, a namespace, a uid, and the given spec.
    pub fn instance(spec: serde_json::Value) -> FediInstance {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fedi.dev/v1alpha1",
            "kind": "FediInstance",
            "metadata": {"name": "social", "namespace": "tenant-a", "uid": "0000-1111", "generation": 1},
            "spec": spec,
        }))
        .unwrap()
    }

    pub fn minimal() -> FediInstance {
        instance(serde_json::json!({"domain": "social.example"}))
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    fn kinds(children: &[Child]) -> Vec<String> {
        children.iter().map(Child::describe).collect()
    }

    #[test]
    fn a_minimal_instance_gets_its_account_config_workloads_and_services() {
        let c = children(&minimal(), &Defaults::default()).unwrap();
        assert_eq!(
            kinds(&c),
            [
                "ServiceAccount/social",
                "ConfigMap/social-config",
                "Cluster/social-db",
                "Pooler/social-db-pooler",
                "NetworkPolicy/social-redis",
                "ConfigMap/social-redis-config",
                "Service/social-redis-headless",
                "Service/social-redis",
                "StatefulSet/social-redis",
                "PodDisruptionBudget/social-redis",
                "NetworkPolicy/social-s3",
                "Service/social-s3",
                "StatefulSet/social-s3",
                "Deployment/social-api",
                "Service/social-api",
                "PodDisruptionBudget/social-api",
                "Deployment/social-streamer",
                "Service/social-streamer",
                "PodDisruptionBudget/social-streamer",
                "Deployment/social-worker-default",
                "NetworkPolicy/social",
            ]
        );
        // Everything is owned but the retained database cluster (see database.rs).
        for child in c.iter().filter(|c| c.resource.kind != "Cluster") {
            let owners = child.object.metadata.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(
                (owners[0].kind.as_str(), owners[0].name.as_str()),
                ("FediInstance", "social")
            );
            assert_eq!(owners[0].controller, Some(true));
            assert_eq!(child.object.metadata.namespace.as_deref(), Some("tenant-a"));
        }
    }

    #[test]
    fn pools_and_autoscaling_add_their_objects() {
        let fedi = instance(serde_json::json!({
            "domain": "social.example",
            "api": {"autoscaling": {"minReplicas": 2, "maxReplicas": 8}},
            "worker": {"pools": [
                {"name": "default", "queues": [{"name": "default"}], "scheduler": true},
                {"name": "federation", "queues": [{"name": "push"}, {"name": "pull"}]},
            ]},
        }));
        let k = kinds(&children(&fedi, &Defaults::default()).unwrap());
        assert!(
            k.contains(&"HorizontalPodAutoscaler/social-api".to_string()),
            "{k:?}"
        );
        assert!(
            !k.contains(&"HorizontalPodAutoscaler/social-streamer".to_string()),
            "{k:?}"
        );
        assert!(
            k.contains(&"Deployment/social-worker-federation".to_string()),
            "{k:?}"
        );
    }

    #[test]
    fn suspension_scales_the_data_services_to_zero_and_hibernates_the_database() {
        let mut fedi = instance(serde_json::json!({"domain": "social.example",
            "search": {"managed": {}}}));
        let count = |c: &[Child], kind: &str| c.iter().filter(|c| c.resource.kind == kind).count();
        let running = children(&fedi, &Defaults::default()).unwrap();
        fedi.spec.suspend = true;
        let suspended = children(&fedi, &Defaults::default()).unwrap();
        assert_eq!(count(&suspended, "StatefulSet"), 3, "redis, s3, search");
        for (c, r) in suspended.iter().zip(&running) {
            assert_eq!(
                c.describe(),
                r.describe(),
                "the same objects, nothing deleted"
            );
            let data = &c.object.data;
            match c.resource.kind.as_str() {
                "StatefulSet" => {
                    assert_eq!(data["spec"]["replicas"], 0, "{}", c.describe());
                    assert!(r.object.data["spec"]["replicas"].as_i64().unwrap() > 0);
                    // The volumes are claimed as before: suspending keeps the data.
                    assert_eq!(
                        data["spec"]["volumeClaimTemplates"],
                        r.object.data["spec"]["volumeClaimTemplates"]
                    );
                }
                "Pooler" => assert_eq!(data["spec"]["instances"], 0),
                "Cluster" => {
                    let a = |c: &Child| c.object.metadata.annotations.clone().unwrap();
                    assert_eq!(a(c)[HIBERNATION_ANNOTATION], "on");
                    assert_eq!(a(r)[HIBERNATION_ANNOTATION], "off");
                }
                "Deployment" => assert_eq!(data["spec"]["replicas"], 0),
                _ => {}
            }
        }
    }

    #[test]
    fn an_instance_not_yet_stored_is_refused() {
        let mut fedi = minimal();
        fedi.metadata.uid = None;
        assert_eq!(
            children(&fedi, &Defaults::default()).unwrap_err(),
            BuildError::Incomplete("uid")
        );
    }
}
