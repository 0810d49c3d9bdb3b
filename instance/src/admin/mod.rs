//! `fedi-server admin`: tasks an operator runs by hand or from a Kubernetes Job, against the
//! primary database.
//!
//! Output contract: what happened goes to stderr; stdout carries nothing but a generated
//! password, once, or the listing a command was asked for (`jobs list`, `jobs show`), so
//! that `pw=$(fedi-server admin accounts reset-password alice)` works and no log collector
//! that only keeps stderr ever sees a password. Every failure exits 1 with a
//! sentence naming what is wrong.

mod accounts;
mod jobs;
mod search;

use std::time::Duration;

use clap::Subcommand;
use fedi_config::ServerConfig;
use sqlx::{ConnectOptions, Connection, PgConnection};

pub use accounts::{AccountsCommand, Role};
pub use jobs::JobsCommand;
pub use search::SearchCommand;

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Create local accounts and change their state, role or password.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// The dead set of the job queue: list, show, retry or delete failed jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// The OpenSearch indices: `migrate` to this version's mappings.
    #[command(subcommand)]
    Search(SearchCommand),
}

/// Long enough for a primary that is failing over; a CLI should not hang for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn run(config: &ServerConfig, command: Command) -> anyhow::Result<()> {
    let command = match command {
        // Redis only.
        Command::Jobs(c) => return jobs::run(config, c).await,
        c => c,
    };
    let mut conn = connect(config).await?;
    let result = match command {
        Command::Accounts(c) => accounts::run(&mut conn, &config.domain, c).await,
        Command::Search(c) => search::run(config, &mut conn, c).await,
        Command::Jobs(_) => unreachable!("handled above"),
    };
    conn.close().await.ok();
    result.map_err(explain)
}

/// The primary without a pooler in between, as for migrations: a command is a handful of
/// statements in one session, and must see (and make) the current state.
async fn connect(config: &ServerConfig) -> anyhow::Result<PgConnection> {
    let options = crate::db::migration_options(&config.database)?;
    tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "cannot connect to the primary database: no answer within {CONNECT_TIMEOUT:?}"
            )
        })?
        .map_err(|e| anyhow::anyhow!("cannot connect to the primary database: {e}"))
}

/// A missing table means the schema is older than this binary: say how to fix it.
fn explain(e: anyhow::Error) -> anyhow::Error {
    let undefined_table = e
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|d| d.code())
        .is_some_and(|code| code == "42P01");
    if undefined_table {
        e.context("the database schema is not up to date: run `fedi-server migrate` first")
    } else {
        e
    }
}
