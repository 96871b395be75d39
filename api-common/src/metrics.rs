//! Prometheus metrics (`GET /metrics`): commands by type and outcome, append latency and batch
//! size, projection lag, HTTP requests.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// One of the standard methods, or `other`: a client cannot grow the label set.
    pub method: &'static str,
    pub status: u16,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub commands: Family<CommandLabels, Counter>,
    pub append_seconds: Histogram,
    pub batch_size: Histogram,
    /// Commands whose events the store refused while it took others (answered alone).
    pub poisoned_commands: Counter,
    /// Batches decided while the append of the batch before them was in flight (pipelining).
    pub pipelined_batches: Counter,
    pub projection_lag: Gauge,
    pub projection_leader: Gauge,
    pub http_requests: Family<HttpLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("meetline");
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands",
            "Commands decided, by type and outcome",
            commands.clone(),
        );
        let append_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        registry.register(
            "append_seconds",
            "Latency of one event-store append (one batch)",
            append_seconds.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 8));
        registry.register(
            "batch_commands",
            "Commands decided per group-committed batch",
            batch_size.clone(),
        );
        let poisoned_commands = Counter::default();
        registry.register(
            "poisoned_commands",
            "Commands whose events the store refused while it took others",
            poisoned_commands.clone(),
        );
        let pipelined_batches = Counter::default();
        registry.register(
            "pipelined_batches",
            "Batches decided while the append of the batch before them was in flight",
            pipelined_batches.clone(),
        );
        let projection_lag = Gauge::default();
        registry.register(
            "projection_lag_events",
            "Events appended but not yet applied to the read models",
            projection_lag.clone(),
        );
        let projection_leader = Gauge::default();
        registry.register(
            "projection_leader",
            "1 when this node runs the projections, else 0",
            projection_leader.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method and status",
            http_requests.clone(),
        );
        Self {
            registry,
            commands,
            append_seconds,
            batch_size,
            poisoned_commands,
            pipelined_batches,
            projection_lag,
            projection_leader,
            http_requests,
        }
    }
}

impl Metrics {
    /// Counts one answered HTTP request. Methods outside the standard ones count as `other`,
    /// and statuses are three digits, so no request can add series without bound.
    pub fn http_request(&self, method: &axum::http::Method, status: u16) {
        use axum::http::Method;
        let method = match *method {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        self.http_requests
            .get_or_create(&HttpLabels { method, status })
            .inc();
    }

    pub fn command(&self, kind: &str, outcome: &str) {
        self.commands
            .get_or_create(&CommandLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String");
        text
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    #[test]
    fn invented_http_methods_share_one_series() {
        let metrics = Metrics::default();
        for name in ["FOO", "BAR", "BAZ1", "QUUX"] {
            metrics.http_request(&Method::from_bytes(name.as_bytes()).unwrap(), 405);
        }
        metrics.http_request(&Method::GET, 200);
        let text = metrics.encode();
        let series = text
            .lines()
            .filter(|line| line.starts_with("meetline_http_requests_total{"))
            .count();
        assert_eq!(series, 2, "{text}");
        assert!(text.contains(r#"method="other",status="405"} 4"#), "{text}");
    }
}
