//! Prometheus metrics, rendered in the text exposition format by hand (a
//! handful of counters does not justify a metrics framework).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the upload-duration histogram.
const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    upload_buckets: [AtomicU64; BUCKETS.len()],
    upload_count: AtomicU64,
    upload_sum_micros: AtomicU64,
    pub storage_bytes: AtomicU64,
    pub storage_blobs: AtomicU64,
    pub gc_runs: AtomicU64,
    pub gc_removed_blobs: AtomicU64,
    pub uploads_open: AtomicU64,
}

impl Metrics {
    pub fn request(&self, route: &'static str, method: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry((route, method, status))
            .or_default() += 1;
    }

    pub fn upload_finished(&self, took: Duration) {
        let s = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.upload_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.upload_count.fetch_add(1, Ordering::Relaxed);
        self.upload_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP berth_registry_requests_total HTTP requests by route, method and status.\n# TYPE berth_registry_requests_total counter\n");
        for ((route, method, status), n) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(
                s,
                "berth_registry_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        let counter = |s: &mut String, name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut s,
            "berth_registry_bytes_received_total",
            "Request body bytes received.",
            "counter",
            get(&self.bytes_in),
        );
        counter(
            &mut s,
            "berth_registry_bytes_sent_total",
            "Blob and manifest bytes sent.",
            "counter",
            get(&self.bytes_out),
        );
        counter(
            &mut s,
            "berth_registry_storage_bytes",
            "Bytes in the content store (as of the last scan).",
            "gauge",
            get(&self.storage_bytes),
        );
        counter(
            &mut s,
            "berth_registry_storage_blobs",
            "Blobs in the content store (as of the last scan).",
            "gauge",
            get(&self.storage_blobs),
        );
        counter(
            &mut s,
            "berth_registry_uploads_open",
            "Upload sessions in progress.",
            "gauge",
            get(&self.uploads_open),
        );
        counter(
            &mut s,
            "berth_registry_gc_runs_total",
            "Garbage collections completed.",
            "counter",
            get(&self.gc_runs),
        );
        counter(
            &mut s,
            "berth_registry_gc_removed_blobs_total",
            "Blobs removed by garbage collection.",
            "counter",
            get(&self.gc_removed_blobs),
        );
        s.push_str("# HELP berth_registry_upload_duration_seconds Time from upload start to verified commit.\n# TYPE berth_registry_upload_duration_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "berth_registry_upload_duration_seconds_bucket{{le=\"{b}\"}} {}",
                get(&self.upload_buckets[i])
            );
        }
        let n = get(&self.upload_count);
        let _ = writeln!(
            s,
            "berth_registry_upload_duration_seconds_bucket{{le=\"+Inf\"}} {n}"
        );
        let _ = writeln!(
            s,
            "berth_registry_upload_duration_seconds_sum {}",
            get(&self.upload_sum_micros) as f64 / 1e6
        );
        let _ = writeln!(s, "berth_registry_upload_duration_seconds_count {n}");
        s
    }
}
