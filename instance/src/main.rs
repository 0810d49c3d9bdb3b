//! `fedi-server`: one binary, one role per process (or all of them in one, for development).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fedi_config::ServerConfig;
use fedi_server::{admin, api, jobs, migrate, streaming, telemetry};
use tracing::error;

/// See the reason beside the dependency in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Mastodon-compatible fediverse server.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
enum Role {
    /// Serve the Mastodon REST API, OAuth2 and ActivityPub over HTTP.
    Api,
    /// Serve the Mastodon streaming API (WebSocket and SSE).
    Streamer,
    /// Process background jobs from the Redis queue.
    Worker,
    /// Apply pending database migrations to the primary, then exit (`--pre` before a
    /// rollout, `--post` after it; both without a flag).
    Migrate(migrate::Args),
    /// Administration tasks (accounts, jobs, domains).
    #[command(subcommand)]
    Admin(admin::Command),
    /// Every role in one process, for development.
    All,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match ServerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fedi-server: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Role::Admin(command) = cli.role {
        // No log subscriber: the log writes to stdout, which admin keeps for the one
        // generated password; admin reports on stderr itself.
        return match runtime.block_on(admin::run(&config, command)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fedi-server admin: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    telemetry::init(config.log_format);
    match runtime.block_on(run(cli.role, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            migrate::exit_code(&e)
        }
    }
}

async fn run(role: Role, config: ServerConfig) -> anyhow::Result<()> {
    match role {
        Role::Migrate(args) => migrate::run(&config, &args).await,
        Role::Api => api::serve(config).await,
        Role::Streamer => streaming::serve(config).await,
        Role::Worker => jobs::run(&config, Some(config.listen)).await,
        Role::All => {
            let both = migrate::Args {
                pre: false,
                post: false,
                lock_timeout_seconds: 10,
            };
            migrate::run(&config, &both).await?;
            // The api answers the probes; the worker needs no listener of its own here. The
            // streaming API shares the api's listener, as clients find both on one host.
            let worker = jobs::run(&config, None);
            tokio::try_join!(streaming::serve_with_api(config.clone()), worker).map(drop)
        }
        Role::Admin(_) => unreachable!("handled in main"),
    }
}
