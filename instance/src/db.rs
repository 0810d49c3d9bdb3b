//! PostgreSQL: the primary for writes, and an optional hot standby for reads.
//!
//! Whether reads may use the standby is decided by a background task, never in the request
//! path: a standby that is down, hangs or lags costs requests nothing but the primary's
//! share of the load. Until its first successful check, reads go to the primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fedi_config::{DatabaseConfig, vars};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, PgPool, Postgres, Transaction};
use tokio::task::AbortHandle;
use tokio::time::{MissedTickBehavior, timeout};
use tracing::{info, warn};

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// A pooled connection idle this long is pinged before it is used (see `connect_lazy`).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(10);
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Well under the interval, so a hanging standby is noticed within about two seconds.
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// The pools of one process, plus one connection of its own to the standby for the health
/// task. Cloning is cheap; the health task stops with the last clone.
#[derive(Clone)]
pub struct Database {
    primary: PgPool,
    replica: Option<Arc<Replica>>,
}

struct Replica {
    pool: PgPool,
    usable: Arc<AtomicBool>,
    task: AbortHandle,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Database {
    /// Connects lazily, so that the process starts while PostgreSQL is down. Must be called
    /// inside a Tokio runtime (the pools and the health task are spawned on it).
    pub fn connect_lazy(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let pool = |options| {
            PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // sqlx pings every connection it hands out by default: one more round trip
                // per query, four more on a home timeline page. Only a connection left idle
                // a while (which a proxy or the server may have closed) is checked first;
                // one broken while busy fails its query and is dropped, as it would anyway.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_IF_IDLE_FOR {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_lazy_with(options)
        };
        let primary = pool(primary_options(config)?);
        let replica = match replica_options(config)? {
            None => None,
            Some(options) => {
                let pool = pool(options.clone());
                let usable = Arc::new(AtomicBool::new(false));
                let task = tokio::spawn(watch_replica(
                    primary.clone(),
                    options,
                    usable.clone(),
                    config.replica_max_lag,
                ))
                .abort_handle();
                Some(Arc::new(Replica { pool, usable, task }))
            }
        };
        Ok(Self { primary, replica })
    }

    /// For writes, and for reads that must see the caller's own writes.
    pub fn primary(&self) -> &PgPool {
        &self.primary
    }

    /// A transaction on the primary, begun whatever happens to the caller's future.
    ///
    /// sqlx 0.9's `begin` dropped between sending BEGIN and reading the answer leaves the
    /// connection inside that transaction (its rollback guard still sees depth 0): the
    /// connection goes back to the pool, every later statement on it joins the transaction,
    /// its locks are never released and the pool ends up waiting on them. A request's future
    /// is dropped at any await when its client goes away. Begun in a task of its own, the
    /// BEGIN completes, and a transaction nobody receives is dropped, which rolls it back.
    /// (To see whether a later sqlx still leaks: drop `pool.begin()` after 1..200 polls,
    /// as tests/db_transactions.rs does with this one, and look for a transaction older
    /// than the next statement; commit afea57d had that check as a test, removed because a
    /// race it must win is no gate for CI: under load it once missed in 200 tries.)
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let pool = self.primary.clone();
        match tokio::spawn(async move { pool.begin().await }).await {
            Ok(begun) => begun,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only when the runtime shuts down.
            Err(_) => Err(sqlx::Error::PoolClosed),
        }
    }

    /// For reads that tolerate the configured lag: the standby while it is usable, else the
    /// primary. Never waits.
    pub fn reader(&self) -> &PgPool {
        match &self.replica {
            Some(r) if r.usable.load(Ordering::Relaxed) => &r.pool,
            _ => &self.primary,
        }
    }

    /// Whether `reader` currently returns the standby.
    pub fn replica_in_use(&self) -> bool {
        self.replica
            .as_ref()
            .is_some_and(|r| r.usable.load(Ordering::Relaxed))
    }
}

/// Connection options of the primary. A separately given password (external databases keep
/// it in the user's own Secret) wins over one in the URL.
pub fn primary_options(db: &DatabaseConfig) -> anyhow::Result<PgConnectOptions> {
    parse_options(db.url.expose(), vars::DATABASE_URL, db)
}

/// Connection options for migrations: the primary without a pooler in between.
pub fn migration_options(db: &DatabaseConfig) -> anyhow::Result<PgConnectOptions> {
    match &db.migration_url {
        Some(url) => parse_options(url.expose(), vars::DATABASE_MIGRATION_URL, db),
        None => primary_options(db),
    }
}

/// Connection options of the standby, if there is one; the separate password applies too,
/// since a standby shares the primary's roles.
pub fn replica_options(db: &DatabaseConfig) -> anyhow::Result<Option<PgConnectOptions>> {
    db.replica_url
        .as_ref()
        .map(|url| parse_options(url.expose(), vars::DATABASE_REPLICA_URL, db))
        .transpose()
}

fn parse_options(url: &str, var: &str, db: &DatabaseConfig) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| anyhow::anyhow!("{var} is not a PostgreSQL URL: {e}"))?;
    Ok(match &db.password {
        Some(p) => options.password(p.expose()),
        None => options,
    })
}

/// What one check of the standby saw. LSNs are byte positions in the WAL.
#[derive(Clone, Debug, PartialEq)]
struct Probe {
    in_recovery: bool,
    received: Option<i64>,
    replayed: Option<i64>,
    /// Time since the last replayed commit was committed on the primary; `None` before the
    /// standby has replayed any.
    since_last_replayed_commit: Option<Duration>,
}

/// Why the standby is not used; `Display` is what the log says.
#[derive(Clone, Debug, PartialEq)]
enum Unusable {
    Unreachable(String),
    NotAStandby,
    Lagging { lag: Duration, bound: Duration },
    LagUnknown,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Unreachable(e) => write!(f, "unreachable: {e}"),
            // After a failover the old URL may lead to a promoted, diverging server.
            Unusable::NotAStandby => f.write_str("not in recovery, so not a standby"),
            Unusable::Lagging { lag, bound } => {
                write!(f, "{:.1} s behind (bound {:?})", lag.as_secs_f64(), bound)
            }
            Unusable::LagUnknown => f.write_str("behind the primary by an unknown time"),
        }
    }
}

/// How far the standby is behind. `primary_lsn` is the primary's newest known WAL position,
/// sampled just before the probe.
///
/// The age of the last replayed commit alone is not the lag: on an idle primary it grows
/// without anything to replay. So a standby that has replayed all the primary had is not
/// behind at all. Without the primary's position (primary unreachable since start), having
/// replayed all it received is the best sign; it misses a standby cut off from its primary.
fn lag(probe: &Probe, primary_lsn: Option<i64>) -> Option<Duration> {
    let caught_up = match (primary_lsn, probe.replayed) {
        (Some(primary), Some(replayed)) => replayed >= primary,
        (None, Some(replayed)) => probe.received == Some(replayed),
        (_, None) => false,
    };
    if caught_up {
        Some(Duration::ZERO)
    } else {
        probe.since_last_replayed_commit
    }
}

fn assess(
    probe: Result<&Probe, &str>,
    primary_lsn: Option<i64>,
    bound: Duration,
) -> Result<(), Unusable> {
    let probe = probe.map_err(|e| Unusable::Unreachable(e.to_owned()))?;
    if !probe.in_recovery {
        return Err(Unusable::NotAStandby);
    }
    match lag(probe, primary_lsn) {
        Some(lag) if lag <= bound => Ok(()),
        Some(lag) => Err(Unusable::Lagging { lag, bound }),
        None => Err(Unusable::LagUnknown),
    }
}

/// Checks the standby every second on a connection of its own: through the pool, a standby
/// whose connections are all busy would look dead, and reads would flap between servers.
async fn watch_replica(
    primary: PgPool,
    replica: PgConnectOptions,
    usable: Arc<AtomicBool>,
    bound: Duration,
) {
    let mut ticks = tokio::time::interval(CHECK_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut conn: Option<PgConnection> = None;
    // Kept when a sample fails: a process that cannot reach the primary cannot write either,
    // and the standby is then the only place left to read from.
    let mut primary_lsn: Option<i64> = None;
    // `None` until the first verdict, so that the first one is logged whatever it is.
    let mut was_usable: Option<bool> = None;
    loop {
        ticks.tick().await;
        // Before the probe: whatever the primary had then, a caught-up standby has too.
        if let Some(lsn) = sample_primary_lsn(&primary).await {
            primary_lsn = Some(lsn);
        }
        let probe = probe(&mut conn, &replica).await;
        let verdict = assess(probe.as_ref().map_err(String::as_str), primary_lsn, bound);
        let now_usable = verdict.is_ok();
        usable.store(now_usable, Ordering::Relaxed);
        if was_usable != Some(now_usable) {
            match verdict {
                Ok(()) => info!("read replica in use"),
                Err(why) => warn!(reason = %why, "read replica not used, reads go to the primary"),
            }
            was_usable = Some(now_usable);
        }
    }
}

async fn sample_primary_lsn(primary: &PgPool) -> Option<i64> {
    // Fails on a server in recovery; then the standby's own positions have to do.
    let query = sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8")
        .fetch_one(primary);
    timeout(CHECK_TIMEOUT, query).await.ok()?.ok()
}

/// One probe, connecting first if needed. A connection that failed or hung is dropped, so
/// the next probe starts afresh.
async fn probe(
    conn: &mut Option<PgConnection>,
    options: &PgConnectOptions,
) -> Result<Probe, String> {
    let attempt = timeout(CHECK_TIMEOUT, async {
        if conn.is_none() {
            *conn = Some(options.connect().await?);
        }
        let c = conn.as_mut().expect("connected above");
        sqlx::query_as::<_, (bool, Option<i64>, Option<i64>, Option<f64>)>(
            "SELECT pg_is_in_recovery(), \
                    pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::int8, \
                    pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::int8, \
                    EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8",
        )
        .fetch_one(c)
        .await
    })
    .await;
    let (in_recovery, received, replayed, age) = match attempt {
        Ok(Ok(row)) => row,
        Ok(Err(e)) => {
            *conn = None;
            return Err(e.to_string());
        }
        Err(_) => {
            *conn = None;
            return Err(format!("no answer within {CHECK_TIMEOUT:?}"));
        }
    };
    Ok(Probe {
        in_recovery,
        received,
        replayed,
        // Clocks of two hosts: a negative age is skew, not a standby ahead of its primary.
        since_last_replayed_commit: age.map(|s| Duration::from_secs_f64(s.max(0.0))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedi_config::Secret;

    const S: Duration = Duration::from_secs(1);

    fn standby(received: Option<i64>, replayed: Option<i64>, age: Option<u64>) -> Probe {
        Probe {
            in_recovery: true,
            received,
            replayed,
            since_last_replayed_commit: age.map(Duration::from_secs),
        }
    }

    #[test]
    fn lag_is_zero_once_the_standby_has_what_the_primary_had() {
        let cases = [
            // (received, replayed, age of last replayed commit, primary LSN, expected lag)
            // Idle primary: the last commit is old, but nothing is missing.
            (Some(100), Some(100), Some(3600), Some(100), Some(0)),
            (Some(100), Some(100), Some(3600), Some(90), Some(0)),
            // Behind the primary: the age of the last replayed commit bounds the lag.
            (Some(100), Some(80), Some(12), Some(100), Some(12)),
            // Replay paused: received more than replayed.
            (Some(120), Some(100), Some(4), Some(120), Some(4)),
            // Cut off from the primary: all it received is replayed, yet it is behind.
            (Some(100), Some(100), Some(30), Some(150), Some(30)),
            // Primary position unknown: fall back to received vs replayed.
            (Some(100), Some(100), Some(3600), None, Some(0)),
            (Some(120), Some(100), Some(4), None, Some(4)),
            // Not streaming (NULL receive position) and no primary position: cannot tell.
            (None, Some(100), Some(7), None, Some(7)),
            // Nothing replayed since start and behind: unknown.
            (Some(100), Some(80), None, Some(100), None),
            (None, None, None, Some(100), None),
        ];
        for (received, replayed, age, primary, expected) in cases {
            let probe = standby(received, replayed, age);
            assert_eq!(
                lag(&probe, primary),
                expected.map(Duration::from_secs),
                "{probe:?} with primary at {primary:?}"
            );
        }
    }

    #[test]
    fn the_standby_is_used_only_when_reachable_in_recovery_and_within_the_bound() {
        let caught_up = standby(Some(100), Some(100), Some(3600));
        let behind = |secs| standby(Some(100), Some(90), Some(secs));
        let primary_server = Probe {
            in_recovery: false,
            ..caught_up.clone()
        };
        let cases = [
            (Ok(caught_up.clone()), 10 * S, Ok(())),
            (Ok(caught_up), Duration::ZERO, Ok(())),
            (Ok(behind(10)), 10 * S, Ok(())),
            (
                Ok(behind(11)),
                10 * S,
                Err(Unusable::Lagging {
                    lag: 11 * S,
                    bound: 10 * S,
                }),
            ),
            (
                Ok(standby(Some(100), Some(90), None)),
                10 * S,
                Err(Unusable::LagUnknown),
            ),
            (Ok(primary_server), 10 * S, Err(Unusable::NotAStandby)),
            (
                Err("connection refused"),
                10 * S,
                Err(Unusable::Unreachable("connection refused".into())),
            ),
        ];
        for (probe, bound, expected) in cases {
            assert_eq!(
                assess(probe.as_ref().map_err(|e| *e), Some(100), bound),
                expected,
                "{probe:?}, bound {bound:?}"
            );
        }
    }

    #[test]
    fn each_pool_connects_to_its_own_url() {
        // sqlx has no getter for the password: tests/read_replica.rs proves the separate
        // password on a real standby.
        let config = DatabaseConfig {
            url: Secret::new("postgres://app@db-rw/fedi"),
            replica_url: Some(Secret::new("postgres://app@db-ro:5433/fedi")),
            migration_url: None,
            password: Some(Secret::new("n3w")),
            max_connections: 5,
            replica_max_lag: 10 * S,
        };
        let primary = primary_options(&config).unwrap();
        let replica = replica_options(&config).unwrap().unwrap();
        for (options, host, port) in [(primary, "db-rw", 5432), (replica, "db-ro", 5433)] {
            assert_eq!(options.get_host(), host);
            assert_eq!(options.get_port(), port);
            assert_eq!(options.get_username(), "app");
        }
        // Migrations skip the pooler when there is one, and use the primary otherwise.
        assert_eq!(migration_options(&config).unwrap().get_host(), "db-rw");
        let pooled = DatabaseConfig {
            url: Secret::new("postgres://app@db-pooler/fedi"),
            migration_url: Some(Secret::new("postgres://app@db-rw/fedi")),
            ..config.clone()
        };
        assert_eq!(migration_options(&pooled).unwrap().get_host(), "db-rw");
        assert_eq!(primary_options(&pooled).unwrap().get_host(), "db-pooler");
        let without = DatabaseConfig {
            replica_url: None,
            migration_url: None,
            ..config
        };
        assert!(replica_options(&without).unwrap().is_none());
    }

    #[test]
    fn a_bad_replica_url_names_the_variable_without_its_value() {
        let config = DatabaseConfig {
            url: Secret::new("postgres://app:pw@db-rw/fedi"),
            replica_url: Some(Secret::new("postgres://app:s3cret@[db-ro/fedi")),
            migration_url: None,
            password: None,
            max_connections: 5,
            replica_max_lag: 10 * S,
        };
        let err = replica_options(&config).unwrap_err().to_string();
        assert!(err.starts_with("FEDI_DATABASE_REPLICA_URL"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
