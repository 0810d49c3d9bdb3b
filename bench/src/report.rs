//! The results table: every outcome of a run, in Markdown (for the README) and JSON.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, ensure};
use serde_json::json;

use crate::outcome::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The directory of the run's outcome files.
    #[arg(long)]
    outcomes: PathBuf,
    #[arg(long)]
    markdown: PathBuf,
    #[arg(long)]
    json: PathBuf,
    /// What the run was: "key=value" lines shown above the table (date, scale, commit...).
    #[arg(long)]
    meta: Vec<String>,
}

const ROLES: [&str; 3] = ["api", "streamer", "worker"];

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut outcomes = Vec::new();
    for entry in std::fs::read_dir(&a.outcomes)
        .with_context(|| format!("reading {}", a.outcomes.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let o: Outcome = serde_json::from_slice(&std::fs::read(&path)?)
                .with_context(|| format!("parsing {}", path.display()))?;
            outcomes.push(o);
        }
    }
    ensure!(
        !outcomes.is_empty(),
        "no outcomes in {}",
        a.outcomes.display()
    );
    outcomes.sort_by_key(|o| o.order);
    let meta: Vec<(String, String)> = a
        .meta
        .iter()
        .filter_map(|m| m.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    std::fs::write(&a.markdown, markdown(&meta, &outcomes))?;
    let meta_json: serde_json::Map<String, serde_json::Value> =
        meta.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    std::fs::write(
        &a.json,
        serde_json::to_vec_pretty(&json!({"meta": meta_json, "results": outcomes}))?,
    )?;
    Ok(())
}

fn markdown(meta: &[(String, String)], outcomes: &[Outcome]) -> String {
    let mut md = String::new();
    for (k, v) in meta {
        let _ = writeln!(md, "- {k}: {v}");
    }
    md.push('\n');
    md.push_str(
        "| Benchmark | Throughput | p50 ms | p95 ms | p99 ms | p99.9 ms | Errors | \
         CPU s / 1k (api / streamer / worker) | RSS MiB (api / streamer / worker) | Target |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let l = o.latency_ms;
        let ms = |f: fn(&crate::outcome::Latency) -> f64| {
            l.as_ref()
                .map_or("–".to_string(), |l| format!("{:.2}", f(l)))
        };
        let per_role = |f: fn(&crate::outcome::RoleUsage) -> String| {
            let cells: Vec<String> = ROLES
                .iter()
                .map(|r| o.roles.get(*r).map_or("–".into(), f))
                .collect();
            if o.roles.is_empty() {
                "–".into()
            } else {
                cells.join(" / ")
            }
        };
        let target = o.target.as_ref().map_or("–".into(), |t| {
            format!("{} {}", if t.met { "met" } else { "**not met**" }, t.text)
        });
        let _ = writeln!(
            md,
            "| {} | {:.0} {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            o.name,
            o.per_second,
            o.unit,
            ms(|l| l.p50),
            ms(|l| l.p95),
            ms(|l| l.p99),
            ms(|l| l.p999),
            o.errors,
            per_role(|u| format!("{:.2}", u.cpu_seconds_per_1k)),
            per_role(|u| format!("{:.0}", u.rss_mib)),
            target,
        );
    }
    md.push_str("\nHotspots (top symbol of `perf record` on the busiest role):\n\n");
    for o in outcomes {
        if let Some(h) = &o.hotspot {
            let _ = writeln!(md, "- {}: {h}", o.name);
        }
    }
    md.push_str("\nNotes:\n\n");
    for o in outcomes {
        for n in &o.notes {
            let _ = writeln!(md, "- {}: {n}", o.name);
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Latency, RoleUsage, Target};

    #[test]
    fn a_row_shows_figures_roles_and_whether_the_target_is_met() {
        let o = Outcome {
            order: 10,
            name: "home timeline".into(),
            requests: 1000,
            duration_s: 1.0,
            per_second: 1000.0,
            unit: "req/s".into(),
            latency_ms: Some(Latency {
                p50: 1.0,
                p95: 2.0,
                p99: 12.5,
                p999: 20.0,
                max: 30.0,
            }),
            errors: 0,
            roles: [(
                "api".to_string(),
                RoleUsage {
                    cpu_seconds: 1.0,
                    cpu_seconds_per_1k: 1.0,
                    rss_mib: 40.0,
                    peak_rss_mib: 41.0,
                },
            )]
            .into(),
            hotspot: Some("api: 9.0% memcpy".into()),
            target: Some(Target {
                text: "p99 < 10 ms at saturation".into(),
                met: false,
            }),
            notes: vec!["wrk -c32".into()],
        };
        let md = markdown(&[("scale".into(), "small".into())], &[o]);
        assert!(md.contains("| home timeline | 1000 req/s | 1.00 | 2.00 | 12.50 | 20.00 | 0 | 1.00 / – / – | 40 / – / – | **not met** p99 < 10 ms at saturation |"), "{md}");
        assert!(md.contains("- home timeline: api: 9.0% memcpy"));
        assert!(md.contains("- scale: small"));
    }
}
