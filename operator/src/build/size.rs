//! `spec.size`: presets of replicas and resources for the server's roles. A field set in the
//! spec wins over the preset's, one by one (a CPU request set explicitly keeps the preset's
//! memory); without a preset, one pod and no requests, as before presets existed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::crd::Size;

/// The server's roles, as the presets size them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Api,
    Streamer,
    Worker,
}

/// Replicas and resources of `role` under `size`. Limits only on memory: a CPU limit
/// throttles a server that has idle CPU next to it.
fn preset(size: Size, role: Role) -> (i32, ResourceRequirements) {
    let (replicas, cpu, memory, limit) = match (size, role) {
        (Size::Small, Role::Api) => (1, "250m", "384Mi", "768Mi"),
        (Size::Small, Role::Streamer) => (1, "50m", "128Mi", "256Mi"),
        (Size::Small, Role::Worker) => (1, "250m", "384Mi", "768Mi"),
        (Size::Medium, Role::Api) => (2, "500m", "768Mi", "1536Mi"),
        (Size::Medium, Role::Streamer) => (2, "100m", "256Mi", "512Mi"),
        (Size::Medium, Role::Worker) => (2, "500m", "768Mi", "1536Mi"),
        (Size::Large, Role::Api) => (4, "1", "1536Mi", "3Gi"),
        (Size::Large, Role::Streamer) => (3, "250m", "512Mi", "1Gi"),
        (Size::Large, Role::Worker) => (4, "1", "1536Mi", "3Gi"),
    };
    let q = |v: &str| Quantity(v.to_string());
    let resources = ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), q(cpu)),
            ("memory".to_string(), q(memory)),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), q(limit))])),
        ..Default::default()
    };
    (replicas, resources)
}

/// The replicas and resources a workload gets: explicit fields first, then the preset's.
pub fn resolve(
    size: Option<Size>,
    role: Role,
    replicas: Option<i32>,
    resources: Option<&ResourceRequirements>,
) -> (i32, Option<ResourceRequirements>) {
    let Some(size) = size else {
        return (replicas.unwrap_or(1), resources.cloned());
    };
    let (preset_replicas, mut merged) = preset(size, role);
    if let Some(explicit) = resources {
        let over = |base: &mut Option<BTreeMap<String, Quantity>>,
                    explicit: &Option<BTreeMap<String, Quantity>>| {
            if let Some(explicit) = explicit {
                base.get_or_insert_default()
                    .extend(explicit.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        };
        over(&mut merged.requests, &explicit.requests);
        over(&mut merged.limits, &explicit.limits);
        merged.claims = explicit.claims.clone();
    }
    (replicas.unwrap_or(preset_replicas), Some(merged))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(r: &Option<ResourceRequirements>, which: &str, key: &str) -> Option<String> {
        let r = r.as_ref()?;
        let map = if which == "requests" {
            &r.requests
        } else {
            &r.limits
        };
        map.as_ref()?.get(key).map(|q| q.0.clone())
    }

    #[test]
    fn without_a_preset_nothing_changes() {
        assert_eq!(resolve(None, Role::Api, None, None), (1, None));
        assert_eq!(resolve(None, Role::Api, Some(3), None).0, 3);
    }

    #[test]
    fn presets_grow_and_explicit_fields_win_one_by_one() {
        let sizes = [Size::Small, Size::Medium, Size::Large];
        let replicas: Vec<i32> = sizes
            .iter()
            .map(|s| resolve(Some(*s), Role::Api, None, None).0)
            .collect();
        assert_eq!(replicas, [1, 2, 4]);
        let explicit: ResourceRequirements = serde_json::from_value(serde_json::json!({
            "requests": {"cpu": "2"}, "limits": {"cpu": "3"}}))
        .unwrap();
        let (n, r) = resolve(Some(Size::Medium), Role::Worker, Some(5), Some(&explicit));
        assert_eq!(n, 5, "explicit replicas win");
        assert_eq!(get(&r, "requests", "cpu").as_deref(), Some("2"));
        assert_eq!(get(&r, "requests", "memory").as_deref(), Some("768Mi"));
        assert_eq!(get(&r, "limits", "cpu").as_deref(), Some("3"));
        assert_eq!(get(&r, "limits", "memory").as_deref(), Some("1536Mi"));
        let (n, r) = resolve(Some(Size::Large), Role::Streamer, Some(0), None);
        assert_eq!(
            (n, get(&r, "requests", "cpu").as_deref()),
            (0, Some("250m"))
        );
    }
}
