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
    /// CloudNativePG's application Secret of the cluster `<instance>-db`; key `uri`.
    pub fn database_secret(instance: &str) -> String {
        format!("{instance}-db-app")
    }
    /// The managed Redis: key `url`.
    pub fn redis_secret(instance: &str) -> String {
        format!("{instance}-redis")
    }
    /// The managed object store: keys `accessKeyId` and `secretAccessKey`.
    pub fn s3_secret(instance: &str) -> String {
        format!("{instance}-s3")
    }
    pub const S3_PORT: u16 = 8333;
    pub const S3_BUCKET: &str = "media";
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
    } else {
        out.push((
            vars::DATABASE_URL,
            secret(managed::database_secret(&name), "uri"),
        ));
    }

    let (mode, url) = match (&spec.redis.managed, &spec.redis.external) {
        (_, Some(external)) => {
            let r = &external.url_secret_ref;
            (external.mode, secret(&r.name, &r.key))
        }
        (managed, None) => (
            managed.as_ref().map(|m| m.mode).unwrap_or_default(),
            secret(managed::redis_secret(&name), "url"),
        ),
    };
    let mode = match mode {
        RedisMode::Standalone => fedi_config::RedisMode::Standalone,
        RedisMode::Cluster => fedi_config::RedisMode::Cluster,
    };
    out.push((vars::REDIS_MODE, value(mode)));
    out.push((vars::REDIS_URL, url));

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
    fn a_minimal_instance_points_at_its_managed_dependencies() {
        let c = parse(&minimal());
        assert_eq!(c.domain, "social.example");
        assert_eq!(c.database.url.expose(), "secret:social-db-app/uri");
        assert_eq!(c.redis.urls[0].expose(), "secret:social-redis/url");
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
    fn the_config_map_holds_no_secret_variable() {
        let data = plain(&minimal());
        assert!(data.keys().all(|k| !vars::is_secret(k)), "{data:?}");
        assert!(data.contains_key(vars::DOMAIN));
    }
}
