//! Figures from Prometheus text: the operator's reconcile histogram and counters, and the
//! API server's `apiserver_request_total`.

use std::collections::BTreeMap;

/// `name{labels} value` lines of `text` whose name is `name`, as (labels, value).
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => {
                let (labels, value) = r.split_once('}')?;
                (labels, value)
            }
            None if rest.starts_with(' ') => ("", rest),
            None => return None,
        };
        Some((labels, value.split_whitespace().next()?.parse().ok()?))
    })
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let end = labels[start..].find('"')? + start;
    Some(&labels[start..end])
}

/// The sum of every series of counter `name`.
pub fn counter(text: &str, name: &str) -> f64 {
    samples(text, name).map(|(_, v)| v).sum()
}

/// Cumulative bucket counts of histogram `name` by upper bound (summed over other labels).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(pub Vec<(f64, f64)>);

impl Buckets {
    pub fn parse(text: &str, name: &str) -> Self {
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for (labels, v) in samples(text, &format!("{name}_bucket")) {
            let Some(le) = label(labels, "le") else {
                continue;
            };
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                match le.parse() {
                    Ok(x) => x,
                    Err(_) => continue,
                }
            };
            by_le.entry(le.to_bits()).or_insert((le, 0.0)).1 += v;
        }
        let mut b: Vec<(f64, f64)> = by_le.into_values().collect();
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        Self(b)
    }

    /// The observations between `earlier` and `self`.
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .map(|&(le, c)| {
                    let before = earlier
                        .0
                        .iter()
                        .find(|(l, _)| *l == le)
                        .map_or(0.0, |x| x.1);
                    (le, c - before)
                })
                .collect(),
        )
    }

    pub fn count(&self) -> f64 {
        self.0.last().map_or(0.0, |x| x.1)
    }

    /// The `q` quantile, interpolated linearly inside its bucket as Prometheus's
    /// `histogram_quantile` does; in the +Inf bucket, the largest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(le, c) in &self.0 {
            if c >= rank {
                if le.is_infinite() {
                    return Some(lower);
                }
                let within = c - below;
                let frac = if within > 0.0 {
                    (rank - below) / within
                } else {
                    1.0
                };
                return Some(lower + (le - lower) * frac);
            }
            (lower, below) = (le, c);
        }
        Some(lower)
    }
}

/// API server requests: all of them, and those that change something (events excluded:
/// they report, not change).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Requests {
    pub total: f64,
    pub writes: f64,
}

const WRITE_VERBS: [&str; 8] = [
    "POST",
    "CREATE",
    "PUT",
    "UPDATE",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

impl Requests {
    pub fn parse(text: &str) -> Self {
        let mut r = Self::default();
        for (labels, v) in samples(text, "apiserver_request_total") {
            r.total += v;
            let verb = label(labels, "verb").unwrap_or("");
            if WRITE_VERBS.contains(&verb) && label(labels, "resource") != Some("events") {
                r.writes += v;
            }
        }
        r
    }

    pub fn since(self, earlier: Requests) -> Requests {
        Requests {
            total: self.total - earlier.total,
            writes: self.writes - earlier.writes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPERATOR: &str = "\
# TYPE fedi_operator_reconcile_duration_seconds histogram
fedi_operator_reconcile_duration_seconds_sum 1.5
fedi_operator_reconcile_duration_seconds_count 100
fedi_operator_reconcile_duration_seconds_bucket{le=\"0.01\"} 50
fedi_operator_reconcile_duration_seconds_bucket{le=\"0.1\"} 90
fedi_operator_reconcile_duration_seconds_bucket{le=\"1.0\"} 100
fedi_operator_reconcile_duration_seconds_bucket{le=\"+Inf\"} 100
fedi_operator_reconciles_total 100
fedi_operator_reconciles_total_created 1.7e9
";

    #[test]
    fn histogram_quantiles_interpolate_within_buckets_and_subtract_a_baseline() {
        let b = Buckets::parse(OPERATOR, "fedi_operator_reconcile_duration_seconds");
        assert_eq!(b.count(), 100.0);
        assert_eq!(b.quantile(0.5), Some(0.01));
        // 99th of 100: nine tenths into the (0.1, 1.0] bucket.
        assert!((b.quantile(0.99).unwrap() - 0.91).abs() < 1e-9);
        let later = Buckets(b.0.iter().map(|&(le, c)| (le, c * 2.0)).collect());
        assert_eq!(later.since(&b), b);
        assert_eq!(Buckets::default().quantile(0.5), None);
        assert_eq!(counter(OPERATOR, "fedi_operator_reconciles_total"), 100.0);
    }

    #[test]
    fn api_requests_count_writes_apart_from_events() {
        let text = "\
apiserver_request_total{code=\"200\",resource=\"deployments\",verb=\"GET\"} 10
apiserver_request_total{code=\"200\",resource=\"deployments\",verb=\"APPLY\"} 3
apiserver_request_total{code=\"201\",resource=\"events\",verb=\"POST\"} 4
apiserver_request_total{code=\"200\",resource=\"secrets\",verb=\"DELETE\"} 1
apiserver_request_duration_seconds_count{verb=\"GET\"} 99
";
        let r = Requests::parse(text);
        assert_eq!(
            r,
            Requests {
                total: 18.0,
                writes: 4.0
            }
        );
        assert_eq!(r.since(r), Requests::default());
    }
}
