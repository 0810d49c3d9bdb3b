//! The controller: the shared `Context`, `reconcile` and `error_policy`, and `run`, which
//! wires them into kube-runtime's `Controller`.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, ListParams, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::apply::{self, FIELD_MANAGER, Outcome};
use crate::build::{self, Defaults};
use crate::cache::ChildCache;
use crate::capabilities::Capabilities;
use crate::crd::{FediInstance, FediInstanceStatus, UpgradePhase};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::migrations::{self, Migration, Phase};
use crate::upgrade::{Admission, Fleet, Step};
use crate::{Error, Result, dependencies, dereference, finalizer, status};
use crate::{search_index, secret_rotation, volume_resize};

/// How often an instance is reconciled without any change, to catch what watches miss.
const RESYNC: Duration = Duration::from_secs(300);
/// How often a dependency that is not ready is probed again: an external Redis or search
/// cluster heals without any Kubernetes object changing, so no watch would tell.
const DEPENDENCY_RETRY: Duration = Duration::from_secs(30);
/// Children of one reconcile applied at once: a first install's dozen round trips overlap,
/// while a fleet's concurrent reconciles times this stays a load the API server takes.
const APPLY_CONCURRENCY: usize = 6;
/// Objects per page of the watches' lists (at start and after a watch expired). Paged, not
/// "any version" lists, which API servers serve from their watch cache ignoring the limit:
/// a thousand instances' Deployments, Services... in one response each, parsed at once for
/// every kind, made the operator's peak memory (held by the allocator long after).
const LIST_PAGE: u32 = 100;
/// How long events about one instance are gathered into a single reconcile.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Label on every child; owned-object watches select on it to keep the cache small.
const MANAGED_BY: &str = "app.kubernetes.io/managed-by=fedi-operator";
const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "fedi-operator");

pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub events: crate::events::Publisher,
    pub defaults: Defaults,
    /// The optional APIs this run of the controller watches.
    pub capabilities: Capabilities,
    /// The upgrades of every instance, for the limit on concurrent ones.
    pub fleet: Fleet,
    /// The owned children as the watches see them: reads without API calls.
    pub children: ChildCache,
    /// Dependency reports of ready instances, reused for a short while.
    pub recent: Arc<dependencies::recent::Recent>,
    /// Reconciles allowed to run at once (`--max-concurrent-reconciles`), live instances
    /// first; `None`: no limit.
    pub slots: Option<crate::slots::Slots>,
    /// Resolves when this run of the controllers stops: reconciles still waiting for a
    /// slot then give up rather than hold the shutdown (the next run reconciles every
    /// instance anyway).
    pub stop: futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        capabilities: Capabilities,
        fleet: Fleet,
        children: ChildCache,
    ) -> Self {
        Self {
            events: crate::events::Publisher::new(
                client.clone(),
                FIELD_MANAGER,
                std::env::var("POD_NAME").ok(),
            ),
            client,
            metrics,
            defaults: Defaults::default(),
            capabilities,
            fleet,
            children,
            recent: Arc::default(),
            slots: None,
            stop: futures::future::pending().boxed().shared(),
        }
    }

    /// Counts and reports a write to one child: an event on the instance naming the child.
    async fn child_changed(
        &self,
        fedi: &FediInstance,
        verb: &str,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
    ) {
        self.metrics.child_written();
        let related = ObjectReference {
            api_version: Some(resource.api_version.clone()),
            kind: Some(resource.kind.clone()),
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        };
        let note = format!("{verb} {}/{name}", resource.kind);
        self.event(fedi, EventType::Normal, verb, note, Some(related))
            .await;
    }

    /// Publishes an event on `fedi`; `related` names the child it concerns, which also keeps
    /// the events of different children from being counted as one series.
    pub(crate) async fn event(
        &self,
        fedi: &FediInstance,
        type_: EventType,
        reason: &str,
        note: String,
        related: Option<ObjectReference>,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: related,
        };
        if let Err(e) = self.events.publish(&event, &fedi.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
}

pub async fn reconcile(fedi: Arc<FediInstance>, ctx: Arc<Context>) -> Result<Action> {
    let asked = std::time::Instant::now();
    let _slot = match &ctx.slots {
        Some(slots) => tokio::select! {
            slot = slots.acquire(live_now(&fedi, &ctx)) => Some(slot),
            () = ctx.stop.clone() => return Ok(Action::await_change()),
        },
        None => None,
    };
    let queued = asked.elapsed();
    ctx.metrics.reconcile_queued(queued);
    let timer = ctx.metrics.reconcile_started();
    let instance = ObjectRef::from_obj(fedi.as_ref());
    // Boxed: a fleet's queued reconciles each hold this future while they wait for a slot,
    // and the pipeline's state is many times the size of the wait's.
    let work = Box::pin(reconcile_once(fedi, ctx.clone()));
    let (result, busy) = crate::busy::Busy::new(work).await;
    ctx.metrics.reconcile_busy(busy);
    // Where a slow reconcile's time went: waiting for a slot, on the API server and probes,
    // or running.
    tracing::debug!(
        %instance,
        queued_ms = queued.as_millis() as u64,
        took_ms = timer.elapsed().as_millis() as u64,
        busy_ms = busy.as_millis() as u64,
        ok = result.is_ok(),
        "reconciled"
    );
    result
}

/// Whether `fedi` is live (Ready) as the controllers' caches have it when asked, which may
/// be long after this reconcile was requested.
fn live_now(fedi: &FediInstance, ctx: &Context) -> crate::slots::Live {
    let stores = ctx.fleet.stores();
    let instance = ObjectRef::from_obj(fedi);
    let then = crate::slots::is_live(fedi);
    Box::new(move || {
        stores
            .iter()
            .find_map(|s| s.get(&instance))
            .map_or(then, |f| crate::slots::is_live(&f))
    })
}

async fn reconcile_once(fedi: Arc<FediInstance>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = fedi
        .namespace()
        .ok_or(Error::Build(build::BuildError::Incomplete("namespace")))?;
    if paused(&fedi) && fedi.meta().deletion_timestamp.is_none() {
        // Maintenance: the operator leaves every object as it is (nothing repaired or
        // rolled), and says so once in the status.
        let status = status::paused(&fedi, Timestamp::now());
        write_status(&fedi, &ctx, &namespace, status).await?;
        return Ok(Action::await_change());
    }
    let outcome = match finalizer::run(&ctx, &fedi, &namespace).await {
        Ok(finalizer::Next::Stop) => Ok(None),
        // Volumes and Clusters going away are not watched: look again shortly.
        Ok(finalizer::Next::Wait) => return Ok(Action::requeue(Duration::from_secs(3))),
        Ok(finalizer::Next::Reconcile) => pipeline(&fedi, &ctx, &namespace).await.map(Some),
        Err(e) => Err(e),
    };
    match outcome {
        // Being deleted: the deletion itself brings the next event, if any.
        Ok(None) => Ok(Action::await_change()),
        Ok(Some((status, step, wake))) => {
            write_status(&fedi, &ctx, &namespace, status).await?;
            if wake {
                ctx.fleet.release(&fedi);
            }
            // Nothing of its own changes when a slot frees up: a queued instance asks again.
            Ok(Action::requeue(match step {
                Step::Queued(_) => crate::upgrade::QUEUED_RETRY,
                Step::WaitingForDependencies => DEPENDENCY_RETRY,
                _ => RESYNC,
            }))
        }
        Err(error) => {
            let status =
                status::failed(&fedi, error.reason(), &error.to_string(), Timestamp::now());
            if let Err(e) = write_status(&fedi, &ctx, &namespace, status).await {
                warn!(error = %e, "cannot record the failure in the status");
            }
            let note = error.to_string();
            ctx.event(&fedi, EventType::Warning, error.reason(), note, None)
                .await;
            Err(error)
        }
    }
}

/// The annotation that pauses reconciliation of an instance for maintenance.
pub const PAUSED_ANNOTATION: &str = "fedi.dev/paused";

fn paused(fedi: &FediInstance) -> bool {
    fedi.annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// dereference -> build -> apply (dependencies) -> observe dependencies -> apply (server,
/// once they are ready) -> prune -> status, top to bottom.
async fn pipeline(
    fedi: &FediInstance,
    ctx: &Context,
    namespace: &str,
) -> Result<(FediInstanceStatus, Step, bool)> {
    let secret = ApiResource::erase::<Secret>(&());
    for name in dereference::secrets(&ctx.client, fedi, namespace, &ctx.defaults).await? {
        ctx.child_changed(fedi, "Created", &secret, namespace, &name)
            .await;
    }
    let rotation = secret_rotation::run(ctx, fedi, namespace).await?;
    let mut children = build::children(fedi, &ctx.defaults)?;
    secret_rotation::stamp(&mut children, rotation.as_deref());
    // CloudNativePG's objects only where it is installed; DatabaseReady says what is missing.
    if !ctx.capabilities.cloudnative_pg {
        children.retain(|c| c.resource.group != build::database::GROUP);
    }
    build::worker_scaling::select(&mut children, ctx.capabilities.keda);
    let keep = prunable(ctx.capabilities, &children);

    // The server's Deployments wait for the dependencies; everything else goes first.
    let (workloads, others): (Vec<_>, Vec<_>) = children
        .into_iter()
        .partition(|c| c.resource.kind == "Deployment");
    // What other children name goes first (a pod of a StatefulSet created before its
    // ServiceAccount is refused and retried with back-off); within a wave, children are
    // independent and applied a few at a time, so that a first install waits for the
    // slowest round trip of each wave rather than the sum of a dozen.
    let (named, rest): (Vec<_>, Vec<_>) = others.into_iter().partition(named_by_others);
    for wave in [named, rest] {
        futures::stream::iter(wave)
            .map(|child| async move {
                volume_resize::prepare(ctx, fedi, namespace, &child).await?;
                apply_child(fedi, ctx, namespace, child).await.map(drop)
            })
            .buffer_unordered(APPLY_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
    }
    let mut wake = false;
    let suspended = fedi.spec.suspend;
    let report = if suspended {
        dependencies::Report::suspended()
    } else if let Some(report) = ctx.recent.get(fedi) {
        report
    } else {
        let report = dependencies::observe(&ctx.client, fedi, namespace, ctx.capabilities).await;
        ctx.recent.put(fedi, &report);
        report
    };
    for action in &report.actions {
        ctx.event(
            fedi,
            EventType::Normal,
            &action.reason,
            action.note.clone(),
            None,
        )
        .await;
    }
    let image = build::image(fedi, &ctx.defaults);
    let mut deployments = Vec::new();
    let step = if suspended {
        for child in workloads {
            // Scaled to zero only: the pod template stays the live one, so that a version
            // changed while suspended goes through the pipeline when unsuspended.
            let Some(live) = live_deployment(ctx, namespace, &child.name()).await? else {
                continue;
            };
            let mut child = child;
            child.object.data["spec"]["template"] =
                serde_json::to_value(&live.spec.template).map_err(Error::Serialize)?;
            let component = component_of(&child);
            let applied = apply_child(fedi, ctx, namespace, child).await?;
            deployments.push((component, as_deployment(&applied)?));
        }
        Step::Suspended
    } else if !report.all_ready() {
        // Held back, not removed: what runs keeps running while a dependency is down.
        hold(ctx, namespace, workloads, &mut deployments).await?;
        Step::WaitingForDependencies
    } else {
        advance(fedi, ctx, namespace, workloads, &image, &mut deployments).await?
    };

    let instance = fedi.name_any();
    let labels = [
        ("app.kubernetes.io/instance", instance.as_str()),
        MANAGED_BY_LABEL,
    ];
    for (resource, names) in &keep {
        let pruned = apply::prune(
            &ctx.client,
            &ctx.children,
            namespace,
            &labels,
            resource,
            names,
        )
        .await?;
        for pruned in pruned {
            ctx.child_changed(fedi, "Deleted", resource, namespace, &pruned)
                .await;
        }
    }

    let observed: Vec<status::Observed> = deployments
        .iter()
        .map(|(component, d)| status::Observed {
            component,
            deployment: d,
        })
        .collect();
    let version = fedi
        .spec
        .version
        .clone()
        .unwrap_or_else(|| ctx.defaults.version.clone());
    let status = status::desired(
        fedi,
        &observed,
        &version,
        &image,
        &report,
        &step,
        Timestamp::now(),
    );
    upgrade_events(fedi, ctx, &status, &step).await;
    let mut status = status;
    status.secrets_rotation = rotation;
    let migrated = !suspended
        && report.all_ready()
        && matches!(step, Step::RollingOut | Step::PostMigration(_) | Step::Done);
    let reindex = reindex(fedi, ctx, namespace, migrated).await?;
    status::search_indexed(&mut status, fedi, &reindex, Timestamp::now());
    let was = fedi.status.as_ref().and_then(|s| s.version.as_ref()?.phase);
    let now = status.version.as_ref().and_then(|v| v.phase);
    if was.is_some_and(|p| p.in_progress() || p == UpgradePhase::Failed)
        && !now.is_some_and(|p| p.in_progress() || p == UpgradePhase::Failed)
    {
        // A slot is free (or the fleet's rollout may resume) once this status is stored.
        wake = true;
    }
    Ok((status, step, wake))
}

fn deployments_api(ctx: &Context, namespace: &str) -> Api<Deployment> {
    Api::namespaced(ctx.client.clone(), namespace)
}

fn component_of(child: &build::Child) -> String {
    child
        .object
        .labels()
        .get("app.kubernetes.io/component")
        .cloned()
        .unwrap_or_default()
}

fn as_deployment(object: &DynamicObject) -> Result<Deployment> {
    serde_json::from_value(serde_json::to_value(object).map_err(Error::Serialize)?)
        .map_err(Error::Serialize)
}

/// The Deployments as they are, unchanged: the running version keeps serving.
async fn hold(
    ctx: &Context,
    namespace: &str,
    workloads: Vec<build::Child>,
    out: &mut Vec<(String, Deployment)>,
) -> Result<()> {
    for child in workloads {
        if let Some(d) = live_deployment(ctx, namespace, &child.name()).await? {
            out.push((component_of(&child), d));
        }
    }
    Ok(())
}

/// A Deployment as it is: from the cache, or asked when the cache cannot say.
async fn live_deployment(ctx: &Context, namespace: &str, name: &str) -> Result<Option<Deployment>> {
    let resource = ApiResource::erase::<Deployment>(&());
    match ctx.children.get(&resource, namespace, name) {
        crate::cache::Cached::Present(live) => as_deployment(&live).map(Some),
        _ => deployments_api(ctx, namespace)
            .get_opt(name)
            .await
            .map_err(Error::Kube),
    }
}

/// Applies every workload as the spec wants it.
async fn roll(
    fedi: &FediInstance,
    ctx: &Context,
    namespace: &str,
    workloads: Vec<build::Child>,
    out: &mut Vec<(String, Deployment)>,
) -> Result<()> {
    // In the children's order, which the status lists them in.
    let applied: Vec<_> = futures::stream::iter(workloads)
        .map(|child| async move {
            let component = component_of(&child);
            let applied = apply_child(fedi, ctx, namespace, child).await?;
            Ok::<_, Error>((component, as_deployment(&applied)?))
        })
        .buffered(APPLY_CONCURRENCY)
        .try_collect()
        .await?;
    out.extend(applied);
    Ok(())
}

/// Kinds the other children refer to by name (pods' ServiceAccount, ConfigMaps and Secrets;
/// the database Cluster of the pooler and the backups).
fn named_by_others(child: &build::Child) -> bool {
    match child.resource.kind.as_str() {
        "ServiceAccount" | "ConfigMap" | "Secret" => child.resource.group.is_empty(),
        "Cluster" => child.resource.group == build::database::GROUP,
        _ => false,
    }
}

/// The upgrade pipeline, one step further if the previous one is done: fleet slot ->
/// pre-deployment migrations -> rollout -> post-deployment migrations (see `upgrade`).
async fn advance(
    fedi: &FediInstance,
    ctx: &Context,
    namespace: &str,
    workloads: Vec<build::Child>,
    image: &str,
    deployments: &mut Vec<(String, Deployment)>,
) -> Result<Step> {
    let status = fedi.status.clone().unwrap_or_default();
    if status.post_migrated_image.as_deref() == Some(image) {
        roll(fedi, ctx, namespace, workloads, deployments).await?;
        return Ok(Step::Done);
    }
    let version = status.version.clone().unwrap_or_default();
    // A first install is not an upgrade: only a version change waits for a slot, and one
    // that holds a slot (or failed holding it) keeps it.
    let holds_slot = version
        .phase
        .is_some_and(|p| p.in_progress() || p == UpgradePhase::Failed);
    if version.current.is_some()
        && !holds_slot
        && let Admission::Queued(message) = ctx.fleet.admit(fedi)
    {
        hold(ctx, namespace, workloads, deployments).await?;
        return Ok(Step::Queued(message));
    }
    if status.migrated_image.as_deref() != Some(image) {
        let from = status.migrated_image.as_deref();
        let migration = migrate(fedi, ctx, namespace, Phase::Pre, from).await?;
        if !migration.done() {
            hold(ctx, namespace, workloads, deployments).await?;
            return Ok(Step::PreMigration(migration));
        }
    }
    roll(fedi, ctx, namespace, workloads, deployments).await?;
    if !deployments.iter().all(|(_, d)| status::rolled_out(d)) {
        return Ok(Step::RollingOut);
    }
    let from = status.post_migrated_image.as_deref();
    let migration = migrate(fedi, ctx, namespace, Phase::Post, from).await?;
    if !migration.done() {
        return Ok(Step::PostMigration(migration));
    }
    Ok(Step::Done)
}

/// Runs or follows one migration Job; its creation is an event like any child's.
async fn migrate(
    fedi: &FediInstance,
    ctx: &Context,
    namespace: &str,
    phase: Phase,
    from: Option<&str>,
) -> Result<Migration> {
    let (migration, created) =
        migrations::ensure(&ctx.client, fedi, namespace, &ctx.defaults, phase, from).await?;
    if let Some(applied) = created {
        let resource = &applied.child.resource;
        ctx.child_changed(fedi, "Created", resource, namespace, &applied.child.name())
            .await;
    }
    Ok(migration)
}

/// Runs or follows the search reindex Job; reports its creation and a failure (a Warning
/// event once, when it fails: the rollout goes on without it).
async fn reindex(
    fedi: &FediInstance,
    ctx: &Context,
    namespace: &str,
    migrated: bool,
) -> Result<search_index::Reindex> {
    let (reindex, created) =
        search_index::ensure(&ctx.client, fedi, namespace, &ctx.defaults, migrated).await?;
    if let Some(applied) = created {
        let resource = &applied.child.resource;
        ctx.child_changed(fedi, "Created", resource, namespace, &applied.child.name())
            .await;
    }
    if let search_index::Reindex::Failed {
        message,
        first_report: true,
        ..
    } = &reindex
    {
        ctx.event(
            fedi,
            EventType::Warning,
            "SearchReindexFailed",
            message.clone(),
            None,
        )
        .await;
    }
    Ok(reindex)
}

/// An event for each step of an upgrade, when the recorded phase changes.
async fn upgrade_events(fedi: &FediInstance, ctx: &Context, new: &FediInstanceStatus, step: &Step) {
    let phase_of = |s: Option<&FediInstanceStatus>| s.and_then(|s| s.version.as_ref()?.phase);
    let (before, after) = (phase_of(fedi.status.as_ref()), phase_of(Some(new)));
    if before == after {
        return;
    }
    let target = new
        .version
        .as_ref()
        .map(|v| v.target.clone())
        .unwrap_or_default();
    let (type_, reason, note) = match (step, after) {
        (_, None) => (
            EventType::Normal,
            "Upgraded",
            format!("Every pod runs {target}; its migrations are done."),
        ),
        (Step::Queued(message), _) => (EventType::Normal, "UpgradeQueued", message.clone()),
        (Step::PreMigration(Migration::Refused { message, .. }), _) => {
            (EventType::Warning, "DowngradeRefused", message.clone())
        }
        (
            Step::PreMigration(Migration::Failed { message, .. })
            | Step::PostMigration(Migration::Failed { message, .. }),
            _,
        ) => (EventType::Warning, "MigrationFailed", message.clone()),
        (Step::PreMigration(Migration::Running { job, .. }), _) => (
            EventType::Normal,
            "PreMigration",
            format!("Job {job} runs the pre-deployment migrations of {target}."),
        ),
        (Step::RollingOut, _) => (
            EventType::Normal,
            "RollingOut",
            format!("The Deployments roll to {target}."),
        ),
        (Step::PostMigration(Migration::Running { job, .. }), _) => (
            EventType::Normal,
            "PostMigration",
            format!("Job {job} runs the post-deployment migrations of {target}."),
        ),
        _ => return,
    };
    ctx.event(fedi, type_, reason, note, None).await;
}

/// Applies one child and reports a change; returns the object as it now is.
async fn apply_child(
    fedi: &FediInstance,
    ctx: &Context,
    namespace: &str,
    child: build::Child,
) -> Result<DynamicObject> {
    let applied = apply::apply(&ctx.client, &ctx.children, namespace, child).await?;
    if applied.outcome != Outcome::Unchanged {
        let verb = if applied.outcome == Outcome::Created {
            "Created"
        } else {
            "Updated"
        };
        let resource = &applied.child.resource;
        ctx.child_changed(fedi, verb, resource, namespace, &applied.child.name())
            .await;
    }
    Ok(applied.live)
}

/// The kinds whose set of objects varies with the spec, each with the names wanted now:
/// the others of the instance are deleted. Never CloudNativePG's Cluster, which is the data
/// (it goes with the instance under `deletionPolicy: Delete`, through `teardown`).
fn prunable(
    capabilities: Capabilities,
    children: &[build::Child],
) -> Vec<(ApiResource, Vec<String>)> {
    let names_of = |kind: &str| -> Vec<String> {
        children
            .iter()
            .filter(|c| c.resource.kind == kind)
            .map(|c| c.name())
            .collect()
    };
    // The owned kinds (optional ones only where their CRDs are served: listing them would
    // fail) but Jobs, which belong to the upgrade pipeline rather than to the spec, and
    // ServiceAccounts, which every instance has.
    let mut kinds: Vec<ApiResource> = owned_kinds(capabilities)
        .into_iter()
        .filter(|r| !matches!(r.kind.as_str(), "Job" | "ServiceAccount"))
        .collect();
    if capabilities.cloudnative_pg {
        kinds.push(build::database::pooler_resource());
        kinds.push(build::database::scheduled_backup_resource());
    }
    kinds
        .into_iter()
        .map(|r| {
            let names = names_of(&r.kind);
            (r, names)
        })
        .collect()
}

/// Posts `status` through the status subresource, unless it is what is stored already.
async fn write_status(
    fedi: &FediInstance,
    ctx: &Context,
    namespace: &str,
    status: FediInstanceStatus,
) -> Result<()> {
    if fedi.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<FediInstance> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": FediInstance::api_version(&()),
        "kind": FediInstance::kind(&()),
        "status": status,
    });
    api.patch_status(
        &fedi.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Kube)?;
    ctx.metrics.status_written();
    Ok(())
}

pub fn error_policy(fedi: Arc<FediInstance>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(
        namespace = fedi.namespace().unwrap_or_default(),
        name = fedi.name_any(),
        reason = error.reason(),
        %error,
        "reconcile failed"
    );
    ctx.metrics.reconcile_failed(error);
    let retry = if error.needs_a_person() { 60 } else { 15 };
    Action::requeue(Duration::from_secs(retry))
}

/// Which namespaces the operator serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (one cluster-wide watch per kind).
    All,
    /// Only these (one watch per namespace and kind, so that namespaced RBAC suffices).
    Namespaces(Vec<String>),
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// How the controller runs, beyond its client.
#[derive(Clone, Debug)]
pub struct Settings {
    pub scope: Scope,
    /// How often discovery is repeated to notice optional APIs (Gateway API) being
    /// installed or removed.
    pub rediscover_every: Duration,
    /// Watch Secrets (metadata only) so that a fixed or created Secret is acted on at once;
    /// off, such changes are seen at the next retry (a minute) or resync. Watching needs
    /// list/watch on Secrets, which some clusters do not grant.
    pub watch_secrets: bool,
    /// At most this many instances upgrading at once (and none while an upgrade has
    /// failed); `None`: no limit.
    pub max_concurrent_upgrades: Option<usize>,
    /// Reconciles running at once per watched scope; 0: no limit.
    pub max_concurrent_reconciles: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            scope: Scope::All,
            rediscover_every: Duration::from_secs(60),
            watch_secrets: true,
            max_concurrent_upgrades: None,
            max_concurrent_reconciles: 16,
        }
    }
}

/// Runs the controller until `shutdown` resolves (SIGTERM, or the loss of leadership);
/// in-flight reconciles finish first. Fails fast with an actionable message when the CRD is
/// not installed, instead of retrying forever. When an optional API appears or goes away,
/// the controllers start over with watches to match (a full resync, like a restart).
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let namespaces: Vec<Option<String>> = match settings.scope {
        Scope::All => vec![None],
        Scope::Namespaces(list) => list.into_iter().map(Some).collect(),
    };
    for ns in &namespaces {
        let api: Api<FediInstance> = scoped(&client, ns.as_deref());
        if let Err(e) = api.list(&ListParams::default().limit(1)).await {
            anyhow::bail!(
                "cannot list FediInstances{} ({e}); is the CRD installed? Apply \
                 crds/fediinstances.yaml (make crds-install) and check the operator's RBAC",
                ns.as_ref()
                    .map(|n| format!(" in namespace {n}"))
                    .unwrap_or_default()
            );
        }
    }
    let shutdown = shutdown.boxed().shared();
    let mut capabilities = Capabilities::discover(&client).await.unwrap_or_else(|e| {
        warn!(error = %e, "discovery failed; starting without optional APIs until it works");
        Capabilities::default()
    });
    health.set_ready(false);
    loop {
        let changed = capabilities
            .changed(client.clone(), settings.rediscover_every)
            .boxed()
            .shared();
        let stop = {
            let (shutdown, changed) = (shutdown.clone(), changed.clone());
            async move {
                futures::future::select(shutdown, changed).await;
            }
        };
        let watching = Watching {
            client: &client,
            metrics: &metrics,
            health: &health,
            namespaces: &namespaces,
            capabilities,
            watch_secrets: settings.watch_secrets,
            max_concurrent_upgrades: settings.max_concurrent_upgrades,
            max_concurrent_reconciles: settings.max_concurrent_reconciles,
        };
        watching.run(stop.boxed().shared()).await;
        if shutdown.peek().is_some() {
            break;
        }
        match changed.peek() {
            Some(now) => capabilities = *now,
            None => break,
        }
    }
    info!("controller stopped");
    Ok(())
}

/// One run of the controllers, with the watches that the cluster's capabilities allow.
struct Watching<'a> {
    client: &'a Client,
    metrics: &'a Arc<Metrics>,
    health: &'a Arc<Health>,
    namespaces: &'a [Option<String>],
    capabilities: Capabilities,
    watch_secrets: bool,
    max_concurrent_upgrades: Option<usize>,
    max_concurrent_reconciles: u16,
}

impl Watching<'_> {
    async fn run(self, stop: futures::future::Shared<futures::future::BoxFuture<'static, ()>>) {
        let client = self.client;
        let owned = || {
            watcher::Config::default()
                .labels(MANAGED_BY)
                .page_size(LIST_PAGE)
        };
        // The children's watches feed both the cache and the controllers' triggers; the
        // cache must exist before the context that holds it.
        let mut children = ChildCache::default();
        let mut triggers: Vec<Vec<_>> = Vec::new();
        for ns in self.namespaces {
            let ns = ns.as_deref();
            let streams = owned_kinds(self.capabilities)
                .into_iter()
                .map(|r| (children.watch(client, ns, &r, owned()), r))
                .collect();
            triggers.push(streams);
        }
        let mut ctx = Context::new(
            client.clone(),
            self.metrics.clone(),
            self.capabilities,
            Fleet::new(self.max_concurrent_upgrades),
            children,
        );
        ctx.slots = (self.max_concurrent_reconciles > 0)
            .then(|| crate::slots::Slots::new(self.max_concurrent_reconciles.into()));
        ctx.stop = stop.clone();
        let ctx = Arc::new(ctx);
        let mut stores = Vec::new();
        let mut controllers = Vec::new();
        for (ns, streams) in self.namespaces.iter().zip(triggers) {
            let ns = ns.as_deref();
            // The instances' cache as kube-runtime's `Controller::new` keeps it, but without
            // what nothing here reads and what makes a FediInstance several times its size:
            // who manages which field, and kubectl's copy of the whole object.
            let (store, writer) = kube::runtime::reflector::store();
            let instances = kube::runtime::reflector(
                writer,
                watcher(
                    scoped::<FediInstance>(client, ns),
                    watcher::Config::default().page_size(LIST_PAGE),
                )
                .modify(crate::cache::strip_bulky_metadata),
            )
            .applied_objects();
            let controller = Controller::for_stream(instances, store.clone());
            stores.push(store.clone());
            let mut controller = controller
                // A step of a rollout changes a Job or a Deployment several times within
                // milliseconds: one reconcile for the burst, not one per change.
                .with_config(kube::runtime::controller::Config::default().debounce(DEBOUNCE))
                .reconcile_on(ctx.fleet.subscribe(ns.map(String::from)));
            for (stream, resource) in streams {
                let stream = if resource.kind == "StatefulSet" {
                    // The managed data services: their readiness is what the probes report.
                    let recent = ctx.recent.clone();
                    stream
                        .inspect(move |sts| {
                            if let Ok(sts) = sts {
                                forget_instance(&recent, sts);
                            }
                        })
                        .boxed()
                } else {
                    stream
                };
                controller = controller.owns_stream_with(stream, resource);
            }
            if self.watch_secrets {
                // Metadata only: a change to a referenced Secret (created, keys edited) is
                // picked up at once, and the operator never holds Secret values it does not
                // need.
                controller = controller.watches_stream(
                    watcher(
                        scoped::<PartialObjectMeta<Secret>>(client, ns),
                        watcher::Config::default(),
                    )
                    .touched_objects(),
                    {
                        let recent = ctx.recent.clone();
                        move |secret| {
                            let instances = referencing(&store, &secret);
                            for i in &instances {
                                recent.forget(i.namespace.as_deref().unwrap_or_default(), &i.name);
                            }
                            instances
                        }
                    },
                );
            }
            if self.capabilities.cloudnative_pg {
                // By label, not owner: a retained Cluster has no owner reference. Its status
                // is what DatabaseReady reports.
                let cluster = build::database::cluster_resource();
                let api = match ns {
                    Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &cluster),
                    None => Api::<DynamicObject>::all_with(client.clone(), &cluster),
                };
                let recent = ctx.recent.clone();
                controller = controller.watches_with(api, cluster, owned(), move |c| {
                    forget_instance(&recent, &c);
                    let instance = c.labels().get("app.kubernetes.io/instance").cloned();
                    instance.map(|name| {
                        ObjectRef::new(&name).within(&c.namespace().unwrap_or_default())
                    })
                });
            }
            controllers.push(
                controller
                    .graceful_shutdown_on(stop.clone())
                    .run(reconcile, error_policy, ctx.clone())
                    .for_each(|result| async move {
                        if let Err(e) = result {
                            // Reconcile errors are logged by error_policy; these are watch errors.
                            tracing::debug!(error = %e, "controller event");
                        }
                    }),
            );
        }
        ctx.fleet.set_stores(stores.clone());
        // Ready once every cache holds the cluster's FediInstances.
        let caches = stores.clone();
        let health = self.health.clone();
        // Polled again every second: the store's readiness channel wakes only its most recent
        // waiter, and the controller's own runner waits on it too.
        let readiness = tokio::spawn(async move {
            for store in &caches {
                loop {
                    match tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready())
                        .await
                    {
                        Ok(Ok(())) => break,
                        Ok(Err(_)) => return,
                        Err(_) => continue,
                    }
                }
            }
            health.set_ready(true);
        });
        // The number of instances this operator manages, from the controllers' own caches.
        let metrics = self.metrics.clone();
        let gauge = tokio::spawn(async move {
            loop {
                metrics.set_managed_instances(stores.iter().map(|s| s.len()).sum());
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        info!(namespaces = ?self.namespaces, capabilities = ?self.capabilities, "controller started");
        futures::future::join_all(controllers).await;
        gauge.abort();
        readiness.abort();
    }
}

/// The kinds the operator creates and owns, watched (by label) into the child cache; a
/// change to any of them reconciles its owner.
fn owned_kinds(capabilities: Capabilities) -> Vec<ApiResource> {
    let mut kinds = vec![
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<Job>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<HorizontalPodAutoscaler>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<Ingress>(&()),
    ];
    if capabilities.http_route {
        kinds.push(build::http_route_resource());
    }
    if capabilities.keda {
        kinds.push(build::worker_scaling::scaled_object_resource());
    }
    kinds
}

/// Forgets the kept dependency report of the instance `object` belongs to (by its label).
fn forget_instance<K: ResourceExt>(recent: &dependencies::recent::Recent, object: &K) {
    if let Some(instance) = object.labels().get("app.kubernetes.io/instance") {
        recent.forget(&object.namespace().unwrap_or_default(), instance);
    }
}

/// The instances in `store` that refer to `secret`.
fn referencing(
    store: &Store<FediInstance>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<FediInstance>> {
    let name = secret.name_any();
    store
        .state()
        .iter()
        .filter(|f| f.namespace() == secret.namespace())
        .filter(|f| dereference::watched_secrets(f).contains(&name))
        .map(|f| ObjectRef::from_obj(f.as_ref()))
        .collect()
}
