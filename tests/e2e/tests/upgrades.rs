//! The upgrade pipeline and day-2 operations against a real API server: pre-deployment
//! migration -> rollout -> post-deployment migration, a failed and a refused migration,
//! suspend, size presets. kwok completes Job pods; the cluster's extra stages
//! (cluster/stages-e2e.yaml) make the migrations of two made-up versions fail the way
//! `fedi-server migrate` does.

use std::time::Duration;

use fedi_e2e::*;
use fedi_operator::build::migration_job::PHASE_LABEL;
use fedi_operator::crd::UpgradePhase;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);
/// A failing migration is retried twice by its Job, with back-off (10 s, 20 s).
const FAILURE_TIMEOUT: Duration = Duration::from_secs(180);
const DEPLOYMENTS: [&str; 3] = ["minimal-api", "minimal-streamer", "minimal-worker-default"];

/// Every step done for `version`: migrations of both phases, every pod on it.
fn upgraded_to(version: &'static str) -> impl Fn(&FediInstance) -> bool {
    move |f| {
        f.status
            .as_ref()
            .and_then(|s| s.version.as_ref())
            .is_some_and(|v| v.current.as_deref() == Some(version) && v.phase.is_none())
    }
}

fn phase(f: &FediInstance) -> Option<UpgradePhase> {
    f.status.as_ref()?.version.as_ref()?.phase
}

fn condition(f: &FediInstance, type_: &str) -> (String, String, String) {
    f.condition(type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

async fn installed(client: &kube::Client, prefix: &str) -> (TestNamespace, Api<FediInstance>) {
    let (ns, api) = create_instance(client, prefix, |_| {}).await;
    await_instance(&api, "minimal", TIMEOUT, "0.1.0 installed", |f| {
        ready_at(1)(f) && upgraded_to("0.1.0")(f)
    })
    .await
    .unwrap();
    (ns, api)
}

fn image_of(d: &Deployment) -> String {
    d.spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// The migration Jobs of `phase` for `version`.
async fn jobs(ns: &TestNamespace, phase: &str, version: &str) -> Vec<Job> {
    let selector = format!("{PHASE_LABEL}={phase},app.kubernetes.io/version={version}");
    ns.api::<Job>()
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
}

/// (generation, image) of each Deployment: what "untouched" means.
async fn deployments(ns: &TestNamespace) -> Vec<(Option<i64>, String)> {
    let api = ns.api::<Deployment>();
    let mut out = Vec::new();
    for name in DEPLOYMENTS {
        let d = api.get(name).await.unwrap();
        out.push((d.metadata.generation, image_of(&d)));
    }
    out
}

/// When the operator last applied `d` (to the second, as the API server records it).
fn applied_at(d: &Deployment) -> k8s_openapi::jiff::Timestamp {
    d.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some("fedi-operator"))
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max()
        .expect("the operator's apply time")
}

/// The reasons of the instance's events, oldest first.
async fn event_reasons(ns: &TestNamespace) -> Vec<String> {
    event_times(ns).await.into_iter().map(|(r, _)| r).collect()
}

/// The instance's events with their times, oldest first.
async fn event_times(ns: &TestNamespace) -> Vec<(String, String)> {
    let mut events = ns
        .api::<Event>()
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    events.sort_by_key(|e| {
        e.event_time
            .as_ref()
            .map(|t| t.0)
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    });
    events
        .into_iter()
        .filter_map(|e| {
            let at = e.event_time.map(|t| t.0.to_string()).unwrap_or_default();
            Some((e.reason?, at))
        })
        .collect()
}

#[tokio::test]
async fn an_upgrade_runs_pre_migration_then_rollout_then_post_migration() {
    let client = client().await;
    let (ns, api) = installed(&client, "upgrade").await;
    // The install ran both phases too.
    assert_eq!(jobs(&ns, "pre", "0.1.0").await.len(), 1);
    assert_eq!(jobs(&ns, "post", "0.1.0").await.len(), 1);

    merge_patch(&api, "minimal", json!({"spec": {"version": "0.2.0"}})).await;
    // The phases, as sampled while the upgrade runs: never out of order.
    let seen: std::cell::RefCell<Vec<UpgradePhase>> = Default::default();
    let done = await_instance(&api, "minimal", TIMEOUT, "0.2.0 upgraded", |f| {
        let mut seen = seen.borrow_mut();
        if let Some(p) = phase(f)
            && seen.last() != Some(&p)
        {
            seen.push(p);
        }
        upgraded_to("0.2.0")(f)
    });
    let f = done.await.unwrap();
    let seen = seen.into_inner();
    let order = [
        UpgradePhase::PreMigration,
        UpgradePhase::RollingOut,
        UpgradePhase::PostMigration,
    ];
    let positions: Vec<usize> = seen
        .iter()
        .map(|p| order.iter().position(|o| o == p).expect("no other phase"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{seen:?}");

    let pre = jobs(&ns, "pre", "0.2.0").await.remove(0);
    let post = jobs(&ns, "post", "0.2.0").await.remove(0);
    let args = |j: &Job| {
        j.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .args
            .clone()
            .unwrap()
    };
    assert_eq!(args(&pre), ["migrate", "--pre"]);
    assert_eq!(args(&post), ["migrate", "--post"]);
    let pre_done = pre
        .status
        .unwrap()
        .completion_time
        .expect("pre completed")
        .0;
    let post_created = post.metadata.creation_timestamp.unwrap().0;
    for name in DEPLOYMENTS {
        let d = ns.api::<Deployment>().get(name).await.unwrap();
        assert!(image_of(&d).ends_with(":0.2.0"), "{name}");
        let rolled = applied_at(&d);
        assert!(
            pre_done <= rolled,
            "{name}: pre done {pre_done}, rolled {rolled}"
        );
        assert!(
            rolled <= post_created,
            "{name}: rolled {rolled}, post {post_created}"
        );
        // Every pod ran the new version when the post phase started.
        let s = d.status.unwrap();
        assert_eq!(s.updated_replicas, d.spec.replicas, "{name}");
    }
    let status = f.status.clone().unwrap();
    let image = status.migrated_image.clone().unwrap();
    assert!(image.ends_with(":0.2.0"), "{image}");
    assert_eq!(status.post_migrated_image.as_deref(), Some(image.as_str()));
    let v = status.version.unwrap();
    assert_eq!(
        (v.current.as_deref(), v.target.as_str()),
        (Some("0.2.0"), "0.2.0")
    );
    let (migrated, reason, _) = condition(&f, "Migrated");
    assert_eq!((migrated.as_str(), reason.as_str()), ("True", "Migrated"));
    // And the events tell the same story, in order.
    let timed = event_times(&ns).await;
    eprintln!("upgrade events: {timed:?}");
    let reasons: Vec<String> = timed.into_iter().map(|(r, _)| r).collect();
    let steps: Vec<&str> = reasons
        .iter()
        .map(String::as_str)
        .filter(|r| ["PreMigration", "RollingOut", "PostMigration", "Upgraded"].contains(r))
        .collect();
    let last4 = &steps[steps.len().saturating_sub(4)..];
    assert_eq!(
        last4,
        ["PreMigration", "RollingOut", "PostMigration", "Upgraded"],
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_failing_migration_is_retried_then_leaves_the_old_deployments_untouched() {
    let client = client().await;
    let (ns, api) = installed(&client, "migfail").await;
    let before = deployments(&ns).await;
    merge_patch(
        &api,
        "minimal",
        json!({"spec": {"version": "0.0.0-e2e-migration-fails"}}),
    )
    .await;
    let f = await_instance(&api, "minimal", FAILURE_TIMEOUT, "MigrationFailed", |f| {
        condition(f, "Migrated").1 == "MigrationFailed"
    })
    .await
    .unwrap();
    let job = jobs(&ns, "pre", "0.0.0-e2e-migration-fails")
        .await
        .remove(0);
    let job_name = job.metadata.name.clone().unwrap();
    // Bounded retries, with the Job's back-off: three pods, then it gave up.
    assert_eq!(job.status.unwrap().failed, Some(3));
    let (_, _, message) = condition(&f, "Migrated");
    assert!(message.contains(&job_name), "names the Job: {message}");
    assert!(
        message.contains(r#"column "e2e" does not exist"#),
        "quotes the log: {message}"
    );
    assert_eq!(condition(&f, "Ready").1, "MigrationFailed");
    let v = f.status.clone().unwrap().version.unwrap();
    assert_eq!(v.current.as_deref(), Some("0.1.0"));
    assert_eq!(v.phase, Some(UpgradePhase::Failed));
    assert_eq!(
        deployments(&ns).await,
        before,
        "the old Deployments were changed"
    );
    assert!(
        event_reasons(&ns)
            .await
            .contains(&"MigrationFailed".to_string())
    );
    assert!(
        jobs(&ns, "post", "0.0.0-e2e-migration-fails")
            .await
            .is_empty()
    );

    // Setting the version back ends the failed upgrade.
    merge_patch(&api, "minimal", json!({"spec": {"version": "0.1.0"}})).await;
    await_instance(&api, "minimal", TIMEOUT, "back on 0.1.0", |f| {
        upgraded_to("0.1.0")(f) && condition(f, "Ready").0 == "True"
    })
    .await
    .unwrap();
    assert_eq!(deployments(&ns).await, before);
}

#[tokio::test]
async fn a_downgrade_past_the_schema_is_refused_at_once() {
    let client = client().await;
    let (ns, api) = installed(&client, "downgrade").await;
    let before = deployments(&ns).await;
    merge_patch(
        &api,
        "minimal",
        json!({"spec": {"version": "0.0.0-e2e-schema-older"}}),
    )
    .await;
    let f = await_instance(&api, "minimal", TIMEOUT, "DowngradeRefused", |f| {
        condition(f, "Migrated").1 == "DowngradeRefused"
    })
    .await
    .unwrap();
    let (_, _, message) = condition(&f, "Migrated");
    assert!(message.contains("schema is newer"), "{message}");
    assert!(
        message.contains("refusing to downgrade"),
        "quotes the log: {message}"
    );
    assert_eq!(condition(&f, "Ready").1, "DowngradeRefused");
    // No retry: the schema does not get older by trying again.
    let job = jobs(&ns, "pre", "0.0.0-e2e-schema-older").await.remove(0);
    assert_eq!(job.status.unwrap().failed, Some(1));
    assert_eq!(deployments(&ns).await, before);
    assert!(
        event_reasons(&ns)
            .await
            .contains(&"DowngradeRefused".to_string())
    );
}

#[tokio::test]
async fn suspend_scales_every_workload_to_zero_keeps_the_data_and_unsuspend_restores() {
    let client = client().await;
    let (ns, api) = installed(&client, "suspend").await;
    // A second instance with a managed Redis: a StatefulSet with its volume. (Never ready
    // here, as kwok runs no Redis, but suspension does not depend on readiness.)
    let mut managed = sample("minimal");
    managed.metadata.name = Some("managed".into());
    use_test_services_without_secrets(&ns, &mut managed);
    managed.spec.redis = serde_json::from_value(json!({"managed": {}})).unwrap();
    api.create(&Default::default(), &managed).await.unwrap();
    let sts = ns.api::<StatefulSet>();
    let replicas = |s: &StatefulSet| s.spec.replicas;
    await_until(TIMEOUT, "the managed Redis StatefulSet", || async {
        sts.get_opt("managed-redis").await.unwrap()
    })
    .await
    .unwrap();
    let running = replicas(&sts.get("managed-redis").await.unwrap());
    assert!(running.unwrap() > 0);
    let pvcs = ns.api::<PersistentVolumeClaim>();
    await_until(TIMEOUT, "the Redis volume claim", || async {
        let n = pvcs.list(&Default::default()).await.ok()?.items.len();
        (n > 0).then_some(())
    })
    .await
    .unwrap();
    let claims = pvcs.list(&Default::default()).await.unwrap().items.len();

    for name in ["minimal", "managed"] {
        merge_patch(&api, name, json!({"spec": {"suspend": true}})).await;
    }
    let f = await_instance(&api, "minimal", TIMEOUT, "Suspended", |f| {
        condition(f, "Ready").1 == "Suspended"
    })
    .await
    .unwrap();
    let d = ns.api::<Deployment>();
    await_until(TIMEOUT, "every Deployment at zero", || async {
        for name in DEPLOYMENTS {
            if d.get(name).await.ok()?.spec.replicas != Some(0) {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap();
    await_until(TIMEOUT, "the Redis StatefulSet at zero", || async {
        (replicas(&sts.get("managed-redis").await.ok()?) == Some(0)).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        pvcs.list(&Default::default()).await.unwrap().items.len(),
        claims,
        "the data's volumes are kept"
    );
    assert!(
        f.status.unwrap().components.iter().all(|c| c.desired == 0),
        "the status says zero"
    );

    for name in ["minimal", "managed"] {
        merge_patch(&api, name, json!({"spec": {"suspend": false}})).await;
    }
    await_instance(&api, "minimal", TIMEOUT, "Ready again", ready_at(3))
        .await
        .unwrap();
    for name in DEPLOYMENTS {
        assert_eq!(d.get(name).await.unwrap().spec.replicas, Some(1));
    }
    await_until(TIMEOUT, "the Redis StatefulSet restored", || async {
        (replicas(&sts.get("managed-redis").await.ok()?) == running).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_size_preset_sets_replicas_and_resources_and_explicit_fields_win() {
    let client = client().await;
    let (ns, api) = create_instance(&client, "size", |f| {
        f.spec.size = Some(fedi_operator::crd::Size::Medium);
        f.spec.streamer.replicas = Some(1);
        f.spec.api.resources =
            Some(serde_json::from_value(json!({"requests": {"cpu": "750m"}})).unwrap());
    })
    .await;
    await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    let d = ns.api::<Deployment>();
    let shape = |d: &Deployment, which: &str, key: &str| {
        let r = d.spec.template.spec.as_ref().unwrap().containers[0]
            .resources
            .clone()
            .unwrap_or_default();
        let map = if which == "requests" {
            r.requests
        } else {
            r.limits
        };
        map.and_then(|m| m.get(key).map(|q| q.0.clone()))
            .unwrap_or_default()
    };
    let replicas: Vec<Option<i32>> = {
        let mut v = Vec::new();
        for name in DEPLOYMENTS {
            v.push(d.get(name).await.unwrap().spec.replicas);
        }
        v
    };
    assert_eq!(
        replicas,
        [Some(2), Some(1), Some(2)],
        "medium, streamer explicit"
    );
    let api_d = d.get("minimal-api").await.unwrap();
    assert_eq!(shape(&api_d, "requests", "cpu"), "750m", "explicit wins");
    assert_eq!(shape(&api_d, "requests", "memory"), "768Mi", "the preset's");
    let worker = d.get("minimal-worker-default").await.unwrap();
    assert_eq!(shape(&worker, "limits", "memory"), "1536Mi");

    merge_patch(&api, "minimal", json!({"spec": {"size": "large"}})).await;
    await_instance(&api, "minimal", TIMEOUT, "Ready at 2", ready_at(2))
        .await
        .unwrap();
    assert_eq!(d.get("minimal-api").await.unwrap().spec.replicas, Some(4));
    assert_eq!(
        d.get("minimal-streamer").await.unwrap().spec.replicas,
        Some(1)
    );
}
