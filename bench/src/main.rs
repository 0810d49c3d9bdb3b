//! `fedi-bench`: the parts of `make bench` that generic tools cannot do (seeding, WebSocket
//! fan-out, signed inbox deliveries), the wrapper that runs wrk and samples the roles, and
//! the results table. `scripts/bench.sh` starts the services and the roles and calls these.

mod fleet;
mod http;
mod inbox;
mod outcome;
mod procs;
mod report;
mod seed;
mod stats;
mod ws;
mod ws_readers;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "Benchmarks of fedi-server under load")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Accounts, statuses, follows, tokens and warm home feeds, in bulk.
    Seed(seed::Args),
    /// Streaming fan-out latency to many WebSocket connections.
    WsFanout(ws::Args),
    /// Signed inbox POSTs, some forged: verifications per second, all forged refused.
    Inbox(inbox::Args),
    /// One wrk run against the api, with the roles' CPU and memory around it.
    Http(http::Args),
    /// The operator half: FediInstances on the local control plane until all are Ready.
    Fleet(fleet::Args),
    /// The results table (Markdown and JSON) from every outcome of a run.
    Report(report::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Seed(a) => seed::run(a).await,
            Command::WsFanout(a) => ws::run(a).await,
            Command::Inbox(a) => inbox::run(a).await,
            Command::Http(a) => http::run(a).await,
            Command::Fleet(a) => fleet::run(a).await,
            Command::Report(a) => report::run(a),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fedi-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
