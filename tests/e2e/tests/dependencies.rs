//! The dependencies of an instance: their conditions, and the server held back until they
//! are ready. Managed services cannot become ready here (the local control plane runs no
//! real pods), which is itself a case: their conditions must say so, and no server starts.

use std::time::Duration;

use fedi_e2e::*;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::PostParams;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

fn condition(f: &FediInstance, type_: &str) -> (String, String) {
    f.condition(type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
        .unwrap_or_default()
}

#[tokio::test]
async fn an_instance_on_external_services_reports_all_four_ready() {
    let client = client().await;
    let (_ns, api) = create_instance(&client, "deps", |_| {}).await;
    let f = await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    for (type_, reason) in [
        ("DatabaseReady", "Reachable"),
        ("RedisReady", "Ready"),
        ("StorageReady", "BucketReady"),
        ("SearchReady", "NotConfigured"),
    ] {
        assert_eq!(
            condition(&f, type_),
            ("True".into(), reason.into()),
            "{type_}"
        );
    }
}

#[tokio::test]
async fn the_minimal_sample_waits_for_its_managed_services_and_starts_no_server() {
    let client = client().await;
    install_crd(&client).await;
    Operator::shared();
    let ns = TestNamespace::new(&client, "managed").await;
    let api = ns.api::<FediInstance>();
    api.create(&PostParams::default(), &sample("minimal"))
        .await
        .unwrap();
    let waiting = |f: &FediInstance| {
        f.condition("Ready")
            .is_some_and(|c| c.reason == "WaitingForDependencies")
            && ["DatabaseReady", "RedisReady", "StorageReady"]
                .iter()
                .all(|t| f.condition(t).is_some_and(|c| c.status == "False"))
    };
    let f = await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "waiting for dependencies",
        waiting,
    )
    .await
    .unwrap();
    let message = &f.condition("Ready").unwrap().message;
    assert!(message.contains("DatabaseReady ("), "{message}");
    // The services' objects and generated credentials exist; retained, the credentials
    // outlive the instance with the volumes they open.
    let secrets = ns.api::<Secret>();
    for name in ["minimal-redis", "minimal-s3", "minimal-keys"] {
        let s = secrets.get(name).await.unwrap();
        assert!(s.owner_references().is_empty(), "{name} has no owner");
    }
    for name in ["minimal-redis", "minimal-s3"] {
        let sts = ns.api::<StatefulSet>().get(name).await.unwrap();
        assert!(!sts.owner_references().is_empty(), "{name} is owned");
    }
    // Nothing of the server runs before its dependencies.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deployments = ns
        .api::<Deployment>()
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        deployments.items.is_empty(),
        "{:?}",
        deployments
            .items
            .iter()
            .map(|d| d.name_any())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn bad_storage_credentials_are_access_denied_and_the_server_keeps_running() {
    let client = client().await;
    let (ns, api) = create_instance(&client, "s3denied", |_| {}).await;
    await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    merge_patch(
        &ns.api::<Secret>(),
        "test-s3",
        json!({"stringData": {"secretAccessKey": "not-the-secret"}}),
    )
    .await;
    // The Secret is watched: no retry interval to wait for.
    let denied = |f: &FediInstance| {
        f.condition("StorageReady")
            .is_some_and(|c| c.status == "False" && c.reason == "AccessDenied")
    };
    let f = await_instance(
        &api,
        "minimal",
        Duration::from_secs(30),
        "AccessDenied",
        denied,
    )
    .await
    .unwrap();
    let message = &f.condition("StorageReady").unwrap().message;
    assert!(!message.contains("not-the-secret"), "{message}");
    assert_eq!(condition(&f, "Ready").1, "WaitingForDependencies");
    // Held back, not torn down.
    assert!(
        ns.api::<Deployment>()
            .get_opt("minimal-api")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn an_unreachable_external_database_is_reported_with_its_address() {
    let client = client().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let (_ns, api) = create_instance(&client, "nodb", |f| {
        f.spec.database.external.as_mut().unwrap().port = port.into();
    })
    .await;
    let unreachable = |f: &FediInstance| {
        f.condition("DatabaseReady")
            .is_some_and(|c| c.reason == "DatabaseUnreachable")
    };
    let f = await_instance(&api, "minimal", TIMEOUT, "DatabaseUnreachable", unreachable)
        .await
        .unwrap();
    let message = &f.condition("DatabaseReady").unwrap().message;
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
}

/// The test services' S3, for the bucket of namespace `ns`.
fn test_bucket(ns: &TestNamespace) -> fedi_operator::object_storage::Target {
    fedi_operator::object_storage::Target {
        endpoint: service_env("FEDI_TEST_S3_ENDPOINT"),
        region: service_env("FEDI_TEST_S3_REGION"),
        bucket: ns.name.clone(),
        path_style: true,
        access_key_id: service_env("FEDI_TEST_S3_ACCESS_KEY"),
        secret_access_key: service_env("FEDI_TEST_S3_SECRET_KEY"),
    }
}

async fn deleted(api: &kube::Api<FediInstance>) {
    api.delete("minimal", &Default::default()).await.unwrap();
    await_until(TIMEOUT, "the instance to go", || async {
        api.get_opt("minimal")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn under_the_delete_policy_the_bucket_is_emptied_and_removed_with_the_instance() {
    let client = client().await;
    let (ns, api) = create_instance(&client, "bucketdel", |f| {
        f.spec.deletion_policy = serde_json::from_value(json!("Delete")).unwrap();
    })
    .await;
    let f = await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    assert!(
        f.finalizers()
            .contains(&fedi_operator::finalizer::FINALIZER.to_string())
    );
    let target = test_bucket(&ns);
    let s3 = fedi_operator::object_storage::client(&target).unwrap();
    for key in ["media/a.png", "media/cache/b.png", "other/c.txt"] {
        s3.put_object()
            .bucket(&target.bucket)
            .key(key)
            .body(b"x".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    deleted(&api).await;
    let gone = fedi_operator::object_storage::check(&target)
        .await
        .unwrap_err();
    assert_eq!(gone.reason(), "BucketNotFound", "{gone}");
    let events = ns.api::<k8s_openapi::api::events::v1::Event>();
    let reasons: Vec<_> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(reasons.iter().any(|r| r == "BucketDeleted"), "{reasons:?}");
}

#[tokio::test]
async fn a_retained_instance_has_no_finalizer_and_leaves_its_bucket() {
    let client = client().await;
    let (ns, api) = create_instance(&client, "bucketkeep", |_| {}).await;
    let f = await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    assert!(f.finalizers().is_empty(), "{:?}", f.finalizers());
    deleted(&api).await;
    fedi_operator::object_storage::check(&test_bucket(&ns))
        .await
        .expect("the bucket is kept");
}
