//! A managed database through CloudNativePG. The test installs CloudNativePG's CRDs (from its
//! Go module) and plays its controller: it sets the Cluster's status and creates the
//! application Secret, as CloudNativePG would. One test, because it installs cluster-wide CRDs.

use std::time::Duration;

use fedi_e2e::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn a_managed_database_waits_for_cloudnative_pg_then_for_its_cluster() {
    let client = client().await;
    let had_cnpg = ThirdPartyCrds::present(&client, "cloudnative-pg").await;
    let (ns, api) = create_instance(&client, "cnpg", |f| {
        f.spec.database = serde_json::from_value(json!({"managed": {"instances": 2}})).unwrap();
    })
    .await;
    let database = |reason: &'static str| {
        move |f: &FediInstance| {
            f.condition("DatabaseReady")
                .is_some_and(|c| c.status == "False" && c.reason == reason)
        }
    };

    let _crds = if had_cnpg {
        eprintln!("CloudNativePG is installed on this cluster: its absence is not tested");
        None
    } else {
        let f = await_instance(
            &api,
            "minimal",
            TIMEOUT,
            "CloudNativePGNotInstalled",
            database("CloudNativePGNotInstalled"),
        )
        .await
        .unwrap();
        let message = &f.condition("DatabaseReady").unwrap().message;
        assert!(message.contains("Install CloudNativePG"), "{message}");
        Some(ThirdPartyCrds::install(&client, "cloudnative-pg").await)
    };

    // Discovered without a restart: the Cluster and its Pooler appear, not yet ready.
    await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "ClusterNotReady",
        database("ClusterNotReady"),
    )
    .await
    .unwrap();
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &fedi_operator::build::database::cluster_resource(),
    );
    let cluster = clusters.get("minimal-db").await.unwrap();
    assert!(cluster.owner_references().is_empty(), "retained: no owner");
    assert_eq!(cluster.data["spec"]["instances"], 2);
    let poolers: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &fedi_operator::build::database::pooler_resource(),
    );
    let pooler = poolers.get("minimal-db-pooler").await.unwrap();
    assert_eq!(pooler.data["spec"]["pgbouncer"]["poolMode"], "transaction");
    assert!(
        ns.api::<Deployment>()
            .get_opt("minimal-api")
            .await
            .unwrap()
            .is_none()
    );

    // CloudNativePG's part: the application Secret, then a healthy status.
    let app: Secret = serde_json::from_value(json!({
        "metadata": {"name": "minimal-db-app"},
        "stringData": {"username": "fedi", "password": "cnpg-made-this"}}))
    .unwrap();
    ns.api::<Secret>()
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
    let status = json!({"status": {"instances": 2, "readyInstances": 2,
        "phase": "Cluster in healthy state",
        "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterIsReady",
            "message": "Cluster is Ready", "lastTransitionTime": "2026-11-27T00:00:00Z"}]}});
    clusters
        .patch_status(
            "minimal-db",
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    let f = await_instance(
        &api,
        "minimal",
        Duration::from_secs(30),
        "Ready",
        ready_at(1),
    )
    .await
    .unwrap();
    assert_eq!(
        f.condition("DatabaseReady").unwrap().reason,
        "ClusterHealthy"
    );

    // The server goes through PgBouncer, migrates on the primary, reads from the standbys.
    let d = ns.api::<Deployment>().get("minimal-api").await.unwrap();
    let env = d.spec.template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let value = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
            .unwrap_or_default()
    };
    assert!(value("FEDI_DATABASE_URL").contains("@minimal-db-pooler."));
    assert!(value("FEDI_DATABASE_MIGRATION_URL").contains("@minimal-db-rw."));
    assert!(value("FEDI_DATABASE_REPLICA_URL").contains("@minimal-db-ro."));
    let password = env
        .iter()
        .find(|e| e.name == "FEDI_DATABASE_PASSWORD")
        .unwrap();
    let reference = password
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (reference.name.as_str(), reference.key.as_str()),
        ("minimal-db-app", "password")
    );

    // Deleting a retained instance keeps the database.
    api.delete("minimal", &DeleteParams::default())
        .await
        .unwrap();
    await_until(TIMEOUT, "the instance to go", || async {
        api.get_opt("minimal")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    assert!(
        clusters.get_opt("minimal-db").await.unwrap().is_some(),
        "the Cluster is kept"
    );
    // Retained objects of the test go with its namespace.

    the_redundant_sample_builds_every_service(&client).await;
}

/// `config/samples/managed-ha.yaml` as users apply it: every managed service with its
/// redundancy. Nothing can become ready here (no real pods), so the server is held back.
async fn the_redundant_sample_builds_every_service(client: &kube::Client) {
    let ns = TestNamespace::new(client, "ha").await;
    let backup: Secret = serde_json::from_value(json!({
        "metadata": {"name": "backup-s3"},
        "stringData": {"accessKeyId": "AKIA-e2e", "secretAccessKey": "e2e"}}))
    .unwrap();
    ns.api::<Secret>()
        .create(&PostParams::default(), &backup)
        .await
        .unwrap();
    let api = ns.api::<FediInstance>();
    api.create(&PostParams::default(), &sample("managed-ha"))
        .await
        .unwrap();
    let waiting = |f: &FediInstance| {
        f.condition("Ready")
            .is_some_and(|c| c.reason == "WaitingForDependencies")
            && f.condition("SearchReady").is_some()
    };
    let f = await_instance(&api, "big", TIMEOUT, "waiting for dependencies", waiting)
        .await
        .unwrap();
    for t in ["DatabaseReady", "RedisReady", "StorageReady", "SearchReady"] {
        assert_eq!(f.condition(t).unwrap().status, "False", "{t}");
    }
    let dynamic = |r: kube::api::ApiResource| -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), &ns.name, &r)
    };
    let cluster = dynamic(fedi_operator::build::database::cluster_resource())
        .get("big-db")
        .await
        .unwrap();
    assert_eq!(cluster.data["spec"]["instances"], 3);
    assert_eq!(
        cluster.data["spec"]["backup"]["barmanObjectStore"]["destinationPath"],
        "s3://big-example-backups/postgres"
    );
    let schedule = dynamic(fedi_operator::build::database::scheduled_backup_resource())
        .get("big-db")
        .await
        .unwrap();
    assert_eq!(schedule.data["spec"]["schedule"], "0 0 3 * * *");
    let sts = ns.api::<k8s_openapi::api::apps::v1::StatefulSet>();
    for (name, replicas) in [("big-redis", 6), ("big-s3", 1), ("big-search", 3)] {
        let s = sts.get(name).await.unwrap();
        assert_eq!(s.spec.replicas, Some(replicas), "{name}");
    }
    assert!(
        ns.api::<Deployment>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
