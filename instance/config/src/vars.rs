//! Names of the environment variables the server reads. The operator renders exactly these.

pub const DOMAIN: &str = "FEDI_DOMAIN";
pub const LISTEN: &str = "FEDI_LISTEN";
pub const REGISTRATIONS: &str = "FEDI_REGISTRATIONS";
pub const LOG_FORMAT: &str = "FEDI_LOG_FORMAT";
pub const DATABASE_URL: &str = "FEDI_DATABASE_URL";
pub const DATABASE_REPLICA_URL: &str = "FEDI_DATABASE_REPLICA_URL";
/// The primary reached directly, for migrations, when `DATABASE_URL` goes through a
/// transaction pooler (PgBouncer): migrations hold session-level advisory locks.
pub const DATABASE_MIGRATION_URL: &str = "FEDI_DATABASE_MIGRATION_URL";
/// Password for the database URLs, when they do not carry one (external databases whose
/// password lives in the user's own Secret).
pub const DATABASE_PASSWORD: &str = "FEDI_DATABASE_PASSWORD";
pub const DATABASE_MAX_CONNECTIONS: &str = "FEDI_DATABASE_MAX_CONNECTIONS";
/// Whole seconds the replica may lag behind the primary before reads go to the primary.
pub const DATABASE_REPLICA_MAX_LAG: &str = "FEDI_DATABASE_REPLICA_MAX_LAG_SECONDS";
pub const REDIS_MODE: &str = "FEDI_REDIS_MODE";
/// One URL, or a comma-separated list of seed nodes in cluster mode.
pub const REDIS_URL: &str = "FEDI_REDIS_URL";
/// Password for every Redis URL, when they do not carry one (the managed Redis keeps it in
/// its own Secret, so that the URLs can follow the spec).
pub const REDIS_PASSWORD: &str = "FEDI_REDIS_PASSWORD";
pub const S3_ENDPOINT: &str = "FEDI_S3_ENDPOINT";
pub const S3_REGION: &str = "FEDI_S3_REGION";
pub const S3_BUCKET: &str = "FEDI_S3_BUCKET";
pub const S3_PATH_STYLE: &str = "FEDI_S3_PATH_STYLE";
pub const S3_PUBLIC_URL: &str = "FEDI_S3_PUBLIC_URL";
pub const S3_ACCESS_KEY_ID: &str = "FEDI_S3_ACCESS_KEY_ID";
pub const S3_SECRET_ACCESS_KEY: &str = "FEDI_S3_SECRET_ACCESS_KEY";
/// OpenSearch (or Elasticsearch) for full-text search; PostgreSQL's when unset.
pub const SEARCH_URL: &str = "FEDI_SEARCH_URL";
pub const SEARCH_USERNAME: &str = "FEDI_SEARCH_USERNAME";
pub const SEARCH_PASSWORD: &str = "FEDI_SEARCH_PASSWORD";
/// Prefix of the index names, so that instances can share one cluster; `fedi` when unset.
pub const SEARCH_PREFIX: &str = "FEDI_SEARCH_PREFIX";
pub const SMTP_HOST: &str = "FEDI_SMTP_HOST";
pub const SMTP_PORT: &str = "FEDI_SMTP_PORT";
pub const SMTP_TLS: &str = "FEDI_SMTP_TLS";
pub const SMTP_FROM: &str = "FEDI_SMTP_FROM";
pub const SMTP_USERNAME: &str = "FEDI_SMTP_USERNAME";
pub const SMTP_PASSWORD: &str = "FEDI_SMTP_PASSWORD";
/// Per-group API rate limits over Mastodon's defaults, as `sign_up=10/1h,api=off`.
pub const RATE_LIMITS: &str = "FEDI_RATE_LIMITS";
/// Proxies (addresses or CIDR ranges, or `none`) whose `X-Forwarded-For` names the client;
/// loopback and the private ranges by default.
pub const TRUSTED_PROXIES: &str = "FEDI_TRUSTED_PROXIES";

/// The instance's own keys, generated once by the operator (or the user's `existingSecret`).
/// Signs and encrypts session cookies.
pub const SECRET_KEY_BASE: &str = "FEDI_SECRET_KEY_BASE";
/// Signs OAuth access tokens.
pub const OAUTH_SIGNING_KEY: &str = "FEDI_OAUTH_SIGNING_KEY";
/// Encrypts sensitive columns (two-factor secrets) at rest.
pub const ENCRYPTION_KEY: &str = "FEDI_ENCRYPTION_KEY";
/// Web Push (VAPID) key pair: the private key as base64 PKCS#8, the public key as the
/// base64url uncompressed P-256 point that browsers are given.
pub const VAPID_PRIVATE_KEY: &str = "FEDI_VAPID_PRIVATE_KEY";
pub const VAPID_PUBLIC_KEY: &str = "FEDI_VAPID_PUBLIC_KEY";

/// Api role: the directory of the built web client (`index.html`, `assets/`); the image
/// ships it at `DEFAULT_WEB_ROOT`.
pub const WEB_ROOT: &str = "FEDI_WEB_ROOT";

/// Worker role: the queues it polls with their weights, as `default:8,push:4` (a missing
/// weight is 1). Unset: every queue at Mastodon's weights (default 8, ingress 6, push 4,
/// mailers 2, pull 2, scheduler 1). The worker serves `/health`, `/readyz` and `/metrics` on
/// `FEDI_LISTEN`.
pub const WORKER_QUEUES: &str = "FEDI_WORKER_QUEUES";
/// Worker role: jobs run at once per process (default 10); give the process at least as
/// many database connections (`FEDI_DATABASE_MAX_CONNECTIONS`).
pub const WORKER_CONCURRENCY: &str = "FEDI_WORKER_CONCURRENCY";
/// Worker role: `true` (the default) in the one pool that runs periodic jobs; its replicas
/// elect one scheduler at a time through a lock with an expiry in Redis.
pub const WORKER_SCHEDULER: &str = "FEDI_WORKER_SCHEDULER";
/// Worker role: whole seconds in-flight jobs get to finish after SIGTERM before they are
/// put back on their queue (default 25: below the pod's termination grace period, 30 s by
/// default).
pub const WORKER_SHUTDOWN_GRACE: &str = "FEDI_WORKER_SHUTDOWN_GRACE_SECONDS";
/// Api role: whole seconds a verified bearer token is kept in memory (default 60; 0: never,
/// every request asks PostgreSQL). Revocations reach the cache through PostgreSQL
/// notifications at once; this only bounds how long an unused entry stays. The streamer
/// hears the same notifications to close revoked tokens' connections at once; with 0 it
/// does not listen and re-checks every 15 s only.
pub const TOKEN_CACHE: &str = "FEDI_TOKEN_CACHE_SECONDS";

/// Worker role: whole seconds between runs of the scheduler's heartbeat job (default 60),
/// whose last run `/metrics` reports (`fedi_jobs_scheduler_heartbeat_timestamp_seconds`).
pub const WORKER_HEARTBEAT: &str = "FEDI_WORKER_HEARTBEAT_SECONDS";

/// Worker role: whole hours after which media uploaded but never attached to a status
/// are deleted from the bucket and the database (Mastodon keeps them a day).
pub const ORPHANED_MEDIA_RETENTION: &str = "FEDI_ORPHANED_MEDIA_RETENTION_HOURS";

/// Worker role: whole days after which copies of remote media in the bucket's cache prefix
/// are deleted (the attachment is served from its server again). Keep it below the
/// bucket's lifecycle expiry of that prefix, or attachments point at expired objects.
pub const MEDIA_CACHE_RETENTION: &str = "FEDI_MEDIA_CACHE_RETENTION_DAYS";

/// Worker role: whole days after which a link preview's cached image is deleted (the card
/// stays, without its image), as Mastodon's `tootctl preview_cards remove`.
pub const PREVIEW_CARD_RETENTION: &str = "FEDI_PREVIEW_CARD_RETENTION_DAYS";

/// Worker role: the daily UTC window in which the maintenance sweeps above may start,
/// `HH:MM+Nh` (`03:00+3h`: from 03:00 to 06:00 UTC; may cross midnight). Unset: any time.
pub const MAINTENANCE_WINDOW: &str = "FEDI_MAINTENANCE_WINDOW";

/// Tests only: lets federation fetch loopback addresses over plain HTTP (two servers, or a
/// test "remote server", on 127.0.0.1). Every other private address stays refused.
pub const FEDERATION_ALLOW_LOOPBACK: &str = "FEDI_FEDERATION_ALLOW_LOOPBACK";

/// `open` (default) or `limited` (only `FEDERATION_ALLOWED_DOMAINS` federate).
pub const FEDERATION_MODE: &str = "FEDI_FEDERATION_MODE";
/// Instance domain blocks, comma-separated: `domain` (suspended) or `domain=severity`
/// (`suspend`, `silence`, `reject_media`); subdomains included.
pub const FEDERATION_DOMAIN_BLOCKS: &str = "FEDI_FEDERATION_DOMAIN_BLOCKS";
/// Limited mode: the domains federated with, comma-separated; subdomains included.
pub const FEDERATION_ALLOWED_DOMAINS: &str = "FEDI_FEDERATION_ALLOWED_DOMAINS";
/// Secure mode (`true`/`false`): actors, statuses and collections only for signed GETs.
pub const FEDERATION_AUTHORIZED_FETCH: &str = "FEDI_FEDERATION_AUTHORIZED_FETCH";

/// Variables whose values are credentials (URLs carry passwords): they come from Secrets
/// and are never echoed in an error.
pub const SECRET: &[&str] = &[
    DATABASE_URL,
    DATABASE_REPLICA_URL,
    DATABASE_MIGRATION_URL,
    DATABASE_PASSWORD,
    REDIS_URL,
    REDIS_PASSWORD,
    S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY,
    SEARCH_PASSWORD,
    SMTP_PASSWORD,
    SECRET_KEY_BASE,
    OAUTH_SIGNING_KEY,
    ENCRYPTION_KEY,
    VAPID_PRIVATE_KEY,
];

pub fn is_secret(var: &str) -> bool {
    SECRET.contains(&var)
}
