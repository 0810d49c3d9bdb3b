//! The job queue and `fedi-server worker` processes against real PostgreSQL and Redis
//! (standalone and the 6-node cluster): crash safety, the dead set, retries, periodic jobs
//! with several schedulers, graceful shutdown, metrics and throughput.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use fedi_server::jobs::{self, Queue};
use fedi_server::state::AppState;
use serde_json::{Value, json};

/// Which Redis a test runs against.
#[derive(Clone, Copy, Debug)]
enum Redis {
    Standalone,
    Cluster,
    /// A `redis-server` of the test's own, on this port.
    Own(u16),
}

impl Redis {
    fn url(self) -> String {
        match self {
            Redis::Standalone => service_env("FEDI_TEST_REDIS_URL"),
            Redis::Cluster => service_env("FEDI_TEST_REDIS_CLUSTER_NODES"),
            Redis::Own(port) => format!("redis://127.0.0.1:{port}"),
        }
    }

    fn mode(self) -> &'static str {
        match self {
            Redis::Standalone | Redis::Own(_) => "standalone",
            Redis::Cluster => "cluster",
        }
    }
}

/// One instance under test: its own database and its own domain, which namespaces its job
/// queues, so that tests sharing Redis never take each other's jobs.
struct Instance {
    db: String,
    domain: String,
    redis: Redis,
    state: AppState,
}

impl Instance {
    async fn new(redis: Redis) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let db = migrated_database().await;
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let domain = format!(
            "jobs-{}-{}-{}.test",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            millis % 1_000_000_000
        );
        let env = self_env(&db, &domain, redis);
        let config = fedi_config::ServerConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        let state = AppState::new(&config).unwrap();
        Self {
            db,
            domain,
            redis,
            state,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = server_command(&self.db, &self.redis.url());
        cmd.env("FEDI_DOMAIN", &self.domain)
            .env("FEDI_REDIS_MODE", self.redis.mode())
            .args(args);
        cmd
    }

    /// A worker process; `/health` answers before this returns.
    async fn worker(&self, env: &[(&str, &str)]) -> Server {
        let mut env = env.to_vec();
        env.push(("FEDI_DOMAIN", &self.domain));
        env.push(("FEDI_REDIS_MODE", self.redis.mode()));
        let server = start_worker(&self.db, &self.redis.url(), &env);
        answers_health(&server, "the worker").await;
        server
    }

    async fn enqueue(&self, kind: &str, args: Value) {
        jobs::enqueue(&self.state, Queue::Default, kind, args)
            .await
            .expect("enqueue");
    }

    async fn pg(&self) -> sqlx::PgConnection {
        <sqlx::PgConnection as sqlx::Connection>::connect(&self.db)
            .await
            .unwrap()
    }

    /// `key -> runs` of `diagnostics.record` and `diagnostics.fail`.
    async fn runs(&self) -> BTreeMap<String, i32> {
        sqlx::query_as::<_, (String, i32)>("SELECT key, runs FROM job_diagnostics")
            .fetch_all(&mut self.pg().await)
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    /// `fedi-server admin jobs <args>`: (exit code, stdout, stderr).
    fn admin(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["admin", "jobs"];
        all.extend_from_slice(args);
        let out = self.command(&all).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Redis, to look at the queue from outside.
    async fn redis<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        self.state.redis.query(cmd).await.unwrap()
    }

    fn key(&self, queue: &str, part: &str) -> String {
        format!("{{fedi:jobs:{}:{queue}}}:{part}", self.domain)
    }
}

fn self_env(db: &str, domain: &str, redis: Redis) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("FEDI_DOMAIN", domain.to_string()),
        ("FEDI_DATABASE_URL", db.to_string()),
        ("FEDI_REDIS_URL", redis.url()),
        ("FEDI_REDIS_MODE", redis.mode().to_string()),
    ])
}

/// The value of one sample in a Prometheus text page, e.g. `fedi_jobs_dead{queue="default"}`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn metrics(worker: &Server) -> String {
    let r = reqwest::get(format!("{}/metrics", worker.base_url))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn signal(worker: &Server, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &worker.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit, at most `timeout`; its exit code.
async fn exited(worker: &mut Server, timeout: Duration) -> Option<i32> {
    eventually(timeout, "the worker to exit", || {
        let status = worker.child.try_wait().unwrap();
        async move { status }
    })
    .await
    .code()
}

// --- 1. SIGKILL in the middle of 1,000 jobs --------------------------------------------

async fn a_killed_worker_loses_no_job_and_applies_each_once(redis: Redis) {
    const JOBS: usize = 1000;
    let it = Instance::new(redis).await;
    for i in 0..JOBS {
        it.enqueue(
            "diagnostics.record",
            json!({"key": format!("job-{i}"), "sleep_ms": 20}),
        )
        .await;
    }
    let mut first = it.worker(&[("FEDI_WORKER_CONCURRENCY", "10")]).await;
    let mut pending = redis::cmd("XPENDING");
    pending
        .arg(it.key("default", "stream"))
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(100);
    // Killed while it holds jobs: between two batches a worker may briefly hold none (a
    // loaded CI machine once killed it there), and then there is nothing to take over.
    eventually(
        Duration::from_secs(60),
        "200 jobs done and some in flight",
        || async {
            let in_flight: Vec<PendingEntry> = it.redis(&pending).await;
            (it.runs().await.len() >= 200 && !in_flight.is_empty()).then_some(())
        },
    )
    .await;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let done_at_kill = it.runs().await.len();
    assert!(
        done_at_kill < JOBS,
        "the worker finished before it was killed"
    );
    let orphans: Vec<PendingEntry> = it.redis(&pending).await;
    assert!(
        !orphans.is_empty(),
        "the killed worker left no job in flight: nothing was tested"
    );

    let second = it.worker(&[("FEDI_WORKER_CONCURRENCY", "10")]).await;
    eventually(Duration::from_secs(120), "every job done", || async {
        (it.runs().await.len() == JOBS).then_some(())
    })
    .await;
    let runs = it.runs().await;
    for i in 0..JOBS {
        assert!(runs.contains_key(&format!("job-{i}")), "job-{i} never ran");
    }
    // Exactly-once effects, at-least-once runs: only jobs in flight at the kill (at most the
    // concurrency) may have run twice.
    let extra: i32 = runs.values().map(|r| r - 1).sum();
    assert!(
        (0..=10).contains(&extra),
        "{extra} extra runs after killing a worker running 10 jobs"
    );
    // Nothing left behind: no waiting job, none pending for the dead consumer.
    eventually(Duration::from_secs(10), "an empty queue", || async {
        let m = metrics(&second).await;
        (sample(&m, "fedi_jobs_queue_depth{queue=\"default\"}") == Some(0.0)
            && sample(&m, "fedi_jobs_in_flight{queue=\"default\"}") == Some(0.0))
        .then_some(())
    })
    .await;
    let m = metrics(&second).await;
    let processed = sample(&m, "fedi_jobs_processed_total{queue=\"default\"}").unwrap();
    assert!(
        processed >= (JOBS - done_at_kill) as f64,
        "the second worker processed {processed}"
    );
}

/// XPENDING's extended form: one entry per pending job.
type PendingEntry = (String, String, u64, u64);

#[tokio::test]
async fn a_killed_worker_loses_no_job_standalone() {
    a_killed_worker_loses_no_job_and_applies_each_once(Redis::Standalone).await;
}

#[tokio::test]
async fn a_killed_worker_loses_no_job_cluster() {
    a_killed_worker_loses_no_job_and_applies_each_once(Redis::Cluster).await;
}

/// A worker that vanished (no process to kill needed: a consumer that read and never came
/// back) leaves its jobs to the others; a job whose workers vanished again and again is
/// presumed to kill them, and dies instead of taking down the next one.
#[tokio::test]
async fn abandoned_jobs_are_taken_over_unless_they_keep_killing_workers() {
    let it = Instance::new(Redis::Standalone).await;
    it.enqueue("diagnostics.record", json!({"key": "abandoned"}))
        .await;
    it.enqueue("diagnostics.record", json!({"key": "killer"}))
        .await;
    let stream = it.key("default", "stream");
    let _: String = it
        .redis(
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&stream)
                .arg("workers")
                .arg("0"),
        )
        .await;
    let read: redis::streams::StreamReadReply = it
        .redis(
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("workers")
                .arg("ghost")
                .arg("COUNT")
                .arg(2)
                .arg("STREAMS")
                .arg(&stream)
                .arg(">"),
        )
        .await;
    let ids: Vec<String> = read.keys[0].ids.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids.len(), 2);
    // Idle for a minute; the second one already taken over from five vanished workers.
    for (id, deliveries) in [(&ids[0], 1), (&ids[1], 5)] {
        let _: Vec<String> = it
            .redis(
                redis::cmd("XCLAIM")
                    .arg(&stream)
                    .arg("workers")
                    .arg("ghost")
                    .arg(0)
                    .arg(id)
                    .arg("IDLE")
                    .arg(60_000)
                    .arg("RETRYCOUNT")
                    .arg(deliveries)
                    .arg("JUSTID"),
            )
            .await;
    }
    let _worker = it.worker(&[]).await;
    eventually(Duration::from_secs(20), "the abandoned job", || async {
        it.runs().await.contains_key("abandoned").then_some(())
    })
    .await;
    let dead = eventually(Duration::from_secs(20), "the killer job dead", || async {
        let (_, out, _) = it.admin(&["list"]);
        (!out.is_empty()).then_some(out)
    })
    .await;
    assert!(dead.contains("taken over from 5 workers"), "{dead}");
    assert!(!it.runs().await.contains_key("killer"), "it never ran");
}

// --- 2. Poison jobs, retries, the dead set and `admin jobs` ----------------------------

async fn poison_jobs_die_without_blocking_their_queue(redis: Redis) {
    let it = Instance::new(redis).await;
    it.enqueue("diagnostics.fail", json!({"key": "poison"}))
        .await;
    it.enqueue(
        "diagnostics.fail",
        json!({"key": "fatal", "permanent": true}),
    )
    .await;
    it.enqueue("diagnostics.record", json!({"wrong": "arguments"}))
        .await;
    for i in 0..50 {
        it.enqueue("diagnostics.record", json!({"key": format!("ok-{i}")}))
            .await;
    }
    let worker = it.worker(&[("FEDI_WORKER_CONCURRENCY", "2")]).await;
    eventually(Duration::from_secs(30), "the healthy jobs", || async {
        let runs = it.runs().await;
        ((0..50).all(|i| runs.contains_key(&format!("ok-{i}")))).then_some(())
    })
    .await;
    let runs = it.runs().await;
    assert_eq!(runs["fatal"], 1, "a permanent failure is not retried");

    // The retryable poison job: one retry after 15 to 25 s (diagnostics.fail allows one),
    // then dead.
    let dead = eventually(Duration::from_secs(60), "three dead jobs", || async {
        let (code, out, _) = it.admin(&["list"]);
        assert_eq!(code, 0);
        (out.lines().count() == 3).then_some(out)
    })
    .await;
    assert_eq!(it.runs().await["poison"], 2, "one run and one retry");
    let id_of = |kind: &str, hint: &str| -> String {
        let line = dead
            .lines()
            .find(|l| l.contains(kind) && (hint.is_empty() || l.contains(hint)))
            .unwrap_or_else(|| panic!("{kind} not in {dead}"));
        line.split('\t').next().unwrap().to_string()
    };
    let bad_args = id_of("diagnostics.record", "invalid arguments");
    let fatal_and_poison: Vec<String> = dead
        .lines()
        .filter(|l| l.contains("diagnostics.fail"))
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(fatal_and_poison.len(), 2, "{dead}");

    let shown: Vec<Value> = fatal_and_poison
        .iter()
        .map(|id| {
            let (code, out, err) = it.admin(&["show", id]);
            assert_eq!(code, 0, "{err}");
            serde_json::from_str(&out).unwrap()
        })
        .collect();
    let poison = shown.iter().find(|j| j["args"]["key"] == "poison").unwrap();
    let fatal = shown.iter().find(|j| j["args"]["key"] == "fatal").unwrap();
    assert_eq!(poison["retries"], 1);
    assert_eq!(fatal["retries"], 0);
    assert_eq!(poison["queue"], "default");
    assert!(
        poison["error"].as_str().unwrap().contains("always fails"),
        "{poison}"
    );
    let poison_id = poison["id"].as_str().unwrap().to_string();

    let m = metrics(&worker).await;
    assert_eq!(sample(&m, "fedi_jobs_dead{queue=\"default\"}"), Some(3.0));
    assert!(sample(&m, "fedi_jobs_failed_total{queue=\"default\"}").unwrap() >= 4.0);

    // Retried by hand: it runs once more, fails, and (its retries used up) dies again.
    let (code, _, err) = it.admin(&["retry", &poison_id]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("back on the default queue"), "{err}");
    eventually(
        Duration::from_secs(20),
        "the re-queued job to run",
        || async { (it.runs().await["poison"] == 3).then_some(()) },
    )
    .await;
    eventually(Duration::from_secs(20), "the job dead again", || async {
        let (_, out, _) = it.admin(&["list"]);
        out.contains(&poison_id).then_some(())
    })
    .await;

    let (code, _, err) = it.admin(&["delete", &bad_args]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = it.admin(&["list"]);
    assert!(!out.contains(&bad_args), "{out}");
    assert_eq!(out.lines().count(), 2);

    let (code, _, err) = it.admin(&["show", "0123456789abcdef01234567"]);
    assert_eq!(code, 1);
    assert!(err.contains("no dead job with id"), "{err}");

    let (code, _, err) = it.admin(&["delete", "--all"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, err) = it.admin(&["list"]);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("0 dead job(s)"), "{err}");
}

#[tokio::test]
async fn poison_jobs_die_without_blocking_their_queue_standalone() {
    poison_jobs_die_without_blocking_their_queue(Redis::Standalone).await;
}

#[tokio::test]
async fn poison_jobs_die_without_blocking_their_queue_cluster() {
    poison_jobs_die_without_blocking_their_queue(Redis::Cluster).await;
}

// --- 3. Periodic jobs with three schedulers --------------------------------------------

/// Heartbeat runs: `period (ms) -> runs`.
async fn heartbeats(it: &Instance) -> BTreeMap<i64, usize> {
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(it.key("scheduler", "heartbeats"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES");
    let runs: Vec<(String, f64)> = it.redis(&cmd).await;
    let mut out = BTreeMap::new();
    for (_, period) in runs {
        *out.entry(period as i64).or_insert(0) += 1;
    }
    out
}

fn assert_once_per_period(runs: &BTreeMap<i64, usize>, period_ms: i64) {
    for (period, n) in runs {
        assert_eq!(*n, 1, "period {period} ran {n} times: {runs:?}");
        assert_eq!(period % period_ms, 0, "{runs:?}");
    }
}

async fn periodic_jobs_run_once_per_period(redis: Redis) {
    let it = Instance::new(redis).await;
    let env = [("FEDI_WORKER_HEARTBEAT_SECONDS", "2")];
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(it.worker(&env).await);
    }
    tokio::time::sleep(Duration::from_secs(9)).await;
    let runs = heartbeats(&it).await;
    assert_once_per_period(&runs, 2000);
    assert!(runs.len() >= 4, "too few periods ran: {runs:?}");
    // No period skipped between the first and the last.
    let periods: Vec<i64> = runs.keys().copied().collect();
    assert!(periods.windows(2).all(|w| w[1] - w[0] == 2000), "{runs:?}");

    // The scheduler dies without releasing its lock: another takes over once it expires.
    let lock: String = it
        .redis(redis::cmd("GET").arg(it.key("scheduler", "lock")))
        .await;
    let holder = workers
        .iter()
        .position(|w| lock.contains(&format!("-{}-", w.child.id())))
        .unwrap_or_else(|| panic!("lock {lock} held by none of the workers"));
    let mut dead = workers.remove(holder);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let killed_at = *heartbeats(&it).await.keys().last().unwrap();
    eventually(Duration::from_secs(40), "a new scheduler", || async {
        let runs = heartbeats(&it).await;
        (*runs.keys().last().unwrap() > killed_at + 2000).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs = heartbeats(&it).await;
    assert_once_per_period(&runs, 2000);
    let lock: String = it
        .redis(redis::cmd("GET").arg(it.key("scheduler", "lock")))
        .await;
    assert!(
        workers
            .iter()
            .any(|w| lock.contains(&format!("-{}-", w.child.id()))),
        "{lock}"
    );
    let m = metrics(&workers[0]).await;
    let beat = sample(&m, "fedi_jobs_scheduler_heartbeat_timestamp_seconds").unwrap();
    assert!(beat * 1000.0 >= (killed_at + 2000) as f64, "{beat}");
}

#[tokio::test]
async fn periodic_jobs_run_once_per_period_with_three_schedulers_standalone() {
    periodic_jobs_run_once_per_period(Redis::Standalone).await;
}

#[tokio::test]
async fn periodic_jobs_run_once_per_period_with_three_schedulers_cluster() {
    periodic_jobs_run_once_per_period(Redis::Cluster).await;
}

// --- Graceful shutdown -----------------------------------------------------------------

#[tokio::test]
async fn sigterm_lets_running_jobs_finish_or_puts_them_back() {
    let it = Instance::new(Redis::Standalone).await;
    it.enqueue(
        "diagnostics.record",
        json!({"key": "short", "sleep_ms": 2000}),
    )
    .await;
    let mut worker = it
        .worker(&[("FEDI_WORKER_SHUTDOWN_GRACE_SECONDS", "20")])
        .await;
    eventually(Duration::from_secs(10), "the job to start", || async {
        let m = metrics(&worker).await;
        (sample(&m, "fedi_jobs_in_flight{queue=\"default\"}") == Some(1.0)).then_some(())
    })
    .await;
    signal(&worker, "-TERM");
    assert_eq!(exited(&mut worker, Duration::from_secs(15)).await, Some(0));
    assert_eq!(it.runs().await.get("short"), Some(&1), "the job finished");

    // Longer than the grace period: aborted, and back on the queue for the next worker.
    it.enqueue(
        "diagnostics.record",
        json!({"key": "long", "sleep_ms": 4000}),
    )
    .await;
    let mut worker = it
        .worker(&[("FEDI_WORKER_SHUTDOWN_GRACE_SECONDS", "1")])
        .await;
    eventually(Duration::from_secs(10), "the job to start", || async {
        let m = metrics(&worker).await;
        (sample(&m, "fedi_jobs_in_flight{queue=\"default\"}") == Some(1.0)).then_some(())
    })
    .await;
    let stopped = Instant::now();
    signal(&worker, "-TERM");
    assert_eq!(exited(&mut worker, Duration::from_secs(10)).await, Some(0));
    assert!(
        stopped.elapsed() < Duration::from_secs(4),
        "{:?}",
        stopped.elapsed()
    );
    assert!(!it.runs().await.contains_key("long"));
    let len: u64 = it
        .redis(redis::cmd("XLEN").arg(it.key("default", "stream")))
        .await;
    assert_eq!(len, 1, "the job is back on its queue");
    let _next = it.worker(&[]).await;
    eventually(Duration::from_secs(20), "the job to run again", || async {
        (it.runs().await.get("long") == Some(&1)).then_some(())
    })
    .await;
}

// --- Scheduled jobs, metrics, throughput -----------------------------------------------

#[tokio::test]
async fn scheduled_jobs_wait_for_their_time_and_metrics_show_the_queue() {
    let it = Instance::new(Redis::Standalone).await;
    let now = sqlx::types::chrono::Utc::now().timestamp_millis();
    let at = sqlx::types::chrono::DateTime::from_timestamp_millis(now + 3000).unwrap();
    jobs::enqueue_at(
        &it.state,
        Queue::Mailers,
        "diagnostics.record",
        json!({"key": "later"}),
        at,
    )
    .await
    .unwrap();
    for i in 0..3 {
        it.enqueue("diagnostics.record", json!({"key": format!("now-{i}")}))
            .await;
    }
    // A worker of the mailers queue alone: the default queue's jobs wait, and age.
    let worker = it.worker(&[("FEDI_WORKER_QUEUES", "mailers:1")]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let m = metrics(&worker).await;
    assert_eq!(
        sample(&m, "fedi_jobs_queue_depth{queue=\"default\"}"),
        Some(3.0)
    );
    assert!(sample(&m, "fedi_jobs_oldest_age_seconds{queue=\"default\"}").unwrap() >= 1.0);
    assert_eq!(
        sample(&m, "fedi_jobs_scheduled{queue=\"mailers\"}"),
        Some(1.0)
    );
    assert!(it.runs().await.is_empty(), "nothing is due on mailers yet");
    eventually(Duration::from_secs(10), "the scheduled job", || async {
        it.runs().await.contains_key("later").then_some(())
    })
    .await;
    let ran_at: (sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc>,) =
        sqlx::query_as("SELECT first_run_at FROM job_diagnostics WHERE key = 'later'")
            .fetch_one(&mut it.pg().await)
            .await
            .unwrap();
    assert!(ran_at.0 >= at, "ran at {} before {at}", ran_at.0);
    assert!(
        !it.runs().await.contains_key("now-0"),
        "default is not polled"
    );
}

/// CPU time (user + system) a process used so far, from /proc (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[tokio::test]
async fn throughput_of_one_worker_process() {
    const JOBS: usize = 3000;
    let it = Instance::new(Redis::Standalone).await;
    for i in 0..JOBS {
        it.enqueue("diagnostics.record", json!({"key": format!("t-{i}")}))
            .await;
    }
    let worker = it
        .worker(&[
            ("FEDI_WORKER_CONCURRENCY", "20"),
            ("FEDI_DATABASE_MAX_CONNECTIONS", "20"),
        ])
        .await;
    let started = Instant::now();
    let cpu_before = cpu_time(worker.child.id());
    eventually(Duration::from_secs(300), "every job", || async {
        (it.runs().await.len() == JOBS).then_some(())
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    let cpu = (cpu_time(worker.child.id()) - cpu_before).as_secs_f64();
    let m = metrics(&worker).await;
    let failed = sample(&m, "fedi_jobs_failed_total{queue=\"default\"}").unwrap_or(0.0);
    // A measurement, not an assertion: the machine is shared. CPU time is the steadier
    // figure when other processes compete for the cores.
    println!(
        "one worker process (debug build, concurrency 20) ran {JOBS} diagnostics.record jobs \
         (one PostgreSQL upsert each) in {secs:.2} s: {:.0} jobs/s; {cpu:.2} s of its CPU: \
         {:.0} jobs per CPU second; {failed} failed runs",
        JOBS as f64 / secs,
        JOBS as f64 / cpu.max(0.01),
    );
}

/// `fedi-server all` (development) runs the worker beside the api.
#[tokio::test]
async fn the_all_role_runs_jobs_too() {
    let it = Instance::new(Redis::Standalone).await;
    let port = free_port();
    let child = it
        .command(&["all"])
        .env("FEDI_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let all = Server {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
    };
    let health = format!("{}/health", all.base_url);
    eventually(Duration::from_secs(30), "the api's /health", || async {
        reqwest::get(&health).await.ok()
    })
    .await;
    it.enqueue("diagnostics.record", json!({"key": "from-all"}))
        .await;
    eventually(Duration::from_secs(20), "the job", || async {
        it.runs().await.contains_key("from-all").then_some(())
    })
    .await;
}

/// An empty `redis-server` without persistence on `port`, stopped when dropped.
struct OwnRedis(std::process::Child);

impl OwnRedis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed by `make services-up`");
        let addr = format!("127.0.0.1:{port}");
        eventually(Duration::from_secs(10), "redis-server", || async {
            tokio::net::TcpStream::connect(&addr).await.ok()
        })
        .await;
        Self(child)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Redis restarts empty (no persistence): the stream and its consumer group are gone. The
/// worker recreates the group and carries on with new jobs, without a restart of its own.
#[tokio::test]
async fn a_worker_survives_redis_restarting_empty() {
    let port = free_port();
    let redis = OwnRedis::start(port).await;
    let it = Instance::new(Redis::Own(port)).await;
    let _worker = it.worker(&[]).await;
    it.enqueue("diagnostics.record", json!({"key": "before"}))
        .await;
    eventually(Duration::from_secs(10), "the first job", || async {
        it.runs().await.contains_key("before").then_some(())
    })
    .await;
    drop(redis);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _redis = OwnRedis::start(port).await;
    // The test's own connection reconnects too; the first command may see the old one fail.
    eventually(Duration::from_secs(20), "enqueueing again", || async {
        jobs::enqueue(
            &it.state,
            Queue::Default,
            "diagnostics.record",
            json!({"key": "after"}),
        )
        .await
        .ok()
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "the job after the restart",
        || async { it.runs().await.contains_key("after").then_some(()) },
    )
    .await;
}
