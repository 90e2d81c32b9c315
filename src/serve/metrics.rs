//! The server's counters in Prometheus' text format: requests, errors and a latency histogram
//! per model, version and endpoint; the model cache; in-flight requests; the prediction log.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the latency buckets (seconds).
pub const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default, Clone)]
struct Series {
    requests: u64,
    /// By HTTP status.
    errors: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    predictions: u64,
}

/// The counters.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, String), Series>>,
    /// Requests being answered.
    pub in_flight: AtomicI64,
    /// Prediction-log records written to the store.
    pub logged: AtomicU64,
    /// Records waiting to be written.
    pub log_pending: AtomicU64,
    /// Records dropped because the buffer was full while the scheduler was unreachable.
    pub log_dropped: AtomicU64,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// One request to `endpoint` of `model` (version `version`, "" when none was chosen),
    /// answered with `status` after `seconds`, with `predictions` predictions.
    pub fn observe(
        &self,
        model: &str,
        version: &str,
        endpoint: &str,
        status: u16,
        seconds: f64,
        predictions: u64,
    ) {
        let mut g = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let s = g
            .entry((model.to_string(), version.to_string(), endpoint.to_string()))
            .or_default();
        s.requests += 1;
        if status >= 400 {
            *s.errors.entry(status).or_default() += 1;
        }
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            s.buckets[i] += 1;
        }
        s.sum += seconds;
        s.predictions += predictions;
    }

    /// The text exposition; `extra` appends the cache's and the rollouts' lines.
    pub fn render(&self, extra: &str) -> String {
        let g = self
            .series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP mlt_serve_requests_total Requests answered, by model, version and endpoint."
        );
        let _ = writeln!(o, "# TYPE mlt_serve_requests_total counter");
        for ((m, v, e), s) in &g {
            let _ = writeln!(
                o,
                "mlt_serve_requests_total{{model=\"{}\",version=\"{}\",endpoint=\"{}\"}} {}",
                esc(m),
                esc(v),
                e,
                s.requests
            );
        }
        let _ = writeln!(
            o,
            "# HELP mlt_serve_errors_total Requests answered with an error, by status."
        );
        let _ = writeln!(o, "# TYPE mlt_serve_errors_total counter");
        for ((m, v, e), s) in &g {
            for (code, n) in &s.errors {
                let _ = writeln!(
                    o,
                    "mlt_serve_errors_total{{model=\"{}\",version=\"{}\",endpoint=\"{}\",status=\"{code}\"}} {n}",
                    esc(m),
                    esc(v),
                    e
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP mlt_serve_predictions_total Predictions answered."
        );
        let _ = writeln!(o, "# TYPE mlt_serve_predictions_total counter");
        for ((m, v, e), s) in &g {
            let _ = writeln!(
                o,
                "mlt_serve_predictions_total{{model=\"{}\",version=\"{}\",endpoint=\"{}\"}} {}",
                esc(m),
                esc(v),
                e,
                s.predictions
            );
        }
        let _ = writeln!(
            o,
            "# HELP mlt_serve_request_seconds Time to answer a request."
        );
        let _ = writeln!(o, "# TYPE mlt_serve_request_seconds histogram");
        for ((m, v, e), s) in &g {
            let labels = format!(
                "model=\"{}\",version=\"{}\",endpoint=\"{}\"",
                esc(m),
                esc(v),
                e
            );
            let mut acc = 0;
            for (b, n) in BUCKETS.iter().zip(&s.buckets) {
                acc += n;
                let _ = writeln!(
                    o,
                    "mlt_serve_request_seconds_bucket{{{labels},le=\"{b}\"}} {acc}"
                );
            }
            let _ = writeln!(
                o,
                "mlt_serve_request_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.requests
            );
            let _ = writeln!(o, "mlt_serve_request_seconds_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(
                o,
                "mlt_serve_request_seconds_count{{{labels}}} {}",
                s.requests
            );
        }
        let _ = writeln!(o, "# HELP mlt_serve_in_flight Requests being answered.");
        let _ = writeln!(o, "# TYPE mlt_serve_in_flight gauge");
        let _ = writeln!(
            o,
            "mlt_serve_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP mlt_serve_log_records_total Prediction-log records written to the store."
        );
        let _ = writeln!(o, "# TYPE mlt_serve_log_records_total counter");
        let _ = writeln!(
            o,
            "mlt_serve_log_records_total {}",
            self.logged.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP mlt_serve_log_pending Prediction-log records not yet written."
        );
        let _ = writeln!(o, "# TYPE mlt_serve_log_pending gauge");
        let _ = writeln!(
            o,
            "mlt_serve_log_pending {}",
            self.log_pending.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# HELP mlt_serve_log_dropped_total Records dropped: the buffer was full while the scheduler was unreachable.");
        let _ = writeln!(o, "# TYPE mlt_serve_log_dropped_total counter");
        let _ = writeln!(
            o,
            "mlt_serve_log_dropped_total {}",
            self.log_dropped.load(Ordering::Relaxed)
        );
        o.push_str(extra);
        o
    }
}
