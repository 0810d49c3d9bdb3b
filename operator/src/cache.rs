//! The operator's cache of its children: one reflector store per owned kind, fed by the same
//! watches that wake the controller, so that an unchanged child is compared without a GET
//! and pruning needs no LIST.
//!
//! Objects are stored without `managedFields` and the `last-applied-configuration`
//! annotation (what makes a child several times its own size, and nothing here reads
//! them), and as their deflated JSON text rather than a parsed tree: a parsed Deployment
//! takes several times its text's size, and a thousand instances' children must fit in the
//! operator's memory budget (as text they were still a third of its heap at 1,000
//! instances). A lookup inflates and parses the one object it returns. A store that has
//! not finished its first list answers `None`, and the caller asks the API server instead.

use std::borrow::Cow;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, TypeMeta};
use kube::core::DynamicResourceScope;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

/// The children of every instance, as the watches last saw them.
#[derive(Clone, Default)]
pub struct ChildCache {
    stores: Vec<Entry>,
}

#[derive(Clone)]
struct Entry {
    group: String,
    kind: String,
    /// `None`: the store watches every namespace.
    namespace: Option<String>,
    store: Store<Stored>,
}

/// What the cache knows of one child.
#[derive(Debug)]
pub enum Cached {
    /// The kind is not cached here, or its store is still listing: ask the API server.
    Unknown,
    Absent,
    Present(Arc<DynamicObject>),
}

/// A child as the store keeps it: what lookups and label filters need, and the object's
/// JSON text, deflated.
#[derive(Clone, Debug)]
struct Stored {
    /// Name, namespace and labels only.
    metadata: ObjectMeta,
    /// Deflated JSON text: a pod template's env, probes and defaulted fields repeat the
    /// same keys, so the fastest level already more than halves an instance's children
    /// (a higher level saves 8% more), for some tens of microseconds per watch event and
    /// per lookup.
    deflated: Box<[u8]>,
}

impl Stored {
    fn of(object: &DynamicObject) -> Self {
        use std::io::Write;
        let metadata = ObjectMeta {
            name: object.metadata.name.clone(),
            namespace: object.metadata.namespace.clone(),
            labels: object.metadata.labels.clone(),
            ..ObjectMeta::default()
        };
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        // Into memory: writing cannot fail, and a DynamicObject (a JSON value with
        // metadata) always serializes. Should either ever fail, the empty text does not
        // parse back and the lookup asks the API server.
        let deflated = serde_json::to_writer(&mut encoder, object)
            .ok()
            .and_then(|()| encoder.flush().ok())
            .and_then(|()| encoder.finish().ok())
            .unwrap_or_default()
            .into_boxed_slice();
        Self { metadata, deflated }
    }

    fn object(&self) -> Option<DynamicObject> {
        use std::io::Read;
        let mut json = Vec::with_capacity(self.deflated.len() * 6);
        flate2::read::DeflateDecoder::new(&self.deflated[..])
            .read_to_end(&mut json)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

impl Resource for Stored {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The watch event with its object as the store keeps it.
fn stored(event: &watcher::Event<DynamicObject>) -> watcher::Event<Stored> {
    use watcher::Event::*;
    match event {
        Apply(o) => Apply(Stored::of(o)),
        Delete(o) => Delete(Stored::of(o)),
        Init => Init,
        InitApply(o) => InitApply(Stored::of(o)),
        InitDone => InitDone,
    }
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what is bulky and never read (`strip_bulky_metadata`), and gives the object its
/// type: items of a list come without it, watch events with it, and the comparison with a
/// desired child (which has it) must not depend on which of the two delivered the object
/// last.
fn prepare(object: &mut DynamicObject, types: &TypeMeta) {
    strip_bulky_metadata(object);
    object.types.get_or_insert_with(|| types.clone());
}

/// Drops who manages which field and kubectl's copy of the whole object: bulky, and read by
/// nothing in the operator.
pub fn strip_bulky_metadata<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

impl ChildCache {
    /// Watches `resource` (in `namespace`, or everywhere) with `config` into a new store;
    /// returns the watch stream, which must be driven (the controller does, as a trigger).
    pub fn watch(
        &mut self,
        client: &Client,
        namespace: Option<&str>,
        resource: &ApiResource,
        config: watcher::Config,
    ) -> BoxStream<'static, Result<DynamicObject, watcher::Error>> {
        let api = match namespace {
            Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, resource),
            None => Api::<DynamicObject>::all_with(client.clone(), resource),
        };
        let mut writer = reflector::store::Writer::<Stored>::new(resource.clone());
        self.stores.push(Entry {
            group: resource.group.clone(),
            kind: resource.kind.clone(),
            namespace: namespace.map(String::from),
            store: writer.as_reader(),
        });
        let types = TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        };
        watcher(api, config)
            .modify(move |o| prepare(o, &types))
            .inspect_ok(move |event| writer.apply_watcher_event(&stored(event)))
            .touched_objects()
            .boxed()
    }

    fn store(&self, resource: &ApiResource, namespace: &str) -> Option<&Store<Stored>> {
        self.stores
            .iter()
            .find(|e| {
                e.group == resource.group
                    && e.kind == resource.kind
                    && e.namespace.as_deref().is_none_or(|n| n == namespace)
            })
            .map(|e| &e.store)
            .filter(|s| ready(s))
    }

    pub fn get(&self, resource: &ApiResource, namespace: &str, name: &str) -> Cached {
        let Some(store) = self.store(resource, namespace) else {
            return Cached::Unknown;
        };
        let key = ObjectRef::new_with(name, resource.clone()).within(namespace);
        match store.get(&key) {
            // Text the store wrote itself from an object; should it not parse back, the
            // API server answers instead.
            Some(stored) => stored
                .object()
                .map_or(Cached::Unknown, |o| Cached::Present(Arc::new(o))),
            None => Cached::Absent,
        }
    }

    /// The names of the objects of `resource` in `namespace` carrying every label of
    /// `labels`; `None` when the kind's store cannot answer.
    pub fn names(
        &self,
        resource: &ApiResource,
        namespace: &str,
        labels: &[(&str, &str)],
    ) -> Option<Vec<String>> {
        let store = self.store(resource, namespace)?;
        let matching = store.state_filter(|o| {
            o.namespace().as_deref() == Some(namespace)
                && labels
                    .iter()
                    .all(|(k, v)| o.labels().get(*k).is_some_and(|l| l == v))
        });
        Some(matching.iter().map(|o| o.name_any()).collect())
    }
}

/// Whether the store holds its first full list (it keeps the previous state while a watch
/// relists, so it stays usable once ready).
fn ready(store: &Store<Stored>) -> bool {
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn config_map(name: &str, instance: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns", "labels": {
                "app.kubernetes.io/instance": instance,
                "app.kubernetes.io/managed-by": "fedi-operator"},
                "annotations": {LAST_APPLIED: "{}", "kept": "yes"},
                "managedFields": [{"manager": "fedi-operator", "operation": "Apply"}]},
            "data": {"k": "v"},
        }))
        .unwrap()
    }

    #[test]
    fn bulky_metadata_is_stripped_the_type_filled_in_and_the_rest_kept() {
        let types = TypeMeta {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
        };
        // As a list delivers it: no apiVersion or kind.
        let mut o = config_map("a", "one");
        o.types = None;
        prepare(&mut o, &types);
        assert_eq!(o.types.as_ref(), Some(&types));
        let desired = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a"}, "data": {"k": "v"}});
        let live = serde_json::to_value(&o).unwrap();
        assert!(crate::apply::contains(&live, &desired), "{live}");
        assert!(o.metadata.managed_fields.is_none());
        let annotations = o.annotations();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations.get("kept").map(String::as_str), Some("yes"));
        assert_eq!(o.data["data"]["k"], "v");
    }

    #[test]
    fn children_are_kept_deflated_and_come_back_unchanged() {
        let fedi = crate::build::fixtures::minimal();
        let children = crate::build::children(&fedi, &crate::build::Defaults::default()).unwrap();
        let (mut text, mut kept) = (0, 0);
        for child in &children {
            let stored = Stored::of(&child.object);
            assert_eq!(
                serde_json::to_value(stored.object().unwrap()).unwrap(),
                serde_json::to_value(&child.object).unwrap(),
                "{}",
                child.describe()
            );
            text += serde_json::to_string(&child.object).unwrap().len();
            kept += stored.deflated.len();
        }
        // What keeps a thousand instances' children in the operator's memory budget.
        assert!(
            kept * 2 < text,
            "{kept} bytes kept for {text} bytes of JSON"
        );
    }

    #[test]
    fn lookups_wait_for_the_first_list_then_answer_by_name_and_label() {
        let resource = ApiResource::erase::<ConfigMap>(&());
        let mut writer = reflector::store::Writer::<Stored>::new(resource.clone());
        let cache = ChildCache {
            stores: vec![Entry {
                group: resource.group.clone(),
                kind: resource.kind.clone(),
                namespace: None,
                store: writer.as_reader(),
            }],
        };
        assert!(matches!(cache.get(&resource, "ns", "a"), Cached::Unknown));
        assert_eq!(cache.names(&resource, "ns", &[]), None);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&stored(&Event::InitApply(config_map("a", "one"))));
        writer.apply_watcher_event(&stored(&Event::InitApply(config_map("b", "two"))));
        writer.apply_watcher_event(&Event::InitDone);
        // The object comes back whole from its stored text.
        let Cached::Present(a) = cache.get(&resource, "ns", "a") else {
            panic!("a is in the store");
        };
        assert_eq!(a.name_any(), "a");
        assert_eq!(a.data["data"]["k"], "v");
        assert_eq!(a.labels()["app.kubernetes.io/instance"], "one");
        assert!(matches!(cache.get(&resource, "ns", "c"), Cached::Absent));
        assert!(matches!(cache.get(&resource, "other", "a"), Cached::Absent));
        let one = [("app.kubernetes.io/instance", "one")];
        assert_eq!(cache.names(&resource, "ns", &one), Some(vec!["a".into()]));
        assert_eq!(cache.names(&resource, "other", &one), Some(vec![]));
        // Kinds without a store are not guessed at.
        let secret = ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
        assert!(matches!(cache.get(&secret, "ns", "a"), Cached::Unknown));
    }
}
