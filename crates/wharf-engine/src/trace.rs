//! A run's trace (the DAG's `otel`): when a run at the top of its tree ends, its spans are
//! made from what the store recorded (the run, each step and handler that started, each
//! sub-DAG run under the step that started it) and handed to a [`TraceExporter`] as one
//! OTLP `ExportTraceServiceRequest`, protobuf-encoded here. A trace that cannot be sent is
//! said in the run log; the run's status stays what it is.
//!
//! Span names and attributes are Dagu's: `DAG: NAME` (`dag.name`, `dag.run_id`,
//! `dag.status`, and for a sub-DAG run `dag.parent_name`, `dag.parent_run_id`) and
//! `Step: NAME` (`step.name`, `step.status`, `step.exit_code` when not 0).

use std::sync::Arc;
use std::time::Duration;

use wharf_spec::{Dag, Otel};
use wharf_store::{RunKey, RunRecord, Status, StepRecord, Store};

use crate::executor::BoxFuture;

/// Where a trace goes, its variables resolved.
#[derive(Debug, Clone)]
pub struct TraceTarget {
    /// `host:port` (OTLP over gRPC) or the URL of `/v1/traces` (OTLP over HTTP).
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub insecure: bool,
    pub timeout: Duration,
}

impl TraceTarget {
    /// Whether the endpoint is OTLP over HTTP (a URL), not gRPC (`host:port`).
    pub fn is_http(&self) -> bool {
        self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")
    }
}

/// Sends a protobuf-encoded `ExportTraceServiceRequest` to a collector.
pub trait TraceExporter: Send + Sync {
    fn export<'a>(
        &'a self,
        to: &'a TraceTarget,
        request: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// How long an export may take when `otel.timeout` does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes the trace of the run `run` (and the runs under it) and sends it; what happened,
/// for the run log.
pub(crate) async fn send(
    exporter: Option<Arc<dyn TraceExporter>>,
    store: crate::SharedStore,
    run: RunKey,
    dag: &Dag,
    otel: &Otel,
    expand: impl Fn(&str) -> String,
) -> Result<String, String> {
    let Some(exporter) = exporter else {
        return Err("otel: no trace sent: this process cannot send traces".to_owned());
    };
    let target = TraceTarget {
        endpoint: expand(otel.endpoint.trim()),
        headers: otel
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), expand(v)))
            .collect(),
        insecure: otel.insecure,
        timeout: otel.timeout.unwrap_or(DEFAULT_TIMEOUT),
    };
    let mut resource: Vec<(String, Value)> = otel
        .resource
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => Value::Text(expand(s)),
                serde_json::Value::Bool(b) => Value::Bool(*b),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => Value::Int(i),
                    None => Value::Float(n.as_f64().unwrap_or_default()),
                },
                other => Value::Text(other.to_string()),
            };
            (k.clone(), value)
        })
        .collect();
    if !resource.iter().any(|(k, _)| k == "service.name") {
        // As Dagu names it, so that what watches its traces finds them.
        resource.insert(
            0,
            (
                "service.name".into(),
                Value::Text(format!("dagu-{}", dag.name)),
            ),
        );
    }
    let spans = store
        .call(move |s| spans_of(s, run))
        .await
        .unwrap_or_default();
    if spans.is_empty() {
        return Err("otel: no trace sent: the run has no record".to_owned());
    }
    let count = spans.len();
    let request = encode(&resource, &spans);
    let sent = tokio::time::timeout(target.timeout, exporter.export(&target, request)).await;
    match sent {
        Ok(Ok(())) => Ok(format!(
            "otel: the run's trace ({count} spans) sent to {}",
            target.endpoint
        )),
        Ok(Err(e)) => Err(format!(
            "otel: the run's trace could not be sent to {}: {e}",
            target.endpoint
        )),
        Err(_) => Err(format!(
            "otel: the run's trace could not be sent to {} within {:?}",
            target.endpoint, target.timeout
        )),
    }
}

/// A span as OTLP has it.
#[derive(Debug, Clone)]
struct Span {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    start_ns: u64,
    end_ns: u64,
    attributes: Vec<(String, Value)>,
    failed: bool,
}

#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

/// The spans of run `root` and of the runs under it, from the store.
fn spans_of(store: &Store, root: RunKey) -> Vec<Span> {
    let Ok(Some(run)) = store.run_by_key(root) else {
        return Vec::new();
    };
    let trace_id = random::<16>();
    let mut spans = Vec::new();
    run_spans(store, &run, trace_id, None, &mut spans);
    spans
}

fn ns(ms: Option<i64>) -> u64 {
    u64::try_from(ms.unwrap_or(0)).unwrap_or(0) * 1_000_000
}

fn failed(status: Status) -> bool {
    matches!(status, Status::Failed | Status::Aborted | Status::Rejected)
}

/// The span of `run` under `parent` (its parent run's name and id, and the span of the
/// step that started it), its steps' spans under it, and so on down.
fn run_spans(
    store: &Store,
    run: &RunRecord,
    trace_id: [u8; 16],
    parent: Option<(&RunRecord, [u8; 8])>,
    out: &mut Vec<Span>,
) {
    let span_id = random::<8>();
    let start = ns(run.started_at.or(Some(run.created_at)));
    let mut attributes = vec![
        ("dag.name".to_owned(), Value::Text(run.dag.clone())),
        ("dag.run_id".to_owned(), Value::Text(run.run_id.clone())),
        (
            "dag.status".to_owned(),
            Value::Text(run.status.as_str().to_owned()),
        ),
    ];
    if let Some((p, _)) = parent {
        attributes.push(("dag.parent_run_id".into(), Value::Text(p.run_id.clone())));
        attributes.push(("dag.parent_name".into(), Value::Text(p.dag.clone())));
    }
    out.push(Span {
        trace_id,
        span_id,
        parent: parent.map(|(_, s)| s),
        name: format!("DAG: {}", run.dag),
        start_ns: start,
        end_ns: ns(run.finished_at).max(start),
        attributes,
        failed: failed(run.status),
    });
    let steps = store.steps(run.key).unwrap_or_default();
    let children = store.children(run.key).unwrap_or_default();
    for step in steps.iter().filter(|s| s.started_at.is_some()) {
        let step_span = step_span(step, trace_id, span_id, ns(run.finished_at));
        let id = step_span.span_id;
        out.push(step_span);
        for child in children
            .iter()
            .filter(|c| c.parent.as_ref().is_some_and(|(_, s)| *s == step.name))
        {
            run_spans(store, child, trace_id, Some((run, id)), out);
        }
    }
}

fn step_span(step: &StepRecord, trace_id: [u8; 16], parent: [u8; 8], run_end: u64) -> Span {
    let start = ns(step.started_at);
    let end = match step.finished_at {
        Some(_) => ns(step.finished_at),
        None => run_end,
    };
    let mut attributes = vec![
        ("step.name".to_owned(), Value::Text(step.name.clone())),
        (
            "step.status".to_owned(),
            Value::Text(step.status.as_str().to_owned()),
        ),
    ];
    if let Some(code) = step.exit_code.filter(|c| *c != 0) {
        attributes.push(("step.exit_code".into(), Value::Int(i64::from(code))));
    }
    if let Some(h) = &step.handler {
        attributes.push(("step.handler".into(), Value::Text(h.clone())));
    }
    Span {
        trace_id,
        span_id: random::<8>(),
        parent: Some(parent),
        name: format!("Step: {}", step.name),
        start_ns: start,
        end_ns: end.max(start),
        attributes,
        failed: failed(step.status),
    }
}

/// `N` random bytes (never all zero: OTLP takes an all-zero id as none).
fn random<const N: usize>() -> [u8; N] {
    use std::io::Read;
    let mut bytes = [0u8; N];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() || bytes.iter().all(|b| *b == 0) {
        // Time and a counter: unique within this process, which is what an id needs here.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = (t ^ u128::from(n) << 64 ^ u128::from(std::process::id())).to_le_bytes();
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = seed[i % 16] ^ (i as u8).wrapping_mul(31) | 1;
        }
    }
    bytes
}

// The OTLP protobuf messages (opentelemetry/proto/collector/trace/v1 and trace/v1), as
// their field numbers say.

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn key_value(key: &str, value: &Value) -> Vec<u8> {
    let mut any = Vec::new();
    match value {
        Value::Text(s) => bytes_field(&mut any, 1, s.as_bytes()),
        Value::Bool(b) => {
            tag(&mut any, 2, 0);
            varint(&mut any, u64::from(*b));
        }
        Value::Int(i) => {
            tag(&mut any, 3, 0);
            varint(&mut any, *i as u64);
        }
        Value::Float(f) => fixed64(&mut any, 4, f.to_bits()),
    }
    let mut kv = Vec::new();
    bytes_field(&mut kv, 1, key.as_bytes());
    bytes_field(&mut kv, 2, &any);
    kv
}

fn span_bytes(span: &Span) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, &span.trace_id);
    bytes_field(&mut out, 2, &span.span_id);
    if let Some(parent) = &span.parent {
        bytes_field(&mut out, 4, parent);
    }
    bytes_field(&mut out, 5, span.name.as_bytes());
    // SPAN_KIND_INTERNAL
    tag(&mut out, 6, 0);
    varint(&mut out, 1);
    fixed64(&mut out, 7, span.start_ns);
    fixed64(&mut out, 8, span.end_ns);
    for (k, v) in &span.attributes {
        bytes_field(&mut out, 9, &key_value(k, v));
    }
    // Status: STATUS_CODE_ERROR (2) for what failed, else OK (1).
    let mut status = Vec::new();
    tag(&mut status, 3, 0);
    varint(&mut status, if span.failed { 2 } else { 1 });
    bytes_field(&mut out, 15, &status);
    out
}

/// The `ExportTraceServiceRequest` of `spans`: one resource, one scope.
fn encode(resource: &[(String, Value)], spans: &[Span]) -> Vec<u8> {
    let mut res = Vec::new();
    for (k, v) in resource {
        bytes_field(&mut res, 1, &key_value(k, v));
    }
    let mut scope = Vec::new();
    bytes_field(&mut scope, 1, b"wharf");
    bytes_field(&mut scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
    let mut scope_spans = Vec::new();
    bytes_field(&mut scope_spans, 1, &scope);
    for span in spans {
        bytes_field(&mut scope_spans, 2, &span_bytes(span));
    }
    let mut resource_spans = Vec::new();
    bytes_field(&mut resource_spans, 1, &res);
    bytes_field(&mut resource_spans, 2, &scope_spans);
    let mut request = Vec::new();
    bytes_field(&mut request, 1, &resource_spans);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_encode_as_protobuf_does() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut out = Vec::new();
        bytes_field(&mut out, 5, b"ab");
        assert_eq!(out, [0x2a, 2, b'a', b'b']);
        let kv = key_value("n", &Value::Int(-1));
        // key (field 1), then AnyValue (field 2) holding int_value (field 3) as a 10-byte varint.
        assert_eq!(&kv[..3], &[0x0a, 1, b'n']);
        assert_eq!(kv[3], 0x12);
        assert_eq!(kv[5], 0x18);
        assert_eq!(kv.len(), 3 + 2 + 1 + 10);
    }

    #[test]
    fn ids_are_random_and_never_zero() {
        let a = random::<16>();
        let b = random::<16>();
        assert_ne!(a, b);
        assert!(a.iter().any(|x| *x != 0));
    }
}
