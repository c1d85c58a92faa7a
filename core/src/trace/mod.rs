//! One trace per request: a root span and child spans for each phase, with attributes named after
//! the OpenTelemetry GenAI semantic conventions (`gen_ai.*`) and gateway facts under `gateway.*`.
//!
//! Plain data: the pipeline records into a [`Trace`], and [`otlp`] encodes it. Time comes in as
//! arguments (Unix milliseconds from the host); ids come from the host's randomness.

pub mod attrs;
pub mod otlp;

use std::fmt::Write;

/// A 16-byte W3C trace id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte W3C span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanId(pub [u8; 8]);

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

impl TraceId {
    /// A random, non-zero id.
    pub fn random(mut next: impl FnMut() -> u64) -> Self {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&next().to_be_bytes());
        id[8..].copy_from_slice(&(next() | 1).to_be_bytes());
        TraceId(id)
    }

    pub fn to_hex(self) -> String {
        hex(&self.0)
    }
}

impl SpanId {
    /// A random, non-zero id.
    pub fn random(next: impl FnOnce() -> u64) -> Self {
        SpanId((next() | 1).to_be_bytes())
    }

    pub fn to_hex(self) -> String {
        hex(&self.0)
    }
}

/// The caller's trace context, from an incoming `traceparent` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub parent_id: SpanId,
    pub sampled: bool,
}

impl TraceParent {
    /// Parses `00-{32 hex}-{16 hex}-{2 hex}`; anything else (or all-zero ids) is ignored, as W3C asks.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let parent = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || version == "ff" || unhex::<1>(version).is_none() {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id = TraceId(unhex::<16>(trace)?);
        let parent_id = SpanId(unhex::<8>(parent)?);
        let flags = unhex::<1>(flags)?;
        if trace_id.0 == [0; 16] || parent_id.0 == [0; 8] {
            return None;
        }
        Some(TraceParent { trace_id, parent_id, sampled: flags[0] & 1 == 1 })
    }

    /// The header value naming `span` as the parent of whatever receives it; the caller's
    /// sampling decision travels on.
    pub fn header(trace_id: TraceId, span: SpanId, sampled: bool) -> String {
        format!("00-{}-{}-{}", trace_id.to_hex(), span.to_hex(), if sampled { "01" } else { "00" })
    }
}

/// OpenTelemetry span kinds used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal,
    Server,
    Client,
}

/// An attribute value (the OTLP `AnyValue` subset the gateway needs).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    StrList(Vec<String>),
}

/// Attribute values from the Rust values spans record: `(type, variant, conversion)`.
macro_rules! values_from {
    ($(($ty:ty, $variant:ident, $convert:expr)),* $(,)?) => {
        $(impl From<$ty> for Value {
            fn from(v: $ty) -> Self {
                Value::$variant($convert(v))
            }
        })*
    };
}

values_from!(
    (&str, Str, str::to_owned),
    (String, Str, std::convert::identity),
    (i64, Int, std::convert::identity),
    (u64, Int, |v| i64::try_from(v).unwrap_or(i64::MAX)),
    (u32, Int, i64::from),
    (u16, Int, i64::from),
    (f64, Double, std::convert::identity),
    (bool, Bool, std::convert::identity),
    (Vec<String>, StrList, std::convert::identity),
);

/// A span's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Unset,
    Ok,
    Error(String),
}

#[derive(Debug, Clone)]
pub struct Span {
    pub id: SpanId,
    pub parent: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    pub attributes: Vec<(&'static str, Value)>,
    pub status: Status,
}

/// Index of a span within its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanRef(usize);

/// One request's spans.
#[derive(Debug, Clone)]
pub struct Trace {
    pub trace_id: TraceId,
    /// The caller's span, when the request carried a `traceparent`.
    pub remote_parent: Option<SpanId>,
    /// The caller's sampling flag (sampled when the trace starts here).
    pub sampled: bool,
    pub spans: Vec<Span>,
    /// Audit records, exported as OTLP log records linked to their span.
    pub records: Vec<AuditRecord>,
}

/// One audit record (an MCP request or response, a policy decision): a short body and facts.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub time_ms: u64,
    pub span: SpanId,
    pub body: String,
    pub attributes: Vec<(&'static str, Value)>,
}

impl Trace {
    /// Starts a trace with its root span; continues the caller's trace when `parent` is given.
    pub fn start(
        parent: Option<TraceParent>,
        root_name: impl Into<String>,
        now_ms: u64,
        mut random: impl FnMut() -> u64,
    ) -> Self {
        let trace_id = parent.map_or_else(|| TraceId::random(&mut random), |p| p.trace_id);
        let root = Span {
            id: SpanId::random(&mut random),
            parent: parent.map(|p| p.parent_id),
            name: root_name.into(),
            kind: SpanKind::Server,
            start_ms: now_ms,
            end_ms: None,
            attributes: Vec::new(),
            status: Status::Unset,
        };
        Trace {
            trace_id,
            remote_parent: parent.map(|p| p.parent_id),
            sampled: parent.is_none_or(|p| p.sampled),
            spans: vec![root],
            records: Vec::new(),
        }
    }

    pub fn root(&self) -> SpanRef {
        SpanRef(0)
    }

    /// Opens a child span of `parent`.
    pub fn child(&mut self, parent: SpanRef, name: impl Into<String>, kind: SpanKind, now_ms: u64, id: u64) -> SpanRef {
        let parent_id = self.spans.get(parent.0).map(|s| s.id);
        self.spans.push(Span {
            id: SpanId::random(|| id),
            parent: parent_id,
            name: name.into(),
            kind,
            start_ms: now_ms,
            end_ms: None,
            attributes: Vec::new(),
            status: Status::Unset,
        });
        SpanRef(self.spans.len() - 1)
    }

    pub fn span(&self, span: SpanRef) -> Option<&Span> {
        self.spans.get(span.0)
    }

    /// Sets (or replaces) an attribute.
    /// Names a span once what it is about is known (an MCP call's method and tool).
    pub fn rename(&mut self, span: SpanRef, name: impl Into<String>) {
        if let Some(s) = self.spans.get_mut(span.0) {
            s.name = name.into();
        }
    }

    /// Whether `span` carries the attribute `key`.
    pub fn has(&self, span: SpanRef, key: &str) -> bool {
        self.spans.get(span.0).is_some_and(|s| s.attributes.iter().any(|(k, _)| *k == key))
    }

    pub fn set(&mut self, span: SpanRef, key: &'static str, value: impl Into<Value>) {
        if let Some(s) = self.spans.get_mut(span.0) {
            let value = value.into();
            match s.attributes.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => s.attributes.push((key, value)),
            }
        }
    }

    pub fn fail(&mut self, span: SpanRef, message: impl Into<String>) {
        if let Some(s) = self.spans.get_mut(span.0) {
            s.status = Status::Error(message.into());
        }
    }

    /// Closes a span (the first close wins).
    pub fn end(&mut self, span: SpanRef, now_ms: u64) {
        if let Some(s) = self.spans.get_mut(span.0) {
            s.end_ms.get_or_insert(now_ms);
        }
    }

    /// Closes every span still open (a trace is exported whole).
    pub fn end_all(&mut self, now_ms: u64) {
        for s in &mut self.spans {
            s.end_ms.get_or_insert(now_ms);
        }
    }

    /// Adds an audit record attached to `span`.
    pub fn audit(
        &mut self,
        span: SpanRef,
        now_ms: u64,
        body: impl Into<String>,
        attributes: Vec<(&'static str, Value)>,
    ) {
        if let Some(id) = self.span_id(span) {
            self.records.push(AuditRecord { time_ms: now_ms, span: id, body: body.into(), attributes });
        }
    }

    pub fn span_id(&self, span: SpanRef) -> Option<SpanId> {
        self.spans.get(span.0).map(|s| s.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_malformed_values() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(header).unwrap();
        assert_eq!(parsed.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(parsed.sampled);
        assert_eq!(TraceParent::header(parsed.trace_id, parsed.parent_id, parsed.sampled), header);
        let unsampled = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled);
        assert!(TraceParent::header(unsampled.trace_id, unsampled.parent_id, false).ends_with("-00"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_trace_continues_the_callers_trace_id_and_parents_its_root_on_the_callers_span() {
        let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let mut n = 0u64;
        let mut trace = Trace::start(parent, "POST /v1/chat/completions", 10, || {
            n += 1;
            n
        });
        assert_eq!(trace.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.spans[0].parent.unwrap().to_hex(), "00f067aa0ba902b7");
        let child = trace.child(trace.root(), "authenticate", SpanKind::Internal, 11, 99);
        trace.set(child, "gateway.principal.id", "alice");
        trace.set(child, "gateway.principal.id", "bob");
        trace.end(child, 12);
        trace.end(child, 50);
        let span = trace.span(child).unwrap();
        assert_eq!(span.parent, Some(trace.spans[0].id));
        assert_eq!(span.attributes, vec![("gateway.principal.id", Value::Str("bob".into()))]);
        assert_eq!(span.end_ms, Some(12));
    }
}
