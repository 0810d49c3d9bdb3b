//! One wrk run (bench/wrk/mastodon.lua) with the roles sampled around it and the api (or
//! worker) profiled while it runs.
//!
//! A target stated "at saturation" is judged at the knee of a connection sweep, not at the
//! main run's connection count: on 2 cores, 32 connections mostly measure how long requests
//! wait in the queue, which any server shows once it is saturated. The sweep finds the
//! fewest connections that reach about the best throughput, and that run's latency is the
//! figure; the main run stays in the table as a row of its own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::outcome::{Latency, Outcome, RoleUsage, Target};
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
    /// Connection counts tried before the main run (comma-separated) to find the knee;
    /// default for `--target cached-read`: 1,2,4,8,16 and the main run's count.
    #[arg(long, value_delimiter = ',')]
    sweep: Vec<u32>,
    /// Seconds of each sweep run (default: a quarter of `--seconds`, at least 3).
    #[arg(long)]
    sweep_seconds: Option<u64>,
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

/// A run reaching this share of the sweep's best throughput is saturated: the knee is the
/// first such run, counting connections up.
const KNEE_SHARE: f64 = 0.9;

/// One wrk run, measured.
struct Step {
    connections: u32,
    seconds: u64,
    summary: WrkSummary,
    roles: BTreeMap<String, RoleUsage>,
}

impl Step {
    fn errors(&self) -> u64 {
        let e = &self.summary.errors;
        e.connect + e.read + e.write + e.status + e.timeout
    }

    fn per_second(&self) -> f64 {
        self.summary.requests as f64 / self.duration_s()
    }

    fn duration_s(&self) -> f64 {
        self.summary.duration_us as f64 / 1e6
    }

    fn latency(&self) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        let l = &self.summary.latency_us;
        Latency {
            p50: ms(l.p50),
            p95: ms(l.p95),
            p99: ms(l.p99),
            p999: ms(l.p999),
            max: ms(l.max),
        }
    }

    fn wrk_note(&self, threads: u32) -> String {
        let e = &self.summary.errors;
        format!(
            "wrk -t{} -c{} -d{}s; errors: connect {}, read {}, write {}, non-2xx {}, timeout {}",
            threads.min(self.connections),
            self.connections,
            self.seconds,
            e.connect,
            e.read,
            e.write,
            e.status,
            e.timeout
        )
    }

    fn sweep_note(&self) -> String {
        let l = self.latency();
        format!(
            "{} connections: {:.0} req/s, p50 {:.2} / p99 {:.2} ms, api {} CPU s/1k",
            self.connections,
            self.per_second(),
            l.p50,
            l.p99,
            self.roles
                .get("api")
                .map_or("–".into(), |u| format!("{:.2}", u.cpu_seconds_per_1k))
        )
    }
}

/// The knee of `steps` (sorted by connections): the first reaching [`KNEE_SHARE`] of the
/// best throughput, among runs without errors if any has none.
fn knee(steps: &[Step]) -> usize {
    let clean = steps.iter().any(|s| s.errors() == 0);
    let eligible = |s: &Step| !clean || s.errors() == 0;
    let best = steps
        .iter()
        .filter(|s| eligible(s))
        .map(Step::per_second)
        .fold(0.0, f64::max);
    steps
        .iter()
        .position(|s| eligible(s) && s.per_second() >= KNEE_SHARE * best)
        .unwrap_or(steps.len() - 1)
}

async fn wrk(a: &Args, connections: u32, seconds: u64) -> anyhow::Result<Step> {
    let roles = procs::roles()?;
    let meter = Meter::start(&roles)?;
    let mut wrk = tokio::process::Command::new("wrk");
    // wrk wants at least one connection per thread.
    wrk.arg(format!("-t{}", a.threads.min(connections)))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
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
    let roles = meter.finish(summary.requests)?;
    Ok(Step {
        connections,
        seconds,
        summary,
        roles,
    })
}

/// The connection counts to sweep below the main run's, if any.
fn sweep_counts(a: &Args) -> Vec<u32> {
    let mut counts = if a.sweep.is_empty() && matches!(a.target, Some(TargetKind::CachedRead)) {
        vec![1, 2, 4, 8, 16]
    } else {
        a.sweep.clone()
    };
    counts.retain(|c| *c > 0 && *c < a.connections);
    counts.sort_unstable();
    counts.dedup();
    counts
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let mut steps = Vec::new();
    let sweep_seconds = a.sweep_seconds.unwrap_or((a.seconds / 4).max(3));
    for connections in sweep_counts(&a) {
        steps.push(wrk(&a, connections, sweep_seconds).await?);
    }
    // The main run, profiled over its middle, after connections are up.
    let profile_for = (a.seconds / 2).max(1);
    let pid = procs::pid_of(&procs::roles()?, &a.profile);
    let hotspot = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        procs::hotspot(pid, profile_for).await
    });
    steps.push(wrk(&a, a.connections, a.seconds).await?);
    let hotspot = format!("{}: {}", a.profile, hotspot.await?);
    let backlog = match &a.worker_metrics {
        Some(url) => Some(format!(
            "worker after the run: {}",
            worker_backlog(url).await
        )),
        None => None,
    };

    let main = steps.last().expect("the main run");
    let target = |step: &Step| {
        let (latency, per_second, errors) = (step.latency(), step.per_second(), step.errors());
        a.target.map(|t| match t {
            TargetKind::CachedRead => Target {
                text: "p99 < 10 ms at saturation".into(),
                met: latency.p99 < 10.0 && errors == 0,
            },
            TargetKind::Posting => Target {
                text: ">= 200 req/s with p95 < 50 ms while the worker delivers".into(),
                met: per_second >= 200.0 && latency.p95 < 50.0 && errors == 0,
            },
        })
    };
    let outcome = |step: &Step, order: u32, name: String, target, notes| Outcome {
        order,
        name,
        requests: step.summary.requests,
        duration_s: step.duration_s(),
        per_second: step.per_second(),
        unit: "req/s".into(),
        latency_ms: Some(step.latency()),
        errors: step.errors(),
        roles: step.roles.clone(),
        hotspot: None,
        target,
        notes,
    };

    let mut main_notes = a.note.clone();
    main_notes.push(main.wrk_note(a.threads));
    main_notes.extend(backlog.clone());
    if steps.len() == 1 {
        let mut o = outcome(main, a.order, a.name.clone(), target(main), main_notes);
        o.hotspot = Some(hotspot);
        return o.write(&a.out);
    }

    let k = knee(&steps);
    let at_knee = &steps[k];
    let mut knee_notes = a.note.clone();
    knee_notes.push(format!(
        "at saturation = the knee of a connection sweep: the fewest connections reaching {:.0}% \
         of the best throughput ({} connections); that run's latency is the figure",
        KNEE_SHARE * 100.0,
        at_knee.connections
    ));
    knee_notes.push(format!(
        "sweep: {}",
        steps
            .iter()
            .map(Step::sweep_note)
            .collect::<Vec<_>>()
            .join("; ")
    ));
    knee_notes.push(at_knee.wrk_note(a.threads));
    let mut knee_row = outcome(
        at_knee,
        a.order,
        format!(
            "{}, at saturation ({} connections)",
            a.name, at_knee.connections
        ),
        target(at_knee),
        knee_notes,
    );
    main_notes.push(format!(
        "beyond the knee ({} connections): the extra connections wait in the queue; the target is judged \
         at the knee (row above)",
        at_knee.connections
    ));
    let mut main_row = outcome(
        main,
        a.order + 1,
        format!("{}, {} connections", a.name, main.connections),
        None,
        main_notes,
    );
    main_row.hotspot = Some(hotspot.clone());
    if k == steps.len() - 1 {
        // The main run is the knee: one row carries everything.
        knee_row.hotspot = Some(hotspot);
        knee_row.notes.extend(backlog);
        return knee_row.write(&a.out);
    }
    knee_row.write(&a.out)?;
    main_row.write(&a.out)
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

    fn step(connections: u32, requests: u64, p99_us: u64, errors: u64) -> Step {
        Step {
            connections,
            seconds: 1,
            summary: WrkSummary {
                requests,
                duration_us: 1_000_000,
                errors: WrkErrors {
                    connect: 0,
                    read: 0,
                    write: 0,
                    status: errors,
                    timeout: 0,
                },
                latency_us: WrkLatency {
                    p50: p99_us / 2,
                    p95: p99_us,
                    p99: p99_us,
                    p999: p99_us,
                    max: p99_us,
                },
            },
            roles: BTreeMap::new(),
        }
    }

    #[test]
    fn the_knee_is_the_fewest_connections_near_the_best_throughput() {
        let steps = [
            step(1, 400, 3_000, 0),
            step(2, 700, 4_000, 0),
            step(4, 950, 6_000, 0),
            step(8, 1000, 12_000, 0),
            step(32, 990, 60_000, 0),
        ];
        assert_eq!(steps[knee(&steps)].connections, 4);
        // A run with errors does not set the best throughput nor count as the knee.
        let steps = [step(1, 500, 3_000, 0), step(2, 2000, 1_000, 7)];
        assert_eq!(steps[knee(&steps)].connections, 1);
        let steps = [step(1, 10, 3_000, 0), step(2, 100, 1_000, 0)];
        assert_eq!(steps[knee(&steps)].connections, 2);
    }

    #[test]
    fn sweep_note_shows_throughput_and_latency() {
        let note = step(4, 950, 6_000, 0).sweep_note();
        assert_eq!(
            note,
            "4 connections: 950 req/s, p50 3.00 / p99 6.00 ms, api – CPU s/1k"
        );
    }
}
