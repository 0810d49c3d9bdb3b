//! Connections shared by every request: the PostgreSQL pools (see `db`) and Redis.
//!
//! Both connect lazily, so a pod starts and reports "not ready" while a dependency is down,
//! instead of crash-looping; readiness probes then tell Kubernetes when to send traffic.

use fedi_config::{RedisMode, ServerConfig};
use redis::IntoConnectionInfo;
use redis::aio::ConnectionManager;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use tokio::sync::OnceCell;

use crate::db::Database;
use crate::redis_keys::Namespace;

#[derive(Clone)]
pub struct AppState {
    /// `db.primary()` for writes, `db.reader()` for reads that tolerate replica lag.
    pub db: Database,
    pub redis: std::sync::Arc<Redis>,
    pub config: std::sync::Arc<ServerConfig>,
    /// The media bucket, when one is configured.
    pub storage: Option<std::sync::Arc<crate::storage::Storage>>,
    /// Verified bearer tokens; served only where `auth::token_changes` runs (the api).
    pub tokens: std::sync::Arc<crate::auth::token_cache::TokenCache>,
}

impl AppState {
    /// Inside a Tokio runtime: the database's replica health task starts here.
    pub fn new(config: &ServerConfig) -> anyhow::Result<Self> {
        Ok(Self {
            db: Database::connect_lazy(&config.database)?,
            redis: std::sync::Arc::new(Redis::new(config)?),
            config: std::sync::Arc::new(config.clone()),
            storage: config
                .storage
                .as_ref()
                .map(|s| std::sync::Arc::new(crate::storage::Storage::new(s))),
            tokens: std::sync::Arc::new(crate::auth::token_cache::TokenCache::new(
                config.token_cache,
            )),
        })
    }

    /// `https://<domain>`: the base of every URL the server gives out (plain `http` only
    /// for test servers on loopback, see `ServerConfig::scheme`).
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.config.scheme(), self.config.domain)
    }

    /// `wss://<domain>`: where clients open the streaming API (`ws` beside plain `http`).
    pub fn streaming_url(&self) -> String {
        let scheme = match self.config.scheme() {
            "http" => "ws",
            _ => "wss",
        };
        format!("{scheme}://{}", self.config.domain)
    }
}

/// The connection settings of every `FEDI_REDIS_URL`, with `FEDI_REDIS_PASSWORD` applied
/// (kept apart from the URLs so that it can come from its own Secret key).
pub fn connection_infos(config: &ServerConfig) -> anyhow::Result<Vec<redis::ConnectionInfo>> {
    config
        .redis
        .urls
        .iter()
        .map(|u| {
            let info = u.expose().into_connection_info().map_err(invalid_url)?;
            Ok(match &config.redis.password {
                Some(p) => {
                    let settings = info.redis_settings().clone().set_password(p.expose());
                    info.set_redis_settings(settings)
                }
                None => info,
            })
        })
        .collect()
}

/// A refused Redis URL, named by its setting and never quoted: it may hold a password.
pub fn invalid_url(e: redis::RedisError) -> anyhow::Error {
    anyhow::anyhow!("FEDI_REDIS_URL is not a valid Redis URL: {:?}", e.kind())
}

/// Redis in either deployment mode; callers do not care which.
// One per process, behind an Arc: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Redis {
    Standalone {
        client: redis::Client,
        conn: OnceCell<ConnectionManager>,
        keys: Namespace,
    },
    Cluster {
        client: ClusterClient,
        conn: OnceCell<ClusterConnection>,
        keys: Namespace,
    },
}

impl Redis {
    fn new(config: &ServerConfig) -> anyhow::Result<Self> {
        let urls = connection_infos(config)?;
        Ok(match config.redis.mode {
            RedisMode::Standalone => {
                let [url] = <[_; 1]>::try_from(urls).map_err(|urls| {
                    anyhow::anyhow!(
                        "FEDI_REDIS_URL must hold exactly one URL in standalone mode, found {}",
                        urls.len()
                    )
                })?;
                Self::Standalone {
                    client: redis::Client::open(url).map_err(invalid_url)?,
                    conn: OnceCell::new(),
                    keys: Namespace::new(&config.domain),
                }
            }
            RedisMode::Cluster => Self::Cluster {
                client: ClusterClient::new(urls).map_err(invalid_url)?,
                conn: OnceCell::new(),
                keys: Namespace::new(&config.domain),
            },
        })
    }

    /// This instance's namespace: every key and channel goes through it.
    pub fn keys(&self) -> &Namespace {
        match self {
            Redis::Standalone { keys, .. } | Redis::Cluster { keys, .. } => keys,
        }
    }

    /// Runs one single-key command (so a cluster routes it by that key; a script's keys must
    /// share a hash slot), connecting first if needed.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Redis::Standalone { client, conn, .. } => {
                let mut c = conn
                    .get_or_try_init(|| ConnectionManager::new(client.clone()))
                    .await?
                    .clone();
                cmd.query_async(&mut c).await
            }
            Redis::Cluster { client, conn, .. } => {
                let mut c = conn
                    .get_or_try_init(|| client.get_async_connection())
                    .await?
                    .clone();
                cmd.query_async(&mut c).await
            }
        }
    }

    /// Runs `pipe` in one round trip on a standalone server. A cluster routes a pipeline to
    /// one slot's node only, so callers that span keys of several slots send their commands
    /// one by one there (see `Redis::Cluster`).
    pub async fn pipeline<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> redis::RedisResult<T> {
        match self {
            Redis::Standalone { client, conn, .. } => {
                let mut c = conn
                    .get_or_try_init(|| ConnectionManager::new(client.clone()))
                    .await?
                    .clone();
                pipe.query_async(&mut c).await
            }
            Redis::Cluster { client, conn, .. } => {
                let mut c = conn
                    .get_or_try_init(|| client.get_async_connection())
                    .await?
                    .clone();
                pipe.query_async(&mut c).await
            }
        }
    }

    /// `SET key value EX ttl`, with `NX` when `only_if_absent`: whether the key was set
    /// (false: `NX` and the key existed). Idempotency keys and other "first one wins"
    /// markers are built on it.
    pub async fn set_ex(
        &self,
        key: &str,
        value: &str,
        ttl: std::time::Duration,
        only_if_absent: bool,
    ) -> redis::RedisResult<bool> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("EX").arg(ttl.as_secs().max(1));
        if only_if_absent {
            cmd.arg("NX");
        }
        // "OK" when set, nil when NX found the key.
        Ok(self.query::<Option<String>>(&cmd).await?.is_some())
    }

    /// `EVAL script` over `keys` (which must share a hash slot on a cluster: give them one
    /// `{hash tag}`) with `args`. Routed by the first key.
    pub async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &str,
        keys: &[&str],
        args: &[String],
    ) -> redis::RedisResult<T> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
        self.query(&cmd).await
    }

    /// `GET key`.
    pub async fn get(&self, key: &str) -> redis::RedisResult<Option<String>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.query(&cmd).await
    }

    /// `DEL key` (one key: in a cluster, several could live on different nodes).
    pub async fn del(&self, key: &str) -> redis::RedisResult<()> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key);
        self.query::<i64>(&cmd).await.map(drop)
    }

    /// Adds `ids` to the sorted set `key`, each scored by itself, then keeps the `cap`
    /// highest. With `only_if_exists`, a missing key stays missing: a feed that was never
    /// built (or was evicted) must be rebuilt whole, not started from one entry that would
    /// hide the rest. One key, one script: atomic, and routed by that key in a cluster.
    /// Whether the set was written.
    pub async fn zadd_capped(
        &self,
        key: &str,
        ids: &[i64],
        cap: usize,
        only_if_exists: bool,
    ) -> redis::RedisResult<bool> {
        const SCRIPT: &str = "\
            if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
            for i = 3, #ARGV do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i]) end \
            redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[1]) + 1)) \
            return 1";
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT)
            .arg(1)
            .arg(key)
            .arg(cap)
            .arg(if only_if_exists { "1" } else { "0" });
        for id in ids {
            cmd.arg(id);
        }
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    /// Members of the sorted set `key` (numbers) with scores within `[low, high]`, at most
    /// `count`, highest first unless `ascending`. Bounds are inclusive on purpose: scores are
    /// doubles, exact only up to 2^53, so callers compare the (exact) members themselves.
    pub async fn zrange_by_score(
        &self,
        key: &str,
        low: Option<i64>,
        high: Option<i64>,
        count: usize,
        ascending: bool,
    ) -> redis::RedisResult<Vec<i64>> {
        let low = low.map_or("-inf".to_string(), |v| v.to_string());
        let high = high.map_or("+inf".to_string(), |v| v.to_string());
        let mut cmd = if ascending {
            let mut c = redis::cmd("ZRANGEBYSCORE");
            c.arg(key).arg(low).arg(high);
            c
        } else {
            let mut c = redis::cmd("ZREVRANGEBYSCORE");
            c.arg(key).arg(high).arg(low);
            c
        };
        cmd.arg("LIMIT").arg(0).arg(count);
        self.query(&cmd).await
    }

    /// Every member of the sorted set `key` (numbers).
    pub async fn zmembers(&self, key: &str) -> redis::RedisResult<Vec<i64>> {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(key).arg(0).arg(-1);
        self.query(&cmd).await
    }

    /// `ZREM key ids...`.
    pub async fn zrem(&self, key: &str, ids: &[i64]) -> redis::RedisResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(key);
        for id in ids {
            cmd.arg(id);
        }
        self.query::<i64>(&cmd).await.map(drop)
    }

    /// `PUBLISH channel message`. In a cluster the node that takes it broadcasts it to every
    /// node: `events::publish` uses it there only when the cluster lacks sharded pub/sub.
    pub async fn publish(&self, channel: &str, message: &str) -> redis::RedisResult<()> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(message);
        self.query::<i64>(&cmd).await.map(drop)
    }

    /// `EXISTS key`.
    pub async fn exists(&self, key: &str) -> redis::RedisResult<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(key);
        Ok(self.query::<i64>(&cmd).await? == 1)
    }

    /// PING, connecting first if needed. Both connection types reconnect by themselves
    /// once established.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let cmd = redis::cmd("PING");
        match self {
            Redis::Standalone { client, conn, .. } => {
                let mut c = conn
                    .get_or_try_init(|| ConnectionManager::new(client.clone()))
                    .await?
                    .clone();
                cmd.query_async::<String>(&mut c).await.map(drop)
            }
            Redis::Cluster { client, conn, .. } => {
                let mut c = conn
                    .get_or_try_init(|| client.get_async_connection())
                    .await?
                    .clone();
                cmd.query_async::<String>(&mut c).await?;
                // PING alone stays green with a master dead: redis 1.8 sends it to the
                // masters it still has a connection to and skips the others, while the
                // cluster answers CLUSTERDOWN to every keyed command until a replica takes
                // over, or forever if none can (tests/redis_failover.rs). The cluster's own
                // verdict covers that.
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut c)
                    .await?;
                if info.lines().any(|l| l.trim() == "cluster_state:ok") {
                    Ok(())
                } else {
                    Err((
                        redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
                        "cluster_state is not ok",
                    )
                        .into())
                }
            }
        }
    }
}
