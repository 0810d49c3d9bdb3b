use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::{Ctx, env};

/// The server's non-secret settings; the pods load it whole (`envFrom`).
pub(crate) fn build(ctx: &Ctx) -> ConfigMap {
    ConfigMap {
        metadata: ctx.metadata(ctx.child_name("config"), None),
        data: Some(env::plain(ctx.fedi)),
        ..Default::default()
    }
}

/// A digest of the configuration, put on the pod templates so that a change rolls them.
/// Stable across operator restarts and releases: SHA-256 over the sorted data, each key and
/// value length-prefixed so that no two different maps hash alike.
pub(crate) fn checksum(config: &ConfigMap) -> String {
    let empty = BTreeMap::new();
    let mut hasher = Sha256::new();
    for (k, v) in config.data.as_ref().unwrap_or(&empty) {
        for part in [k, v] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
    }
    let digest = hasher.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Ctx, Defaults};
    use super::*;

    #[test]
    fn the_checksum_follows_the_configuration() {
        let defaults = Defaults::default();
        let a = minimal();
        let mut b = minimal();
        b.spec.registrations = crate::crd::Registrations::Closed;
        let sum = |f| checksum(&build(&Ctx::new(f, &defaults).unwrap()));
        let again = minimal();
        assert_eq!(sum(&a), sum(&again));
        assert_ne!(sum(&a), sum(&b));
    }
}
