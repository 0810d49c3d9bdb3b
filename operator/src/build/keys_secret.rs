use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::Ctx;
use crate::crd::DeletionPolicy;

/// The Secret of generated keys. Created once by the dereference stage, never applied again.
/// It is data: with `deletionPolicy: Retain` it has no owner, so it outlives the instance
/// together with the database whose contents it encrypts.
pub(crate) fn build(ctx: &Ctx, keys: BTreeMap<String, String>) -> Secret {
    let mut metadata = ctx.metadata(keys_secret_name(ctx.fedi), None);
    if ctx.fedi.spec.deletion_policy == DeletionPolicy::Retain {
        metadata.owner_references = None;
    }
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        string_data: Some(keys),
        ..Default::default()
    }
}

/// The Secret the pods take their keys from: the user's, or the generated one.
pub fn keys_secret_name(fedi: &crate::crd::FediInstance) -> String {
    use kube::ResourceExt;
    fedi.spec
        .existing_secret
        .clone()
        .unwrap_or_else(|| format!("{}-keys", fedi.name_any()))
}

/// The generated Secret for `fedi`.
pub fn generated(
    fedi: &crate::crd::FediInstance,
    defaults: &super::Defaults,
    keys: BTreeMap<String, String>,
) -> Result<Secret, super::BuildError> {
    Ok(build(&Ctx::new(fedi, defaults)?, keys))
}

/// A Secret of generated credentials named `name` (a managed service's), kept like the keys:
/// created once, and without an owner under `Retain`, since the retained volumes of the
/// service only open with it.
pub fn generated_credentials(
    fedi: &crate::crd::FediInstance,
    defaults: &super::Defaults,
    name: String,
    data: BTreeMap<String, String>,
) -> Result<Secret, super::BuildError> {
    let mut secret = build(&Ctx::new(fedi, defaults)?, data);
    secret.metadata.name = Some(name);
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn retained_keys_have_no_owner_and_deleted_ones_do() {
        let defaults = super::super::Defaults::default();
        let keys = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let retained = generated(&minimal(), &defaults, keys.clone()).unwrap();
        assert_eq!(retained.metadata.name.as_deref(), Some("social-keys"));
        assert!(retained.metadata.owner_references.is_none());
        let deleted = generated(
            &instance(json!({"domain": "social.example", "deletionPolicy": "Delete"})),
            &defaults,
            keys,
        )
        .unwrap();
        assert_eq!(deleted.metadata.owner_references.unwrap().len(), 1);
    }

    #[test]
    fn an_existing_secret_replaces_the_generated_one() {
        let fedi = instance(json!({"domain": "social.example", "existingSecret": "my-keys"}));
        assert_eq!(keys_secret_name(&fedi), "my-keys");
    }
}
