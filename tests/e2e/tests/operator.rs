//! The operator, run in-process against the cluster, observes instances and reports status.

use std::sync::Arc;
use std::time::Duration;

use fedi_e2e::*;
use fedi_operator::metrics::Metrics;
use fedi_operator::status::{READY, REASON_NOT_IMPLEMENTED};
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_operator_reports_status_for_each_generation_and_writes_nothing_when_nothing_changed() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "operator").await;
    let metrics = Arc::new(Metrics::default());
    let operator = tokio::spawn(fedi_operator::controller::run(
        client.clone(),
        metrics.clone(),
    ));

    let api = ns.api::<FediInstance>();
    api.create(
        &PostParams::default(),
        &instance("social", json!({"domain": "social.example"})),
    )
    .await
    .unwrap();
    let observed = |generation: i64| {
        move |f: &FediInstance| {
            let s = f.status.as_ref();
            s.and_then(|s| s.observed_generation) == Some(generation)
                && f.condition(READY)
                    .is_some_and(|c| c.reason == REASON_NOT_IMPLEMENTED)
        }
    };
    let f = await_instance(
        &api,
        "social",
        TIMEOUT,
        "status of generation 1",
        observed(1),
    )
    .await
    .unwrap();
    assert_eq!(f.condition(READY).unwrap().status, "False");
    assert_eq!(
        f.status.unwrap().url.as_deref(),
        Some("https://social.example")
    );

    // A spec change is a new generation, and is reported as such.
    api.patch(
        "social",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"registrations": "approval"}})),
    )
    .await
    .unwrap();
    await_instance(
        &api,
        "social",
        TIMEOUT,
        "status of generation 2",
        observed(2),
    )
    .await
    .unwrap();

    // A metadata-only change triggers a reconcile but leaves the status as it is: no write.
    let writes = metrics.status_writes();
    let reconciles = metrics.reconciles();
    api.patch(
        "social",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
    )
    .await
    .unwrap();
    await_until(
        TIMEOUT,
        "a reconcile of the relabelled instance",
        || async { (metrics.reconciles() > reconciles).then_some(()) },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        metrics.status_writes(),
        writes,
        "a no-op reconcile must not write"
    );

    operator.abort();
}
