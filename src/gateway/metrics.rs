//! Prometheus-format counters of the gateway, served at `/metrics` on its admin listener.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the upstream latency histogram, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    tool_calls: AtomicU64,
    tool_calls_denied: AtomicU64,
    refusals: Mutex<BTreeMap<String, u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    /// One request arrived.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// One tool call decided.
    pub fn tool_call(&self, allowed: bool) {
        self.tool_calls.fetch_add(1, Ordering::Relaxed);
        if !allowed {
            self.tool_calls_denied.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One refusal, by reason.
    pub fn refusal(&self, reason: &str) {
        let mut map = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(reason.to_string()).or_default() += 1;
    }

    /// One upstream exchange took `elapsed` (to response headers).
    pub fn upstream_latency(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP mcpsoc_gateway_requests_total Requests received.\n# TYPE mcpsoc_gateway_requests_total counter\n");
        out.push_str(&format!(
            "mcpsoc_gateway_requests_total {}\n",
            get(&self.requests)
        ));
        out.push_str("# HELP mcpsoc_gateway_tool_calls_total Tool calls decided.\n# TYPE mcpsoc_gateway_tool_calls_total counter\n");
        out.push_str(&format!(
            "mcpsoc_gateway_tool_calls_total{{decision=\"allow\"}} {}\n",
            get(&self.tool_calls) - get(&self.tool_calls_denied)
        ));
        out.push_str(&format!(
            "mcpsoc_gateway_tool_calls_total{{decision=\"deny\"}} {}\n",
            get(&self.tool_calls_denied)
        ));
        out.push_str("# HELP mcpsoc_gateway_refusals_total Requests refused, by reason.\n# TYPE mcpsoc_gateway_refusals_total counter\n");
        for (reason, n) in self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            out.push_str(&format!(
                "mcpsoc_gateway_refusals_total{{reason=\"{reason}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP mcpsoc_gateway_upstream_seconds Upstream time to response headers.\n# TYPE mcpsoc_gateway_upstream_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "mcpsoc_gateway_upstream_seconds_bucket{{le=\"{bound}\"}} {}\n",
                get(&self.latency_buckets[i])
            ));
        }
        let count = get(&self.latency_count);
        out.push_str(&format!(
            "mcpsoc_gateway_upstream_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        out.push_str(&format!(
            "mcpsoc_gateway_upstream_seconds_sum {}\n",
            get(&self.latency_sum_micros) as f64 / 1e6
        ));
        out.push_str(&format!("mcpsoc_gateway_upstream_seconds_count {count}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        m.request();
        m.tool_call(false);
        m.refusal("bad_origin");
        m.upstream_latency(Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains("mcpsoc_gateway_requests_total 1"));
        assert!(text.contains("decision=\"deny\"} 1"));
        assert!(text.contains("reason=\"bad_origin\"} 1"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.001\"} 0"));
    }
}
