//! Prometheus metrics in the text exposition format, kept with atomics (no
//! lock on the token path): requests by route and status, tokens, queue depth
//! and running generations per model, cancellations, rejections, and
//! histograms of time to first token, time per output token, queue wait and
//! request duration.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A histogram with fixed upper bounds (seconds).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(), sum_micros: AtomicU64::new(0), count: AtomicU64::new(0) }
    }

    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|&b| s <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Mean of the observations, if any.
    pub fn mean(&self) -> Option<Duration> {
        let count = self.count.load(Ordering::Relaxed);
        (count > 0).then(|| Duration::from_micros(self.sum_micros.load(Ordering::Relaxed) / count))
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

const LATENCY_BOUNDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const PER_TOKEN_BOUNDS: &[f64] = &[0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5];

/// Everything `/metrics` reports besides the per-model gauges.
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub cancelled: AtomicU64,
    pub rejected: AtomicU64,
    pub time_to_first_token: Histogram,
    pub time_per_output_token: Histogram,
    pub queue_wait: Histogram,
    pub request_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            time_to_first_token: Histogram::new(LATENCY_BOUNDS),
            time_per_output_token: Histogram::new(PER_TOKEN_BOUNDS),
            queue_wait: Histogram::new(LATENCY_BOUNDS),
            request_duration: Histogram::new(LATENCY_BOUNDS),
        }
    }
}

/// Per-model gauges, read when rendering.
pub struct ModelGauges {
    pub name: String,
    pub queued: u64,
    pub running: u64,
}

impl Metrics {
    /// Count a finished HTTP request.
    pub fn request(&self, route: &'static str, status: u16) {
        *self.requests.lock().unwrap_or_else(|e| e.into_inner()).entry((route, status)).or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self, models: &[ModelGauges]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP mmrt_requests_total HTTP requests answered, by route and status.\n# TYPE mmrt_requests_total counter");
        for ((route, status), n) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "mmrt_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        let counters = [
            ("mmrt_prompt_tokens_total", "Prompt tokens processed.", &self.prompt_tokens),
            ("mmrt_completion_tokens_total", "Tokens generated.", &self.completion_tokens),
            ("mmrt_cancelled_total", "Requests cancelled (client gone, or shutdown) while queued or running.", &self.cancelled),
            ("mmrt_rejected_total", "Requests refused because a model's queue was full.", &self.rejected),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
        let gauges: [(&str, &str, fn(&ModelGauges) -> u64); 2] = [
            ("mmrt_queue_depth", "Requests waiting for a model.", |g| g.queued),
            ("mmrt_running", "Generations running on a model (0 or 1).", |g| g.running),
        ];
        for (name, help, get) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for g in models {
                let _ = writeln!(out, "{name}{{model=\"{}\"}} {}", g.name, get(g));
            }
        }
        self.time_to_first_token.render(&mut out, "mmrt_time_to_first_token_seconds", "Request arrival to first generated token.");
        self.time_per_output_token.render(&mut out, "mmrt_time_per_output_token_seconds", "Decode time per generated token after the first.");
        self.queue_wait.render(&mut out, "mmrt_queue_wait_seconds", "Time a request waited for its model.");
        self.request_duration.render(&mut out, "mmrt_request_duration_seconds", "Request arrival to its last byte of generation.");
        out
    }
}
