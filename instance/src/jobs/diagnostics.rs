//! Built-in job kinds that exercise the queue itself: an operator can check a worker pool
//! end to end (`diagnostics.record`), see the scheduler tick (`diagnostics.heartbeat`), and
//! tests can observe delivery guarantees without depending on the application's jobs.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{JobError, Registry, args};
use crate::state::AppState;

pub(crate) const RECORD: &str = "diagnostics.record";
pub(crate) const FAIL: &str = "diagnostics.fail";
pub(crate) const HEARTBEAT: &str = "diagnostics.heartbeat";
/// Runs of the heartbeat, newest kept: a sorted set of run ids by the period they ran for.
pub fn heartbeat_key(state: &AppState) -> String {
    format!(
        "{}:heartbeats",
        super::store::tag(state, super::Queue::Scheduler)
    )
}
const HEARTBEATS_KEPT: usize = 100;

pub(crate) fn register(r: &mut Registry) {
    r.register(RECORD, super::DEFAULT_MAX_RETRIES, record);
    // One retry: enough to see the back-off, short enough to watch it die.
    r.register(FAIL, 1, fail);
    r.register(HEARTBEAT, 0, heartbeat);
}

#[derive(Deserialize)]
struct RecordArgs {
    key: String,
    /// Work that takes time, to have jobs in flight when a worker is stopped.
    #[serde(default)]
    sleep_ms: u64,
}

/// Inserts the row `key` once, counting every run.
async fn record(state: AppState, a: Value) -> Result<(), JobError> {
    let a: RecordArgs = args(a)?;
    tokio::time::sleep(Duration::from_millis(a.sleep_ms)).await;
    count_run(&state, &a.key).await
}

async fn count_run(state: &AppState, key: &str) -> Result<(), JobError> {
    sqlx::query(
        "INSERT INTO job_diagnostics (key) VALUES ($1) \
         ON CONFLICT (key) DO UPDATE SET runs = job_diagnostics.runs + 1",
    )
    .bind(key)
    .execute(state.db.primary())
    .await?;
    Ok(())
}

#[derive(Deserialize)]
struct FailArgs {
    key: String,
    #[serde(default)]
    permanent: bool,
}

/// Counts the attempt under `key`, then fails: a poison job.
async fn fail(state: AppState, a: Value) -> Result<(), JobError> {
    let a: FailArgs = args(a)?;
    count_run(&state, &a.key).await?;
    let e = anyhow::anyhow!("diagnostics.fail always fails");
    Err(if a.permanent {
        JobError::permanent(e)
    } else {
        JobError::retry(e)
    })
}

/// Records each run under the period it was due for: a period that ran twice shows as two
/// members with one score.
async fn heartbeat(state: AppState, a: Value) -> Result<(), JobError> {
    #[derive(Deserialize)]
    struct Due {
        due: i64,
    }
    let Due { due } = args(a)?;
    let mut add = redis::cmd("ZADD");
    add.arg(heartbeat_key(&state))
        .arg(due)
        .arg(format!("{due}:{:x}", super::random_below(u64::MAX)));
    state.redis.query::<i64>(&add).await?;
    let mut trim = redis::cmd("ZREMRANGEBYRANK");
    trim.arg(heartbeat_key(&state))
        .arg(0)
        .arg(-(HEARTBEATS_KEPT as i64) - 1);
    state.redis.query::<i64>(&trim).await?;
    Ok(())
}

/// The last heartbeat's period, milliseconds since the epoch.
pub(crate) async fn last_heartbeat(state: &AppState) -> redis::RedisResult<Option<i64>> {
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(heartbeat_key(state))
        .arg(-1)
        .arg(-1)
        .arg("WITHSCORES");
    let last: Vec<(String, f64)> = state.redis.query(&cmd).await?;
    Ok(last.first().map(|(_, score)| *score as i64))
}
