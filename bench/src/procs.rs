//! The roles under test, as processes: CPU time and RSS from /proc before and after a
//! benchmark, and a short `perf` profile of the busiest one.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::outcome::RoleUsage;

/// A role's process, named as in `FEDI_BENCH_ROLES=api=123,streamer=456,worker=789`.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub pid: u32,
}

pub fn roles() -> anyhow::Result<Vec<Role>> {
    let spec = std::env::var("FEDI_BENCH_ROLES").unwrap_or_default();
    spec.split(',')
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (name, pid) = entry
                .split_once('=')
                .with_context(|| format!("FEDI_BENCH_ROLES entry {entry:?} is not role=pid"))?;
            Ok(Role {
                name: name.to_string(),
                pid: pid.parse().with_context(|| format!("pid of {name}"))?,
            })
        })
        .collect()
}

pub fn pid_of(roles: &[Role], name: &str) -> Option<u32> {
    roles.iter().find(|r| r.name == name).map(|r| r.pid)
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    cpu_ticks: u64,
    rss_kib: u64,
    peak_kib: u64,
}

fn sample(pid: u32) -> anyhow::Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    // The command name (field 2) may hold spaces; utime and stime are fields 14 and 15,
    // counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let cpu_ticks = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Sample {
        cpu_ticks,
        rss_kib: kib("VmRSS:"),
        peak_kib: kib("VmHWM:"),
    })
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU and memory of every role between `start` and `finish`.
pub struct Meter {
    before: Vec<(Role, Sample)>,
}

impl Meter {
    pub fn start(roles: &[Role]) -> anyhow::Result<Self> {
        let before = roles
            .iter()
            .map(|r| Ok((r.clone(), sample(r.pid)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { before })
    }

    /// Usage per role; `units` (requests or events) scales the CPU time per 1,000.
    pub fn finish(&self, units: u64) -> anyhow::Result<BTreeMap<String, RoleUsage>> {
        let hz = clock_ticks();
        let mut usage = BTreeMap::new();
        for (role, before) in &self.before {
            let after = sample(role.pid)
                .with_context(|| format!("the {} role died during the benchmark", role.name))?;
            let cpu_seconds = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / hz;
            usage.insert(
                role.name.clone(),
                RoleUsage {
                    cpu_seconds,
                    cpu_seconds_per_1k: if units == 0 {
                        0.0
                    } else {
                        cpu_seconds * 1000.0 / units as f64
                    },
                    rss_mib: after.rss_kib as f64 / 1024.0,
                    peak_rss_mib: after.peak_kib as f64 / 1024.0,
                },
            );
        }
        Ok(usage)
    }
}

/// Samples `pid` with `perf record` for `seconds` and names its top user-space symbols
/// ("12.3% name; 4.5% other"), or says why it could not. Kernel symbols are left out: they
/// are the network stack and the scheduler, the same for every benchmark.
pub async fn hotspot(pid: Option<u32>, seconds: u64) -> String {
    let Some(pid) = pid else {
        return "no process to profile".into();
    };
    match profile(pid, seconds).await {
        Ok(top) => top,
        Err(e) => format!("no profile: {e:#}"),
    }
}

async fn profile(pid: u32, seconds: u64) -> anyhow::Result<String> {
    let data =
        std::env::temp_dir().join(format!("fedi-bench-perf-{pid}-{}.data", std::process::id()));
    let record = tokio::time::timeout(
        Duration::from_secs(seconds + 30),
        tokio::process::Command::new("perf")
            .args(["record", "-F", "499", "-p", &pid.to_string(), "-o"])
            .arg(&data)
            .args(["--", "sleep", &seconds.to_string()])
            .output(),
    )
    .await
    .context("perf record hung")?
    .context("perf is not installed")?;
    if !record.status.success() {
        bail!(
            "perf record failed: {}",
            String::from_utf8_lossy(&record.stderr).trim()
        );
    }
    let report = tokio::process::Command::new("perf")
        .args(["report", "--stdio", "--sort", "symbol", "-i"])
        .arg(&data)
        .output()
        .await?;
    let _ = std::fs::remove_file(&data);
    let text = String::from_utf8_lossy(&report.stdout);
    let top = top_symbols(&text, 3);
    anyhow::ensure!(!top.is_empty(), "perf report had no user-space samples");
    Ok(top.join("; "))
}

/// The first `n` user-space rows of `perf report --stdio --sort symbol`, each
/// "  12.34%  [.] name" and maybe more columns after two spaces.
fn top_symbols(report: &str, n: usize) -> Vec<String> {
    report
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (percent, rest) = l.split_once('%')?;
            let percent: f64 = percent.trim().parse().ok()?;
            let symbol = rest.trim().strip_prefix("[.]")?.trim();
            let symbol = symbol.split("  ").next().unwrap_or(symbol);
            Some(format!("{percent:.1}% {symbol}"))
        })
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_symbol_of_a_perf_report() {
        let report = "# Samples: 1K\n#\n# Overhead  Symbol\n\n    23.50%  [.] ring::rsa::verify      -      -\n     \
                      9.00%  [k] tcp_sendmsg\n     3.10%  [.] memcpy\n     1.00%  [.] a\n     0.50%  [.] b\n";
        assert_eq!(
            top_symbols(report, 3),
            ["23.5% ring::rsa::verify", "3.1% memcpy", "1.0% a"]
        );
        assert!(top_symbols("# nothing\n", 3).is_empty());
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0 && s.peak_kib >= s.rss_kib);
    }
}
