//! `fedi-server admin jobs ...`: the dead set, as Sidekiq's "Dead" tab. `list` and `show`
//! print on stdout (the listing is what was asked for); `retry` and `delete` report on
//! stderr. Arguments of a job are shown by `show` only: handlers pass ids, not secrets, but
//! a listing is more likely to be pasted somewhere.

use anyhow::bail;
use clap::Subcommand;
use fedi_config::ServerConfig;
use serde_json::json;
use sqlx::types::chrono::DateTime;

use crate::jobs::{self, DeadJob, Queue};
use crate::state::AppState;

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum JobsCommand {
    /// The newest dead jobs, one a line: id, queue, kind, retries, died at, error.
    List {
        /// Only this queue's.
        #[arg(long)]
        queue: Option<Queue>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One dead job as JSON, with its arguments and last error.
    Show { id: String },
    /// Put dead jobs back on their queue (their retry count kept: one more failure kills
    /// them again).
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Every dead job (of --queue, if given).
        #[arg(long)]
        all: bool,
        #[arg(long, requires = "all")]
        queue: Option<Queue>,
    },
    /// Forget dead jobs.
    Delete {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Every dead job (of --queue, if given).
        #[arg(long)]
        all: bool,
        #[arg(long, requires = "all")]
        queue: Option<Queue>,
    },
}

pub async fn run(config: &ServerConfig, command: JobsCommand) -> anyhow::Result<()> {
    let state = AppState::new(config)?;
    match command {
        JobsCommand::List { queue, limit } => {
            let mut dead = Vec::new();
            for q in queues(queue) {
                dead.extend(jobs::store::dead_list(&state, q, limit).await?);
            }
            dead.sort_by_key(|d| std::cmp::Reverse(d.died_at));
            dead.truncate(limit);
            for d in &dead {
                let error = d.job.error.as_deref().unwrap_or("");
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    d.job.id,
                    d.queue,
                    d.job.kind,
                    d.job.retries,
                    time(d.died_at),
                    error.lines().next().unwrap_or("")
                );
            }
            eprintln!("{} dead job(s)", dead.len());
            Ok(())
        }
        JobsCommand::Show { id } => {
            let d = find(&state, &id).await?;
            let shown = json!({
                "id": d.job.id,
                "queue": d.queue.to_string(),
                "kind": d.job.kind,
                "args": d.job.args,
                "retries": d.job.retries,
                "enqueued_at": time(d.job.enqueued_at),
                "failed_at": d.job.failed_at.map(time),
                "died_at": time(d.died_at),
                "error": d.job.error,
            });
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(())
        }
        JobsCommand::Retry { ids, all, queue } => {
            for d in targets(&state, ids, all, queue).await? {
                if jobs::store::dead_retry(&state, d.queue, &d.job.id).await? {
                    eprintln!(
                        "job {} ({}) is back on the {} queue",
                        d.job.id, d.job.kind, d.queue
                    );
                }
            }
            Ok(())
        }
        JobsCommand::Delete { ids, all, queue } => {
            for d in targets(&state, ids, all, queue).await? {
                if jobs::store::dead_delete(&state, d.queue, &d.job.id).await? {
                    eprintln!("job {} ({}) deleted", d.job.id, d.job.kind);
                }
            }
            Ok(())
        }
    }
}

fn queues(only: Option<Queue>) -> Vec<Queue> {
    only.map_or_else(|| Queue::ALL.to_vec(), |q| vec![q])
}

async fn find(state: &AppState, id: &str) -> anyhow::Result<DeadJob> {
    match jobs::store::dead_get(state, id).await? {
        Some(d) => Ok(d),
        None => bail!("no dead job with id {id:?}; `fedi-server admin jobs list` shows them"),
    }
}

/// The jobs named, all found before anything changes; or the whole dead set.
async fn targets(
    state: &AppState,
    ids: Vec<String>,
    all: bool,
    queue: Option<Queue>,
) -> anyhow::Result<Vec<DeadJob>> {
    if !all {
        let mut out = Vec::new();
        for id in ids {
            out.push(find(state, &id).await?);
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for q in queues(queue) {
        out.extend(jobs::store::dead_list(state, q, usize::MAX).await?);
    }
    Ok(out)
}

fn time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
}
