//! The operator as a process, as in a pod (one replica, no leader election: the Lease
//! renewals would count as writes), serving only the bench's namespace. It resolves names
//! through the played cluster DNS (`fedi_e2e::played::dns`: a hosts file of its own mount
//! namespace), as it would resolve the managed Redis' Service in a pod.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::Context;

pub struct OperatorProcess {
    child: Child,
    pub metrics_url: String,
    http: reqwest::Client,
}

impl OperatorProcess {
    pub fn start(bin: &str, namespace: &str, hosts: &Path, log: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = fedi_e2e::played::dns::operator_command_for(hosts, bin)
            .args(["--http-addr", &format!("127.0.0.1:{port}")])
            .args(["--namespaces", namespace])
            .env("POD_NAMESPACE", namespace)
            .env("POD_NAME", "fedi-bench-operator")
            .env("FEDI_OPERATOR_LEADER_ELECTION", "false")
            // BENCH_OPERATOR_LOG: the operator's RUST_LOG, to find where a slow figure's
            // time went (`fedi_operator=debug` logs each reconcile's queueing and duration).
            .env(
                "RUST_LOG",
                std::env::var("BENCH_OPERATOR_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("starting {bin} (build it: cargo build --bin fedi-operator)")
            })?;
        Ok(Self {
            child,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
            http: reqwest::Client::new(),
        })
    }

    /// The operator's /metrics, waiting up to 30 s for it to answer after a start.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let mut last = None;
        for _ in 0..300 {
            match self.http.get(&self.metrics_url).send().await {
                Ok(r) if r.status().is_success() => return Ok(r.text().await?),
                Ok(r) => last = Some(anyhow::anyhow!("status {}", r.status())),
                Err(e) => last = Some(e.into()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last.unwrap()).context("the operator's /metrics")
    }

    /// Peak resident memory of the process (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .context("no VmHWM")?
            .parse()?;
        Ok(kib / 1024.0)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
