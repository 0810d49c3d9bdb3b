//! Events on FediInstances (`kubectl describe`), published as kube-runtime's `Recorder`
//! does — events.k8s.io/v1, a repeat of the same event patched into its series — but
//! remembering of each published event only a hash of what identifies it, its name and its
//! series count. The Recorder kept every Event object it published for 6 minutes (with two
//! copies of the object reference each) and swept them all under a lock on every publish:
//! ~25 events per instance during a fleet's convergence made that tens of MiB and a
//! quadratic amount of sweeping at 1,000 instances.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use serde_json::json;

/// How long a published event can still grow a series (kube-runtime's and client-go's 6
/// minutes): a repeat after that is a new Event object.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// Expired entries are dropped at most this often, not on every publish.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub struct Publisher {
    client: Client,
    controller: String,
    instance: String,
    published: Mutex<Published>,
}

struct Published {
    by_key: HashMap<u64, Sent>,
    swept: Instant,
}

/// What a repeat needs: which Event to patch and the count it reaches.
struct Sent {
    namespace: Box<str>,
    name: Box<str>,
    count: i32,
    last: Instant,
}

impl Publisher {
    /// `instance`: the reporting instance (the pod's name), else the controller's name.
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            published: Mutex::new(Published {
                by_key: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// Publishes `event` about `regarding`: a new Event, or the next count of the series of
    /// the same event published within the window.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = key(event, regarding);
        let now = Instant::now();
        let repeat = {
            let mut published = self.published.lock().expect("events lock poisoned");
            if now.duration_since(published.swept) >= SWEEP_EVERY {
                published
                    .by_key
                    .retain(|_, s| now.duration_since(s.last) < SERIES_WINDOW);
                published.swept = now;
            }
            published
                .by_key
                .get(&key)
                .filter(|s| now.duration_since(s.last) < SERIES_WINDOW)
                .map(|s| (s.namespace.clone(), s.name.clone(), s.count + 1))
        };
        let sent = match repeat {
            Some((namespace, name, count)) => {
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(Timestamp::now()),
                };
                let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
                api.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "series": series })),
                )
                .await?;
                Sent {
                    namespace,
                    name,
                    count,
                    last: now,
                }
            }
            None => {
                let created = self.new_event(event, regarding);
                let namespace = created.metadata.namespace.clone().unwrap_or_default();
                let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
                api.create(&PostParams::default(), &created).await?;
                Sent {
                    namespace: namespace.into(),
                    name: created.metadata.name.unwrap_or_default().into(),
                    // The second occurrence is the series' count 2.
                    count: 1,
                    last: now,
                }
            }
        };
        self.published
            .lock()
            .expect("events lock poisoned")
            .by_key
            .insert(key, sent);
        Ok(())
    }

    /// Events remembered for their series (expired ones until the next sweep).
    pub fn remembered(&self) -> usize {
        self.published
            .lock()
            .expect("events lock poisoned")
            .by_key
            .len()
    }

    fn new_event(&self, event: &Event, regarding: &ObjectReference) -> K8sEvent {
        let now = Timestamp::now();
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            note: event.note.clone(),
            metadata: ObjectMeta {
                // Cluster-scoped objects' events go to "default", as the Recorder's do.
                namespace: Some(
                    regarding
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                ),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        }
    }
}

/// What makes two events the same, as the Recorder keys them (type, action, reason, the
/// object at its version, the related object) plus the note, as client-go does: a series
/// shows one note, so events saying different things stay apart.
fn key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = DefaultHasher::new();
    matches!(event.type_, EventType::Warning).hash(&mut h);
    event.action.hash(&mut h);
    event.reason.hash(&mut h);
    event.note.hash(&mut h);
    hash_reference(regarding, &mut h);
    if let Some(related) = &event.secondary {
        hash_reference(related, &mut h);
    }
    h.finish()
}

fn hash_reference(r: &ObjectReference, h: &mut DefaultHasher) {
    (
        &r.api_version,
        &r.kind,
        &r.namespace,
        &r.name,
        &r.uid,
        &r.resource_version,
        &r.field_path,
    )
        .hash(h);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str, version: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("fedi.dev/v1alpha1".into()),
            kind: Some("FediInstance".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some(version.into()),
            ..Default::default()
        }
    }

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    #[test]
    fn the_same_event_about_the_same_object_version_is_one_series() {
        let (a, b) = (
            event("Created", "Created Service/x"),
            event("Created", "Created Service/x"),
        );
        assert_eq!(key(&a, &reference("i", "1")), key(&b, &reference("i", "1")));
    }

    #[test]
    fn another_note_reason_object_version_or_related_child_is_another_event() {
        let base = key(&event("Created", "Created Service/x"), &reference("i", "1"));
        let mut related = event("Created", "Created Service/x");
        related.secondary = Some(reference("x", "7"));
        for other in [
            key(&event("Created", "Created Service/y"), &reference("i", "1")),
            key(&event("Updated", "Created Service/x"), &reference("i", "1")),
            key(&event("Created", "Created Service/x"), &reference("j", "1")),
            key(&event("Created", "Created Service/x"), &reference("i", "2")),
            key(&related, &reference("i", "1")),
        ] {
            assert_ne!(base, other);
        }
    }
}
