//! The Steward's counters, in the Prometheus text format (`GET /metrics`), through
//! [`keep_metrics`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keep_metrics::{Counters, Histogram};

/// An HTTP endpoint and the status it answered with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct EndpointStatus(&'static str, u16);

impl std::fmt::Display for EndpointStatus {
    /// The label pair: `endpoint="E",status="S"` without the outer quotes of one label.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\",status=\"{}", self.0, self.1)
    }
}

/// Counters of one Steward.
#[derive(Default)]
pub struct Metrics {
    requests: Counters<EndpointStatus>,
    issued: Counters<&'static str>,
    rejected: Counters<&'static str>,
    released: AtomicU64,
    latency: Histogram,
}

impl Metrics {
    /// Counts a request to `endpoint` answered with `status`.
    pub fn request(&self, endpoint: &'static str, status: u16) {
        self.requests.bump(EndpointStatus(endpoint, status));
    }

    /// Counts a certificate issued for a Keep in `tee`.
    pub fn issued(&self, tee: &'static str) {
        self.issued.bump(tee);
    }

    /// Counts a refusal for `reason`.
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.bump(reason);
    }

    /// Counts `count` secret values released.
    pub fn released(&self, count: usize) {
        self.released.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Records how long one attestation request took.
    pub fn latency(&self, elapsed: Duration) {
        self.latency.observe(elapsed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.requests.render(
            &mut out,
            "keep_steward_requests_total",
            "HTTP requests by endpoint and status.",
            "endpoint",
        );
        self.issued.render(
            &mut out,
            "keep_steward_certificates_issued_total",
            "Certificates issued, by TEE.",
            "tee",
        );
        self.rejected.render(
            &mut out,
            "keep_steward_rejections_total",
            "Refused requests, by reason.",
            "reason",
        );
        keep_metrics::render_value(
            &mut out,
            "keep_steward_secrets_released_total",
            "Secret values released.",
            "counter",
            self.released.load(Ordering::Relaxed),
        );
        self.latency.render(
            &mut out,
            "keep_steward_attest_duration_seconds",
            "Time to decide an attestation request.",
        );
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
