//! Summaries of repeated measurements: median, min and max (and the samples
//! themselves, so a reader can recompute anything else).

/// Median, min and max of one figure over the measured runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Median (the mean of the two middle samples for an even count).
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Every sample, in measurement order.
    pub samples: Vec<f64>,
}

impl Summary {
    /// Summarize `samples`; `None` when there are none (or any is not finite).
    pub fn from_samples(samples: Vec<f64>) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        Some(Summary { median, min: sorted[0], max: sorted[n - 1], samples })
    }

    /// The same figure with every sample mapped through `f` (e.g. a unit change).
    /// `f` must be monotonic increasing for min/max to stay meaningful.
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Summary {
        Summary {
            median: f(self.median),
            min: f(self.min),
            max: f(self.max),
            samples: self.samples.iter().map(|&v| f(v)).collect(),
        }
    }
}

/// The tail of a latency distribution (nearest-rank percentiles over every
/// sample): control loops care about the slowest tokens, not only the mean.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    /// How many samples they summarize.
    pub count: usize,
}

impl Percentiles {
    /// `None` when there are no samples (or any is not finite).
    pub fn from_samples(mut samples: Vec<f64>) -> Option<Percentiles> {
        if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        // Nearest rank: the smallest sample with at least p% of them at or below it.
        let rank = |p: f64| samples[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
        Some(Percentiles { p50: rank(50.0), p95: rank(95.0), p99: rank(99.0), max: samples[n - 1], count: n })
    }
}

/// Samples of named series, kept in the order names first appear (pipeline
/// order for stage timings), so stages nobody listed in advance still show up.
#[derive(Debug, Clone, Default)]
pub struct Series(Vec<(String, Vec<f64>)>);

impl Series {
    /// Add one sample to the series `name`.
    pub fn push(&mut self, name: &str, value: f64) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(value),
            None => self.0.push((name.to_string(), vec![value])),
        }
    }

    /// Summaries in first-seen order (series with no finite summary are left out).
    pub fn summaries(self) -> Vec<(String, Summary)> {
        self.0.into_iter().filter_map(|(n, v)| Summary::from_samples(v).map(|s| (n, s))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let odd = Summary::from_samples(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = Summary::from_samples(vec![4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((even.median, even.min, even.max), (2.5, 1.0, 4.0));
        assert_eq!(even.samples, vec![4.0, 1.0, 3.0, 2.0], "samples keep measurement order");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::from_samples((1..=200).rev().map(f64::from).collect()).unwrap();
        assert_eq!((p.p50, p.p95, p.p99, p.max, p.count), (100.0, 190.0, 198.0, 200.0, 200));
        let one = Percentiles::from_samples(vec![7.0]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert!(Percentiles::from_samples(vec![]).is_none());
        assert!(Percentiles::from_samples(vec![1.0, f64::NAN]).is_none());
    }

    #[test]
    fn no_samples_no_summary() {
        assert!(Summary::from_samples(vec![]).is_none());
        assert!(Summary::from_samples(vec![1.0, f64::NAN]).is_none());
    }

    #[test]
    fn series_keep_first_seen_order() {
        let mut s = Series::default();
        for (n, v) in [("b", 1.0), ("a", 2.0), ("b", 3.0)] {
            s.push(n, v);
        }
        let names: Vec<_> = s.summaries().into_iter().map(|(n, s)| (n, s.median)).collect();
        assert_eq!(names, vec![("b".to_string(), 2.0), ("a".to_string(), 2.0)]);
    }
}
