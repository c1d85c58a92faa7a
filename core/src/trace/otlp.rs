//! OTLP/HTTP JSON encoding of a trace (`/v1/traces` body), per the OTLP specification's JSON
//! mapping: hex ids, `uint64`/`int64` as strings, `kind` and `status.code` as enum numbers.

use serde_json::{json, Value as Json};

use super::{Span, SpanKind, Status, Trace, Value};

pub const SERVICE_NAME: &str = "edge-gateway";

fn any_value(value: &Value) -> Json {
    match value {
        Value::Str(s) => json!({"stringValue": s}),
        Value::Int(i) => json!({"intValue": i.to_string()}),
        Value::Double(d) => json!({"doubleValue": d}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::StrList(items) => {
            json!({"arrayValue": {"values": items.iter().map(|s| json!({"stringValue": s})).collect::<Vec<_>>()}})
        }
    }
}

fn attributes(attrs: &[(&'static str, Value)]) -> Json {
    Json::Array(attrs.iter().map(|(k, v)| json!({"key": k, "value": any_value(v)})).collect())
}

fn nanos(ms: u64) -> String {
    u128::from(ms).saturating_mul(1_000_000).to_string()
}

fn span(trace: &Trace, span: &Span) -> Json {
    let kind = match span.kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
    };
    let status = match &span.status {
        Status::Unset => json!({"code": 0}),
        Status::Ok => json!({"code": 1}),
        Status::Error(message) => json!({"code": 2, "message": message}),
    };
    let mut out = json!({
        "traceId": trace.trace_id.to_hex(),
        "spanId": span.id.to_hex(),
        "name": span.name,
        "kind": kind,
        "startTimeUnixNano": nanos(span.start_ms),
        "endTimeUnixNano": nanos(span.end_ms.unwrap_or(span.start_ms)),
        "attributes": attributes(&span.attributes),
        "status": status,
    });
    if let (Some(parent), Some(obj)) = (span.parent, out.as_object_mut()) {
        obj.insert("parentSpanId".into(), json!(parent.to_hex()));
    }
    out
}

fn resource() -> Json {
    json!({"attributes": [
        {"key": "service.name", "value": {"stringValue": SERVICE_NAME}},
        {"key": "service.version", "value": {"stringValue": env!("CARGO_PKG_VERSION")}},
    ]})
}

/// The `ExportTraceServiceRequest` body for one trace.
pub fn traces_body(trace: &Trace) -> Json {
    json!({"resourceSpans": [{
        "resource": resource(),
        "scopeSpans": [{
            "scope": {"name": SERVICE_NAME, "version": env!("CARGO_PKG_VERSION")},
            "spans": trace.spans.iter().map(|s| span(trace, s)).collect::<Vec<_>>(),
        }],
    }]})
}

/// The `ExportLogsServiceRequest` body for a trace's audit records (`None` when it has none).
pub fn logs_body(trace: &Trace) -> Option<Json> {
    if trace.records.is_empty() {
        return None;
    }
    let records: Vec<Json> = trace
        .records
        .iter()
        .map(|r| {
            json!({
                "timeUnixNano": nanos(r.time_ms),
                "observedTimeUnixNano": nanos(r.time_ms),
                "severityNumber": 9,
                "severityText": "INFO",
                "eventName": "gateway.audit",
                "body": {"stringValue": r.body},
                "attributes": attributes(&r.attributes),
                "traceId": trace.trace_id.to_hex(),
                "spanId": r.span.to_hex(),
            })
        })
        .collect();
    Some(json!({"resourceLogs": [{
        "resource": resource(),
        "scopeLogs": [{"scope": {"name": SERVICE_NAME, "version": env!("CARGO_PKG_VERSION")}, "logRecords": records}],
    }]}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceParent;

    #[test]
    fn spans_encode_with_hex_ids_string_nanos_and_typed_values() {
        let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let mut trace = Trace::start(parent, "root", 1_700_000_000_000, || 7);
        trace.set(trace.root(), "gen_ai.usage.input_tokens", 12u64);
        trace.set(trace.root(), "gen_ai.response.finish_reasons", vec!["stop".to_owned()]);
        trace.fail(trace.root(), "boom");
        trace.end_all(1_700_000_000_005);
        let body = traces_body(&trace);
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(span["endTimeUnixNano"], "1700000000005000000");
        assert_eq!(span["attributes"][0], json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}));
        assert_eq!(span["attributes"][1]["value"]["arrayValue"]["values"][0]["stringValue"], "stop");
        assert_eq!(span["status"], json!({"code": 2, "message": "boom"}));
        assert_eq!(logs_body(&trace), None);
    }

    #[test]
    fn audit_records_encode_as_log_records_linked_to_their_span() {
        let mut trace = Trace::start(None, "root", 5, || 3);
        let root = trace.root();
        trace.audit(root, 6, "tools/call denied", vec![("gateway.mcp.server", Value::from("github"))]);
        let body = logs_body(&trace).unwrap();
        let record = &body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(record["traceId"], trace.trace_id.to_hex());
        assert_eq!(record["spanId"], trace.spans[0].id.to_hex());
        assert_eq!(record["timeUnixNano"], "6000000");
        assert_eq!(record["body"]["stringValue"], "tools/call denied");
        assert_eq!(record["attributes"][0]["value"]["stringValue"], "github");
    }
}
