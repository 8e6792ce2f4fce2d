//! The Steward's counters, in the Prometheus text format (`GET /metrics`).
//!
//! Hand-written rather than the `prometheus` crate: four families of plain counters and one
//! histogram, rendered on request, do not need a registry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters of one Steward.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    issued: Mutex<BTreeMap<&'static str, u64>>,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    released: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    // A poisoned lock only means another thread panicked mid-increment: keep counting.
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    *map.entry(key).or_default() += 1;
}

fn snapshot<K: Ord + Clone>(map: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    map.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Metrics {
    /// Counts a request to `endpoint` answered with `status`.
    pub fn request(&self, endpoint: &'static str, status: u16) {
        bump(&self.requests, (endpoint, status));
    }

    /// Counts a certificate issued for a Keep in `tee`.
    pub fn issued(&self, tee: &'static str) {
        bump(&self.issued, tee);
    }

    /// Counts a refusal for `reason`.
    pub fn rejected(&self, reason: &'static str) {
        bump(&self.rejected, reason);
    }

    /// Counts `count` secret values released.
    pub fn released(&self, count: usize) {
        self.released.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Records how long one attestation request took.
    pub fn latency(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP keep_steward_requests_total HTTP requests by endpoint and status.\n");
        out.push_str("# TYPE keep_steward_requests_total counter\n");
        for ((endpoint, status), n) in snapshot(&self.requests) {
            let _ = writeln!(
                out,
                "keep_steward_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP keep_steward_certificates_issued_total Certificates issued, by TEE.\n",
        );
        out.push_str("# TYPE keep_steward_certificates_issued_total counter\n");
        for (tee, n) in snapshot(&self.issued) {
            let _ = writeln!(
                out,
                "keep_steward_certificates_issued_total{{tee=\"{tee}\"}} {n}"
            );
        }
        out.push_str("# HELP keep_steward_rejections_total Refused requests, by reason.\n");
        out.push_str("# TYPE keep_steward_rejections_total counter\n");
        for (reason, n) in snapshot(&self.rejected) {
            let _ = writeln!(
                out,
                "keep_steward_rejections_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP keep_steward_secrets_released_total Secret values released.\n");
        out.push_str("# TYPE keep_steward_secrets_released_total counter\n");
        let _ = writeln!(
            out,
            "keep_steward_secrets_released_total {}",
            self.released.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP keep_steward_attest_duration_seconds Time to decide an attestation request.\n",
        );
        out.push_str("# TYPE keep_steward_attest_duration_seconds histogram\n");
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "keep_steward_attest_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "keep_steward_attest_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "keep_steward_attest_duration_seconds_sum {}",
            self.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "keep_steward_attest_duration_seconds_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = Metrics::default();
        metrics.request("/v1/attest", 200);
        metrics.request("/v1/attest", 200);
        metrics.request("/v1/attest", 403);
        metrics.issued("none");
        metrics.rejected("insecure-none");
        metrics.latency(Duration::from_micros(800));
        metrics.latency(Duration::from_millis(30));
        let text = metrics.render();
        for line in [
            "keep_steward_requests_total{endpoint=\"/v1/attest\",status=\"200\"} 2",
            "keep_steward_requests_total{endpoint=\"/v1/attest\",status=\"403\"} 1",
            "keep_steward_certificates_issued_total{tee=\"none\"} 1",
            "keep_steward_rejections_total{reason=\"insecure-none\"} 1",
            "keep_steward_attest_duration_seconds_bucket{le=\"0.0005\"} 0",
            "keep_steward_attest_duration_seconds_bucket{le=\"0.001\"} 1",
            "keep_steward_attest_duration_seconds_bucket{le=\"0.05\"} 2",
            "keep_steward_attest_duration_seconds_bucket{le=\"+Inf\"} 2",
            "keep_steward_attest_duration_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }
}
