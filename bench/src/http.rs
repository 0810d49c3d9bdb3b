//! One wrk run (bench/wrk/mastodon.lua) with the roles sampled around it and the api (or
//! worker) profiled while it runs.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::outcome::{Latency, Outcome, Target};
use crate::procs::{self, Meter};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The row's name in the table.
    #[arg(long)]
    name: String,
    #[arg(long)]
    order: u32,
    /// The api, as http://host:port.
    #[arg(long)]
    api: String,
    #[arg(long, default_value = "GET")]
    method: String,
    #[arg(long)]
    path: String,
    /// Tokens, one a line; each request draws one.
    #[arg(long)]
    tokens: PathBuf,
    /// For POST /api/v1/statuses: the status text (a counter is appended).
    #[arg(long)]
    status_text: Option<String>,
    #[arg(long, default_value_t = 32)]
    connections: u32,
    #[arg(long, default_value_t = 2)]
    threads: u32,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// The target for this row.
    #[arg(long, value_enum)]
    target: Option<TargetKind>,
    /// The role to profile.
    #[arg(long, default_value = "api")]
    profile: String,
    #[arg(long)]
    note: Vec<String>,
    /// The worker's /metrics: its queue depth and oldest job after the run go in the notes
    /// (whether the worker kept up with what the api queued).
    #[arg(long)]
    worker_metrics: Option<String>,
    #[arg(long, default_value = "bench/wrk/mastodon.lua")]
    script: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum TargetKind {
    /// Cached timeline reads: p99 under 10 ms at saturation.
    CachedRead,
    /// Status creation: 200 req/s sustained with p95 under 50 ms while the worker delivers.
    Posting,
}

#[derive(Deserialize)]
struct WrkErrors {
    connect: u64,
    read: u64,
    write: u64,
    status: u64,
    timeout: u64,
}

#[derive(Deserialize)]
struct WrkLatency {
    p50: u64,
    p95: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

#[derive(Deserialize)]
struct WrkSummary {
    requests: u64,
    duration_us: u64,
    errors: WrkErrors,
    latency_us: WrkLatency,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let roles = procs::roles()?;
    let meter = Meter::start(&roles)?;
    // The profile covers the middle of the run, after connections are up.
    let profile_for = (a.seconds / 2).max(1);
    let pid = procs::pid_of(&roles, &a.profile);
    let hotspot = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        procs::hotspot(pid, profile_for).await
    });
    let mut wrk = tokio::process::Command::new("wrk");
    wrk.arg(format!("-t{}", a.threads))
        .arg(format!("-c{}", a.connections))
        .arg(format!("-d{}s", a.seconds))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(&a.script)
        .arg(format!("{}{}", a.api, a.path))
        .arg("--")
        .arg(&a.method)
        .arg(&a.path)
        .arg(&a.tokens);
    if let Some(text) = &a.status_text {
        wrk.arg(text);
    }
    let output = wrk
        .output()
        .await
        .context("running wrk (apt-get install wrk)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary = parse(&stdout)?;
    let roles_usage = meter.finish(summary.requests)?;
    let e = &summary.errors;
    let errors = e.connect + e.read + e.write + e.status + e.timeout;
    let ms = |us: u64| us as f64 / 1000.0;
    let l = &summary.latency_us;
    let latency = Latency {
        p50: ms(l.p50),
        p95: ms(l.p95),
        p99: ms(l.p99),
        p999: ms(l.p999),
        max: ms(l.max),
    };
    let duration_s = summary.duration_us as f64 / 1e6;
    let per_second = summary.requests as f64 / duration_s;
    let target = a.target.map(|t| match t {
        TargetKind::CachedRead => Target {
            text: "p99 < 10 ms at saturation".into(),
            met: latency.p99 < 10.0 && errors == 0,
        },
        TargetKind::Posting => Target {
            text: ">= 200 req/s with p95 < 50 ms while the worker delivers".into(),
            met: per_second >= 200.0 && latency.p95 < 50.0 && errors == 0,
        },
    });
    let mut notes = a.note.clone();
    notes.push(format!(
        "wrk -t{} -c{} -d{}s; errors: connect {}, read {}, write {}, non-2xx {}, timeout {}",
        a.threads, a.connections, a.seconds, e.connect, e.read, e.write, e.status, e.timeout
    ));
    if let Some(url) = &a.worker_metrics {
        notes.push(format!(
            "worker after the run: {}",
            worker_backlog(url).await
        ));
    }
    Outcome {
        order: a.order,
        name: a.name.clone(),
        requests: summary.requests,
        duration_s,
        per_second,
        unit: "req/s".into(),
        latency_ms: Some(latency),
        errors,
        roles: roles_usage,
        hotspot: Some(format!("{}: {}", a.profile, hotspot.await?)),
        target,
        notes,
    }
    .write(&a.out)
}

/// The worker's queue gauges (depth, oldest age) and job counters, as it reports them.
async fn worker_backlog(url: &str) -> String {
    let text = match reqwest::get(url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => return format!("metrics unavailable ({e})"),
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
        .filter(|l| {
            ["queue_depth", "oldest_age", "processed", "failed"]
                .iter()
                .any(|m| l.contains(m))
        })
        .collect();
    lines.join(", ")
}

fn parse(stdout: &str) -> anyhow::Result<WrkSummary> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_JSON "))
        .with_context(|| format!("wrk printed no summary (is the done hook there?):\n{stdout}"))?;
    Ok(serde_json::from_str(line)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_done_hook_line_is_parsed() {
        let out = "Running 1s test\nBENCH_JSON {\"requests\":10,\"duration_us\":1000000,\"errors\":{\"connect\":0,\"read\":0,\"write\":0,\"status\":2,\"timeout\":0},\"latency_us\":{\"p50\":100,\"p95\":200,\"p99\":300,\"p999\":400,\"max\":500}}\n";
        let s = parse(out).unwrap();
        assert_eq!(
            (s.requests, s.errors.status, s.latency_us.p999),
            (10, 2, 400)
        );
        assert!(parse("no summary").is_err());
    }
}
