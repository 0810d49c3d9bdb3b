//! What each benchmark writes (one JSON file in the run's directory) and the report reads.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// CPU and memory of one role (api, streamer, worker) over one benchmark.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoleUsage {
    pub cpu_seconds: f64,
    /// `cpu_seconds` per 1,000 requests (or events) of the benchmark.
    pub cpu_seconds_per_1k: f64,
    pub rss_mib: f64,
    /// The process's peak RSS so far (VmHWM), not only during this benchmark.
    pub peak_rss_mib: f64,
}

/// A target of the issue beside a figure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Target {
    pub text: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    /// Orders the rows of the table.
    pub order: u32,
    pub name: String,
    /// Requests, events or deliveries measured.
    pub requests: u64,
    pub duration_s: f64,
    pub per_second: f64,
    /// What `per_second` counts ("req/s", "signatures/s", "deliveries/s").
    pub unit: String,
    pub latency_ms: Option<Latency>,
    pub errors: u64,
    pub roles: BTreeMap<String, RoleUsage>,
    /// The top symbol of the busiest role's profile, or why there is none.
    pub hotspot: Option<String>,
    pub target: Option<Target>,
    pub notes: Vec<String>,
}

impl Outcome {
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let slug: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = dir.join(format!("{:02}-{slug}.json", self.order));
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("{}", serde_json::to_string(self)?);
        Ok(())
    }
}
