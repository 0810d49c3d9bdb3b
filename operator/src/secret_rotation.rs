//! Rotation of generated secrets on request. Generated Secrets are never rotated silently;
//! setting the annotation `fedi.dev/rotate-secrets` to a value not handled yet (any new
//! value: a date, a ticket number) rotates those that can rotate safely, rolls the server's
//! pods and records the value in `status.secretsRotation`.
//!
//! What rotates, and why:
//! - `secretKeyBase` (the keys Secret): signs the sign-in session cookies and CSRF tokens of
//!   the authorization pages. Rotating signs everyone out of those pages; nothing stored
//!   depends on it.
//! - `oauthSigningKey`: OAuth tokens are random values stored in the database, not signed,
//!   so no issued token depends on it.
//!
//! What does not:
//! - `encryptionKey`: encrypts columns at rest (two-factor secrets); a new one would make
//!   them unreadable.
//! - `vapidPrivateKey`/`vapidPublicKey`: browsers' push subscriptions are bound to the
//!   public key; a new pair silently breaks every one of them.
//! - the managed Redis password and object store key pair: the services read them only at
//!   start, so a new value would lock the server out until the services restarted with it;
//!   the operator cannot apply them to the running service.
//! - a user's `existingSecret` and referenced Secrets: not the operator's to change (the
//!   pods still roll, so that they read what the user changed).
//!
//! Idempotent across restarts: the new values and the marker annotation
//! `fedi.dev/rotated-for` (the request's value) are written to the Secret in one request. A
//! crash after that write and before the status is stored finds the marker, and records the
//! request without rotating twice.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::info;

use crate::controller::Context;
use crate::crd::FediInstance;
use crate::{Error, Result, build, keys};

/// The annotation on the instance that asks for a rotation.
pub const ROTATE_ANNOTATION: &str = "fedi.dev/rotate-secrets";
/// The annotation on a rotated Secret: the request it was rotated for.
pub const ROTATED_FOR_ANNOTATION: &str = "fedi.dev/rotated-for";
/// The annotation on the server's pod templates: a new value rolls the pods.
pub const POD_ANNOTATION: &str = "fedi.dev/secrets-rotation";
/// The keys of the keys Secret that rotate.
pub const ROTATED_KEYS: &[&str] = &["secretKeyBase", "oauthSigningKey"];
/// The keys of the keys Secret that are kept, and why (said in the event).
pub const KEPT_KEYS: &[(&str, &str)] = &[
    ("encryptionKey", "encrypts stored data"),
    ("vapidPrivateKey", "push subscriptions are bound to it"),
    ("vapidPublicKey", "push subscriptions are bound to it"),
];

/// What to do about the rotation annotation.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// No request, or the request was handled.
    Nothing,
    /// Rotate for this value.
    Rotate(String),
    /// The Secret was rotated for this value already (the status was not stored after it):
    /// record it only.
    Record(String),
}

/// Decides from the request, what the status says was handled, and the Secret's marker.
pub fn plan(requested: Option<&str>, handled: Option<&str>, marker: Option<&str>) -> Plan {
    match requested {
        None => Plan::Nothing,
        Some(r) if Some(r) == handled => Plan::Nothing,
        Some(r) if Some(r) == marker => Plan::Record(r.to_string()),
        Some(r) => Plan::Rotate(r.to_string()),
    }
}

/// The fresh values of the keys that rotate, taken from a freshly generated set.
pub fn rotated_values(fresh: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    fresh
        .iter()
        .filter(|(k, _)| ROTATED_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Runs the rotation if one is asked for; returns the request value the pods should carry
/// (the one handled now, or the one handled before), None when no rotation ever happened.
pub async fn run(ctx: &Context, fedi: &FediInstance, namespace: &str) -> Result<Option<String>> {
    let requested = fedi.annotations().get(ROTATE_ANNOTATION).cloned();
    let handled = fedi
        .status
        .as_ref()
        .and_then(|s| s.secrets_rotation.clone());
    if requested.is_none() || requested == handled {
        return Ok(handled);
    }
    // Only the generated keys Secret rotates; with the user's own, nothing is written.
    let generated = fedi.spec.existing_secret.is_none();
    let name = build::keys_secret_name(fedi);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let marker = if generated {
        let meta = api.get_metadata(&name).await.map_err(Error::Kube)?;
        meta.annotations().get(ROTATED_FOR_ANNOTATION).cloned()
    } else {
        None
    };
    let value = match plan(requested.as_deref(), handled.as_deref(), marker.as_deref()) {
        Plan::Nothing => return Ok(handled),
        Plan::Record(value) => {
            info!(
                namespace,
                name = fedi.name_any(),
                "secrets were rotated for this request already; recording it"
            );
            return Ok(Some(value));
        }
        Plan::Rotate(value) => value,
    };
    let note = if generated {
        let fresh = rotated_values(&keys::generate()?);
        let patch = json!({
            "metadata": {"annotations": {ROTATED_FOR_ANNOTATION: value}},
            "stringData": fresh,
        });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::Apply(format!("Secret/{name}"), e))?;
        let kept: Vec<String> = KEPT_KEYS
            .iter()
            .map(|(k, why)| format!("{k} ({why})"))
            .collect();
        format!(
            "rotated {} of Secret {name}; kept {}, and the managed services' credentials \
             (read only at their start); the server's pods roll",
            ROTATED_KEYS.join(", "),
            kept.join(", "),
        )
    } else {
        format!(
            "Secret {name} is the user's (spec.existingSecret): nothing rotated by the \
             operator; the server's pods roll to read its current values"
        )
    };
    info!(namespace, name = fedi.name_any(), %note, "secret rotation");
    let related = ObjectReference {
        kind: Some("Secret".into()),
        name: Some(name),
        namespace: Some(namespace.to_string()),
        ..Default::default()
    };
    ctx.event(
        fedi,
        EventType::Normal,
        "SecretsRotated",
        note,
        Some(related),
    )
    .await;
    Ok(Some(value))
}

/// Stamps the handled rotation on the pod templates of the server's Deployments, so that a
/// new one rolls them (they read the keys from the Secret only at start).
pub fn stamp(children: &mut [build::Child], handled: Option<&str>) {
    let Some(value) = handled else { return };
    for child in children.iter_mut() {
        if child.resource.kind != "Deployment" {
            continue;
        }
        child.object.data["spec"]["template"]["metadata"]["annotations"][POD_ANNOTATION] =
            json!(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_value_rotates_once_and_a_marked_one_is_only_recorded() {
        assert_eq!(plan(None, None, None), Plan::Nothing);
        assert_eq!(plan(None, Some("a"), Some("a")), Plan::Nothing);
        assert_eq!(plan(Some("a"), None, None), Plan::Rotate("a".into()));
        assert_eq!(
            plan(Some("b"), Some("a"), Some("a")),
            Plan::Rotate("b".into())
        );
        // Crashed after writing the Secret, before the status.
        assert_eq!(
            plan(Some("b"), Some("a"), Some("b")),
            Plan::Record("b".into())
        );
        assert_eq!(plan(Some("b"), Some("b"), Some("b")), Plan::Nothing);
        // Back to an earlier value is a new request.
        assert_eq!(
            plan(Some("a"), Some("b"), Some("b")),
            Plan::Rotate("a".into())
        );
    }

    #[test]
    fn only_the_safe_keys_rotate() {
        let fresh = keys::generate().unwrap();
        let rotated = rotated_values(&fresh);
        assert_eq!(
            rotated.keys().map(String::as_str).collect::<Vec<_>>(),
            ["oauthSigningKey", "secretKeyBase"]
        );
        for (kept, _) in KEPT_KEYS {
            assert!(!rotated.contains_key(*kept), "{kept}");
        }
        // Every generated key is either rotated or kept, for a stated reason.
        for (key, _) in keys::SECRET_KEYS {
            assert!(
                ROTATED_KEYS.contains(key) || KEPT_KEYS.iter().any(|(k, _)| k == key),
                "{key} is neither"
            );
        }
    }

    #[test]
    fn the_deployments_pod_templates_carry_the_handled_rotation() {
        let fedi = crate::build::fixtures::minimal();
        let defaults = crate::build::Defaults::default();
        let mut children = crate::build::children(&fedi, &defaults).unwrap();
        let before = children.clone();
        stamp(&mut children, None);
        assert_eq!(
            serde_json::to_value(children.iter().map(|c| &c.object).collect::<Vec<_>>()).unwrap(),
            serde_json::to_value(before.iter().map(|c| &c.object).collect::<Vec<_>>()).unwrap()
        );
        stamp(&mut children, Some("2026-11-28"));
        let deployments: Vec<_> = children
            .iter()
            .filter(|c| c.resource.kind == "Deployment")
            .collect();
        assert!(!deployments.is_empty());
        for d in deployments {
            let template = &d.object.data["spec"]["template"]["metadata"];
            assert_eq!(template["annotations"][POD_ANNOTATION], "2026-11-28");
            // The labels the selector matches are untouched.
            assert!(template["labels"].is_object(), "{}", d.name());
        }
    }
}
