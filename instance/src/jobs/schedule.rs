//! Periodic jobs, enqueued by exactly one scheduler across all replicas. Workers with
//! `FEDI_WORKER_SCHEDULER=true` compete for a lock with an expiry that its holder renews;
//! when the holder dies, another takes over after the expiry. Each period is enqueued by a
//! script that compares it with the last period enqueued for that kind, so even two holders
//! (a holder that stalled past its expiry) cannot enqueue one period twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::store::{keys, tag};
use super::{Job, Periodic, Queue, Registry, now_ms};
use crate::state::AppState;

fn lock_key(state: &AppState) -> String {
    format!("{}:lock", tag(state, Queue::Scheduler))
}

/// Last period enqueued, by kind (same slot as the scheduler queue's stream).
fn periodic_key(state: &AppState) -> String {
    format!("{}:periodic", tag(state, Queue::Scheduler))
}
const LOCK_TTL: Duration = Duration::from_secs(15);
const TICK: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    state: AppState,
    registry: Arc<Registry>,
    me: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut held = false;
    loop {
        match hold_lock(&state, &me).await {
            Ok(now_held) => {
                if now_held != held {
                    info!(scheduler = now_held, "periodic job scheduler lock");
                }
                held = now_held;
            }
            Err(e) => {
                warn!(error = %e, "cannot reach the scheduler lock");
                held = false;
            }
        }
        if held {
            let window = state.config.maintenance_window;
            let now = now_ms();
            for (kind, periodic) in registry.periodic_jobs() {
                if !may_enqueue(periodic, window, now) {
                    continue;
                }
                if let Err(e) = enqueue_if_due(&state, kind, periodic.interval).await {
                    warn!(kind, error = %e, "cannot enqueue a periodic job");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => break,
        }
    }
    if held {
        release_lock(&state, &me).await;
    }
}

/// Whether `periodic` may be enqueued at `now_ms`: a maintenance sweep waits for the
/// window, and its period is enqueued when the window opens (the last one enqueued is
/// older), so a window shorter than the interval still gets its run.
fn may_enqueue(
    periodic: Periodic,
    window: Option<fedi_config::MaintenanceWindow>,
    now_ms: i64,
) -> bool {
    !periodic.in_maintenance_window || window.is_none_or(|w| w.contains_unix_ms(now_ms))
}

/// Takes the lock if it is free, renews it if it is ours; whether it is ours.
async fn hold_lock(state: &AppState, me: &str) -> redis::RedisResult<bool> {
    const HOLD: &str = "\
        local v = redis.call('GET', KEYS[1]) \
        if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
        if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
        return 0";
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(HOLD)
        .arg(1)
        .arg(lock_key(state))
        .arg(me)
        .arg(LOCK_TTL.as_millis() as u64);
    Ok(state.redis.query::<i64>(&cmd).await? == 1)
}

/// Frees the lock at shutdown so that another replica takes over at once.
async fn release_lock(state: &AppState, me: &str) {
    const RELEASE: &str = "\
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end \
        return 0";
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(RELEASE).arg(1).arg(lock_key(state)).arg(me);
    if let Err(e) = state.redis.query::<i64>(&cmd).await {
        warn!(error = %e, "cannot release the scheduler lock; it expires by itself");
    }
}

/// Enqueues `kind` for the current period unless that period (or a later one, from a
/// replica whose clock runs ahead) was already enqueued.
async fn enqueue_if_due(state: &AppState, kind: &str, interval: Duration) -> anyhow::Result<()> {
    const ENQUEUE: &str = "\
        local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1') \
        if last >= tonumber(ARGV[2]) then return 0 end \
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) \
        redis.call('XADD', KEYS[2], '*', 'job', ARGV[3]) \
        return 1";
    let interval_ms = interval.as_millis().max(1) as i64;
    let now = now_ms();
    let period = now - now.rem_euclid(interval_ms);
    let job = Job::new(kind, serde_json::json!({ "due": period }));
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(ENQUEUE)
        .arg(2)
        .arg(periodic_key(state))
        .arg(keys(state, Queue::Scheduler).stream)
        .arg(kind)
        .arg(period)
        .arg(serde_json::to_string(&job)?);
    if state.redis.query::<i64>(&cmd).await? == 1 {
        // A job of every few seconds would drown the log's other lines.
        if interval >= Duration::from_secs(60) {
            info!(kind, job = job.id, "periodic job enqueued");
        } else {
            debug!(kind, job = job.id, "periodic job enqueued");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_sweeps_wait_for_the_window_and_nothing_else_does() {
        let sweep = Periodic {
            interval: Duration::from_secs(3600),
            in_maintenance_window: true,
        };
        let other = Periodic {
            in_maintenance_window: false,
            ..sweep
        };
        let window = "23:00+2h".parse().ok();
        // 2026-11-28 at 22:59, 23:30 and (next day) 00:30, 01:00 UTC.
        // Minutes after 2026-11-28T22:00Z.
        let at = |minutes: i64| 1_795_903_200_000 + minutes * 60_000;
        for (now, inside) in [
            (at(59), false),
            (at(90), true),
            (at(150), true),
            (at(180), false),
        ] {
            assert_eq!(may_enqueue(sweep, window, now), inside, "{now}");
            assert!(may_enqueue(other, window, now));
            assert!(may_enqueue(sweep, None, now));
        }
    }
}
