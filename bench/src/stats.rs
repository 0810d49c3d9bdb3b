//! Latency percentiles of samples a benchmark collected itself.

use crate::outcome::Latency;

/// Nearest-rank percentiles of `micros` (sorted here); `None` without samples.
pub fn latency(mut micros: Vec<u64>) -> Option<Latency> {
    if micros.is_empty() {
        return None;
    }
    micros.sort_unstable();
    // Per mille, in integers: 99.9% of 1,000 in floating point ranks 1,000, not 999.
    let at = |per_mille: usize| {
        let rank = (per_mille * micros.len()).div_ceil(1000);
        micros[rank.clamp(1, micros.len()) - 1] as f64 / 1000.0
    };
    Some(Latency {
        p50: at(500),
        p95: at(950),
        p99: at(990),
        p999: at(999),
        max: *micros.last().unwrap() as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let l = latency((1..=1000).map(|i| i * 1000).collect()).unwrap();
        assert_eq!(l.p50, 500.0);
        assert_eq!(l.p99, 990.0);
        assert_eq!(l.p999, 999.0);
        assert_eq!(l.max, 1000.0);
        assert!(latency(Vec::new()).is_none());
    }
}
