//! The `worker` role: takes jobs from its queues (weighted), runs up to
//! `FEDI_WORKER_CONCURRENCY` at once, and records each outcome: acknowledged, scheduled for
//! a retry, or dead. Housekeeping moves due scheduled jobs into their queue, takes over the
//! jobs of workers that died, and keeps this worker's own jobs from looking dead.
//!
//! On SIGTERM it stops taking jobs, lets the running ones finish within the grace period,
//! then puts the rest back on their queue.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedi_config::ServerConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::AbortHandle;
use tracing::{debug, error, info, warn};

use super::metrics::Metrics;
use super::store::{self, Entry};
use super::{DEFAULT_MAX_RETRIES, Job, JobError, Queue, Registry, backoff, now_ms, random_below};
use crate::state::AppState;

/// A job untouched for this long is taken to belong to a dead worker and is run again.
const VISIBILITY: Duration = Duration::from_secs(30);
/// How often a worker refreshes its running jobs, well within `VISIBILITY`.
const KEEP_ALIVE_EVERY: u32 = 10;
/// How often (in housekeeping ticks of one second) dead workers' jobs are looked for.
const RECLAIM_EVERY: u32 = 5;
const PRUNE_EVERY: u32 = 600;
const HOUSEKEEPING_TICK: Duration = Duration::from_secs(1);
/// Consumers idle this long without jobs are forgotten.
const CONSUMER_MAX_IDLE: Duration = Duration::from_secs(3600);
/// Polling an empty queue backs off between these, so that an idle worker costs Redis
/// little while a new job still starts within a quarter of a second.
const IDLE_MIN: Duration = Duration::from_millis(5);
const IDLE_MAX: Duration = Duration::from_millis(250);
/// Pause after Redis refused a read, so that an outage is not a flood of warnings.
const ERROR_PAUSE: Duration = Duration::from_secs(2);
/// Jobs fetched in one read at most.
const FETCH_MAX: usize = 50;
/// Time left, after the grace period, for aborted jobs to be put back.
const REQUEUE_TIME: Duration = Duration::from_secs(5);
/// A job whose workers vanished this many times (killed, out of memory) is presumed to be
/// what kills them: it goes to the dead set instead of taking down the next worker.
const MAX_DELIVERIES: u64 = 5;

/// Runs the worker until SIGTERM, serving `/health`, `/readyz` and `/metrics` on `listen`
/// when given (the `all` role leaves HTTP to the api).
pub async fn run(config: &ServerConfig, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let mut registry = Registry::all();
    registry.periodic(super::diagnostics::HEARTBEAT, config.worker.heartbeat);
    registry.check()?;
    let state = AppState::new(config)?;
    let worker = Arc::new(Worker {
        consumer: consumer_name(),
        queues: config.worker.queues.clone(),
        slots: Arc::new(Semaphore::new(config.worker.concurrency as usize)),
        concurrency: config.worker.concurrency,
        in_flight: Mutex::new(HashMap::new()),
        metrics: Metrics::default(),
        registry: Arc::new(registry),
        state,
    });
    let (stop_tx, stop) = watch::channel(false);
    let (done_tx, done) = watch::channel(false);

    let http = match listen {
        Some(addr) => Some(tokio::spawn(serve_http(
            worker.clone(),
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?,
            done.clone(),
        ))),
        None => None,
    };
    info!(
        consumer = worker.consumer,
        queues = ?config.worker.queues.iter().map(|(q, w)| format!("{q}:{w}")).collect::<Vec<_>>(),
        concurrency = config.worker.concurrency,
        scheduler = config.worker.scheduler,
        "worker started"
    );
    let housekeeping = tokio::spawn(worker.clone().housekeeping(stop.clone(), done.clone()));
    let scheduler = config.worker.scheduler.then(|| {
        tokio::spawn(super::schedule::run(
            worker.state.clone(),
            worker.registry.clone(),
            worker.consumer.clone(),
            stop.clone(),
        ))
    });
    let fetching = tokio::spawn(worker.clone().fetch_loop(stop));

    crate::shutdown::signal().await;
    stop_tx.send_replace(true);
    fetching.await.ok();
    worker.drain(config.worker.shutdown_grace).await;
    done_tx.send_replace(true);
    housekeeping.await.ok();
    if let Some(s) = scheduler {
        s.await.ok();
    }
    if let Some(h) = http {
        h.await.ok();
    }
    info!("worker stopped");
    Ok(())
}

/// Unique per process: a restarted pod must not inherit the pending entries of its previous
/// life under the same name, or nobody would reclaim them while it runs.
fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        random_below(1 << 24)
    )
}

async fn serve_http(
    worker: Arc<Worker>,
    listener: tokio::net::TcpListener,
    mut done: watch::Receiver<bool>,
) {
    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;

    async fn metrics(State(w): State<Arc<Worker>>) -> axum::response::Response {
        match w.metrics.render(&w.state).await {
            Ok(text) => (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
                .into_response(),
            Err(e) => {
                warn!(error = %e, "cannot read the queues for /metrics");
                (StatusCode::SERVICE_UNAVAILABLE, "queues unavailable").into_response()
            }
        }
    }
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .with_state(worker.clone())
        .merge(crate::api::health::routes().with_state(worker.state.clone()));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            done.wait_for(|d| *d).await.ok();
        })
        .await;
    if let Err(e) = result {
        error!(error = %e, "worker HTTP listener failed");
    }
}

struct Worker {
    state: AppState,
    registry: Arc<Registry>,
    consumer: String,
    queues: Vec<(Queue, u32)>,
    /// One permit per job running (or being recorded).
    slots: Arc<Semaphore>,
    concurrency: u32,
    /// Running handlers by stream entry id.
    in_flight: Mutex<HashMap<String, InFlight>>,
    metrics: Metrics,
}

struct InFlight {
    queue: Queue,
    abort: AbortHandle,
}

enum Outcome {
    Done,
    Failed(JobError, u32),
    /// Aborted at shutdown: back to the queue, not a failure.
    Interrupted,
}

impl Worker {
    async fn fetch_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        for (queue, _) in &self.queues {
            if let Err(e) = store::ensure_group(&self.state, *queue).await {
                warn!(%queue, error = %e, "cannot create the queue's consumer group yet");
            }
        }
        let mut idle = IDLE_MIN;
        loop {
            let first = tokio::select! {
                p = self.slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                _ = stop.wait_for(|s| *s) => return,
            };
            let mut permits = vec![first];
            while permits.len() < FETCH_MAX {
                match self.slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let mut fetched = false;
            let mut failed = false;
            for queue in weighted_order(&self.queues) {
                match store::fetch(&self.state, queue, &self.consumer, permits.len()).await {
                    Ok(entries) if entries.is_empty() => {}
                    Ok(entries) => {
                        for entry in entries {
                            let permit = permits.pop().expect("no more entries than permits");
                            self.clone().spawn(queue, entry, permit);
                        }
                        fetched = true;
                        break;
                    }
                    Err(e) if e.code() == Some("NOGROUP") => {
                        // The stream was deleted (a Redis without persistence restarted).
                        store::ensure_group(&self.state, queue).await.ok();
                    }
                    Err(e) => {
                        warn!(%queue, error = %e, "cannot fetch jobs");
                        failed = true;
                        break;
                    }
                }
            }
            drop(permits);
            if fetched {
                idle = IDLE_MIN;
                continue;
            }
            let pause = if failed { ERROR_PAUSE } else { idle };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            idle = (idle * 2).min(IDLE_MAX);
        }
    }

    fn spawn(self: Arc<Self>, queue: Queue, entry: Entry, permit: OwnedSemaphorePermit) {
        tokio::spawn(async move {
            self.execute(queue, entry).await;
            drop(permit);
        });
    }

    async fn execute(&self, queue: Queue, entry: Entry) {
        let job: Job = match serde_json::from_str(&entry.raw) {
            Ok(job) => job,
            Err(e) => {
                // Kept in the dead set, whole, for someone to look at.
                let job = Job::new("unreadable", serde_json::Value::String(entry.raw.clone()));
                let e = JobError::permanent(anyhow::anyhow!("unreadable job: {e}"));
                self.record(queue, &entry, job, Outcome::Failed(e, 0)).await;
                return;
            }
        };
        if entry.deliveries > MAX_DELIVERIES {
            let e = JobError::permanent(anyhow::anyhow!(
                "taken over from {} workers that stopped while running it: it may be what \
                 stops them",
                entry.deliveries - 1
            ));
            self.record(queue, &entry, job, Outcome::Failed(e, 0)).await;
            return;
        }
        let outcome = match self.registry.handler(&job.kind).cloned() {
            // A job queued by a newer version during a rolling update: a newer worker will
            // know it, so this is worth retrying.
            None => Outcome::Failed(
                JobError::retry(anyhow::anyhow!(
                    "no handler for job kind {} in this version",
                    job.kind
                )),
                DEFAULT_MAX_RETRIES,
            ),
            Some(handler) => {
                debug!(job = job.id, kind = job.kind, %queue, "job started");
                let task = tokio::spawn((handler.run)(self.state.clone(), job.args.clone()));
                self.in_flight.lock().expect("not poisoned").insert(
                    entry.entry_id.clone(),
                    InFlight {
                        queue,
                        abort: task.abort_handle(),
                    },
                );
                let result = task.await;
                self.in_flight
                    .lock()
                    .expect("not poisoned")
                    .remove(&entry.entry_id);
                match result {
                    Ok(Ok(())) => Outcome::Done,
                    Ok(Err(e)) => Outcome::Failed(e, handler.max_retries),
                    Err(e) if e.is_cancelled() => Outcome::Interrupted,
                    Err(_) => Outcome::Failed(
                        JobError::retry(anyhow::anyhow!("the job panicked")),
                        handler.max_retries,
                    ),
                }
            }
        };
        self.record(queue, &entry, job, outcome).await;
    }

    /// Writes the outcome to Redis, a few times if Redis blinks; if it stays unreachable
    /// the entry stays pending and is run again after `VISIBILITY`.
    async fn record(&self, queue: Queue, entry: &Entry, mut job: Job, outcome: Outcome) {
        let write = async {
            match &outcome {
                Outcome::Done => {
                    self.metrics.processed(queue);
                    for attempt in 0..3 {
                        match store::ack(&self.state, queue, &entry.entry_id).await {
                            Ok(()) => return Ok(()),
                            Err(e) if attempt == 2 => return Err(e),
                            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                    Ok(())
                }
                Outcome::Interrupted => store::requeue(&self.state, queue, entry).await.map(drop),
                Outcome::Failed(e, max_retries) => {
                    self.metrics.failed(queue);
                    job.error = Some(truncate(&e.to_string(), 2000));
                    job.failed_at = Some(now_ms());
                    if e.is_permanent() || job.retries >= *max_retries {
                        warn!(job = job.id, kind = job.kind, %queue, retries = job.retries, error = %e, "job dead");
                        store::kill(&self.state, queue, &entry.entry_id, &job)
                            .await
                            .map(drop)
                    } else {
                        let delay = backoff(job.retries);
                        job.retries += 1;
                        warn!(job = job.id, kind = job.kind, %queue, retries = job.retries, in_seconds = delay.as_secs(), error = %e, "job failed; retrying");
                        let due = now_ms() + delay.as_millis() as i64;
                        store::retry_later(&self.state, queue, &entry.entry_id, &job, due)
                            .await
                            .map(drop)
                    }
                }
            }
        };
        if let Err(e) = write.await {
            error!(job = job.id, %queue, error = %e, "cannot record a job's outcome; it will run again");
        }
    }

    async fn housekeeping(
        self: Arc<Self>,
        stop: watch::Receiver<bool>,
        mut done: watch::Receiver<bool>,
    ) {
        let mut tick: u32 = 0;
        loop {
            tick = tick.wrapping_add(1);
            let stopping = *stop.borrow();
            for (queue, _) in &self.queues {
                let queue = *queue;
                if !stopping {
                    if let Err(e) = store::promote(&self.state, queue, 1000).await {
                        warn!(%queue, error = %e, "cannot move due scheduled jobs");
                    }
                    if tick.is_multiple_of(RECLAIM_EVERY) {
                        self.reclaim(queue).await;
                    }
                    if tick.is_multiple_of(PRUNE_EVERY) {
                        let idle = CONSUMER_MAX_IDLE.as_millis() as u64;
                        if let Err(e) = store::prune_consumers(&self.state, queue, idle).await {
                            debug!(%queue, error = %e, "cannot prune consumers");
                        }
                    }
                }
                if tick.is_multiple_of(KEEP_ALIVE_EVERY) {
                    let ids: Vec<String> = self
                        .in_flight
                        .lock()
                        .expect("not poisoned")
                        .iter()
                        .filter(|(_, f)| f.queue == queue)
                        .map(|(id, _)| id.clone())
                        .collect();
                    if let Err(e) =
                        store::keep_alive(&self.state, queue, &self.consumer, &ids).await
                    {
                        warn!(%queue, error = %e, "cannot refresh running jobs");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(HOUSEKEEPING_TICK) => {}
                _ = done.wait_for(|d| *d) => return,
            }
        }
    }

    /// Takes over jobs of dead workers, as many as there are free slots.
    async fn reclaim(self: &Arc<Self>, queue: Queue) {
        let mut permits = Vec::new();
        while permits.len() < FETCH_MAX {
            match self.slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        if permits.is_empty() {
            return;
        }
        let min_idle = VISIBILITY.as_millis() as u64;
        match store::reclaim(&self.state, queue, &self.consumer, min_idle, permits.len()).await {
            Ok(entries) => {
                if !entries.is_empty() {
                    info!(%queue, jobs = entries.len(), "took over jobs of a worker that stopped");
                }
                for entry in entries {
                    let permit = permits.pop().expect("no more entries than permits");
                    self.clone().spawn(queue, entry, permit);
                }
            }
            Err(e) => warn!(%queue, error = %e, "cannot look for abandoned jobs"),
        }
    }

    /// Waits up to `grace` for running jobs, then aborts the rest, which go back to their
    /// queue.
    async fn drain(&self, grace: Duration) {
        let all = self.concurrency;
        let running = all as usize - self.slots.available_permits();
        info!(
            running,
            grace_seconds = grace.as_secs(),
            "finishing running jobs"
        );
        if tokio::time::timeout(grace, self.slots.acquire_many(all))
            .await
            .is_ok()
        {
            return;
        }
        let aborted: Vec<AbortHandle> = self
            .in_flight
            .lock()
            .expect("not poisoned")
            .values()
            .map(|f| f.abort.clone())
            .collect();
        warn!(
            jobs = aborted.len(),
            "grace period over: putting running jobs back"
        );
        for a in aborted {
            a.abort();
        }
        if tokio::time::timeout(REQUEUE_TIME, self.slots.acquire_many(all))
            .await
            .is_err()
        {
            warn!(
                "some jobs could not be put back; they run again once their visibility timeout passes"
            );
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The queues in the order to try them this time: a weighted random permutation, so that
/// a queue of weight 4 comes first four times as often as one of weight 1 and no queue
/// starves while others are busy (Sidekiq's weighted fetch).
fn weighted_order(queues: &[(Queue, u32)]) -> Vec<Queue> {
    let mut rest: Vec<(Queue, u32)> = queues.to_vec();
    let mut out = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        let total: u64 = rest.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut pick = random_below(total.max(1));
        let i = rest
            .iter()
            .position(|(_, w)| {
                let w = u64::from(*w);
                if pick < w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap_or(0);
        out.push(rest.remove(i).0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavier_queues_come_first_proportionally_and_every_queue_is_tried() {
        let queues = [(Queue::Default, 6), (Queue::Push, 3), (Queue::Mailers, 1)];
        let mut first = [0u32; 6];
        let rounds = 20_000;
        for _ in 0..rounds {
            let order = weighted_order(&queues);
            assert_eq!(order.len(), 3);
            first[Queue::ALL.iter().position(|q| *q == order[0]).unwrap()] += 1;
        }
        let share = |q| {
            f64::from(first[Queue::ALL.iter().position(|x| *x == q).unwrap()]) / f64::from(rounds)
        };
        assert!((share(Queue::Default) - 0.6).abs() < 0.03, "{first:?}");
        assert!((share(Queue::Push) - 0.3).abs() < 0.03, "{first:?}");
        assert!((share(Queue::Mailers) - 0.1).abs() < 0.03, "{first:?}");
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("ab", 2), "ab");
    }
}
