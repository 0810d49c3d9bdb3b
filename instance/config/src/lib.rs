//! The configuration contract between `fedi-operator` and `fedi-server`.
//!
//! The server reads its configuration from environment variables; the operator renders
//! those variables into the Deployments it builds. Both sides use the types here, so a
//! renamed or retyped setting breaks the build instead of a running pod. The round trip
//! `ServerConfig::from_lookup(render(c)) == c` is tested below.

mod federation;
mod rate_limits;
mod secret;
pub mod tls;
mod values;
mod window;

pub mod vars;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use federation::{
    DomainBlock, FederationConfig, FederationMode, Severity as DomainBlockSeverity,
    canonical_domain,
};
pub use rate_limits::{Limit, RateLimitConfig, RateLimitGroup};
pub use secret::Secret;
pub use values::{LogFormat, Queue, RedisMode, Registrations, SmtpTls};
pub use window::MaintenanceWindow;

/// Everything a `fedi-server` process needs to start, whatever its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The account domain (`@user@domain`); never changes for the life of an instance.
    pub domain: String,
    /// Address the HTTP listener binds (api and streamer roles).
    pub listen: SocketAddr,
    pub registrations: Registrations,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub storage: Option<StorageConfig>,
    pub smtp: Option<SmtpConfig>,
    pub search: Option<SearchConfig>,
    pub log_format: LogFormat,
    /// Signs session cookies (keys for each purpose are derived from it). The operator
    /// always sets it; a process without it uses a random key of its own, so sessions do
    /// not survive a restart nor move between replicas.
    pub secret_key_base: Option<Secret>,
    /// API rate limits and the proxies trusted to name the client.
    pub rate_limits: RateLimitConfig,
    /// The worker role's queues and pool size (ignored by the other roles).
    pub worker: WorkerConfig,
    /// Worker role: unattached media older than this are deleted (whole hours).
    pub orphaned_media_retention: Duration,
    /// Worker role: cached copies of remote media older than this are deleted (whole days).
    pub media_cache_retention: Duration,
    /// Worker role: link preview images older than this are deleted (whole days).
    pub preview_card_retention: Duration,
    /// Worker role: the daily UTC window in which the maintenance sweeps may be enqueued;
    /// `None`: any time.
    pub maintenance_window: Option<MaintenanceWindow>,
    /// Where the web client's files are; `DEFAULT_WEB_ROOT` when unset.
    pub web_root: Option<std::path::PathBuf>,
    /// Tests only (`FEDI_FEDERATION_ALLOW_LOOPBACK`): federation may fetch 127.0.0.1 and
    /// `::1` over plain HTTP. Rendered only when set.
    pub federation_allow_loopback: bool,
    /// Domain blocks, limited mode and authorized fetch.
    pub federation: FederationConfig,
    /// Api role: how long a verified token stays in memory; zero turns the cache off.
    pub token_cache: Duration,
}

/// Where the server image puts the built web client (images/Dockerfile).
pub const DEFAULT_WEB_ROOT: &str = "/usr/share/fedi-server/web";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Queues polled, each with its weight: a queue of weight 4 comes first four times as
    /// often as one of weight 1.
    pub queues: Vec<(Queue, u32)>,
    /// Jobs run at once by one process.
    pub concurrency: u32,
    /// Whether this process competes for the scheduler lock that enqueues periodic jobs.
    pub scheduler: bool,
    /// How long in-flight jobs may run after SIGTERM before they go back to their queue.
    pub shutdown_grace: Duration,
    /// Period of the scheduler's heartbeat job, which shows that periodic jobs run.
    pub heartbeat: Duration,
}

impl Default for WorkerConfig {
    /// Every queue at Mastodon's weights, and the periodic jobs: one process does all.
    fn default() -> Self {
        Self {
            queues: Queue::ALL
                .iter()
                .map(|q| (*q, q.default_weight()))
                .collect(),
            concurrency: DEFAULT_WORKER_CONCURRENCY,
            scheduler: true,
            shutdown_grace: DEFAULT_WORKER_SHUTDOWN_GRACE,
            heartbeat: DEFAULT_WORKER_HEARTBEAT,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchConfig {
    pub url: String,
    /// Index names start with it: `<prefix>-statuses-v<N>`.
    pub prefix: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The primary: all writes, and migrations (never through a transaction pooler).
    pub url: Secret,
    /// Optional hot standby for read-only queries; the server falls back to the primary.
    pub replica_url: Option<Secret>,
    /// The primary without a pooler in between, for migrations; `url` when unset.
    pub migration_url: Option<Secret>,
    /// Overrides the password of both URLs when set.
    pub password: Option<Secret>,
    /// Per pool: the replica's pool has the same size.
    pub max_connections: u32,
    /// Reads leave a replica that lags further behind than this (whole seconds).
    pub replica_max_lag: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisConfig {
    pub mode: RedisMode,
    /// One URL in standalone mode; the seed nodes in cluster mode.
    pub urls: Vec<Secret>,
    /// Overrides the password of every URL when set.
    pub password: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub path_style: bool,
    /// Where browsers fetch media from (a CDN or the bucket's public URL).
    pub public_url: Option<String>,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// One rendered environment variable. `secret` tells the operator to source the value
/// from a Secret (`secretKeyRef`) instead of writing it into the pod spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvEntry {
    pub name: &'static str,
    pub value: String,
    pub secret: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is required but not set")]
    Missing(&'static str),
    /// `value` is `None` for secret variables so that an error message never prints one.
    #[error("{var} is invalid{}: {reason}", value.as_ref().map(|v| format!(" ({v:?})")).unwrap_or_default())]
    Invalid {
        var: &'static str,
        value: Option<String>,
        reason: String,
    },
}

const DEFAULT_LISTEN: &str = "0.0.0.0:3000";
const DEFAULT_DB_MAX_CONNECTIONS: u32 = 10;
const DEFAULT_DB_REPLICA_MAX_LAG: Duration = Duration::from_secs(10);
const DEFAULT_WORKER_CONCURRENCY: u32 = 10;
/// Five seconds under Kubernetes' default termination grace period, for the requeue.
const DEFAULT_WORKER_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
const DEFAULT_WORKER_HEARTBEAT: Duration = Duration::from_secs(60);
/// Mastodon's: a day to attach an upload to a status.
const DEFAULT_ORPHANED_MEDIA_RETENTION_HOURS: u64 = 24;
/// A week: Mastodon leaves its media cache retention unset (kept forever); the operator's
/// bucket expires the cache prefix after 30 days by default, and this must come first.
const DEFAULT_MEDIA_CACHE_RETENTION_DAYS: u64 = 7;
const DEFAULT_TOKEN_CACHE: Duration = Duration::from_secs(60);
/// Two weeks, below the bucket's 30-day expiry of the cache prefix card images live in.
const DEFAULT_PREVIEW_CARD_RETENTION_DAYS: u64 = 14;
/// 128 random bits written as hex, at the least; the operator generates 64 bytes.
const MIN_SECRET_KEY_BASE_LEN: usize = 32;

/// Whether `domain` (`host[:port]`) names this machine: `localhost` or a loopback address.
pub fn is_loopback_domain(domain: &str) -> bool {
    let host = match domain.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => domain,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl ServerConfig {
    /// The scheme of this server's URLs: `https`, except on a loopback domain under
    /// `FEDI_FEDERATION_ALLOW_LOOPBACK`, where test servers serve (and reach each other
    /// over) plain HTTP. A deployment's public domain is never loopback, so it is always
    /// `https`.
    pub fn scheme(&self) -> &'static str {
        if self.federation_allow_loopback && is_loopback_domain(&self.domain) {
            "http"
        } else {
            "https"
        }
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let r = Reader(&lookup);
        let storage = match r.opt(vars::S3_BUCKET) {
            None => None,
            Some(bucket) => Some(StorageConfig {
                endpoint: r.req(vars::S3_ENDPOINT)?,
                region: r.opt(vars::S3_REGION).unwrap_or_else(|| "us-east-1".into()),
                bucket,
                path_style: r
                    .parsed(vars::S3_PATH_STYLE, values::parse_bool)?
                    .unwrap_or(true),
                public_url: r.opt(vars::S3_PUBLIC_URL),
                access_key_id: r.secret(vars::S3_ACCESS_KEY_ID)?,
                secret_access_key: r.secret(vars::S3_SECRET_ACCESS_KEY)?,
            }),
        };
        let smtp = match r.opt(vars::SMTP_HOST) {
            None => None,
            Some(host) => Some(SmtpConfig {
                host,
                port: r.parsed(vars::SMTP_PORT, values::parse_num)?.unwrap_or(587),
                tls: r
                    .parsed(vars::SMTP_TLS, str::parse)?
                    .unwrap_or(SmtpTls::StartTls),
                from: r.req(vars::SMTP_FROM)?,
                username: r.opt(vars::SMTP_USERNAME),
                password: r.opt(vars::SMTP_PASSWORD).map(Secret::new),
            }),
        };
        let search_prefix = r.opt(vars::SEARCH_PREFIX).unwrap_or_else(|| "fedi".into());
        let search = r.opt(vars::SEARCH_URL).map(|url| SearchConfig {
            url,
            prefix: search_prefix,
            username: r.opt(vars::SEARCH_USERNAME),
            password: r.opt(vars::SEARCH_PASSWORD).map(Secret::new),
        });
        let redis_urls: Vec<Secret> = r
            .secret(vars::REDIS_URL)?
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(Secret::new)
            .collect();
        Ok(Self {
            domain: values::parse_domain(&r.req(vars::DOMAIN)?)
                .map_err(|reason| r.invalid(vars::DOMAIN, reason))?,
            listen: r
                .parsed(vars::LISTEN, |s| {
                    s.parse::<SocketAddr>().map_err(|e| e.to_string())
                })?
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            registrations: r
                .parsed(vars::REGISTRATIONS, str::parse)?
                .unwrap_or_default(),
            database: DatabaseConfig {
                url: r.secret(vars::DATABASE_URL)?,
                replica_url: r.opt(vars::DATABASE_REPLICA_URL).map(Secret::new),
                migration_url: r.opt(vars::DATABASE_MIGRATION_URL).map(Secret::new),
                password: r.opt(vars::DATABASE_PASSWORD).map(Secret::new),
                max_connections: r
                    .parsed(vars::DATABASE_MAX_CONNECTIONS, values::parse_num)?
                    .unwrap_or(DEFAULT_DB_MAX_CONNECTIONS),
                replica_max_lag: r
                    .parsed(vars::DATABASE_REPLICA_MAX_LAG, values::parse_num)?
                    .map(Duration::from_secs)
                    .unwrap_or(DEFAULT_DB_REPLICA_MAX_LAG),
            },
            redis: RedisConfig {
                mode: r.parsed(vars::REDIS_MODE, str::parse)?.unwrap_or_default(),
                urls: redis_urls,
                password: r.opt(vars::REDIS_PASSWORD).map(Secret::new),
            },
            storage,
            smtp,
            search,
            log_format: r.parsed(vars::LOG_FORMAT, str::parse)?.unwrap_or_default(),
            rate_limits: RateLimitConfig {
                limits: r
                    .parsed(vars::RATE_LIMITS, RateLimitConfig::parse_limits)?
                    .unwrap_or_else(|| RateLimitConfig::default().limits),
                trusted_proxies: r
                    .parsed(vars::TRUSTED_PROXIES, RateLimitConfig::parse_proxies)?
                    .unwrap_or_else(|| RateLimitConfig::default().trusted_proxies),
            },
            secret_key_base: match r.opt(vars::SECRET_KEY_BASE) {
                Some(key) if key.trim().len() < MIN_SECRET_KEY_BASE_LEN => {
                    return Err(r.invalid(
                        vars::SECRET_KEY_BASE,
                        format!(
                            "must be at least {MIN_SECRET_KEY_BASE_LEN} characters of random data"
                        ),
                    ));
                }
                key => key.map(|k| Secret::new(k.trim())),
            },
            worker: {
                let default = WorkerConfig::default();
                WorkerConfig {
                    queues: r
                        .parsed(vars::WORKER_QUEUES, values::parse_queue_weights)?
                        .unwrap_or(default.queues),
                    concurrency: match r
                        .parsed(vars::WORKER_CONCURRENCY, values::parse_num::<u32>)?
                    {
                        Some(0) => {
                            return Err(
                                r.invalid(vars::WORKER_CONCURRENCY, "must be at least 1".into())
                            );
                        }
                        n => n.unwrap_or(default.concurrency),
                    },
                    scheduler: r
                        .parsed(vars::WORKER_SCHEDULER, values::parse_bool)?
                        .unwrap_or(default.scheduler),
                    shutdown_grace: r
                        .parsed(vars::WORKER_SHUTDOWN_GRACE, values::parse_num)?
                        .map(Duration::from_secs)
                        .unwrap_or(default.shutdown_grace),
                    heartbeat: match r.parsed(vars::WORKER_HEARTBEAT, values::parse_num)? {
                        Some(0) => {
                            return Err(
                                r.invalid(vars::WORKER_HEARTBEAT, "must be at least 1".into())
                            );
                        }
                        s => s.map(Duration::from_secs).unwrap_or(default.heartbeat),
                    },
                }
            },
            orphaned_media_retention: match r
                .parsed(vars::ORPHANED_MEDIA_RETENTION, values::parse_num::<u64>)?
            {
                Some(0) => {
                    return Err(
                        r.invalid(vars::ORPHANED_MEDIA_RETENTION, "must be at least 1".into())
                    );
                }
                h => {
                    Duration::from_secs(h.unwrap_or(DEFAULT_ORPHANED_MEDIA_RETENTION_HOURS) * 3600)
                }
            },
            media_cache_retention: r.days(
                vars::MEDIA_CACHE_RETENTION,
                DEFAULT_MEDIA_CACHE_RETENTION_DAYS,
            )?,
            preview_card_retention: r.days(
                vars::PREVIEW_CARD_RETENTION,
                DEFAULT_PREVIEW_CARD_RETENTION_DAYS,
            )?,
            maintenance_window: r.parsed(vars::MAINTENANCE_WINDOW, str::parse)?,
            token_cache: r
                .parsed(vars::TOKEN_CACHE, values::parse_num)?
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_TOKEN_CACHE),
            web_root: r.opt(vars::WEB_ROOT).map(Into::into),
            federation_allow_loopback: r
                .parsed(vars::FEDERATION_ALLOW_LOOPBACK, values::parse_bool)?
                .unwrap_or(false),
            federation: FederationConfig {
                mode: r
                    .parsed(vars::FEDERATION_MODE, str::parse)?
                    .unwrap_or_default(),
                domain_blocks: r
                    .parsed(
                        vars::FEDERATION_DOMAIN_BLOCKS,
                        federation::parse_domain_blocks,
                    )?
                    .unwrap_or_default(),
                allowed_domains: r
                    .parsed(vars::FEDERATION_ALLOWED_DOMAINS, federation::parse_domains)?
                    .unwrap_or_default(),
                authorized_fetch: r
                    .parsed(vars::FEDERATION_AUTHORIZED_FETCH, values::parse_bool)?
                    .unwrap_or(false),
            },
        })
    }

    /// The directory the api role serves the web client from.
    pub fn web_root(&self) -> std::path::PathBuf {
        self.web_root
            .clone()
            .unwrap_or_else(|| DEFAULT_WEB_ROOT.into())
    }

    /// The environment that reproduces this configuration, in a stable order.
    pub fn render(&self) -> Vec<EnvEntry> {
        let mut out = Vec::new();
        let mut plain = |name, value: String| {
            out.push(EnvEntry {
                name,
                value,
                secret: false,
            })
        };
        plain(vars::DOMAIN, self.domain.clone());
        plain(vars::LISTEN, self.listen.to_string());
        plain(vars::REGISTRATIONS, self.registrations.to_string());
        plain(vars::LOG_FORMAT, self.log_format.to_string());
        plain(
            vars::DATABASE_MAX_CONNECTIONS,
            self.database.max_connections.to_string(),
        );
        plain(
            vars::DATABASE_REPLICA_MAX_LAG,
            self.database.replica_max_lag.as_secs().to_string(),
        );
        plain(vars::REDIS_MODE, self.redis.mode.to_string());
        if self.federation_allow_loopback {
            plain(vars::FEDERATION_ALLOW_LOOPBACK, "true".into());
        }
        let federation = &self.federation;
        plain(vars::FEDERATION_MODE, federation.mode.to_string());
        if !federation.domain_blocks.is_empty() {
            plain(
                vars::FEDERATION_DOMAIN_BLOCKS,
                federation::render_domain_blocks(&federation.domain_blocks),
            );
        }
        if !federation.allowed_domains.is_empty() {
            plain(
                vars::FEDERATION_ALLOWED_DOMAINS,
                federation.allowed_domains.join(","),
            );
        }
        plain(
            vars::FEDERATION_AUTHORIZED_FETCH,
            federation.authorized_fetch.to_string(),
        );
        plain(vars::RATE_LIMITS, self.rate_limits.render_limits());
        plain(vars::TRUSTED_PROXIES, self.rate_limits.render_proxies());
        if let Some(w) = &self.web_root {
            plain(vars::WEB_ROOT, w.display().to_string());
        }
        let queues: Vec<String> = self
            .worker
            .queues
            .iter()
            .map(|(q, w)| format!("{q}:{w}"))
            .collect();
        plain(vars::WORKER_QUEUES, queues.join(","));
        plain(
            vars::WORKER_CONCURRENCY,
            self.worker.concurrency.to_string(),
        );
        plain(vars::WORKER_SCHEDULER, self.worker.scheduler.to_string());
        plain(
            vars::WORKER_SHUTDOWN_GRACE,
            self.worker.shutdown_grace.as_secs().to_string(),
        );
        plain(
            vars::WORKER_HEARTBEAT,
            self.worker.heartbeat.as_secs().to_string(),
        );
        plain(
            vars::ORPHANED_MEDIA_RETENTION,
            (self.orphaned_media_retention.as_secs() / 3600).to_string(),
        );
        plain(
            vars::MEDIA_CACHE_RETENTION,
            (self.media_cache_retention.as_secs() / 86400).to_string(),
        );
        plain(
            vars::PREVIEW_CARD_RETENTION,
            (self.preview_card_retention.as_secs() / 86400).to_string(),
        );
        if let Some(w) = &self.maintenance_window {
            plain(vars::MAINTENANCE_WINDOW, w.to_string());
        }
        plain(vars::TOKEN_CACHE, self.token_cache.as_secs().to_string());
        if let Some(s) = &self.storage {
            plain(vars::S3_ENDPOINT, s.endpoint.clone());
            plain(vars::S3_REGION, s.region.clone());
            plain(vars::S3_BUCKET, s.bucket.clone());
            plain(vars::S3_PATH_STYLE, s.path_style.to_string());
            if let Some(u) = &s.public_url {
                plain(vars::S3_PUBLIC_URL, u.clone());
            }
        }
        if let Some(s) = &self.search {
            plain(vars::SEARCH_URL, s.url.clone());
            plain(vars::SEARCH_PREFIX, s.prefix.clone());
            if let Some(u) = &s.username {
                plain(vars::SEARCH_USERNAME, u.clone());
            }
        }
        if let Some(m) = &self.smtp {
            plain(vars::SMTP_HOST, m.host.clone());
            plain(vars::SMTP_PORT, m.port.to_string());
            plain(vars::SMTP_TLS, m.tls.to_string());
            plain(vars::SMTP_FROM, m.from.clone());
            if let Some(u) = &m.username {
                plain(vars::SMTP_USERNAME, u.clone());
            }
        }
        let mut secret = |name, value: &Secret| {
            out.push(EnvEntry {
                name,
                value: value.expose().to_owned(),
                secret: true,
            })
        };
        secret(vars::DATABASE_URL, &self.database.url);
        if let Some(u) = &self.database.replica_url {
            secret(vars::DATABASE_REPLICA_URL, u);
        }
        if let Some(u) = &self.database.migration_url {
            secret(vars::DATABASE_MIGRATION_URL, u);
        }
        if let Some(p) = &self.database.password {
            secret(vars::DATABASE_PASSWORD, p);
        }
        let joined = Secret::new(
            self.redis
                .urls
                .iter()
                .map(Secret::expose)
                .collect::<Vec<_>>()
                .join(","),
        );
        secret(vars::REDIS_URL, &joined);
        if let Some(p) = &self.redis.password {
            secret(vars::REDIS_PASSWORD, p);
        }
        if let Some(s) = &self.storage {
            secret(vars::S3_ACCESS_KEY_ID, &s.access_key_id);
            secret(vars::S3_SECRET_ACCESS_KEY, &s.secret_access_key);
        }
        if let Some(p) = self.search.as_ref().and_then(|s| s.password.as_ref()) {
            secret(vars::SEARCH_PASSWORD, p);
        }
        if let Some(p) = self.smtp.as_ref().and_then(|m| m.password.as_ref()) {
            secret(vars::SMTP_PASSWORD, p);
        }
        if let Some(k) = &self.secret_key_base {
            secret(vars::SECRET_KEY_BASE, k);
        }
        out
    }

    /// `render` as a map, convenient for `from_lookup` and for tests.
    pub fn render_map(&self) -> BTreeMap<&'static str, String> {
        self.render()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect()
    }
}

struct Reader<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    fn opt(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    fn req(&self, var: &'static str) -> Result<String, ConfigError> {
        self.opt(var).ok_or(ConfigError::Missing(var))
    }

    fn secret(&self, var: &'static str) -> Result<Secret, ConfigError> {
        self.req(var).map(Secret::new)
    }

    fn parsed<T, E: ToString>(
        &self,
        var: &'static str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ConfigError> {
        self.opt(var)
            .map(|v| parse(v.trim()).map_err(|e| self.invalid(var, e.to_string())))
            .transpose()
    }

    /// A retention in whole days, at least one.
    fn days(&self, var: &'static str, default: u64) -> Result<Duration, ConfigError> {
        match self.parsed(var, values::parse_num::<u64>)? {
            Some(0) => Err(self.invalid(var, "must be at least 1".into())),
            d => Ok(Duration::from_secs(d.unwrap_or(default) * 86400)),
        }
    }

    fn invalid(&self, var: &'static str, reason: String) -> ConfigError {
        let value = if vars::is_secret(var) {
            None
        } else {
            self.opt(var)
        };
        ConfigError::Invalid { var, value, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> ServerConfig {
        ServerConfig {
            domain: "social.example.com".into(),
            listen: "127.0.0.1:3001".parse().unwrap(),
            registrations: Registrations::Approval,
            database: DatabaseConfig {
                url: Secret::new("postgres://u:p@db-rw:5432/fedi"),
                replica_url: Some(Secret::new("postgres://u:p@db-ro:5432/fedi")),
                migration_url: Some(Secret::new("postgres://u:p@db-rw:5432/fedi")),
                password: Some(Secret::new("db-pass-q7")),
                max_connections: 25,
                replica_max_lag: Duration::from_secs(30),
            },
            redis: RedisConfig {
                mode: RedisMode::Cluster,
                urls: vec![
                    Secret::new("redis://r-0:6379"),
                    Secret::new("redis://r-1:6379"),
                ],
                password: Some(Secret::new("redis-pass-k2")),
            },
            storage: Some(StorageConfig {
                endpoint: "https://s3.example.net".into(),
                region: "eu-west-1".into(),
                bucket: "social-media".into(),
                path_style: false,
                public_url: Some("https://media.example.com".into()),
                access_key_id: Secret::new("AKIA"),
                secret_access_key: Secret::new("shh"),
            }),
            smtp: Some(SmtpConfig {
                host: "smtp.example.net".into(),
                port: 465,
                tls: SmtpTls::Tls,
                from: "notifications@example.com".into(),
                username: Some("mailer".into()),
                password: Some(Secret::new("mail-pass")),
            }),
            search: Some(SearchConfig {
                url: "https://search.example.net:9200".into(),
                prefix: "fedi".into(),
                username: Some("fedi".into()),
                password: Some(Secret::new("search-pass")),
            }),
            log_format: LogFormat::Json,
            secret_key_base: Some(Secret::new("9f".repeat(64))),
            rate_limits: RateLimitConfig {
                limits: RateLimitConfig::parse_limits("api=100/1m,statuses=off").unwrap(),
                trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            },
            worker: WorkerConfig {
                queues: vec![(Queue::Push, 4), (Queue::Ingress, 1)],
                concurrency: 32,
                scheduler: false,
                shutdown_grace: Duration::from_secs(50),
                heartbeat: Duration::from_secs(300),
            },
            orphaned_media_retention: Duration::from_secs(48 * 3600),
            media_cache_retention: Duration::from_secs(3 * 86400),
            preview_card_retention: Duration::from_secs(60 * 86400),
            maintenance_window: MaintenanceWindow::new(22, 30, 4),
            token_cache: Duration::from_secs(0),
            web_root: Some("/srv/web".into()),
            federation_allow_loopback: true,
            federation: FederationConfig {
                mode: FederationMode::Limited,
                domain_blocks: vec![DomainBlock {
                    domain: "spam.example".into(),
                    severity: DomainBlockSeverity::Silence,
                }],
                allowed_domains: vec!["friends.example".into(), "xn--bcher-kva.example".into()],
                authorized_fetch: true,
            },
        }
    }

    fn minimal_env() -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            (vars::DOMAIN, "example.org".to_string()),
            (vars::DATABASE_URL, "postgres://localhost/fedi".to_string()),
            (vars::REDIS_URL, "redis://localhost".to_string()),
        ])
    }

    fn parse(env: &BTreeMap<&'static str, String>) -> Result<ServerConfig, ConfigError> {
        ServerConfig::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn render_then_parse_is_identity() {
        for config in [full(), parse(&minimal_env()).unwrap()] {
            assert_eq!(parse(&config.render_map()).unwrap(), config);
        }
    }

    #[test]
    fn credentials_are_rendered_as_secrets_and_nothing_else_is() {
        let rendered = full().render();
        let secret: Vec<_> = rendered
            .iter()
            .filter(|e| e.secret)
            .map(|e| e.name)
            .collect();
        assert_eq!(
            secret,
            [
                vars::DATABASE_URL,
                vars::DATABASE_REPLICA_URL,
                vars::DATABASE_MIGRATION_URL,
                vars::DATABASE_PASSWORD,
                vars::REDIS_URL,
                vars::REDIS_PASSWORD,
                vars::S3_ACCESS_KEY_ID,
                vars::S3_SECRET_ACCESS_KEY,
                vars::SEARCH_PASSWORD,
                vars::SMTP_PASSWORD,
                vars::SECRET_KEY_BASE
            ]
        );
        for e in &rendered {
            assert_eq!(e.secret, vars::is_secret(e.name), "{}", e.name);
        }
    }

    #[test]
    fn defaults_apply_when_optional_settings_are_absent() {
        let c = parse(&minimal_env()).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(c.registrations, Registrations::Open);
        assert_eq!(c.redis.mode, RedisMode::Standalone);
        assert_eq!(c.database.max_connections, DEFAULT_DB_MAX_CONNECTIONS);
        assert_eq!(c.database.replica_max_lag, Duration::from_secs(10));
        assert!(c.storage.is_none() && c.smtp.is_none() && c.database.replica_url.is_none());
        assert!(c.database.password.is_none());
        assert_eq!(c.worker.queues.len(), 6);
        assert_eq!(c.worker.queues[0], (Queue::Default, 8));
        assert!(c.worker.scheduler && c.worker.concurrency == 10);
        assert_eq!(c.maintenance_window, None);
    }

    #[test]
    fn each_required_variable_is_named_when_missing() {
        for var in [vars::DOMAIN, vars::DATABASE_URL, vars::REDIS_URL] {
            let mut env = minimal_env();
            env.insert(var, "  ".into());
            assert_eq!(parse(&env), Err(ConfigError::Missing(var)));
        }
        let mut env = minimal_env();
        env.insert(vars::S3_BUCKET, "media".into());
        assert_eq!(parse(&env), Err(ConfigError::Missing(vars::S3_ENDPOINT)));
    }

    #[test]
    fn urls_are_https_unless_a_test_server_runs_on_loopback() {
        let mut c = full();
        c.federation_allow_loopback = true;
        assert_eq!(c.scheme(), "https", "a public domain, whatever the setting");
        c.domain = "127.0.0.1:3000".into();
        assert_eq!(c.scheme(), "http");
        c.federation_allow_loopback = false;
        assert_eq!(c.scheme(), "https", "loopback alone is not enough");
        for loopback in ["127.0.0.1:8080", "localhost", "[::1]:3000", "127.1.2.3"] {
            assert!(is_loopback_domain(loopback), "{loopback}");
        }
        for other in ["m.example", "10.0.0.1:80", "localhost.example"] {
            assert!(!is_loopback_domain(other), "{other}");
        }
    }

    #[test]
    fn invalid_values_name_the_variable_and_the_expected_form() {
        let cases = [
            (vars::REGISTRATIONS, "sometimes", "open, approval or closed"),
            (vars::LISTEN, "localhost", "invalid socket address"),
            (vars::DATABASE_MAX_CONNECTIONS, "-1", "invalid digit"),
            (vars::DATABASE_REPLICA_MAX_LAG, "1.5", "invalid digit"),
            (vars::S3_PATH_STYLE, "maybe", "true/false"),
            (vars::DOMAIN, "https://example.org/", "bare host name"),
            (vars::DOMAIN, "Example.ORG.", "lower case"),
            (vars::SECRET_KEY_BASE, "short", "at least 32 characters"),
            (vars::RATE_LIMITS, "api=300", "REQUESTS/PERIOD"),
            (vars::TRUSTED_PROXIES, "proxy.local", "CIDR range"),
            (
                vars::WORKER_QUEUES,
                "default:8,inbox",
                "expected default, push",
            ),
            (vars::WORKER_CONCURRENCY, "0", "at least 1"),
            (vars::WORKER_SCHEDULER, "sometimes", "true/false"),
            (vars::WORKER_HEARTBEAT, "0", "at least 1"),
            (vars::ORPHANED_MEDIA_RETENTION, "0", "at least 1"),
            (vars::MEDIA_CACHE_RETENTION, "0", "at least 1"),
            (vars::PREVIEW_CARD_RETENTION, "0", "at least 1"),
            (vars::MAINTENANCE_WINDOW, "3am", "HH:MM+Nh"),
            (vars::TOKEN_CACHE, "1m", "invalid digit"),
            (vars::MAINTENANCE_WINDOW, "03:00+30h", "1 to 24 hours"),
            (vars::FEDERATION_MODE, "closed", "open or limited"),
            (
                vars::FEDERATION_DOMAIN_BLOCKS,
                "a.example=ban",
                "suspend, silence",
            ),
            (
                vars::FEDERATION_ALLOWED_DOMAINS,
                "https://a.example/",
                "not a domain",
            ),
            (vars::FEDERATION_AUTHORIZED_FETCH, "sometimes", "true/false"),
        ];
        for (var, value, expected) in cases {
            let mut env = full().render_map();
            env.insert(var, value.into());
            let err = parse(&env).unwrap_err().to_string();
            assert!(err.starts_with(var), "{err}");
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }

    #[test]
    fn secrets_never_reach_debug_output_or_errors() {
        let c = full();
        let debug = format!("{c:?}");
        for e in c.render().iter().filter(|e| e.secret) {
            assert!(!debug.contains(&e.value), "{} leaked into Debug", e.name);
        }
        let mut env = minimal_env();
        env.insert(vars::REDIS_URL, ",".into());
        env.insert(vars::DATABASE_URL, "postgres://user:hunter2@db/fedi".into());
        let c = parse(&env).unwrap();
        assert!(c.redis.urls.is_empty());
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
