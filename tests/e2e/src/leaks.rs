//! The credential leak check: every value a test knows to be secret is searched for in
//! everything of a namespace that is not a Secret (the FediInstance with its status,
//! ConfigMaps, Events of both APIs, Deployments, StatefulSets, Jobs (migrations, search
//! reindex), CloudNativePG's Cluster/Pooler/ScheduledBackup when served), plus texts the test
//! adds (the operator's log). Pod specs may name a Secret, never carry its value.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client};
use serde::Serialize;

use crate::FediInstance;

/// Values shorter than this are too likely to occur by chance (a port, `true`).
const MIN_LEN: usize = 8;

/// Where to look, named for the failure message.
pub struct Haystack {
    places: Vec<(String, String)>,
}

impl Haystack {
    /// Everything of `namespace` but its Secrets.
    pub async fn of_namespace(client: &Client, namespace: &str) -> Self {
        let mut h = Self { places: Vec::new() };
        h.typed::<FediInstance>(client, namespace, "FediInstance")
            .await;
        h.typed::<ConfigMap>(client, namespace, "ConfigMap").await;
        h.typed::<k8s_openapi::api::events::v1::Event>(client, namespace, "Event")
            .await;
        h.typed::<k8s_openapi::api::core::v1::Event>(client, namespace, "Event (core/v1)")
            .await;
        h.typed::<Deployment>(client, namespace, "Deployment").await;
        h.typed::<StatefulSet>(client, namespace, "StatefulSet")
            .await;
        h.typed::<Job>(client, namespace, "Job").await;
        use fedi_operator::build::database as cnpg;
        for (kind, resource) in [
            ("CNPG Cluster", cnpg::cluster_resource()),
            ("CNPG Pooler", cnpg::pooler_resource()),
            ("CNPG ScheduledBackup", cnpg::scheduled_backup_resource()),
        ] {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            // Not served without CloudNativePG's CRDs: nothing of that kind can leak then.
            if let Ok(list) = api.list(&ListParams::default()).await {
                h.add_all(kind, list.items);
            }
        }
        h
    }

    async fn typed<K>(&mut self, client: &Client, namespace: &str, kind: &str)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + Serialize
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        let list = api
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list {kind} in {namespace}: {e}"));
        self.add_all(kind, list.items);
    }

    fn add_all<K: Serialize + kube::ResourceExt>(&mut self, kind: &str, items: Vec<K>) {
        for item in items {
            let place = format!("{kind} {}", item.name_any());
            self.places
                .push((place, serde_json::to_string(&item).expect("serializable")));
        }
    }

    /// A text of the test's own, such as a log.
    pub fn add(&mut self, place: impl Into<String>, text: impl Into<String>) -> &mut Self {
        self.places.push((place.into(), text.into()));
        self
    }

    /// How many objects of `kind` (as named in failure messages) were collected.
    pub fn count(&self, kind: &str) -> usize {
        let prefix = format!("{kind} ");
        self.places
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .count()
    }

    /// Panics naming the place (never the value) where any of `secrets` appears.
    pub fn assert_none_of(&self, secrets: &[String]) {
        let secrets: Vec<&String> = secrets.iter().filter(|s| s.len() >= MIN_LEN).collect();
        assert!(!secrets.is_empty(), "no credential to search for");
        let mut found = Vec::new();
        for (place, text) in &self.places {
            for (i, s) in secrets.iter().enumerate() {
                if text.contains(s.as_str()) {
                    found.push(format!("credential #{i} in {place}"));
                }
            }
        }
        assert!(found.is_empty(), "credentials leaked: {found:?}");
    }
}

/// The values of the Secrets of `namespace` worth searching for: not access key IDs (which
/// name a key like a user name, and which the S3 SDK logs at debug level while redacting the
/// secret key), not the SeaweedFS identities document (its keys are searched one by one).
pub async fn secret_values(client: &Client, namespace: &str) -> Vec<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .expect("list Secrets")
        .items
        .into_iter()
        .flat_map(|s| s.data.unwrap_or_default())
        .filter(|(key, _)| key != "accessKeyId")
        .map(|(_, v)| String::from_utf8_lossy(&v.0).into_owned())
        .filter(|v| v.len() >= MIN_LEN && !v.starts_with('{'))
        .collect()
}

/// The password of a `redis://[user]:password@host...` URL, which must not leak on its own
/// either: a message quoting the URL without its scheme would still give it away.
pub fn url_password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_of_a_url_is_found() {
        assert_eq!(
            url_password("redis://:pw-1@127.0.0.1:6379/0").as_deref(),
            Some("pw-1")
        );
        assert_eq!(
            url_password("redis://default:p@ss@h:1").as_deref(),
            Some("p@ss")
        );
        assert_eq!(url_password("redis://127.0.0.1:6379"), None);
        assert_eq!(url_password("redis://user@h:1"), None);
    }

    #[test]
    fn a_leak_is_named_by_its_place() {
        let mut h = Haystack { places: Vec::new() };
        h.add("the log", "connecting with pw-0123456789 now");
        h.assert_none_of(&["another-secret".into()]);
        let caught = std::panic::catch_unwind(|| h.assert_none_of(&["pw-0123456789".into()]));
        let message = *caught.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("the log"), "{message}");
        assert!(!message.contains("pw-0123456789"), "{message}");
    }
}
