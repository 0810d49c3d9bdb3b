//! `fedi-server admin search migrate`: brings every search index to the mapping version of
//! this binary (see `search::migrate`). Run by the operator's reindex Job on each server
//! version; a no-op, in one request per index, when no mapping changed.

use anyhow::bail;
use clap::Subcommand;
use fedi_config::ServerConfig;
use sqlx::PgConnection;

use crate::search::{SearchClient, mappings, migrate};

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum SearchCommand {
    /// Create the indices of this version's mappings, reindex from PostgreSQL where the
    /// alias points elsewhere, then move the alias. Safe to re-run.
    Migrate,
}

pub async fn run(
    config: &ServerConfig,
    conn: &mut PgConnection,
    command: SearchCommand,
) -> anyhow::Result<()> {
    let SearchCommand::Migrate = command;
    let Some(search) = &config.search else {
        bail!("FEDI_SEARCH_URL is not set: there is no search cluster to migrate");
    };
    let client = SearchClient::new(search)?;
    for spec in mappings::ALL {
        migrate::migrate(&client, conn, spec, &mut |line| eprintln!("{line}")).await?;
    }
    Ok(())
}
