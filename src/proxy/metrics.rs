//! The proxy's counters and histograms, lock-free on the hot path, rendered in Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

pub use crate::domain::usage::Outcome;

/// Retry causes, in the order of [`crate::domain::proxy::AttemptClass::cause`].
pub const RETRY_CAUSES: [&str; 4] = ["invalid_key", "depleted_key", "rate_limited", "transient"];

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 17] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0];

pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_us: AtomicU64::new(0) }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

pub struct ProxyMetrics {
    /// [status 0..600][outcome]
    requests: Vec<[AtomicU64; 6]>,
    retries: [AtomicU64; 4],
    pub inflight: AtomicI64,
    pub upstream_latency: Histogram,
    pub overhead: Histogram,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self {
            requests: (0..600).map(|_| std::array::from_fn(|_| AtomicU64::new(0))).collect(),
            retries: std::array::from_fn(|_| AtomicU64::new(0)),
            inflight: AtomicI64::new(0),
            upstream_latency: Histogram::default(),
            overhead: Histogram::default(),
        }
    }
}

impl ProxyMetrics {
    pub fn request(&self, status: u16, outcome: Outcome) {
        let o = Outcome::ALL.iter().position(|x| *x == outcome).unwrap_or(0);
        if let Some(row) = self.requests.get(status as usize) {
            row[o].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn retry(&self, cause: &str) {
        if let Some(i) = RETRY_CAUSES.iter().position(|c| *c == cause) {
            self.retries[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests counted so far with this outcome (any status).
    pub fn requests_with(&self, outcome: Outcome) -> u64 {
        let o = Outcome::ALL.iter().position(|x| *x == outcome).unwrap_or(0);
        self.requests.iter().map(|row| row[o].load(Ordering::Relaxed)).sum()
    }

    /// The proxy's part of `/metrics`.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP keypool_proxy_requests_total Requests through /v1 by final status and outcome.\n");
        out.push_str("# TYPE keypool_proxy_requests_total counter\n");
        for (status, row) in self.requests.iter().enumerate() {
            for (o, count) in row.iter().enumerate() {
                let n = count.load(Ordering::Relaxed);
                if n > 0 {
                    let outcome = Outcome::ALL[o].as_str();
                    let _ =
                        writeln!(out, "keypool_proxy_requests_total{{status=\"{status}\",outcome=\"{outcome}\"}} {n}");
                }
            }
        }
        out.push_str(
            "# HELP keypool_proxy_retries_total Attempts that failed and moved on to another key, by cause.\n",
        );
        out.push_str("# TYPE keypool_proxy_retries_total counter\n");
        for (i, cause) in RETRY_CAUSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "keypool_proxy_retries_total{{cause=\"{cause}\"}} {}",
                self.retries[i].load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP keypool_proxy_inflight Requests through /v1 in flight.\n# TYPE keypool_proxy_inflight gauge\n",
        );
        let _ = writeln!(out, "keypool_proxy_inflight {}", self.inflight.load(Ordering::Relaxed));
        self.upstream_latency.render(
            out,
            "keypool_proxy_upstream_latency_seconds",
            "Time from sending to the upstream to its response head.",
        );
        self.overhead.render(
            out,
            "keypool_proxy_overhead_seconds",
            "keypool's own time per request until the response head: total minus upstream time.",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = ProxyMetrics::default();
        m.request(200, Outcome::Ok);
        m.request(200, Outcome::Ok);
        m.request(503, Outcome::NoKey);
        m.retry("rate_limited");
        m.overhead.observe(Duration::from_micros(300));
        m.overhead.observe(Duration::from_secs(1000));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("keypool_proxy_requests_total{status=\"200\",outcome=\"ok\"} 2"));
        assert!(out.contains("keypool_proxy_requests_total{status=\"503\",outcome=\"no_key\"} 1"));
        assert!(out.contains("keypool_proxy_retries_total{cause=\"rate_limited\"} 1"));
        assert!(out.contains("keypool_proxy_overhead_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(out.contains("keypool_proxy_overhead_seconds_bucket{le=\"300\"} 1"));
        assert!(out.contains("keypool_proxy_overhead_seconds_bucket{le=\"+Inf\"} 2"));
        assert_eq!(m.requests_with(Outcome::Ok), 2);
    }
}
