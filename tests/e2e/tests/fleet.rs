//! The fleet's limit on concurrent upgrades: this binary's operator runs with
//! `--max-concurrent-upgrades 5`, and a version bump across 50 instances never has more
//! than 5 upgrading at once (sampled from their statuses). One test per binary: the limit
//! counts every instance the operator sees.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fedi_e2e::*;
use fedi_operator::crd::UpgradePhase;
use kube::api::{ListParams, PostParams};
use serde_json::json;

const LIMIT: usize = 5;
const INSTANCES: usize = 50;

fn version(f: &FediInstance) -> (Option<String>, Option<UpgradePhase>) {
    let v = f.status.as_ref().and_then(|s| s.version.clone());
    (
        v.as_ref().and_then(|v| v.current.clone()),
        v.and_then(|v| v.phase),
    )
}

#[tokio::test]
async fn fifty_instances_upgrade_at_most_five_at_a_time() {
    let client = client().await;
    install_crd(&client).await;
    let operator = Operator::shared_with(Some(LIMIT));
    let ns = TestNamespace::new(&client, "fleet").await;
    let api = ns.api::<FediInstance>();
    let mut template = sample("minimal");
    use_test_services(&ns, &mut template).await;
    // No pods to roll: the pipeline (slot, Jobs, rollout, Jobs) is what is measured.
    let lean = json!({"api": {"replicas": 0}, "streamer": {"replicas": 0},
        "worker": {"pools": [{"name": "default", "queues": [{"name": "default"}],
            "replicas": 0, "scheduler": true}]}});
    let mut spec = serde_json::to_value(&template.spec).unwrap();
    for (k, v) in lean.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let started = Instant::now();
    for i in 0..INSTANCES {
        let mut f = template.clone();
        f.metadata.name = Some(format!("i{i:02}"));
        f.spec = serde_json::from_value(spec.clone()).unwrap();
        f.spec.domain = format!("i{i:02}.fleet.example");
        api.create(&PostParams::default(), &f).await.unwrap();
    }
    let all = |want: &'static str| {
        let api = api.clone();
        async move {
            let list = api.list(&ListParams::default()).await.ok()?;
            (list.items.len() == INSTANCES
                && list
                    .items
                    .iter()
                    .all(|f| version(f) == (Some(want.to_string()), None)))
            .then_some(())
        }
    };
    await_until(Duration::from_secs(180), "50 instances installed", || {
        all("0.1.0")
    })
    .await
    .unwrap();
    let installed = started.elapsed();
    let reconciles = operator.metrics.reconciles();

    let started = Instant::now();
    for i in 0..INSTANCES {
        merge_patch(
            &api,
            &format!("i{i:02}"),
            json!({"spec": {"version": "0.2.0"}}),
        )
        .await;
    }
    let mut most = 0;
    let mut queued_seen = 0;
    let mut samples = 0;
    // How many were upgrading at each sample: shows whether the slots stay busy.
    let mut series = String::new();
    loop {
        let list = api.list(&ListParams::default()).await.unwrap().items;
        samples += 1;
        let mut phases: BTreeMap<String, usize> = BTreeMap::new();
        for f in &list {
            *phases.entry(format!("{:?}", version(f).1)).or_default() += 1;
        }
        let upgrading = list
            .iter()
            .filter(|f| version(f).1.is_some_and(UpgradePhase::in_progress))
            .count();
        assert!(
            upgrading <= LIMIT,
            "{upgrading} upgrading at once (limit {LIMIT}): {phases:?}"
        );
        assert_eq!(phases.get("Some(Failed)"), None, "{phases:?}");
        most = most.max(upgrading);
        series.push_str(&upgrading.to_string());
        queued_seen = queued_seen.max(phases.get("Some(Queued)").copied().unwrap_or(0));
        if list
            .iter()
            .all(|f| version(f) == (Some("0.2.0".to_string()), None))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the fleet upgrade stalled: {phases:?}"
        );
        // Often enough to catch a sixth upgrade (each takes seconds), rarely enough not to
        // slow the API server down with lists of 50 instances.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "fleet: {INSTANCES} installed in {installed:?}, upgraded in {:?} ({samples} samples, \
         at most {most} upgrading, up to {queued_seen} queued; upgrading per sample: \
         {series}; {} reconciles to install, {} to upgrade)",
        started.elapsed(),
        reconciles,
        operator.metrics.reconciles() - reconciles,
    );
    // The limit was used, not just respected by going one at a time.
    assert!(most >= 2, "at most {most} upgrading at once");
    assert!(queued_seen > 0, "nothing ever waited for a slot");

    // A failed upgrade stops the rollout: the next ones wait, naming it, until it is fixed.
    let refused = json!({"spec": {"version": "0.0.0-e2e-schema-older"}});
    merge_patch(&api, "i00", refused).await;
    await_instance(&api, "i00", Duration::from_secs(60), "i00 failed", |f| {
        version(f).1 == Some(UpgradePhase::Failed)
    })
    .await
    .unwrap();
    for name in ["i01", "i02"] {
        merge_patch(&api, name, json!({"spec": {"version": "0.3.0"}})).await;
    }
    for name in ["i01", "i02"] {
        let f = await_instance(&api, name, Duration::from_secs(30), "queued", |f| {
            version(f).1 == Some(UpgradePhase::Queued)
        })
        .await
        .unwrap();
        let ready = f.condition("Ready").unwrap();
        assert_eq!(ready.reason, "UpgradeQueued");
        assert!(ready.message.contains("upgrade of "), "{}", ready.message);
        assert!(ready.message.contains("/i00 failed"), "{}", ready.message);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in ["i01", "i02"] {
        let f = api.get(name).await.unwrap();
        assert_eq!(version(&f).1, Some(UpgradePhase::Queued), "{name} went on");
    }
    merge_patch(&api, "i00", json!({"spec": {"version": "0.2.0"}})).await;
    for name in ["i01", "i02"] {
        await_instance(&api, name, Duration::from_secs(60), "resumed", |f| {
            version(f) == (Some("0.3.0".to_string()), None)
        })
        .await
        .unwrap();
    }
}
