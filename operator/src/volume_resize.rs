//! Growing a managed service's volumes. A StatefulSet's `volumeClaimTemplates` cannot change,
//! so a bigger `storage.size` would fail its apply. As mature operators do: each existing
//! claim's request is raised (the StorageClass must allow expansion; the API server's
//! admission refuses otherwise, and that refusal is reported), then the StatefulSet is
//! deleted with `propagationPolicy: Orphan` (its pods keep running) and the apply that
//! follows creates it again with the new template, adopting the pods. Shrinking is refused:
//! no StorageClass can shrink a volume.
//!
//! Every step is idempotent, so a restart between them simply runs them again: claims
//! already grown are left alone, and a missing StatefulSet is created by the apply.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolumeClaim};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::info;

use crate::controller::Context;
use crate::crd::FediInstance;
use crate::{Error, Result, build};

/// Bytes of a Kubernetes quantity (`20Gi`, `500M`, `1e9`, `1.5Ti`); None if it is not one.
pub fn bytes(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024f64),
        ("Mi", 1_048_576f64),
        ("Gi", 1_073_741_824f64),
        ("Ti", 1_099_511_627_776f64),
        ("Pi", 1_125_899_906_842_624f64),
        ("Ei", 1_152_921_504_606_846_976f64),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("m", 1e-3),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    q.parse::<f64>().ok()
}

/// What to do with one claim template.
#[derive(Debug, PartialEq)]
pub enum Change {
    Same,
    /// Grow the claims of template `template` to `size`.
    Grow {
        template: String,
        size: String,
    },
    /// Refused: the template's claims are `live`, the spec asks for less.
    Shrink {
        template: String,
        live: String,
        wanted: String,
    },
}

/// The size each claim template asks for, by template name.
fn sizes(templates: &serde_json::Value) -> Vec<(String, String)> {
    templates
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let name = t["metadata"]["name"].as_str()?.to_string();
            let size = t["spec"]["resources"]["requests"]["storage"].as_str()?;
            Some((name, size.to_string()))
        })
        .collect()
}

/// Compares the claim templates of the live StatefulSet with the desired ones.
pub fn plan(live: &serde_json::Value, desired: &serde_json::Value) -> Vec<Change> {
    let live = sizes(live);
    sizes(desired)
        .into_iter()
        .map(|(template, wanted)| {
            let Some((_, current)) = live.iter().find(|(n, _)| *n == template) else {
                return Change::Same;
            };
            match (bytes(current), bytes(&wanted)) {
                (Some(c), Some(w)) if w > c => Change::Grow {
                    template,
                    size: wanted,
                },
                (Some(c), Some(w)) if w < c => Change::Shrink {
                    template,
                    live: current.clone(),
                    wanted,
                },
                _ => Change::Same,
            }
        })
        .collect()
}

/// Whether `claim` is one of StatefulSet `set`'s claims from template `template`
/// (`<template>-<set>-<ordinal>`).
fn claim_of(claim: &str, template: &str, set: &str) -> bool {
    claim
        .strip_prefix(&format!("{template}-{set}-"))
        .is_some_and(|ordinal| !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit()))
}

/// Before a StatefulSet `child` is applied: grows its claims and makes way for the new
/// template when its size grew; refuses a shrink.
pub async fn prepare(
    ctx: &Context,
    fedi: &FediInstance,
    namespace: &str,
    child: &build::Child,
) -> Result<()> {
    if child.resource.kind != "StatefulSet" {
        return Ok(());
    }
    let name = child.name();
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(live) = sets.get_opt(&name).await.map_err(Error::Kube)? else {
        return Ok(());
    };
    let live_templates =
        serde_json::to_value(&live.spec.volume_claim_templates).map_err(Error::Serialize)?;
    let changes = plan(
        &live_templates,
        &child.object.data["spec"]["volumeClaimTemplates"],
    );
    if let Some(Change::Shrink {
        template,
        live,
        wanted,
    }) = changes.iter().find(|c| matches!(c, Change::Shrink { .. }))
    {
        return Err(Error::VolumeResize {
            reason: "VolumeShrinkRefused",
            message: format!(
                "the volumes {template} of StatefulSet {name} are {live}; the spec asks for \
                 {wanted}, and volumes cannot shrink. Set the size back to {live} or more \
                 (to really shrink: back up, delete the instance's volumes, restore)."
            ),
        });
    }
    let grow: Vec<(&String, &String)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Grow { template, size } => Some((template, size)),
            _ => None,
        })
        .collect();
    if grow.is_empty() {
        return Ok(());
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    let list =
        ListParams::default().labels(&format!("app.kubernetes.io/instance={}", fedi.name_any()));
    let mut grown = Vec::new();
    for claim in claims.list(&list).await.map_err(Error::Kube)? {
        let claim_name = claim.name_any();
        let Some((_, size)) = grow.iter().find(|(t, _)| claim_of(&claim_name, t, &name)) else {
            continue;
        };
        let current = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| bytes(&q.0));
        if current.zip(bytes(size)).is_some_and(|(c, w)| c >= w) {
            continue;
        }
        let patch = json!({"spec": {"resources": {"requests": {"storage": size}}}});
        match claims
            .patch(&claim_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => grown.push(claim_name),
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => {
                return Err(Error::VolumeResize {
                    reason: "VolumeExpansionRefused",
                    message: format!(
                        "cannot grow PersistentVolumeClaim {claim_name} to {size}: {}. Its \
                         StorageClass must set allowVolumeExpansion: true (and the claim be \
                         bound); StatefulSet {name} is left as it is.",
                        s.message
                    ),
                });
            }
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    // The pods stay (orphaned, then adopted by the new StatefulSet, whose pod template is
    // unchanged): no restart.
    sets.delete(
        &name,
        &DeleteParams {
            propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
            ..Default::default()
        },
    )
    .await
    .map_err(Error::Kube)?;
    let sizes: Vec<String> = grow.iter().map(|(t, s)| format!("{t} to {s}")).collect();
    let note = format!(
        "grew the volumes of StatefulSet {name} ({}; claims {}); the StatefulSet is recreated \
         with the new size, its pods kept",
        sizes.join(", "),
        if grown.is_empty() {
            "already grown".to_string()
        } else {
            grown.join(", ")
        }
    );
    info!(namespace, instance = fedi.name_any(), %note, "volumes grown");
    let related = ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("StatefulSet".into()),
        name: Some(name),
        namespace: Some(namespace.to_string()),
        ..Default::default()
    };
    ctx.event(
        fedi,
        EventType::Normal,
        "VolumesExpanded",
        note,
        Some(related),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_across_units() {
        assert_eq!(bytes("1Gi"), Some(1_073_741_824.0));
        assert_eq!(bytes("500M"), Some(5e8));
        assert_eq!(bytes("1e9"), Some(1e9));
        assert_eq!(bytes("1.5Ti"), Some(1.5 * 1_099_511_627_776.0));
        assert_eq!(bytes("2048"), Some(2048.0));
        assert!(bytes("1024Mi") == bytes("1Gi"));
        assert!(bytes("1G") < bytes("1Gi"));
        assert_eq!(bytes("lots"), None);
        assert_eq!(bytes("Gi"), None);
    }

    fn templates(pairs: &[(&str, &str)]) -> serde_json::Value {
        json!(
            pairs
                .iter()
                .map(|(n, s)| json!({"metadata": {"name": n},
                "spec": {"resources": {"requests": {"storage": s}}}}))
                .collect::<Vec<_>>()
        )
    }

    #[test]
    fn growth_shrink_and_same_size_in_other_units() {
        let live = templates(&[("data", "10Gi")]);
        assert_eq!(
            plan(&live, &templates(&[("data", "20Gi")])),
            [Change::Grow {
                template: "data".into(),
                size: "20Gi".into()
            }]
        );
        assert_eq!(
            plan(&live, &templates(&[("data", "5Gi")])),
            [Change::Shrink {
                template: "data".into(),
                live: "10Gi".into(),
                wanted: "5Gi".into()
            }]
        );
        assert_eq!(
            plan(&live, &templates(&[("data", "10240Mi")])),
            [Change::Same]
        );
        // A template the live object lacks, or no live templates: nothing to do.
        assert_eq!(plan(&live, &templates(&[("logs", "1Gi")])), [Change::Same]);
        assert_eq!(
            plan(&serde_json::Value::Null, &templates(&[("data", "1Gi")])),
            [Change::Same]
        );
    }

    #[test]
    fn claims_are_matched_by_template_set_and_ordinal() {
        assert!(claim_of("data-social-redis-0", "data", "social-redis"));
        assert!(claim_of("data-social-redis-12", "data", "social-redis"));
        // Another StatefulSet whose name extends this one's.
        assert!(!claim_of("data-social-redis-x-0", "data", "social-redis"));
        assert!(!claim_of("data-social-redis-", "data", "social-redis"));
        assert!(!claim_of("logs-social-redis-0", "data", "social-redis"));
    }
}
