//! Latency percentiles from a list of samples (sorted in place; no histogram needed at this size).

use std::time::Duration;

use serde::Serialize;

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Latency {
    pub count: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// Summarises `samples` (empty gives all zeros).
    pub(crate) fn of(samples: &mut [Duration]) -> Self {
        Self::of_ms(&mut samples.iter().map(ms).collect::<Vec<_>>())
    }

    /// Summarises samples already in milliseconds.
    pub(crate) fn of_ms(samples: &mut [f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        // Nearest rank: the smallest sample with at least p of the samples at or below it.
        let rank = |p: f64| {
            let i = (p * samples.len() as f64).ceil() as usize;
            samples[i.clamp(1, samples.len()) - 1]
        };
        Self {
            count: samples.len(),
            min_ms: samples[0],
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p95_ms: rank(0.95),
            p99_ms: rank(0.99),
            p999_ms: rank(0.999),
            max_ms: samples[samples.len() - 1],
            mean_ms: samples.iter().sum::<f64>() / samples.len() as f64,
        }
    }

    /// `p50 / p99 / max` for the summary line.
    pub(crate) fn short(&self) -> String {
        if self.count == 0 {
            return "n=0".into();
        }
        format!(
            "n={} p50 {:.2} ms  p90 {:.2}  p99 {:.2}  max {:.2}",
            self.count, self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        )
    }
}

/// A duration in milliseconds.
pub(crate) fn ms(d: &Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = Latency::of_ms(&mut v);
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.min_ms),
            (50.0, 95.0, 99.0, 100.0, 1.0)
        );
        assert_eq!(Latency::of_ms(&mut []).count, 0);
        assert_eq!(Latency::of_ms(&mut [7.0]).p99_ms, 7.0);
    }
}
