//! The Prometheus text exposition format for the Steward's and `keep serve`'s metrics.
//!
//! Hand-written rather than the `prometheus` or `prometheus-client` crates: a few families
//! of counters, gauges and one histogram, rendered on request, need neither a registry nor
//! the dependencies those bring.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters by one label's value.
pub struct Counters<K> {
    counts: Mutex<BTreeMap<K, u64>>,
}

impl<K: Ord + Clone + std::fmt::Display> Default for Counters<K> {
    fn default() -> Self {
        Self {
            counts: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<K: Ord + Clone + std::fmt::Display> Counters<K> {
    /// Adds one to the counter of `key`.
    pub fn bump(&self, key: K) {
        self.add(key, 1);
    }

    /// Adds `n` to the counter of `key`.
    pub fn add(&self, key: K, n: u64) {
        // A poisoned lock only means another thread panicked mid-increment: keep counting.
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(key).or_default() += n;
    }

    /// Writes the family `name` with its `help`, one sample per key, labelled `label`.
    pub fn render(&self, out: &mut String, name: &str, help: &str, label: &str) {
        header(out, name, help, "counter");
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (key, n) in counts {
            let _ = writeln!(out, "{name}{{{label}=\"{key}\"}} {n}");
        }
    }
}

/// A histogram of durations, in seconds.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Writes the family `name` with its `help`: cumulative buckets, sum and count.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Writes one sample without labels: a `gauge` or a `counter`, by `kind`.
pub fn render_value(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    header(out, name, help, kind);
    let _ = writeln!(out, "{name} {value}");
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_a_cumulative_histogram_render_as_prometheus_reads_them() {
        let counters = Counters::default();
        counters.bump(200u16);
        counters.bump(200);
        counters.bump(503);
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(800));
        histogram.observe(Duration::from_millis(30));
        let mut text = String::new();
        counters.render(&mut text, "requests_total", "Requests.", "status");
        histogram.render(&mut text, "duration_seconds", "Time.");
        render_value(&mut text, "in_flight", "Running.", "gauge", 3);
        for line in [
            "# TYPE requests_total counter",
            "requests_total{status=\"200\"} 2",
            "requests_total{status=\"503\"} 1",
            "# TYPE duration_seconds histogram",
            "duration_seconds_bucket{le=\"0.0005\"} 0",
            "duration_seconds_bucket{le=\"0.001\"} 1",
            "duration_seconds_bucket{le=\"0.05\"} 2",
            "duration_seconds_bucket{le=\"+Inf\"} 2",
            "duration_seconds_count 2",
            "# TYPE in_flight gauge",
            "in_flight 3",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }
}
