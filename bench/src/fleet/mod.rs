//! `fedi-bench fleet`: the operator half of `make bench`. On the local control plane (kwok),
//! N FediInstances with a managed database and a managed standalone Redis, and the test
//! services' S3 as an external one; one operator process serving their namespace. What the
//! control plane lacks is played by the e2e suite's `fedi_e2e::played`: CloudNativePG's
//! status, the Redis StatefulSets' volumes, and the Redis the operator PINGs (one shared
//! `redis-server` accepting every instance's generated password, reached through the played
//! cluster DNS of the operator's own mount namespace). Measures the time until all are Ready, reconciles per second and their
//! duration (the operator's histogram), its peak RSS, API requests per instance during
//! convergence and during a full resync (a restarted operator), and how long a deleted
//! child Deployment takes to come back.

mod metrics;
mod operator;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use fedi_e2e::FediInstance;
use fedi_e2e::played::PlayedCluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::outcome::{Latency, Outcome, RoleUsage, Target};
use metrics::{Buckets, Requests};
use operator::OperatorProcess;

const HISTOGRAM: &str = "fedi_operator_reconcile_duration_seconds";
/// The same reconciles, waits excluded: the CPU time of each one's polls
/// (operator/src/busy.rs).
const BUSY: &str = "fedi_operator_reconcile_busy_seconds";
const RECONCILES: &str = "fedi_operator_reconciles_total";
/// The operator's own count of its writes: exact, whoever else uses the control plane.
const WRITES: [&str; 2] = [
    "fedi_operator_status_writes_total",
    "fedi_operator_child_writes_total",
];

fn operator_writes(text: &str) -> f64 {
    WRITES.iter().map(|w| metrics::counter(text, w)).sum()
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// FediInstances to create.
    #[arg(long, default_value_t = 1000)]
    instances: usize,
    /// Child Deployments to delete, one at a time, timing each repair.
    #[arg(long, default_value_t = 5)]
    drift_samples: usize,
    /// Giving up on convergence after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// The operator binary.
    #[arg(long, env = "FEDI_OPERATOR_BIN")]
    operator: String,
    /// Where the operator's log goes.
    #[arg(long)]
    log: PathBuf,
    /// The first row's `order`; the others follow.
    #[arg(long, default_value_t = 100)]
    order: u32,
    /// Lines for every row's notes (e.g. "debug build").
    #[arg(long)]
    note: Vec<String>,
    #[arg(long)]
    out: PathBuf,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    ensure!(a.instances > 0, "--instances must be at least 1");
    let (client, own) = counting_client().await?;
    ensure!(
        fedi_e2e::played::is_local_control_plane(&client).await,
        "not the local control plane (kwok nodes only): `make cluster-up` and its KUBECONFIG"
    );
    // Panics with what is missing (root, util-linux) before anything is created.
    fedi_e2e::played::dns::assert_mount_namespaces();
    fedi_e2e::install_crd(&client).await;
    // Installed only if missing, removed on drop only if installed here.
    let cnpg = fedi_e2e::ThirdPartyCrds::install(&client, "cloudnative-pg").await;
    let ns = format!("bench-fleet-{}", std::process::id());
    let played_dir = std::env::temp_dir().join(&ns);
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await
        .context("creating the bench namespace")?;
    // The bench's counting client: the played parts' requests are the bench's own.
    let played =
        PlayedCluster::start_sharing_redis(&client, std::slice::from_ref(&ns), &played_dir);
    let result = measure(&a, &client, &own, &ns, &played).await;
    // Written before the cleanup, whose own timeouts must not lose a long run's figures.
    if let Ok(outcomes) = &result {
        for o in outcomes {
            o.write(&a.out)?;
        }
    }
    // Deleted while an operator still runs, so that the instances' finalizers are honoured.
    let cleanup = cleanup(&a, &client, &ns, &played).await;
    // Stops the shared Redis and deletes the volumes it made.
    drop(played);
    drop(cnpg);
    if result.is_ok() && cleanup.is_ok() {
        let _ = std::fs::remove_dir_all(&played_dir);
    }
    result?;
    cleanup
}

async fn cleanup(
    a: &Args,
    client: &Client,
    ns: &str,
    played: &PlayedCluster,
) -> anyhow::Result<()> {
    let _operator = OperatorProcess::start(&a.operator, ns, played.hosts.path(), &a.log)?;
    // The instances first, their finalizers run by the operator; then the namespace, so that
    // the operator never applies into a namespace being terminated.
    let api: Api<FediInstance> = Api::namespaced(client.clone(), ns);
    let _ = api
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    // A fresh operator first resyncs the whole fleet, then runs each finalizer: at 1,000
    // instances that took over 5 minutes, and so did the namespace's deletion.
    let patience = Duration::from_secs(300 + a.instances as u64);
    fedi_e2e::await_until(patience, "the instances to go", || {
        let api = api.clone();
        async move {
            let left = api.list(&ListParams::default()).await.ok()?;
            left.items.is_empty().then_some(())
        }
    })
    .await?;
    let namespaces = Api::<Namespace>::all(client.clone());
    let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    // The namespace controller deletes the instances' children one by one.
    fedi_e2e::await_until(patience, "the bench namespace to go", || {
        let namespaces = namespaces.clone();
        async move { matches!(namespaces.get_opt(ns).await, Ok(None)).then_some(()) }
    })
    .await
}

/// A client that counts its own requests, so that they can be told apart from the
/// operator's in the API server's totals.
async fn counting_client() -> anyhow::Result<(Client, Arc<AtomicU64>)> {
    fedi_operator::install_tls_provider();
    ensure!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: `make cluster-up`, then source .local/cluster/env"
    );
    let config = kube::Config::infer().await?;
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        counted.fetch_add(1, Ordering::Relaxed);
        req
    });
    let client = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .build();
    Ok((client, count))
}

async fn api_requests(client: &Client) -> anyhow::Result<Requests> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client
        .request_text(req)
        .await
        .context("the API server's /metrics")?;
    Ok(Requests::parse(&text))
}

fn instance(i: usize) -> anyhow::Result<FediInstance> {
    let env = fedi_e2e::service_env;
    Ok(serde_json::from_value(json!({
        "apiVersion": "fedi.dev/v1alpha1",
        "kind": "FediInstance",
        "metadata": {"name": format!("i{i:04}")},
        "spec": {
            "domain": format!("i{i}.bench.example"),
            "database": {"managed": {"instances": 1}},
            // A primary only, as the database has one instance: the smallest managed shape.
            "redis": {"managed": {"mode": "standalone", "replicasPerShard": 0}},
            "objectStorage": {"external": {"endpoint": env("FEDI_TEST_S3_ENDPOINT"),
                // A bucket each, as instances must have (their settings, CORS for their
                // own origin, would otherwise be rewritten by every other instance); the
                // same names on every run, so that runs do not pile up buckets.
                "region": env("FEDI_TEST_S3_REGION"), "bucket": format!("fedi-bench-fleet-i{i:04}"),
                "pathStyle": true, "credentialsSecretRef": {"name": "bench-s3"}}},
        },
    }))?)
}

fn is_ready(f: &FediInstance) -> bool {
    f.status.as_ref().and_then(|s| s.observed_generation) == f.metadata.generation
        && f.condition(fedi_operator::status::READY)
            .is_some_and(|c| c.status == "True")
}

struct Convergence {
    seconds: f64,
    reconciles: f64,
    buckets: Buckets,
    busy: Buckets,
    requests: Requests,
    own: u64,
    writes: f64,
}

async fn measure(
    a: &Args,
    client: &Client,
    own: &Arc<AtomicU64>,
    ns: &str,
    played: &PlayedCluster,
) -> anyhow::Result<Vec<Outcome>> {
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let secret = serde_json::from_value(json!({"metadata": {"name": "bench-s3"},
        "stringData": {"accessKeyId": fedi_e2e::service_env("FEDI_TEST_S3_ACCESS_KEY"),
                       "secretAccessKey": fedi_e2e::service_env("FEDI_TEST_S3_SECRET_KEY")}}))?;
    secrets.create(&PostParams::default(), &secret).await?;

    // The control plane's own traffic (kwok's heartbeats, controllers, other users) at rest:
    // taken off the operator's figures below.
    let quiet_start = api_requests(client).await?;
    let quiet_own = own.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let quiet = api_requests(client).await?.since(quiet_start);
    let background =
        (quiet.total - (own.load(Ordering::Relaxed) - quiet_own) as f64).max(0.0) / 5.0;

    let hosts = played.hosts.path();
    let mut op = OperatorProcess::start(&a.operator, ns, hosts, &a.log)?;
    let metrics_before = op.metrics().await?;
    let api: Api<FediInstance> = Api::namespaced(client.clone(), ns);
    let requests_before = api_requests(client).await?;
    let own_before = own.load(Ordering::Relaxed);
    let start = Instant::now();
    for i in 0..a.instances {
        api.create(&PostParams::default(), &instance(i)?).await?;
    }
    let deadline = start + Duration::from_secs(a.timeout);
    let mut peak_rss: f64 = 0.0;
    let converged = async {
        // Ready once counts: an instance whose Deployment a drift sample deleted is not
        // Ready again until repaired, which is the drift row's figure, not the first sync's.
        let mut once = std::collections::HashSet::new();
        loop {
            peak_rss = peak_rss.max(op.peak_rss_mib().unwrap_or(0.0));
            let list = api.list(&ListParams::default()).await?;
            once.extend(
                list.items
                    .iter()
                    .filter(|f| is_ready(f))
                    .map(|f| f.name_any()),
            );
            let ready = once.len();
            if ready == a.instances {
                return anyhow::Ok(start.elapsed().as_secs_f64());
            }
            ensure!(
                op.is_running(),
                "the operator exited (log: {})",
                a.log.display()
            );
            if Instant::now() > deadline {
                bail!("{ready} of {} Ready after {} s", a.instances, a.timeout);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let (seconds, loaded) =
        futures::future::join(converged, drift_under_load(a, client, ns, deadline)).await;
    let (seconds, loaded) = (seconds?, loaded?);
    let metrics_after = op.metrics().await?;
    let convergence = Convergence {
        seconds,
        reconciles: metrics::counter(&metrics_after, RECONCILES)
            - metrics::counter(&metrics_before, RECONCILES),
        buckets: Buckets::parse(&metrics_after, HISTOGRAM)
            .since(&Buckets::parse(&metrics_before, HISTOGRAM)),
        busy: Buckets::parse(&metrics_after, BUSY).since(&Buckets::parse(&metrics_before, BUSY)),
        requests: api_requests(client).await?.since(requests_before),
        own: own.load(Ordering::Relaxed) - own_before,
        writes: operator_writes(&metrics_after) - operator_writes(&metrics_before),
    };

    let drift = drift(a, client, ns).await?;
    // The repaired Deployments' pods turn ready afterwards and the instances' statuses say
    // so: settled first, or the resync would be charged with those writes.
    settle(&op).await?;
    peak_rss = peak_rss.max(op.peak_rss_mib()?);
    drop(op);

    let passwords = played.shared_redis_passwords();
    ensure!(
        passwords == a.instances,
        "the shared Redis accepts {passwords} instance passwords, not {}: the instances did not \
         all get a managed Redis of their own",
        a.instances
    );
    let (resync, resync_rss) = resync(a, client, own, ns, hosts).await?;
    peak_rss = peak_rss.max(resync_rss);
    Ok(outcomes(
        a,
        &convergence,
        &drift,
        &loaded,
        &resync,
        peak_rss,
        background,
    ))
}

/// Deletes the first child Deployment of random instances (one at a time) and times how
/// long each takes to be back (a new object of that name).
async fn drift(a: &Args, client: &Client, ns: &str) -> anyhow::Result<Vec<u64>> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let all = deployments.list(&ListParams::default()).await?.items;
    ensure!(!all.is_empty(), "no child Deployments to delete");
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_nanos() as usize;
    let mut micros = Vec::new();
    for _ in 0..a.drift_samples {
        // A xorshift step: random enough to pick a victim, no dependency for it.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let victim = &all[seed % all.len()];
        micros.push(repair_time(&deployments, &victim.name_any()).await?);
    }
    Ok(micros)
}

/// Deletes Deployment `name` and times how long it takes to be back (a new object of that
/// name), in microseconds. A slow repair is a figure, not a failure: at 1,000 converging
/// instances one took over 60 s, and the run stopped without writing any figure. Only a
/// repair that never comes (10 minutes) ends the run.
async fn repair_time(deployments: &Api<Deployment>, name: &str) -> anyhow::Result<u64> {
    let old_uid = deployments.get(name).await?.uid();
    let start = Instant::now();
    let deleted_at = k8s_openapi::jiff::Timestamp::now();
    deployments.delete(name, &DeleteParams::default()).await?;
    fedi_e2e::await_until(
        Duration::from_secs(600),
        "the Deployment to be back",
        || {
            let old_uid = &old_uid;
            async move {
                let d = deployments.get_opt(name).await.ok()??;
                (d.uid() != *old_uid && d.metadata.deletion_timestamp.is_none()).then_some(())
            }
        },
    )
    .await?;
    let took = start.elapsed();
    // With the operator's debug log (BENCH_OPERATOR_LOG), the sample's reconcile can be
    // found by the instance in the Deployment's name and this time.
    eprintln!(
        "drift sample: Deployment {name} deleted at {deleted_at}, back after {} ms",
        took.as_millis()
    );
    Ok(took.as_micros() as u64)
}

/// Drift repair while the fleet converges: from the moment a tenth of the instances are
/// Ready, the child Deployment of a Ready instance is deleted, one at a time, while the
/// operator still works through the others' first sync. Each sample comes with how many
/// instances were not Ready yet when it started (0: the fleet had converged meanwhile).
async fn drift_under_load(
    a: &Args,
    client: &Client,
    ns: &str,
    deadline: Instant,
) -> anyhow::Result<Vec<(u64, usize)>> {
    let api: Api<FediInstance> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut samples = Vec::new();
    let mut seed = std::process::id() as usize | 1;
    while samples.len() < a.drift_samples {
        let list = api.list(&ListParams::default()).await?.items;
        let ready: Vec<_> = list.iter().filter(|f| is_ready(f)).collect();
        if ready.len() * 10 < a.instances || ready.is_empty() {
            ensure!(
                Instant::now() < deadline,
                "{} of {} Ready at the deadline",
                ready.len(),
                a.instances
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let instance = ready[seed % ready.len()].name_any();
        let selector = format!("app.kubernetes.io/instance={instance}");
        let Some(victim) = deployments
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .into_iter()
            .next()
        else {
            continue;
        };
        let pending = list.len() - ready.len() + (a.instances - list.len());
        samples.push((
            repair_time(&deployments, &victim.name_any()).await?,
            pending,
        ));
    }
    Ok(samples)
}

/// Until the operator has written nothing for 5 s (at most 120 s).
async fn settle(op: &OperatorProcess) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut last, mut since) = (operator_writes(&op.metrics().await?), Instant::now());
    while since.elapsed() < Duration::from_secs(5) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = operator_writes(&op.metrics().await?);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    Ok(())
}

struct Resync {
    seconds: f64,
    /// The whole measurement, the quiet 5 s at its end included.
    window: f64,
    reconciles: f64,
    requests: Requests,
    own: u64,
    writes: f64,
}

/// A full resync: a fresh operator process lists everything and reconciles every instance,
/// which is all converged: it should read, and write nothing.
async fn resync(
    a: &Args,
    client: &Client,
    own: &Arc<AtomicU64>,
    ns: &str,
    hosts: &std::path::Path,
) -> anyhow::Result<(Resync, f64)> {
    let requests_before = api_requests(client).await?;
    let own_before = own.load(Ordering::Relaxed);
    let start = Instant::now();
    let op = OperatorProcess::start(&a.operator, ns, hosts, &a.log)?;
    let deadline = start + Duration::from_secs(a.timeout);
    // Every instance reconciled once, then 5 s without a reconcile: the resync is over.
    let (mut last, mut quiet_since) = (0.0, Instant::now());
    let (reconciles, writes) = loop {
        let text = op.metrics().await?;
        let n = metrics::counter(&text, RECONCILES);
        if n != last {
            (last, quiet_since) = (n, Instant::now());
        }
        if n >= a.instances as f64 && quiet_since.elapsed() > Duration::from_secs(5) {
            break (n, operator_writes(&text));
        }
        if Instant::now() > deadline {
            bail!(
                "{n} reconciles of {} instances after {} s",
                a.instances,
                a.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let seconds = (quiet_since - start).as_secs_f64();
    let rss = op.peak_rss_mib()?;
    let requests = api_requests(client).await?.since(requests_before);
    let window = start.elapsed().as_secs_f64();
    let own = own.load(Ordering::Relaxed) - own_before;
    Ok((
        Resync {
            seconds,
            window,
            reconciles,
            requests,
            own,
            writes,
        },
        rss,
    ))
}

fn outcomes(
    a: &Args,
    c: &Convergence,
    drift: &[u64],
    loaded: &[(u64, usize)],
    r: &Resync,
    peak_rss: f64,
    background: f64,
) -> Vec<Outcome> {
    let n = a.instances as f64;
    let row = |offset: u32,
               name: String,
               count: u64,
               duration_s: f64,
               per_second: f64,
               unit: &str,
               latency_ms: Option<Latency>,
               target: Option<Target>,
               notes: Vec<String>| Outcome {
        order: a.order + offset,
        name,
        requests: count,
        duration_s,
        per_second,
        unit: unit.into(),
        latency_ms,
        errors: 0,
        roles: BTreeMap::from([(
            "operator".to_string(),
            RoleUsage {
                cpu_seconds: 0.0,
                cpu_seconds_per_1k: 0.0,
                rss_mib: peak_rss,
                peak_rss_mib: peak_rss,
            },
        )]),
        hotspot: None,
        target,
        notes: notes.into_iter().chain(a.note.iter().cloned()).collect(),
    };
    let latency = |b: &Buckets| {
        let q = |x: f64| b.quantile(x).unwrap_or(0.0) * 1000.0;
        let l = Latency {
            p50: q(0.5),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: q(1.0),
        };
        (b.count() > 0.0).then_some(l)
    };
    // The target is on the reconcile's own work; the whole reconcile is in the note.
    let histogram = latency(&c.busy);
    let whole = latency(&c.buckets);
    // The API server counts every client: the bench's own requests are taken off, and the
    // control plane's traffic at rest for as long; other clients' bursts are not.
    let conv_requests = (c.requests.total - c.own as f64 - background * c.seconds).max(0.0);
    let resync_requests = (r.requests.total - r.own as f64 - background * r.window).max(0.0);
    let drift_latency = crate::stats::latency(drift.to_vec());
    let drift_max = drift_latency.map_or(f64::NAN, |l| l.max);
    let loaded_micros: Vec<u64> = loaded.iter().map(|(m, _)| *m).collect();
    let loaded_latency = crate::stats::latency(loaded_micros.clone());
    let loaded_max = loaded_latency.map_or(f64::NAN, |l| l.max);
    let loaded_total = loaded_micros.iter().sum::<u64>() as f64 / 1e6;
    vec![
        row(
            0,
            format!("operator: {} instances until all Ready", a.instances),
            a.instances as u64,
            c.seconds,
            n / c.seconds,
            "instances/s",
            None,
            Some(Target {
                text: format!("{} instances converge on one replica", a.instances),
                met: true,
            }),
            vec![format!(
                "all Ready {:.1} s after the first create (each instance counted from its \
                 first Ready: the drift samples under load take some out again for a while); \
                 managed database (CloudNativePG Cluster, status played by the bench); managed Redis, standalone (a primary, \
                 no replica), its volume bound and its PING answered by ONE shared \
                 redis-server the bench plays, which accepts every instance's generated \
                 password; external S3 (the test services')",
                c.seconds
            )],
        ),
        row(
            1,
            "operator: reconciles during convergence".into(),
            c.reconciles as u64,
            c.seconds,
            c.reconciles / c.seconds,
            "reconciles/s",
            histogram,
            Some(Target {
                text: "p99 reconcile < 100 ms (waits excluded)".into(),
                met: histogram.is_some_and(|h| h.p99 < 100.0),
            }),
            vec![format!(
                "p50/p99 waits excluded from the operator's {BUSY} histogram (the CPU time \
                 of each reconcile's polls: no API round trip, probe, timer or wait for a \
                 thread; interpolated in its buckets); the whole reconcile ({HISTOGRAM}, \
                 waits included, top finite bucket 16.4 s): p50 {:.1} ms, p99 {:.1} ms; \
                 peak RSS {peak_rss:.0} MiB (VmHWM): target < 150 MiB {}",
                whole.map_or(f64::NAN, |h| h.p50),
                whole.map_or(f64::NAN, |h| h.p99),
                if peak_rss < 150.0 { "met" } else { "NOT met" }
            )],
        ),
        row(
            2,
            "operator: API requests per instance, convergence".into(),
            conv_requests as u64,
            c.seconds,
            conv_requests / n,
            "requests/instance",
            None,
            None,
            vec![format!(
                "apiserver_request_total delta {} minus the bench's own {} and the control \
                 plane's traffic at rest ({background:.1} requests/s); the operator's \
                 writes (its status and child-write counters) {:.0}, {:.1} per instance, \
                 the {} Deployments deleted for the drift samples under load and recreated \
                 included",
                c.requests.total,
                c.own,
                c.writes,
                c.writes / n,
                loaded.len()
            )],
        ),
        row(
            3,
            "operator: API requests per instance, full resync".into(),
            resync_requests as u64,
            r.seconds,
            resync_requests / n,
            "requests/instance",
            None,
            Some(Target {
                text: "zero writes on resync".into(),
                met: r.writes == 0.0,
            }),
            vec![format!(
                "a restarted operator reconciles all {} instances ({} reconciles in {:.1} s); \
                 the operator's writes (its counters) {:.0}; mutating requests at the API \
                 server from every client of the control plane, events excluded: {:.0}; \
                 requests: all clients {}, the bench's own {}, at rest {background:.1}/s",
                a.instances,
                r.reconciles,
                r.seconds,
                r.writes,
                r.requests.writes,
                r.requests.total,
                r.own
            )],
        ),
        row(
            4,
            "operator: drift repair (child Deployment deleted)".into(),
            drift.len() as u64,
            drift.iter().sum::<u64>() as f64 / 1e6,
            drift.len() as f64 / (drift.iter().sum::<u64>() as f64 / 1e6).max(1e-9),
            "repairs/s",
            drift_latency,
            Some(Target {
                text: "drift repaired < 5 s".into(),
                met: drift_max < 5000.0,
            }),
            vec![format!(
                "{} samples, max {:.0} ms, with all {} instances under the operator",
                drift.len(),
                drift_max,
                a.instances
            )],
        ),
        row(
            5,
            "operator: drift repair under load (during convergence)".into(),
            loaded.len() as u64,
            loaded_total,
            loaded.len() as f64 / loaded_total.max(1e-9),
            "repairs/s",
            loaded_latency,
            Some(Target {
                text: "drift repaired < 5 s".into(),
                met: loaded_max < 5000.0,
            }),
            vec![format!(
                "a Ready instance's child Deployment deleted while the operator works \
                 through the others' first sync (from a tenth of the fleet Ready on, one at \
                 a time); instances not Ready yet at each sample: {:?}; max {:.0} ms",
                loaded.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
                loaded_max
            )],
        ),
    ]
}
