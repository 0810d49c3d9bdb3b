//! RedisReady. The managed Redis: its pods, then in cluster mode the cluster itself, which
//! the operator forms and grows (`redis_cluster`); in standalone mode a PING of the primary.
//! An external Redis: a PING, or the cluster's own `CLUSTER INFO`.

use std::time::Duration;

use super::probe;
use super::{Action, Readiness, Scope};
use crate::build::managed;
use crate::crd::{ManagedRedis, RedisMode};
use crate::redis_cluster::{self, Topology};

const PING_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn observe(scope: &Scope<'_>) -> (Readiness, Vec<Action>) {
    let spec = &scope.fedi.spec.redis;
    if let Some(external) = &spec.external {
        let r = &external.url_secret_ref;
        let urls = match probe::secret_value(scope, &r.name, &r.key).await {
            Ok(v) => v,
            Err(readiness) => return (readiness, Vec::new()),
        };
        let urls: Vec<&str> = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let mut readiness = external_readiness(external.mode, &urls).await;
        if !readiness.ready {
            // Where to fix it: the URLs (and any password) are in the user's Secret.
            let stop = if readiness.message.ends_with('.') {
                ""
            } else {
                "."
            };
            readiness.message.push_str(&format!(
                "{stop} The URL is key {} of Secret {}.",
                r.key, r.name
            ));
        }
        return (readiness, Vec::new());
    }
    let managed = spec.managed.clone().unwrap_or_default();
    managed_readiness(scope, &managed).await
}

async fn managed_readiness(scope: &Scope<'_>, spec: &ManagedRedis) -> (Readiness, Vec<Action>) {
    let name = format!("{}-redis", scope.name);
    if let Some(waiting) = probe::statefulset(scope, &name, "Redis").await {
        return (waiting, Vec::new());
    }
    let secret = managed::redis_secret(&scope.name);
    let password = match probe::secret_value(scope, &secret, managed::REDIS_PASSWORD_KEY).await {
        Ok(p) => p,
        Err(readiness) => return (readiness, Vec::new()),
    };
    let nodes = managed::redis_nodes(&scope.name, scope.namespace, spec);
    if spec.mode == RedisMode::Standalone {
        let url = format!("redis://{}", nodes[0]);
        return (ping(&url, Some(&password)).await, Vec::new());
    }
    let topology = Topology {
        shards: usize::try_from(spec.shards).unwrap_or(1),
        replicas_per_shard: usize::try_from(spec.replicas_per_shard).unwrap_or(0),
    };
    let mut actions = Vec::new();
    match redis_cluster::reconcile(&nodes, topology, Some(&password)).await {
        Ok(report) if !report.is_empty() => actions.push(Action {
            reason: "RedisClusterChanged".into(),
            note: format!(
                "Redis Cluster: {} node(s) met, {} slot(s) assigned, {} replica(s) set, \
                 {} slot(s) migrated with {} key(s)",
                report.met.len(),
                report.slots_assigned,
                report.replicas_set.len(),
                report.slots_migrated,
                report.keys_migrated
            ),
        }),
        Ok(_) => {}
        Err(e) => return (Readiness::waiting(e.reason(), e.to_string()), actions),
    }
    (cluster_health(&nodes, Some(&password)).await, actions)
}

async fn external_readiness(mode: RedisMode, urls: &[&str]) -> Readiness {
    let Some(first) = urls.first() else {
        return Readiness::waiting("InvalidRedisUrl", "the Redis URL Secret holds no URL.");
    };
    match mode {
        RedisMode::Standalone => ping(first, None).await,
        RedisMode::Cluster => {
            let mut nodes = Vec::new();
            let mut password = None;
            for url in urls {
                match redis::IntoConnectionInfo::into_connection_info(*url) {
                    Ok(info) => {
                        if let redis::ConnectionAddr::Tcp(host, port) = info.addr() {
                            nodes.push(format!("{host}:{port}"));
                        } else {
                            return Readiness::waiting(
                                "UnsupportedRedisUrl",
                                "only redis:// URLs are supported (no TLS or Unix sockets yet).",
                            );
                        }
                        password = password.or(info.redis_settings().password().map(String::from));
                    }
                    Err(e) => {
                        return Readiness::waiting(
                            "InvalidRedisUrl",
                            format!("a URL of the Redis Secret is not valid: {:?}", e.kind()),
                        );
                    }
                }
            }
            cluster_health(&nodes, password.as_deref()).await
        }
    }
}

async fn cluster_health(nodes: &[String], password: Option<&str>) -> Readiness {
    match redis_cluster::health(nodes, password).await {
        Ok(h) if h.ready => Readiness::ready(h.reason.as_str(), h.message),
        Ok(h) => Readiness::waiting(h.reason.as_str(), h.message),
        Err(e) => Readiness::waiting(e.reason(), e.to_string()),
    }
}

/// PING through `url`, with `password` overriding the URL's own. Errors name the server by
/// kind only: a URL may carry a password.
async fn ping(url: &str, password: Option<&str>) -> Readiness {
    let info = match redis::IntoConnectionInfo::into_connection_info(url) {
        Ok(info) => info,
        Err(e) => {
            return Readiness::waiting(
                "InvalidRedisUrl",
                format!("the Redis URL is not valid: {:?}", e.kind()),
            );
        }
    };
    let where_ = info.addr().to_string();
    let info = match password {
        Some(p) => {
            let settings = info.redis_settings().clone().set_password(p);
            info.set_redis_settings(settings)
        }
        None => info,
    };
    let attempt = async {
        let client = redis::Client::open(info)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(PING_TIMEOUT, attempt).await {
        Ok(Ok(_)) => Readiness::ready("Ready", format!("Redis at {where_} answers PING.")),
        Ok(Err(e)) if e.kind() == redis::ErrorKind::AuthenticationFailed => Readiness::waiting(
            "AuthenticationFailed",
            format!("Redis at {where_} refused the password."),
        ),
        Ok(Err(e)) => Readiness::waiting(
            "RedisUnreachable",
            format!("Redis at {where_} does not answer: {:?}", e.kind()),
        ),
        Err(_) => Readiness::waiting(
            "RedisUnreachable",
            format!(
                "Redis at {where_} gave no answer within {}s.",
                PING_TIMEOUT.as_secs()
            ),
        ),
    }
}
