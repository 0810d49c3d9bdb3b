//! One Deployment per workload: api, streamer, and each worker pool.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, HTTPGetAction, LocalObjectReference, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext,
    TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::size::{self, Role};
use super::{Ctx, env};
use crate::crd::{AutoscalingSpec, FediInstance, PullPolicy, QueueAutoscalingSpec};
use fedi_config::vars;

pub const CONFIG_CHECKSUM_ANNOTATION: &str = "fedi.dev/config-checksum";
/// The UID the image runs as (distroless "nonroot").
const RUN_AS: i64 = 65532;

/// A workload as the builders see it, whatever role it plays.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// `api`, `streamer` or `worker-<pool>`: the Deployment is `<instance>-<component>`.
    pub component: String,
    /// The `fedi-server` subcommand.
    pub role: &'static str,
    pub replicas: i32,
    pub resources: Option<ResourceRequirements>,
    pub autoscaling: Option<AutoscalingSpec>,
    /// A worker pool's autoscaling on queue latency, and its queues.
    pub queue_scaling: Option<(QueueAutoscalingSpec, Vec<&'static str>)>,
    /// The port of its HTTP endpoint (API, streaming, or the worker's health and metrics).
    pub port: i32,
    /// Whether clients reach it through a Service.
    pub serves_clients: bool,
    pub env: Vec<EnvVar>,
}

pub const API_PORT: i32 = 3000;
pub const STREAMER_PORT: i32 = 4000;
pub const WORKER_PORT: i32 = 9090;

impl Workload {
    pub fn all(fedi: &FediInstance) -> Vec<Workload> {
        let spec = &fedi.spec;
        let sized = |role, c: &crate::crd::ComponentSpec| {
            size::resolve(spec.size, role, c.replicas, c.resources.as_ref())
        };
        let (api_replicas, api_resources) = sized(Role::Api, &spec.api);
        let (streamer_replicas, streamer_resources) = sized(Role::Streamer, &spec.streamer);
        let mut out = vec![
            Workload {
                component: "api".into(),
                role: "api",
                replicas: api_replicas,
                resources: api_resources,
                autoscaling: spec.api.autoscaling.clone(),
                queue_scaling: None,
                port: API_PORT,
                serves_clients: true,
                env: vec![],
            },
            Workload {
                component: "streamer".into(),
                role: "streamer",
                replicas: streamer_replicas,
                resources: streamer_resources,
                autoscaling: spec.streamer.autoscaling.clone(),
                queue_scaling: None,
                port: STREAMER_PORT,
                serves_clients: true,
                env: vec![],
            },
        ];
        for pool in &spec.worker.pools {
            let queues: Vec<String> = pool
                .queues
                .iter()
                .map(|q| format!("{}:{}", q.name.as_str(), q.weight))
                .collect();
            let var = |name: &str, value: String| EnvVar {
                name: name.into(),
                value: Some(value),
                value_from: None,
            };
            let (replicas, resources) = size::resolve(
                spec.size,
                Role::Worker,
                pool.replicas,
                pool.resources.as_ref(),
            );
            out.push(Workload {
                component: format!("worker-{}", pool.name),
                role: "worker",
                replicas,
                resources,
                autoscaling: None,
                queue_scaling: pool
                    .autoscaling
                    .clone()
                    .map(|a| (a, pool.queues.iter().map(|q| q.name.as_str()).collect())),
                port: WORKER_PORT,
                serves_clients: false,
                env: vec![
                    var(vars::WORKER_QUEUES, queues.join(",")),
                    var(vars::WORKER_CONCURRENCY, pool.concurrency.to_string()),
                    var(vars::WORKER_SCHEDULER, pool.scheduler.to_string()),
                ],
            });
        }
        out
    }

    /// Replicas the Deployment asks for: none while suspended; left to the HPA when
    /// autoscaling (so that the operator and the HPA never fight over the field).
    pub fn desired_replicas(&self, suspended: bool) -> Option<i32> {
        match (
            suspended,
            self.autoscaling.is_some() || self.queue_scaling.is_some(),
        ) {
            (true, _) => Some(0),
            (false, true) => None,
            (false, false) => Some(self.replicas),
        }
    }
}

pub(crate) fn build(ctx: &Ctx, w: &Workload, config_checksum: &str) -> Deployment {
    let spec = &ctx.fedi.spec;
    let selector = ctx.selector(&w.component);
    let version = spec
        .version
        .clone()
        .unwrap_or_else(|| ctx.defaults.version.clone());
    let image = spec.image.as_ref();
    let repository = image
        .and_then(|i| i.repository.clone())
        .unwrap_or_else(|| ctx.defaults.image_repository.clone());
    let pull_policy = image
        .and_then(|i| i.pull_policy)
        .unwrap_or(PullPolicy::IfNotPresent);

    let mut pod_labels = ctx.labels(Some(&w.component));
    pod_labels.insert("app.kubernetes.io/version".into(), version.clone());

    let mut env = vec![EnvVar {
        name: vars::LISTEN.into(),
        value: Some(format!("0.0.0.0:{}", w.port)),
        value_from: None,
    }];
    env.extend(env::container(ctx.fedi));
    env.extend(w.env.iter().cloned());

    let http_get = |path: &str| HTTPGetAction {
        path: Some(path.into()),
        port: IntOrString::String("http".into()),
        ..Default::default()
    };
    let container = Container {
        name: w.role.into(),
        image: Some(format!("{repository}:{version}")),
        image_pull_policy: Some(format!("{pull_policy:?}")),
        args: Some(vec![w.role.into()]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: ctx.child_name("config"),
                optional: Some(false),
            }),
            ..Default::default()
        }]),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: w.port,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        // Startup gives migrations-era cold starts a minute; readiness follows the
        // dependencies; liveness only asks whether the process answers at all.
        startup_probe: Some(Probe {
            http_get: Some(http_get("/health")),
            period_seconds: Some(2),
            failure_threshold: Some(30),
            ..Default::default()
        }),
        readiness_probe: Some(Probe {
            http_get: Some(http_get("/readyz")),
            period_seconds: Some(5),
            failure_threshold: Some(2),
            ..Default::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(http_get("/health")),
            period_seconds: Some(10),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        resources: w.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };

    let spread = |key: &str| TopologySpreadConstraint {
        max_skew: 1,
        topology_key: key.into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector.clone()),
            match_expressions: None,
        }),
        ..Default::default()
    };
    let pull_secrets: Vec<LocalObjectReference> = image
        .map(|i| {
            i.pull_secrets
                .iter()
                .map(|s| LocalObjectReference { name: s.clone() })
                .collect()
        })
        .unwrap_or_default();

    Deployment {
        metadata: ctx.metadata(ctx.child_name(&w.component), Some(&w.component)),
        spec: DeploymentSpec {
            replicas: w.desired_replicas(spec.suspend),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            // Never below the desired count during a rollout: a new pod must be ready first.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::String("25%".into())),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(
                        [(
                            CONFIG_CHECKSUM_ANNOTATION.to_string(),
                            config_checksum.to_string(),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(ctx.name.clone()),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS),
                        run_as_group: Some(RUN_AS),
                        fs_group: Some(RUN_AS),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    image_pull_secrets: (!pull_secrets.is_empty()).then_some(pull_secrets),
                    topology_spread_constraints: Some(vec![
                        spread("topology.kubernetes.io/zone"),
                        spread("kubernetes.io/hostname"),
                    ]),
                    volumes: Some(vec![Volume {
                        name: "tmp".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Ctx, Defaults};
    use super::*;
    use serde_json::json;

    fn deployments(fedi: &FediInstance) -> Vec<Deployment> {
        let defaults = Defaults::default();
        let ctx = Ctx::new(fedi, &defaults).unwrap();
        Workload::all(fedi)
            .iter()
            .map(|w| build(&ctx, w, "c0ffee"))
            .collect()
    }

    #[test]
    fn replicas_follow_the_spec_suspension_and_autoscaling() {
        let cases = [
            (json!({}), [Some(1), Some(1), Some(1)]),
            (
                json!({"api": {"replicas": 3}, "streamer": {"replicas": 0}}),
                [Some(3), Some(0), Some(1)],
            ),
            (
                json!({"api": {"replicas": 3}, "suspend": true}),
                [Some(0), Some(0), Some(0)],
            ),
            (
                json!({"api": {"autoscaling": {"minReplicas": 2, "maxReplicas": 4}}}),
                [None, Some(1), Some(1)],
            ),
            (json!({"size": "large"}), [Some(4), Some(3), Some(4)]),
            (
                json!({"size": "medium", "streamer": {"replicas": 1}}),
                [Some(2), Some(1), Some(2)],
            ),
            (
                json!({"size": "medium", "suspend": true}),
                [Some(0), Some(0), Some(0)],
            ),
        ];
        for (extra, expected) in cases {
            let mut spec = json!({"domain": "social.example"});
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let got: Vec<_> = deployments(&instance(spec.clone()))
                .iter()
                .map(|d| d.spec.replicas)
                .collect();
            assert_eq!(got, expected, "{spec}");
        }
    }

    #[test]
    fn pods_meet_the_restricted_pod_security_standard() {
        for d in deployments(&minimal()) {
            let pod = d.spec.template.spec.unwrap();
            let psc = pod.security_context.unwrap();
            assert_eq!(psc.run_as_non_root, Some(true));
            assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
            for c in pod.containers {
                let sc = c.security_context.unwrap();
                assert_eq!(sc.allow_privilege_escalation, Some(false));
                assert_eq!(sc.read_only_root_filesystem, Some(true));
                assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
                assert!(
                    c.readiness_probe.is_some()
                        && c.liveness_probe.is_some()
                        && c.startup_probe.is_some()
                );
            }
            assert_eq!(pod.automount_service_account_token, Some(false));
        }
    }

    #[test]
    fn each_role_runs_its_subcommand_with_the_version_asked_for() {
        let fedi = instance(json!({"domain": "social.example", "version": "1.2.3",
            "image": {"repository": "registry.local/fedi", "pullSecrets": ["regcred"]}}));
        let roles: Vec<_> = deployments(&fedi)
            .into_iter()
            .map(|d| {
                let pod = d.spec.template.spec.unwrap();
                assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "regcred");
                let c = &pod.containers[0];
                assert_eq!(c.image.as_deref(), Some("registry.local/fedi:1.2.3"));
                c.args.clone().unwrap()[0].clone()
            })
            .collect();
        assert_eq!(roles, ["api", "streamer", "worker"]);
    }

    #[test]
    fn worker_pools_get_their_queues_and_only_one_runs_the_scheduler() {
        let fedi = instance(json!({"domain": "social.example", "worker": {"pools": [
            {"name": "default", "queues": [{"name": "default", "weight": 3}, {"name": "mailers"}], "scheduler": true},
            {"name": "federation", "queues": [{"name": "push"}], "concurrency": 50},
        ]}}));
        let env_of = |d: &Deployment, var: &str| {
            let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
            c.env
                .as_ref()
                .unwrap()
                .iter()
                .find(|e| e.name == var)
                .and_then(|e| e.value.clone())
        };
        let ds = deployments(&fedi);
        assert_eq!(
            env_of(&ds[2], vars::WORKER_QUEUES).as_deref(),
            Some("default:3,mailers:1")
        );
        assert_eq!(
            env_of(&ds[2], vars::WORKER_SCHEDULER).as_deref(),
            Some("true")
        );
        assert_eq!(
            env_of(&ds[3], vars::WORKER_QUEUES).as_deref(),
            Some("push:1")
        );
        assert_eq!(
            env_of(&ds[3], vars::WORKER_CONCURRENCY).as_deref(),
            Some("50")
        );
        assert_eq!(
            env_of(&ds[3], vars::WORKER_SCHEDULER).as_deref(),
            Some("false")
        );
    }
}
