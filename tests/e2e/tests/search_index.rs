//! The search reindex Job against a real API server: it runs once per server image after
//! the pre-deployment migrations, never holds the rollout back, and a failed one is reported
//! (`SearchIndexed=False`, a Warning event) and retried. kwok completes Job pods; the failure
//! is made by refusing the Job's pods (an admission policy) and failing the Job through its
//! `FailureTarget` condition, which the Job controller turns into `Failed`.

use std::time::Duration;

use fedi_e2e::*;
use fedi_operator::build::search_index_job::STEP_LABEL;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

fn condition(f: &FediInstance, type_: &str) -> (String, String, String) {
    f.condition(type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

fn indexed(f: &FediInstance) -> Option<String> {
    f.status.as_ref()?.search_indexed_image.clone()
}

async fn reindex_jobs(ns: &TestNamespace, version: &str) -> Vec<Job> {
    let selector = format!("{STEP_LABEL},app.kubernetes.io/version={version}");
    ns.api::<Job>()
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
}

/// An instance on the test services with the test OpenSearch as its external search.
async fn with_search(client: &kube::Client, prefix: &str) -> (TestNamespace, Api<FediInstance>) {
    let (ns, api) = create_instance(client, prefix, |f| {
        let mut spec = serde_json::to_value(&f.spec).unwrap();
        spec["search"] = json!({"external": {"url": service_env("FEDI_TEST_SEARCH_URL"),
            "credentialsSecretRef": {"name": "test-search"}}});
        f.spec = serde_json::from_value(spec).unwrap();
    })
    .await;
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "test-search"},
        "stringData": {"username": "fedi", "password": "e2e-search-password"}}))
    .unwrap();
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    (ns, api)
}

#[tokio::test]
async fn the_reindex_job_runs_once_per_image_after_the_pre_migration() {
    let client = client().await;
    let (ns, api) = with_search(&client, "reindex").await;
    let f = await_instance(&api, "minimal", TIMEOUT, "0.1.0 indexed", |f| {
        ready_at(1)(f) && indexed(f).is_some_and(|i| i.contains(":0.1.0 "))
    })
    .await
    .unwrap();
    let (status, reason, message) = condition(&f, "SearchIndexed");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Indexed"));
    let job = reindex_jobs(&ns, "0.1.0").await.remove(0);
    let name = job.metadata.name.clone().unwrap();
    assert!(message.contains(&name), "names the Job: {message}");
    let pod = job.spec.unwrap().template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        c.args.clone().unwrap(),
        ["admin", "search", "migrate"].map(String::from)
    );
    let env = c.env.clone().unwrap_or_default();
    let secret_of = |n: &str| {
        env.iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .map(|s| s.name.clone())
    };
    assert_eq!(
        secret_of("FEDI_SEARCH_PASSWORD").as_deref(),
        Some("test-search")
    );
    // After the pre-deployment migration of the same image.
    let pre_done = ns
        .api::<Job>()
        .list(
            &ListParams::default()
                .labels("fedi.dev/migration-phase=pre,app.kubernetes.io/version=0.1.0"),
        )
        .await
        .unwrap()
        .items
        .remove(0)
        .status
        .unwrap()
        .completion_time
        .unwrap()
        .0;
    assert!(pre_done <= job.metadata.creation_timestamp.unwrap().0);

    // Reconciling again runs nothing more; a new image gets its own Job.
    merge_patch(&api, "minimal", json!({"spec": {"version": "0.2.0"}})).await;
    await_instance(&api, "minimal", TIMEOUT, "0.2.0 indexed", |f| {
        indexed(f).is_some_and(|i| i.contains(":0.2.0 "))
    })
    .await
    .unwrap();
    assert_eq!(reindex_jobs(&ns, "0.1.0").await.len(), 1);
    assert_eq!(reindex_jobs(&ns, "0.2.0").await.len(), 1);

    // A new index prefix names indexes that start empty: the same image is indexed again.
    let default_prefix = format!("(index prefix {}_minimal)", ns.name);
    assert!(
        indexed(&api.get("minimal").await.unwrap()).is_some_and(|i| i.ends_with(&default_prefix))
    );
    merge_patch(
        &api,
        "minimal",
        json!({"spec": {"search": {"indexPrefix": "e2e-shared"}}}),
    )
    .await;
    await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "0.2.0 indexed under the new prefix",
        |f| {
            indexed(f)
                .is_some_and(|i| i.contains(":0.2.0 ") && i.ends_with("(index prefix e2e-shared)"))
        },
    )
    .await
    .unwrap();
    assert_eq!(reindex_jobs(&ns, "0.2.0").await.len(), 2);
}

/// Refuses the pods of the reindex Jobs in `namespace`: they stay without pods.
async fn refuse_reindex_pods(client: &kube::Client, namespace: &str) -> String {
    let name = format!("{namespace}-no-reindex");
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["pods"]}]},
            "matchConditions": [{"name": "reindex",
                "expression": "object.spec.containers.exists(c, c.name == 'search-migrate')"}],
            "validations": [{"expression": "false", "message": "e2e: no reindex pods"}],
        }
    }))
    .unwrap();
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels":
                {"kubernetes.io/metadata.name": namespace}}}}
    }))
    .unwrap();
    let pp = PostParams::default();
    Api::<ValidatingAdmissionPolicy>::all(client.clone())
        .create(&pp, &policy)
        .await
        .unwrap();
    Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .create(&pp, &binding)
        .await
        .unwrap();
    name
}

async fn allow_reindex_pods(client: &kube::Client, name: &str) {
    let dp = DeleteParams::default();
    let _ = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .delete(name, &dp)
        .await;
    let _ = Api::<ValidatingAdmissionPolicy>::all(client.clone())
        .delete(name, &dp)
        .await;
}

#[tokio::test]
async fn a_failed_reindex_is_reported_without_holding_the_rollout_and_retried() {
    let client = client().await;
    let (ns, api) = with_search(&client, "reindexfail").await;
    await_instance(&api, "minimal", TIMEOUT, "0.1.0 indexed", |f| {
        ready_at(1)(f) && indexed(f).is_some()
    })
    .await
    .unwrap();
    let policy = refuse_reindex_pods(&client, &ns.name).await;
    // Admission policies take a moment to reach the API server's cache.
    tokio::time::sleep(Duration::from_secs(2)).await;
    merge_patch(&api, "minimal", json!({"spec": {"version": "0.2.0"}})).await;
    let job = await_until(TIMEOUT, "the 0.2.0 reindex Job", || {
        let ns = &ns;
        async move { reindex_jobs(ns, "0.2.0").await.pop() }
    })
    .await
    .unwrap();
    let job_name = job.metadata.name.clone().unwrap();
    // The Job controller fails a Job marked as a failure target, as it does when a pod
    // failure policy or the back-off limit decides.
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    ns.api::<Job>()
        .patch_status(
            &job_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "FailureTarget",
                "status": "True", "reason": "BackoffLimitExceeded",
                "message": "e2e: the reindex failed", "lastTransitionTime": now,
                "lastProbeTime": now}]}})),
        )
        .await
        .unwrap();
    let f = await_instance(&api, "minimal", TIMEOUT, "ReindexFailed, rolled out", |f| {
        condition(f, "SearchIndexed").1 == "ReindexFailed"
            && f.status
                .as_ref()
                .and_then(|s| s.version.as_ref())
                .is_some_and(|v| v.current.as_deref() == Some("0.2.0") && v.phase.is_none())
    })
    .await;
    allow_reindex_pods(&client, &policy).await;
    let f = f.unwrap();
    let (_, _, message) = condition(&f, "SearchIndexed");
    assert!(message.contains(&job_name), "names the Job: {message}");
    assert!(message.contains("PostgreSQL"), "{message}");
    // Not held back: every workload is on the new version and the instance is Ready.
    assert_eq!(condition(&f, "Ready").0, "True");
    assert_eq!(condition(&f, "Degraded").0, "False");
    assert!(indexed(&f).is_some_and(|i| i.contains(":0.1.0 ")));
    let warnings: Vec<_> = ns
        .api::<Event>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SearchReindexFailed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));

    // Deleting the failed Job retries at once (the operator does it after a while).
    ns.api::<Job>()
        .delete(
            &job_name,
            &DeleteParams {
                propagation_policy: Some(kube::api::PropagationPolicy::Background),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let f = await_instance(&api, "minimal", TIMEOUT, "0.2.0 indexed", |f| {
        indexed(f).is_some_and(|i| i.contains(":0.2.0 "))
    })
    .await
    .unwrap();
    assert_eq!(condition(&f, "SearchIndexed").0, "True");
}
