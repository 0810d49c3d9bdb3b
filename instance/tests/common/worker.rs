//! `fedi-server worker` processes for tests that need queued jobs run.

use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{Server, free_port, server_command};

/// A domain unique to this test: job queues are named by `FEDI_DOMAIN`, and the worker of
/// one test must not take the jobs of another (with another database) on the shared Redis.
pub fn unique_domain() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("t{}-{n}.test.example", std::process::id())
}

/// A worker on `db` and `redis` with `env` added (pass the test's `FEDI_DOMAIN`), killed on
/// drop; `base_url` is its health and metrics listener. It is not waited for (the jobs it
/// runs are what tests poll for): `answers_health` does that where it matters.
pub fn start_worker(db: &str, redis: &str, env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let child = server_command(db, redis)
        .arg("worker")
        .env("FEDI_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn fedi-server worker");
    Server {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
    }
}
