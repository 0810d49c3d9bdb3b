//! Schema migrations, embedded from `migrations/` at build time. They always run against the
//! primary, never through a transaction pooler (advisory locks need a session).

use fedi_config::ServerConfig;
use sqlx::migrate::Migrator;
use sqlx::{ConnectOptions, Connection};
use tracing::info;

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

pub async fn run(config: &ServerConfig) -> anyhow::Result<()> {
    let mut conn = crate::db::migration_options(&config.database)?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the primary database: {e}"))?;
    let before = applied(&mut conn).await?;
    MIGRATOR.run(&mut conn).await.map_err(|e| match e {
        // The database knows a migration this binary does not: a newer version ran here.
        // Running older code on a newer schema is refused rather than guessed at.
        sqlx::migrate::MigrateError::VersionMissing(version) => anyhow::anyhow!(
            "refusing to downgrade: the database's schema is newer than this server \
             version (migration {version} was applied by a later release); run that release \
             or newer"
        ),
        other => anyhow::anyhow!("migration failed: {other}"),
    })?;
    let after = applied(&mut conn).await?;
    info!(
        applied = after - before,
        total = MIGRATOR.iter().count(),
        "database schema is up to date"
    );
    conn.close().await.ok();
    Ok(())
}

async fn applied(conn: &mut sqlx::PgConnection) -> anyhow::Result<i64> {
    // The table does not exist before the first run.
    let n: Option<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if n.unwrap_or(0) == 0 {
        return Ok(0);
    }
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?,
    )
}
