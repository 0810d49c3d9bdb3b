//! The API server itself refuses bad manifests, with messages a person can act on.

use fedi_e2e::*;
use kube::api::{Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::json;

#[tokio::test]
async fn every_sample_is_accepted() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "samples").await;
    let api = ns.api::<FediInstance>();
    let dir = repo_root().join("config/samples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let yaml = std::fs::read_to_string(&path).unwrap();
        // A sample may hold several instances (multi-tenant.yaml): each document is one.
        for document in serde_yaml::Deserializer::from_str(&yaml) {
            let fedi = FediInstance::deserialize(document)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            let dry_run = PostParams {
                dry_run: true,
                ..Default::default()
            };
            api.create(&dry_run, &fedi)
                .await
                .unwrap_or_else(|e| panic!("{} refused: {e}", path.display()));
            count += 1;
        }
    }
    // Every file of config/samples, each instance of multi-tenant.yaml counted.
    assert!(count >= 8, "expected every sample in {}", dir.display());
}

#[tokio::test]
async fn invalid_manifests_are_refused_with_a_readable_message() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "invalid").await;
    // Untyped, so that values our own types could not even hold reach the API server.
    let raw = kube::Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        &ns.name,
        &kube::api::ApiResource::erase::<FediInstance>(&()),
    );
    let cases = [
        (json!({}), "spec.domain: Required value"),
        (json!({"domain": "Social.Example.com"}), "spec.domain"),
        (
            json!({"domain": "https://social.example.com/"}),
            "spec.domain",
        ),
        (
            json!({"domain": "ok.example", "registrations": "sometimes"}),
            "spec.registrations",
        ),
    ];
    for (i, (spec, expected)) in cases.into_iter().enumerate() {
        let obj: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "fedi.dev/v1alpha1",
            "kind": "FediInstance",
            "metadata": {"name": format!("bad-{i}")},
            "spec": spec,
        }))
        .unwrap();
        let err = raw
            .create(&PostParams::default(), &obj)
            .await
            .expect_err("must be refused");
        let text = err.to_string();
        assert!(
            text.contains(expected),
            "case {i}: {text:?} should mention {expected:?}"
        );
    }
}

#[tokio::test]
async fn the_domain_cannot_change() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "immutable").await;
    let api = ns.api::<FediInstance>();
    api.create(
        &PostParams::default(),
        &instance("social", json!({"domain": "a.example"})),
    )
    .await
    .unwrap();
    let err = api
        .patch(
            "social",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"domain": "b.example"}})),
        )
        .await
        .expect_err("changing the domain is refused");
    assert!(err.to_string().contains("domain is immutable"), "{err}");
    // Other fields still change.
    api.patch(
        "social",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"registrations": "closed"}})),
    )
    .await
    .expect("registrations can change");
}
