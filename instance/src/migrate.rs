//! Schema migrations, embedded at build time, in two phases so that the previous and the new
//! version can run side by side during a rollout:
//! - pre (`migrations/`): additive changes the running version tolerates (new tables,
//!   nullable columns, backfills); they run before any pod of the new version starts;
//! - post (`migrations/post/`): what only the new version tolerates (dropping a column the
//!   old code still reads, a constraint the old code would violate); they run once every pod
//!   runs the new version.
//!
//! Each phase keeps its own table, so that sqlx's bookkeeping stays exact per phase. They
//! always run against the primary, never through a transaction pooler (advisory locks need
//! a session).

use std::collections::BTreeSet;
use std::sync::LazyLock;
use std::time::Duration;

use fedi_config::ServerConfig;
use sqlx::migrate::Migrator;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tracing::info;

/// The pre-deployment migrations (the historical `_sqlx_migrations` table).
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The post-deployment migrations, with their own table.
pub static POST_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    let mut m = sqlx::migrate!("../migrations/post");
    m.dangerous_set_table_name(POST_TABLE);
    m
});

const POST_TABLE: &str = "_sqlx_migrations_post";

/// Exit code of `migrate` when the database was migrated by a later release: the operator
/// tells this refusal apart from a failure worth retrying.
pub const EXIT_SCHEMA_NEWER: u8 = 4;

/// `fedi-server migrate` options.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Only the pre-deployment phase (before the new version's pods start).
    #[arg(long, conflicts_with = "post")]
    pub pre: bool,
    /// Only the post-deployment phase (once every pod runs the new version).
    #[arg(long)]
    pub post: bool,
    /// How long a migration may wait for a table lock before it fails (and the Job retries
    /// later). While an ALTER waits for its lock, every later query on that table queues
    /// behind it: a short wait keeps the running version serving.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lock_timeout_seconds: u64,
}

impl Args {
    pub fn phase(&self) -> Phase {
        match (self.pre, self.post) {
            (true, _) => Phase::Pre,
            (_, true) => Phase::Post,
            _ => Phase::All,
        }
    }
}

/// Which migrations a run applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
    /// Both, pre first: a fresh database or development, where no old version runs.
    All,
}

/// The two sets of one server version.
#[derive(Clone, Copy)]
pub struct Sets<'a> {
    pub pre: &'a Migrator,
    pub post: &'a Migrator,
}

impl Sets<'static> {
    /// The migrations of this binary.
    pub fn embedded() -> Self {
        Self {
            pre: &MIGRATOR,
            post: &POST_MIGRATOR,
        }
    }
}

/// The database holds a migration this binary does not know: a later release ran there.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to downgrade: the database's schema is newer than this server version \
     ({phase} migration {version} was applied by a later release); run that release or newer"
)]
pub struct SchemaNewer {
    pub phase: &'static str,
    pub version: i64,
}

pub async fn run(config: &ServerConfig, args: &Args) -> anyhow::Result<()> {
    let mut conn = crate::db::migration_options(&config.database)?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the primary database: {e}"))?;
    let timeout = Duration::from_secs(args.lock_timeout_seconds);
    let result = apply(&mut conn, Sets::embedded(), args.phase(), timeout).await;
    conn.close().await.ok();
    let applied = result?;
    info!(
        phase = ?args.phase(),
        applied,
        pre = MIGRATOR.iter().count(),
        post = POST_MIGRATOR.iter().count(),
        "database schema is up to date"
    );
    Ok(())
}

/// Applies `phase` of `sets` on `conn`; returns how many migrations ran. Refuses, before
/// touching anything, a database that either phase of a later release has migrated: the
/// pre phase of an old version must not run on a schema whose post phase dropped what it
/// needs.
pub async fn apply(
    conn: &mut PgConnection,
    sets: Sets<'_>,
    phase: Phase,
    lock_timeout: Duration,
) -> anyhow::Result<usize> {
    for (name, migrator) in [("pre", sets.pre), ("post", sets.post)] {
        let known: BTreeSet<i64> = migrator.iter().map(|m| m.version).collect();
        if let Some(version) = applied(conn, &migrator.table_name)
            .await?
            .into_iter()
            .find(|v| !known.contains(v))
        {
            return Err(SchemaNewer {
                phase: name,
                version,
            }
            .into());
        }
    }
    // Session-wide, so it holds inside each migration's own transaction.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET lock_timeout = '{}ms'",
        lock_timeout.as_millis()
    )))
    .execute(&mut *conn)
    .await?;
    let mut count = 0;
    let run: &[(&str, &Migrator)] = match phase {
        Phase::Pre => &[("pre", sets.pre)],
        Phase::Post => &[("post", sets.post)],
        Phase::All => &[("pre", sets.pre), ("post", sets.post)],
    };
    for (name, migrator) in run {
        let before = applied(conn, &migrator.table_name).await?.len();
        migrator.run(&mut *conn).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::VersionMissing(version) => SchemaNewer {
                phase: name,
                version,
            }
            .into(),
            other => anyhow::anyhow!("{name}-deployment migration failed: {other}"),
        })?;
        count += applied(conn, &migrator.table_name).await?.len() - before;
    }
    sqlx::query("RESET lock_timeout")
        .execute(&mut *conn)
        .await?;
    Ok(count)
}

/// The exit code for the error `migrate` ended with.
pub fn exit_code(error: &anyhow::Error) -> std::process::ExitCode {
    if error.downcast_ref::<SchemaNewer>().is_some() {
        std::process::ExitCode::from(EXIT_SCHEMA_NEWER)
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// Versions applied successfully, from `table` (none before the first run).
async fn applied(conn: &mut PgConnection, table: &str) -> anyhow::Result<Vec<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    // The name is one of the two constants above, never input.
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {table} WHERE success ORDER BY version"
    )))
    .fetch_all(&mut *conn)
    .await?)
}
