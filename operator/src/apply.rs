//! The apply stage: makes the cluster hold the desired children, writing only what differs.
//!
//! Each child is read first (from the watch cache when it has the kind, else from the API
//! server); when every field we set already has our value, nothing is written, so a
//! reconcile of an unchanged instance costs no API call at all once the cache is synced. Otherwise the child is
//! server-side applied with our field manager (forcing ownership of our fields back, which
//! is what repairs drift). Children we no longer want (a removed worker pool, an HPA after
//! autoscaling is turned off) are pruned by label.

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;
use tracing::info;

use crate::build::Child;
use crate::cache::{Cached, ChildCache};
use crate::{Error, Result};

pub const FIELD_MANAGER: &str = "fedi-operator";

/// What happened to one child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Created,
    Updated,
}

pub struct Applied {
    pub child: Child,
    pub live: DynamicObject,
    pub outcome: Outcome,
}

pub async fn apply(
    client: &Client,
    cache: &ChildCache,
    namespace: &str,
    child: Child,
) -> Result<Applied> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &child.resource);
    let name = child.name();
    let failed =
        |e| missing_kind(&child.resource, e).unwrap_or_else(|e| Error::Apply(child.describe(), e));
    let existing = match cache.get(&child.resource, namespace, &name) {
        Cached::Present(live) => Some(DynamicObject::clone(&live)),
        // Absent may only mean the watch is a moment behind a create: asking keeps
        // "Created" truthful, and costs a read for new children only.
        Cached::Absent | Cached::Unknown => api.get_opt(&name).await.map_err(failed)?,
    };
    let desired = serde_json::to_value(&child.object).map_err(Error::Serialize)?;
    if let Some(live) = &existing {
        let live_json = serde_json::to_value(live).map_err(Error::Serialize)?;
        if contains(&live_json, &desired) {
            return Ok(Applied {
                live: live.clone(),
                child,
                outcome: Outcome::Unchanged,
            });
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let live = api
        .patch(&name, &params, &Patch::Apply(&desired))
        .await
        .map_err(failed)?;
    let outcome = if existing.is_some() {
        Outcome::Updated
    } else {
        Outcome::Created
    };
    info!(namespace, child = child.describe(), ?outcome, "applied");
    Ok(Applied {
        child,
        live,
        outcome,
    })
}

/// Deletes the objects of kind `resource` carrying every label of `labels` (one instance's
/// children) whose names are not in `keep`. Returns the names deleted.
pub async fn prune(
    client: &Client,
    cache: &ChildCache,
    namespace: &str,
    labels: &[(&str, &str)],
    resource: &kube::api::ApiResource,
    keep: &[String],
) -> Result<Vec<String>> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let kind = resource.kind.clone();
    let names = match cache.names(resource, namespace, labels) {
        Some(names) => names,
        None => {
            let selector = labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            match api
                .list_metadata(&ListParams::default().labels(&selector))
                .await
            {
                Ok(listed) => listed.into_iter().map(|o| o.name_any()).collect(),
                // A kind whose CRD is not installed has nothing to prune.
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
                Err(e) => return Err(Error::Apply(format!("{kind} list"), e)),
            }
        }
    };
    let mut deleted = Vec::new();
    for name in names {
        if keep.contains(&name) {
            continue;
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            // The cache may still show what an earlier reconcile deleted.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(Error::Apply(format!("{kind}/{name}"), e)),
        }
        info!(namespace, child = format!("{kind}/{name}"), "pruned");
        deleted.push(name);
    }
    Ok(deleted)
}

/// A 404 whose body is not a Kubernetes Status means the API server does not serve the kind
/// at all: its CRDs are missing. Said in words for the kinds that come from optional CRDs.
fn missing_kind(resource: &kube::api::ApiResource, e: kube::Error) -> Result<Error, kube::Error> {
    match &e {
        kube::Error::Api(s) if s.code == 404 && resource.group == "gateway.networking.k8s.io" => {
            Ok(Error::GatewayApiMissing)
        }
        _ => Err(e),
    }
}

/// Whether `live` already holds every field of `desired` with the same value. Fields the API
/// server or other controllers add (defaults, status, other managers' fields) are ignored;
/// lists must match element by element.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| dv.is_null() || l.get(k).is_some_and(|lv| contains(lv, dv))),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| contains(lv, dv))
        }
        (l, d) => l == d,
    }
}

#[cfg(test)]
mod tests {
    use super::contains;
    use serde_json::json;

    #[test]
    fn defaults_added_by_the_server_do_not_count_as_drift() {
        let desired = json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}});
        let live = json!({"spec": {"replicas": 2, "ports": [{"port": 80, "protocol": "TCP"}],
            "revisionHistoryLimit": 10}, "status": {"readyReplicas": 2}});
        assert!(contains(&live, &desired));
    }

    #[test]
    fn changed_missing_or_extra_list_items_are_drift() {
        let desired = json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}});
        for live in [
            json!({"spec": {"replicas": 3, "ports": [{"port": 80}]}}),
            json!({"spec": {"ports": [{"port": 80}]}}),
            json!({"spec": {"replicas": 2, "ports": [{"port": 80}, {"port": 81}]}}),
            json!({"spec": {"replicas": 2, "ports": [{"port": 8080}]}}),
        ] {
            assert!(!contains(&live, &desired), "{live}");
        }
    }
}
