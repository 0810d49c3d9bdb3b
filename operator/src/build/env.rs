//! The server's environment for an instance, in the variables of the shared configuration
//! crate: the single place where a spec field becomes a server setting.
//!
//! Credentials are never read by the operator: they reach the pods as `secretKeyRef`s to
//! the user's Secrets, or to the Secrets that managed dependencies publish (names below).

use std::collections::BTreeMap;

use fedi_config::vars;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

use crate::crd::{FediInstance, RedisMode, SmtpTls, SslMode};
use kube::ResourceExt;

/// Secrets published by the managed dependencies (the data-services stage creates them).
pub(crate) mod managed {
    /// The managed Redis, generated once by the operator: keys `password` and `auth.conf`
    /// (the same password as redis.conf directives, included by the nodes' configuration).
    pub fn redis_secret(instance: &str) -> String {
        format!("{instance}-redis")
    }
    pub const REDIS_PASSWORD_KEY: &str = "password";
    pub const REDIS_AUTH_CONF_KEY: &str = "auth.conf";
    pub const REDIS_PORT: u16 = 6379;

    /// `host:port` of the managed Redis as clients see it: the primary's Service in
    /// standalone mode; in cluster mode every node by its stable name, all of them seeds.
    pub fn redis_nodes(instance: &str, ns: &str, spec: &crate::crd::ManagedRedis) -> Vec<String> {
        match spec.mode {
            crate::crd::RedisMode::Standalone => {
                vec![format!("{instance}-redis.{ns}.svc:{REDIS_PORT}")]
            }
            crate::crd::RedisMode::Cluster => {
                let count = spec.shards * (1 + spec.replicas_per_shard);
                (0..count)
                    .map(|i| {
                        format!(
                            "{instance}-redis-{i}.{instance}-redis-headless.{ns}.svc:{REDIS_PORT}"
                        )
                    })
                    .collect()
            }
        }
    }
    /// The managed object store, generated once by the operator: keys `accessKeyId` and
    /// `secretAccessKey`, and `s3.json` (SeaweedFS's identities file, holding the same pair).
    pub fn s3_secret(instance: &str) -> String {
        format!("{instance}-s3")
    }
    pub const S3_CONFIG_KEY: &str = "s3.json";
    pub const S3_PORT: u16 = 8333;
    pub const S3_BUCKET: &str = "media";
    pub const SEARCH_PORT: u16 = 9200;
}

/// Keys expected in a user's S3 credentials Secret.
pub const S3_ACCESS_KEY_ID_KEY: &str = "accessKeyId";
pub const S3_SECRET_ACCESS_KEY_KEY: &str = "secretAccessKey";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Value(String),
    Secret { name: String, key: String },
}

fn value(v: impl ToString) -> Source {
    Source::Value(v.to_string())
}

fn secret(name: impl Into<String>, key: impl Into<String>) -> Source {
    Source::Secret {
        name: name.into(),
        key: key.into(),
    }
}

/// Every variable, in a stable order.
pub(crate) fn all(fedi: &FediInstance) -> Vec<(&'static str, Source)> {
    let spec = &fedi.spec;
    let name = fedi.name_any();
    let ns = fedi.namespace().unwrap_or_default();
    let mut out = vec![
        (vars::DOMAIN, value(&spec.domain)),
        (
            vars::REGISTRATIONS,
            value(fedi_config::Registrations::from(spec.registrations)),
        ),
        (vars::LOG_FORMAT, value("json")),
    ];

    if let Some(external) = &spec.database.external {
        let sslmode = match external.sslmode {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        };
        let url = |host: &str| {
            format!(
                "postgres://{}@{host}:{}/{}?sslmode={sslmode}",
                external.user, external.port, external.database
            )
        };
        out.push((vars::DATABASE_URL, value(url(&external.host))));
        if let Some(replica) = external.replica_hosts.first() {
            out.push((vars::DATABASE_REPLICA_URL, value(url(replica))));
        }
        let pw = &external.password_secret_ref;
        out.push((vars::DATABASE_PASSWORD, secret(&pw.name, &pw.key)));
    } else if let Some(managed) = &spec.database.managed {
        // CloudNativePG serves TLS with its own CA: encrypted, not verified (in-cluster).
        let names = super::database::Names::of(&name);
        let url = |host: &str| {
            format!(
                "postgres://{}@{host}.{ns}.svc:5432/{}?sslmode=require",
                super::database::OWNER,
                super::database::DATABASE
            )
        };
        out.push((vars::DATABASE_URL, value(url(&names.pooler))));
        out.push((vars::DATABASE_MIGRATION_URL, value(url(&names.rw()))));
        if managed.instances > 1 {
            out.push((vars::DATABASE_REPLICA_URL, value(url(&names.ro()))));
        }
        out.push((
            vars::DATABASE_PASSWORD,
            secret(names.app_secret(), "password"),
        ));
    }

    let mode = match (&spec.redis.managed, &spec.redis.external) {
        (_, Some(external)) => {
            let r = &external.url_secret_ref;
            out.push((vars::REDIS_URL, secret(&r.name, &r.key)));
            external.mode
        }
        (managed, None) => {
            let managed = managed.clone().unwrap_or_default();
            // The URLs follow the spec; only the password is kept in the Secret.
            let urls = managed::redis_nodes(&name, &ns, &managed)
                .iter()
                .map(|node| format!("redis://{node}"))
                .collect::<Vec<_>>()
                .join(",");
            out.push((vars::REDIS_URL, value(urls)));
            out.push((
                vars::REDIS_PASSWORD,
                secret(managed::redis_secret(&name), managed::REDIS_PASSWORD_KEY),
            ));
            managed.mode
        }
    };
    let mode = match mode {
        RedisMode::Standalone => fedi_config::RedisMode::Standalone,
        RedisMode::Cluster => fedi_config::RedisMode::Cluster,
    };
    out.push((vars::REDIS_MODE, value(mode)));

    match &spec.object_storage.external {
        Some(s3) => {
            out.push((vars::S3_ENDPOINT, value(&s3.endpoint)));
            out.push((vars::S3_REGION, value(&s3.region)));
            out.push((vars::S3_BUCKET, value(&s3.bucket)));
            out.push((vars::S3_PATH_STYLE, value(s3.path_style)));
            if let Some(public) = &s3.public_url {
                out.push((vars::S3_PUBLIC_URL, value(public)));
            }
            let creds = &s3.credentials_secret_ref.name;
            out.push((vars::S3_ACCESS_KEY_ID, secret(creds, S3_ACCESS_KEY_ID_KEY)));
            out.push((
                vars::S3_SECRET_ACCESS_KEY,
                secret(creds, S3_SECRET_ACCESS_KEY_KEY),
            ));
        }
        None => {
            let service = managed::s3_secret(&name);
            out.push((
                vars::S3_ENDPOINT,
                value(format!("http://{service}.{ns}.svc:{}", managed::S3_PORT)),
            ));
            out.push((vars::S3_BUCKET, value(managed::S3_BUCKET)));
            out.push((vars::S3_PATH_STYLE, value(true)));
            out.push((
                vars::S3_ACCESS_KEY_ID,
                secret(&service, S3_ACCESS_KEY_ID_KEY),
            ));
            out.push((
                vars::S3_SECRET_ACCESS_KEY,
                secret(&service, S3_SECRET_ACCESS_KEY_KEY),
            ));
        }
    }

    if let Some(search) = &spec.search {
        let prefix = search
            .index_prefix
            .clone()
            .unwrap_or_else(|| format!("{ns}_{name}"));
        out.push((vars::SEARCH_PREFIX, value(prefix)));
        match &search.external {
            Some(external) => {
                out.push((vars::SEARCH_URL, value(&external.url)));
                if let Some(creds) = &external.credentials_secret_ref {
                    out.push((vars::SEARCH_USERNAME, secret(&creds.name, "username")));
                    out.push((vars::SEARCH_PASSWORD, secret(&creds.name, "password")));
                }
            }
            None => out.push((
                vars::SEARCH_URL,
                value(format!(
                    "http://{name}-search.{ns}.svc:{}",
                    managed::SEARCH_PORT
                )),
            )),
        }
    }

    out.extend(federation(&spec.federation));
    out.extend(maintenance(&spec.maintenance));

    let keys = super::keys_secret_name(fedi);
    for (key, var) in crate::keys::SECRET_KEYS {
        out.push((*var, secret(&keys, *key)));
    }

    if let Some(smtp) = &spec.smtp {
        out.push((vars::SMTP_HOST, value(&smtp.host)));
        out.push((vars::SMTP_PORT, value(smtp.port)));
        let tls = match smtp.tls {
            SmtpTls::Starttls => fedi_config::SmtpTls::StartTls,
            SmtpTls::Tls => fedi_config::SmtpTls::Tls,
            SmtpTls::None => fedi_config::SmtpTls::None,
        };
        out.push((vars::SMTP_TLS, value(tls)));
        out.push((vars::SMTP_FROM, value(&smtp.from)));
        if let Some(user) = &smtp.username {
            out.push((vars::SMTP_USERNAME, value(user)));
        }
        if let Some(pw) = &smtp.password_secret_ref {
            out.push((vars::SMTP_PASSWORD, secret(&pw.name, &pw.key)));
        }
    }
    out
}

/// `spec.federation` as the server reads it. Domains go as written (the server
/// canonicalizes them, and refuses to start on one that is not a domain); one listed twice
/// keeps its first, strictest entry: `blockedDomains` come first, as suspensions.
fn federation(spec: &crate::crd::FederationSpec) -> Vec<(&'static str, Source)> {
    use crate::crd::{DomainBlockSeverity, FederationMode};
    let mut out = vec![(
        vars::FEDERATION_MODE,
        value(match spec.mode {
            FederationMode::Open => fedi_config::FederationMode::Open,
            FederationMode::Limited => fedi_config::FederationMode::Limited,
        }),
    )];
    let mut seen = std::collections::BTreeSet::new();
    let mut blocks = Vec::new();
    let all = spec
        .blocked_domains
        .iter()
        .map(|d| (d, DomainBlockSeverity::Suspend))
        .chain(spec.domain_blocks.iter().map(|b| (&b.domain, b.severity)));
    for (domain, severity) in all {
        let domain = domain.trim();
        let key = fedi_config::canonical_domain(domain).unwrap_or_else(|| domain.to_string());
        if !seen.insert(key) {
            continue;
        }
        blocks.push(match severity {
            DomainBlockSeverity::Suspend => domain.to_string(),
            DomainBlockSeverity::Silence => format!("{domain}=silence"),
            DomainBlockSeverity::RejectMedia => format!("{domain}=reject_media"),
        });
    }
    if !blocks.is_empty() {
        out.push((vars::FEDERATION_DOMAIN_BLOCKS, value(blocks.join(","))));
    }
    if !spec.allowed_domains.is_empty() {
        let allowed: Vec<&str> = spec.allowed_domains.iter().map(|d| d.trim()).collect();
        out.push((vars::FEDERATION_ALLOWED_DOMAINS, value(allowed.join(","))));
    }
    out.push((
        vars::FEDERATION_AUTHORIZED_FETCH,
        value(spec.authorized_fetch),
    ));
    out
}

/// `spec.maintenance`: the worker's retention periods and when its sweeps may start.
fn maintenance(spec: &crate::crd::MaintenanceSpec) -> Vec<(&'static str, Source)> {
    let window = spec
        .window
        .as_ref()
        .map(|w| (vars::MAINTENANCE_WINDOW, value(w.env_value())));
    let mut out = vec![
        (
            vars::ORPHANED_MEDIA_RETENTION,
            value(spec.orphaned_media_retention_hours),
        ),
        (
            vars::MEDIA_CACHE_RETENTION,
            value(spec.media_cache_retention_days),
        ),
        (
            vars::PREVIEW_CARD_RETENTION,
            value(spec.preview_card_retention_days),
        ),
    ];
    out.extend(window);
    out
}

/// The settings that go into the ConfigMap: plain values of non-secret variables.
pub(crate) fn plain(fedi: &FediInstance) -> BTreeMap<String, String> {
    all(fedi)
        .into_iter()
        .filter_map(|(name, source)| match source {
            Source::Value(v) if !vars::is_secret(name) => Some((name.to_string(), v)),
            _ => None,
        })
        .collect()
}

/// The variables set on the container itself: Secret references, and values of variables
/// that are secret in general but carry no credential here (a URL without its password).
pub(crate) fn container(fedi: &FediInstance) -> Vec<EnvVar> {
    all(fedi)
        .into_iter()
        .filter_map(|(name, source)| match source {
            Source::Value(v) if vars::is_secret(name) => Some(EnvVar {
                name: name.into(),
                value: Some(v),
                value_from: None,
            }),
            Source::Value(_) => None,
            Source::Secret { name: secret, key } => Some(EnvVar {
                name: name.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret,
                        key,
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use fedi_config::ServerConfig;
    use serde_json::json;

    /// What the pod would see: ConfigMap, container values, and Secret values made up here.
    fn resolve(fedi: &FediInstance) -> BTreeMap<String, String> {
        let mut env = plain(fedi);
        for var in container(fedi) {
            let v = match (var.value, var.value_from) {
                (Some(v), _) => v,
                (None, Some(src)) => {
                    let r = src.secret_key_ref.unwrap();
                    format!("secret:{}/{}", r.name, r.key)
                }
                _ => unreachable!(),
            };
            env.insert(var.name, v);
        }
        env
    }

    fn parse(fedi: &FediInstance) -> ServerConfig {
        let env = resolve(fedi);
        ServerConfig::from_lookup(|k| env.get(k).cloned())
            .expect("the server accepts what the operator renders")
    }

    #[test]
    fn search_is_configured_only_when_asked_for() {
        assert!(parse(&minimal()).search.is_none());
        let managed = instance(serde_json::json!({"domain": "social.example",
            "search": {"managed": {}}}));
        assert_eq!(
            parse(&managed).search.unwrap().url,
            "http://social-search.tenant-a.svc:9200"
        );
        let external = instance(serde_json::json!({"domain": "social.example",
            "search": {"external": {"url": "https://os.example:9200",
                "credentialsSecretRef": {"name": "os"}}}}));
        let s = parse(&external).search.unwrap();
        assert_eq!(s.url, "https://os.example:9200");
        assert_eq!(s.password.unwrap().expose(), "secret:os/password");
    }

    #[test]
    fn index_names_are_the_instances_own_unless_the_spec_names_a_prefix() {
        let shared = |namespace: &str, name: &str, prefix: Option<&str>| {
            let mut search = json!({"external": {"url": "https://os.example:9200"}});
            if let Some(p) = prefix {
                search["indexPrefix"] = json!(p);
            }
            let mut fedi = instance(json!({"domain": "social.example", "search": search}));
            fedi.metadata.namespace = Some(namespace.into());
            fedi.metadata.name = Some(name.into());
            parse(&fedi).search.unwrap().prefix
        };
        assert_eq!(shared("tenant-a", "social", None), "tenant-a_social");
        // Names that a plain `-` would join into the same prefix stay apart.
        assert_ne!(
            shared("tenant-a", "social", None),
            shared("tenant", "a-social", None)
        );
        assert_eq!(shared("tenant-a", "social", Some("fedi")), "fedi");
    }

    #[test]
    fn every_node_of_a_managed_redis_cluster_is_a_seed() {
        let fedi = instance(serde_json::json!({"domain": "social.example",
            "redis": {"managed": {"mode": "cluster", "shards": 2, "replicasPerShard": 1}}}));
        let c = parse(&fedi);
        assert_eq!(c.redis.mode, fedi_config::RedisMode::Cluster);
        let urls: Vec<_> = c
            .redis
            .urls
            .iter()
            .map(|u| u.expose().to_string())
            .collect();
        assert_eq!(urls.len(), 4);
        assert_eq!(
            urls[3],
            "redis://social-redis-3.social-redis-headless.tenant-a.svc:6379"
        );
        assert_eq!(
            c.redis.password.unwrap().expose(),
            "secret:social-redis/password"
        );
    }

    #[test]
    fn standbys_of_a_managed_database_serve_reads() {
        let fedi = instance(serde_json::json!({"domain": "social.example",
            "database": {"managed": {"instances": 3}}}));
        let c = parse(&fedi);
        assert_eq!(
            c.database.replica_url.unwrap().expose(),
            "postgres://fedi@social-db-ro.tenant-a.svc:5432/fedi?sslmode=require"
        );
    }

    #[test]
    fn a_minimal_instance_points_at_its_managed_dependencies() {
        let c = parse(&minimal());
        assert_eq!(c.domain, "social.example");
        // The server through PgBouncer, migrations straight to the primary, the password
        // from CloudNativePG's Secret; no replica with a single PostgreSQL instance.
        assert_eq!(
            c.database.url.expose(),
            "postgres://fedi@social-db-pooler.tenant-a.svc:5432/fedi?sslmode=require"
        );
        assert_eq!(
            c.database.migration_url.as_ref().unwrap().expose(),
            "postgres://fedi@social-db-rw.tenant-a.svc:5432/fedi?sslmode=require"
        );
        assert!(c.database.replica_url.is_none());
        assert_eq!(
            c.database.password.as_ref().unwrap().expose(),
            "secret:social-db-app/password"
        );
        assert_eq!(
            c.redis.urls[0].expose(),
            "redis://social-redis.tenant-a.svc:6379"
        );
        assert_eq!(
            c.redis.password.as_ref().unwrap().expose(),
            "secret:social-redis/password"
        );
        let s3 = c.storage.unwrap();
        assert_eq!(s3.endpoint, "http://social-s3.tenant-a.svc:8333");
        assert_eq!(s3.access_key_id.expose(), "secret:social-s3/accessKeyId");
        assert!(c.smtp.is_none());
        let env = resolve(&minimal());
        assert_eq!(
            env[vars::SECRET_KEY_BASE],
            "secret:social-keys/secretKeyBase"
        );
        assert_eq!(
            env[vars::VAPID_PUBLIC_KEY],
            "secret:social-keys/vapidPublicKey"
        );
    }

    #[test]
    fn external_services_are_wired_without_the_operator_reading_a_credential() {
        let fedi = instance(json!({
            "domain": "social.example",
            "registrations": "approval",
            "database": {"external": {"host": "pg.example", "database": "fedi", "user": "app",
                "passwordSecretRef": {"name": "pg", "key": "password"},
                "sslmode": "verify-full", "replicaHosts": ["pg-ro.example"]}},
            "redis": {"external": {"mode": "cluster", "urlSecretRef": {"name": "redis", "key": "nodes"}}},
            "objectStorage": {"external": {"endpoint": "https://s3.example", "bucket": "media-1",
                "region": "eu-west-1", "credentialsSecretRef": {"name": "s3"}}},
            "smtp": {"host": "smtp.example", "port": 465, "tls": "tls", "from": "n@social.example",
                "username": "mailer", "passwordSecretRef": {"name": "mail", "key": "pw"}},
        }));
        let c = parse(&fedi);
        assert_eq!(c.registrations, fedi_config::Registrations::Approval);
        assert_eq!(
            c.database.url.expose(),
            "postgres://app@pg.example:5432/fedi?sslmode=verify-full"
        );
        assert_eq!(
            c.database.replica_url.as_ref().unwrap().expose(),
            "postgres://app@pg-ro.example:5432/fedi?sslmode=verify-full"
        );
        assert_eq!(
            c.database.password.as_ref().unwrap().expose(),
            "secret:pg/password"
        );
        assert_eq!(c.redis.mode, fedi_config::RedisMode::Cluster);
        assert_eq!(c.redis.urls[0].expose(), "secret:redis/nodes");
        let s3 = c.storage.unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.region.as_str(), s3.path_style),
            ("media-1", "eu-west-1", false)
        );
        assert_eq!(s3.secret_access_key.expose(), "secret:s3/secretAccessKey");
        let smtp = c.smtp.unwrap();
        assert_eq!((smtp.port, smtp.tls), (465, fedi_config::SmtpTls::Tls));
        assert_eq!(smtp.password.unwrap().expose(), "secret:mail/pw");
    }

    #[test]
    fn federation_settings_reach_the_server_canonical_and_deduplicated() {
        let mut fedi = minimal();
        fedi.spec.federation = serde_json::from_value(json!({
            "mode": "limited",
            "allowedDomains": ["Friends.Example."],
            "blockedDomains": ["Spam.Example"],
            "domainBlocks": [
                {"domain": "spam.example.", "severity": "silence"},
                {"domain": "bücher.example", "severity": "rejectMedia"},
                {"domain": "loud.example", "severity": "silence"},
            ],
            "authorizedFetch": true,
        }))
        .unwrap();
        let config = parse(&fedi).federation;
        assert_eq!(config.mode, fedi_config::FederationMode::Limited);
        assert_eq!(config.allowed_domains, ["friends.example"]);
        assert!(config.authorized_fetch);
        let blocks: Vec<(String, String)> = config
            .domain_blocks
            .iter()
            .map(|b| (b.domain.clone(), b.severity.to_string()))
            .collect();
        assert_eq!(
            blocks,
            [
                ("spam.example".to_string(), "suspend".to_string()),
                ("xn--bcher-kva.example".into(), "reject_media".into()),
                ("loud.example".into(), "silence".into()),
            ]
        );
        let open = parse(&minimal()).federation;
        assert_eq!(open, fedi_config::FederationConfig::default());
    }

    #[test]
    fn the_config_map_holds_no_secret_variable() {
        let data = plain(&minimal());
        assert!(data.keys().all(|k| !vars::is_secret(k)), "{data:?}");
        assert!(data.contains_key(vars::DOMAIN));
    }

    #[test]
    fn maintenance_retention_reaches_the_server_as_it_parses_it() {
        let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
        let config = parse(&minimal());
        assert_eq!(config.orphaned_media_retention, hours(24));
        assert_eq!(config.media_cache_retention, hours(7 * 24));
        assert_eq!(config.preview_card_retention, hours(14 * 24));
        let fedi = instance(
            serde_json::json!({"domain": "social.example", "maintenance": {
            "orphanedMediaRetentionHours": 6, "mediaCacheRetentionDays": 3,
            "previewCardRetentionDays": 60}}),
        );
        let config = parse(&fedi);
        assert_eq!(config.orphaned_media_retention, hours(6));
        assert_eq!(config.media_cache_retention, hours(3 * 24));
        assert_eq!(config.preview_card_retention, hours(60 * 24));
    }

    #[test]
    fn the_maintenance_window_reaches_the_server_as_it_parses_it() {
        assert_eq!(parse(&minimal()).maintenance_window, None);
        assert!(!resolve(&minimal()).contains_key(vars::MAINTENANCE_WINDOW));
        let fedi = instance(
            serde_json::json!({"domain": "social.example", "maintenance": {
            "window": {"start": "22:30", "hours": 4}}}),
        );
        let config = parse(&fedi);
        assert_eq!(
            config.maintenance_window,
            fedi_config::MaintenanceWindow::new(22, 30, 4)
        );
        let window = config.maintenance_window.unwrap();
        // 23:59 and 02:29 UTC (past midnight) inside, 02:30 not.
        assert!(window.contains_minute(23 * 60 + 59) && window.contains_minute(2 * 60 + 29));
        assert!(!window.contains_minute(2 * 60 + 30));
        // Retention untouched by the window.
        assert_eq!(config.media_cache_retention.as_secs(), 7 * 86400);
    }
}
