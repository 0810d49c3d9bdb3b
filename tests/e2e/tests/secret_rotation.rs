//! Rotation of the generated secrets on request (`fedi.dev/rotate-secrets`): the keys that
//! can rotate change exactly once per annotation value, the others keep their values, the
//! server's pods roll, an event names what rotated; a request whose Secret was written
//! before the status (a crash in between) is recorded without rotating twice.

use std::collections::BTreeMap;
use std::time::Duration;

use fedi_e2e::*;
use fedi_operator::secret_rotation::{POD_ANNOTATION, ROTATE_ANNOTATION, ROTATED_FOR_ANNOTATION};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);
const DEPLOYMENTS: [&str; 3] = ["minimal-api", "minimal-streamer", "minimal-worker-default"];

async fn keys(secrets: &Api<Secret>) -> BTreeMap<String, ByteString> {
    secrets.get("minimal-keys").await.unwrap().data.unwrap()
}

fn handled(value: &'static str) -> impl Fn(&FediInstance) -> bool {
    move |f| {
        f.status
            .as_ref()
            .and_then(|s| s.secrets_rotation.as_deref())
            == Some(value)
            && f.condition(fedi_operator::status::READY)
                .is_some_and(|c| c.status == "True")
    }
}

async fn request(api: &Api<FediInstance>, value: &str) {
    merge_patch(
        api,
        "minimal",
        json!({"metadata": {"annotations": {ROTATE_ANNOTATION: value}}}),
    )
    .await;
}

/// The rotation each Deployment's pod template carries.
async fn pod_stamps(ns: &TestNamespace) -> Vec<Option<String>> {
    let api = ns.api::<Deployment>();
    let mut out = Vec::new();
    for name in DEPLOYMENTS {
        let d = api.get(name).await.unwrap();
        let template = d.spec.template.metadata.unwrap_or_default();
        out.push(
            template
                .annotations
                .unwrap_or_default()
                .remove(POD_ANNOTATION),
        );
    }
    out
}

/// The notes of the rotation events, one per occurrence (repeats of one event are counted
/// in its series).
async fn rotation_notes(ns: &TestNamespace) -> Vec<String> {
    let mut notes = Vec::new();
    for e in ns
        .api::<Event>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
    {
        if e.reason.as_deref() != Some("SecretsRotated") {
            continue;
        }
        let count = e.series.as_ref().map_or(1, |s| s.count);
        for _ in 0..count {
            notes.push(e.note.clone().unwrap_or_default());
        }
    }
    notes
}

#[tokio::test]
async fn rotation_changes_the_safe_keys_once_per_request_and_rolls_the_pods() {
    let client = client().await;
    let (ns, api) = create_instance(&client, "rotate", |_| {}).await;
    await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    let secrets = ns.api::<Secret>();
    let original = keys(&secrets).await;
    assert_eq!(pod_stamps(&ns).await, [None, None, None]);
    let generations: Vec<_> = {
        let d = ns.api::<Deployment>();
        let mut g = Vec::new();
        for name in DEPLOYMENTS {
            g.push(d.get(name).await.unwrap().metadata.generation);
        }
        g
    };

    request(&api, "first").await;
    await_instance(&api, "minimal", TIMEOUT, "first handled", handled("first"))
        .await
        .unwrap();
    let first = keys(&secrets).await;
    for key in ["secretKeyBase", "oauthSigningKey"] {
        assert_ne!(first[key], original[key], "{key} rotated");
    }
    for key in ["encryptionKey", "vapidPrivateKey", "vapidPublicKey"] {
        assert_eq!(first[key], original[key], "{key} kept");
    }
    assert_eq!(pod_stamps(&ns).await, vec![Some("first".to_string()); 3]);
    let d = ns.api::<Deployment>();
    for (name, before) in DEPLOYMENTS.iter().zip(&generations) {
        let now = d.get(name).await.unwrap().metadata.generation;
        assert!(now > *before, "{name} rolled: {before:?} -> {now:?}");
    }
    let notes = rotation_notes(&ns).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("secretKeyBase"), "{}", notes[0]);
    for value in first.values() {
        let text = String::from_utf8_lossy(&value.0);
        assert!(!notes[0].contains(text.as_ref()), "a value in the event");
    }

    // The same value again, and reconciles for other reasons: nothing rotates again.
    request(&api, "first").await;
    merge_patch(
        &api,
        "minimal",
        json!({"metadata": {"labels": {"poke": "1"}}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(keys(&secrets).await, first, "rotated twice for one request");

    // A crash after the Secret was written and before the status was stored: the operator
    // is held off (paused) while the test plays the crashed write, then let go.
    merge_patch(
        &api,
        "minimal",
        json!({"metadata": {"annotations": {"fedi.dev/paused": "true"}}}),
    )
    .await;
    await_instance(&api, "minimal", TIMEOUT, "paused", |f| {
        f.condition(fedi_operator::status::READY)
            .is_some_and(|c| c.reason == "Paused")
    })
    .await
    .unwrap();
    request(&api, "second").await;
    let crashed = json!({
        "metadata": {"annotations": {ROTATED_FOR_ANNOTATION: "second"}},
        "stringData": {"secretKeyBase": "b".repeat(128), "oauthSigningKey": "c".repeat(128)},
    });
    merge_patch(&secrets, "minimal-keys", crashed).await;
    let written = keys(&secrets).await;
    merge_patch(
        &api,
        "minimal",
        json!({"metadata": {"annotations": {"fedi.dev/paused": null}}}),
    )
    .await;
    await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "second recorded",
        handled("second"),
    )
    .await
    .unwrap();
    assert_eq!(
        keys(&secrets).await,
        written,
        "rotated again after the crash"
    );
    assert_eq!(pod_stamps(&ns).await, vec![Some("second".to_string()); 3]);
    assert_eq!(rotation_notes(&ns).await.len(), 1);

    // A new value rotates again, once.
    request(&api, "third").await;
    await_instance(&api, "minimal", TIMEOUT, "third handled", handled("third"))
        .await
        .unwrap();
    let third = keys(&secrets).await;
    assert_ne!(third["secretKeyBase"], written["secretKeyBase"]);
    assert_eq!(third["encryptionKey"], original["encryptionKey"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(keys(&secrets).await, third);
    assert_eq!(rotation_notes(&ns).await.len(), 2);
}
