//! The data services an instance runs on. Each is either `managed` (the operator runs it)
//! or `external` (the user points at one): exactly one of the two, checked at admission.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyRef;

/// A persistent volume claim's size and class.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of the volume, such as `20Gi`.
    pub size: Quantity,
    /// StorageClass of the volume; the cluster's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

fn storage(size: &str) -> StorageSpec {
    StorageSpec {
        size: Quantity(size.into()),
        storage_class_name: None,
    }
}

// ---------------------------------------------------------------- PostgreSQL

/// PostgreSQL: `managed` (through CloudNativePG) or `external`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("set exactly one of database.managed and database.external"))]
pub struct DatabaseSpec {
    /// A PostgreSQL cluster run by CloudNativePG: a primary and hot standbys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabase>,
    /// An existing PostgreSQL server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
}

impl Default for DatabaseSpec {
    fn default() -> Self {
        Self {
            managed: Some(ManagedDatabase::default()),
            external: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDatabase {
    /// PostgreSQL instances: one primary plus `instances - 1` hot standbys that serve reads.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 9))]
    pub instances: i32,
    /// The volume of each instance.
    #[serde(default = "default_db_storage")]
    pub storage: StorageSpec,
    /// CPU and memory of each instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// PostgreSQL parameters (`postgresql.conf`), such as `shared_buffers`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// PgBouncer in transaction mode between the server and the primary. Migrations bypass
    /// it (they need a session).
    #[serde(default)]
    pub pooler: PoolerSpec,
    /// Base backups and continuous WAL archiving to an object store. No backups when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<DatabaseBackup>,
}

impl Default for ManagedDatabase {
    fn default() -> Self {
        Self {
            instances: 1,
            storage: default_db_storage(),
            resources: None,
            parameters: BTreeMap::new(),
            pooler: PoolerSpec::default(),
            backup: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolerSpec {
    /// PgBouncer pods.
    #[serde(default = "two")]
    #[schemars(range(min = 1, max = 10))]
    pub instances: i32,
    /// Client connections each PgBouncer accepts (`max_client_conn`).
    #[serde(default = "default_max_client_conn")]
    #[schemars(range(min = 10, max = 100000))]
    pub max_client_connections: i32,
    /// Server connections per database and user (`default_pool_size`): what PostgreSQL sees,
    /// per PgBouncer pod.
    #[serde(default = "default_pool_size")]
    #[schemars(range(min = 1, max = 1000))]
    pub default_pool_size: i32,
}

impl Default for PoolerSpec {
    fn default() -> Self {
        Self {
            instances: 2,
            max_client_connections: default_max_client_conn(),
            default_pool_size: default_pool_size(),
        }
    }
}

fn two() -> i32 {
    2
}

fn default_max_client_conn() -> i32 {
    1000
}

fn default_pool_size() -> i32 {
    20
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseBackup {
    /// When base backups run: a six-field cron expression with seconds, as CloudNativePG
    /// takes it, such as `0 0 3 * * *` (03:00 every day).
    #[serde(default = "default_backup_schedule")]
    #[schemars(length(min = 11, max = 100))]
    pub schedule: String,
    /// Where backups go, such as `s3://backups/social`.
    #[schemars(length(min = 6, max = 512), regex(pattern = r"^s3://"))]
    pub destination_path: String,
    /// The S3 endpoint, for stores other than AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^https?://"))]
    pub endpoint_url: Option<String>,
    /// Secret with the keys `accessKeyId` and `secretAccessKey`.
    pub credentials_secret_ref: SecretName,
    /// How long backups are kept, such as `30d`, `4w` or `6m`.
    #[serde(default = "default_retention")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*[dwm]$"))]
    pub retention_policy: String,
}

fn default_backup_schedule() -> String {
    "0 0 3 * * *".into()
}

fn default_retention() -> String {
    "30d".into()
}

fn default_db_storage() -> StorageSpec {
    storage("10Gi")
}

fn one() -> i32 {
    1
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    /// Host of the primary (read-write) server.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Port of the server.
    #[serde(default = "default_pg_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Database name.
    #[schemars(length(min = 1, max = 63))]
    pub database: String,
    /// User name.
    #[schemars(length(min = 1, max = 63))]
    pub user: String,
    /// The user's password, from a Secret.
    pub password_secret_ref: SecretKeyRef,
    /// libpq `sslmode`: `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
    #[serde(default)]
    pub sslmode: SslMode,
    /// Hot standbys for read-only queries; reads fall back to the primary when they are
    /// down or lagging.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 253)))]
    pub replica_hosts: Vec<String>,
}

fn default_pg_port() -> i32 {
    5432
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

// ---------------------------------------------------------------- Redis

/// Redis: `managed` or `external`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("set exactly one of redis.managed and redis.external"))]
pub struct RedisSpec {
    /// Redis run by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedRedis>,
    /// An existing Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRedis>,
}

impl Default for RedisSpec {
    fn default() -> Self {
        Self {
            managed: Some(ManagedRedis::default()),
            external: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRedis {
    /// `standalone` (a primary and replicas) for small instances, or `cluster`.
    #[serde(default)]
    pub mode: RedisMode,
    /// Cluster mode: number of primaries the key space is split across.
    #[serde(default = "default_shards")]
    #[schemars(range(min = 1, max = 64))]
    pub shards: i32,
    /// Replicas of each primary.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 5))]
    pub replicas_per_shard: i32,
    /// Volume of each node (Redis persists the job queue).
    #[serde(default = "default_redis_storage")]
    pub storage: StorageSpec,
    /// CPU and memory of each node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ManagedRedis {
    fn default() -> Self {
        Self {
            mode: RedisMode::Standalone,
            shards: default_shards(),
            replicas_per_shard: 1,
            storage: default_redis_storage(),
            resources: None,
        }
    }
}

fn default_shards() -> i32 {
    3
}

fn default_redis_storage() -> StorageSpec {
    storage("2Gi")
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RedisMode {
    #[default]
    Standalone,
    Cluster,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRedis {
    /// `standalone` or `cluster`.
    #[serde(default)]
    pub mode: RedisMode,
    /// The Redis URL (`redis://` or `rediss://`, with its password), from a Secret. In
    /// cluster mode, a comma-separated list of seed nodes.
    pub url_secret_ref: SecretKeyRef,
}

// ---------------------------------------------------------------- S3

/// Object storage for media: `managed` or `external`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("set exactly one of objectStorage.managed and objectStorage.external"))]
pub struct ObjectStorageSpec {
    /// An S3-compatible store run by the operator inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedObjectStorage>,
    /// An existing S3-compatible service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalObjectStorage>,
}

impl Default for ObjectStorageSpec {
    fn default() -> Self {
        Self {
            managed: Some(ManagedObjectStorage::default()),
            external: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedObjectStorage {
    /// The store's volume.
    #[serde(default = "default_media_storage")]
    pub storage: StorageSpec,
    /// CPU and memory of the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ManagedObjectStorage {
    fn default() -> Self {
        Self {
            storage: default_media_storage(),
            resources: None,
        }
    }
}

fn default_media_storage() -> StorageSpec {
    storage("20Gi")
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalObjectStorage {
    /// The S3 endpoint URL, such as `https://s3.eu-west-1.amazonaws.com`.
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^https?://"))]
    pub endpoint: String,
    /// The region to sign requests for.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// The bucket for media; the operator creates it when missing.
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub bucket: String,
    /// Path-style URLs (`endpoint/bucket/key`) instead of virtual hosts; most self-hosted
    /// stores want this.
    #[serde(default)]
    pub path_style: bool,
    /// Where browsers load media from: a CDN or the bucket's public URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^https?://"))]
    pub public_url: Option<String>,
    /// Secret with the keys `accessKeyId` and `secretAccessKey`.
    pub credentials_secret_ref: SecretName,
    /// Days after which cached media of remote servers expires from the bucket.
    #[serde(default = "default_cache_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub remote_media_cache_days: i32,
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_cache_days() -> i32 {
    30
}

/// A Secret in the FediInstance's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretName {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

// ---------------------------------------------------------------- search

/// Full-text search: `managed` (OpenSearch) or `external`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("set exactly one of search.managed and search.external"))]
pub struct SearchSpec {
    /// An OpenSearch cluster run by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedSearch>,
    /// An existing OpenSearch or Elasticsearch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalSearch>,
    /// Prefix of the index names (`<prefix>-statuses`, ...), so that several instances can
    /// share one cluster. Default: `<namespace>_<name>` of this FediInstance, which no other
    /// instance has (neither part may contain `_`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), regex(pattern = r"^[a-z0-9][a-z0-9._-]*$"))]
    pub index_prefix: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedSearch {
    /// OpenSearch nodes.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 15))]
    pub replicas: i32,
    /// Volume of each node.
    #[serde(default = "default_search_storage")]
    pub storage: StorageSpec,
    /// JVM heap of each node, such as `1g`; give the container about twice as much memory.
    #[serde(default = "default_heap")]
    #[schemars(regex(pattern = r"^[0-9]+[mg]$"))]
    pub heap: String,
    /// CPU and memory of each node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn default_search_storage() -> StorageSpec {
    storage("10Gi")
}

fn default_heap() -> String {
    "1g".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSearch {
    /// The cluster's URL.
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^https?://"))]
    pub url: String,
    /// Secret with the keys `username` and `password`, if the cluster wants them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretName>,
}
