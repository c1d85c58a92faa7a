//! Records a request's trace as the pipeline runs, and exports it once nothing holds it any more
//! (after the response, or after the last chunk of a stream): deferred through the host, so the
//! client never waits for export.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use serde_json::Value as Json;

use super::body::with_timeout;
use crate::config::{Config, PriceConfig, TelemetryConfig};
use crate::host::{Body, Host, LogLevel};
use crate::openai::{ChatChunk, Usage};
use crate::trace::attrs::*;
use crate::trace::{otlp, SpanKind, SpanRef, Trace, Value};

/// Latency facts gathered across attempts, for the breakdown on the root span.
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    upstream_start: Option<u64>,
    upstream_end: Option<u64>,
    upstream_ttfb: Option<u64>,
}

struct Recording<H: Host + 'static> {
    host: Rc<H>,
    trace: RefCell<Trace>,
    /// Where the finished trace goes: the request's configuration, once loaded.
    config: RefCell<Option<Rc<Config>>>,
    timing: RefCell<Timing>,
    summary: RefCell<Vec<String>>,
    /// The snapshot cap in bytes, while payload snapshots are on for this request.
    snapshots: std::cell::Cell<Option<usize>>,
    /// Tokens (prompt plus completion) of every completion recorded; `None` while no usage was
    /// reported.
    tokens_used: std::cell::Cell<Option<u64>>,
    /// The response status, once the response is over.
    status: std::cell::Cell<Option<u16>>,
    /// Whether the last phase (settlement and export) has run.
    recorded: std::cell::Cell<bool>,
    /// Token reservations made when the request was admitted, settled in the last phase
    /// (after the response, after a stream's last chunk), or when the client left.
    settlements: RefCell<Vec<Settlement>>,
}

/// Settles a request's token reservations, given the tokens it used (from the rate limiter).
pub(crate) type Settlement = Box<dyn FnOnce(u64) -> futures::future::LocalBoxFuture<'static, ()>>;

/// A shared handle on the request's trace; clones go to the response stream.
pub(crate) struct Recorder<H: Host + 'static> {
    inner: Rc<Recording<H>>,
}

impl<H: Host + 'static> Clone for Recorder<H> {
    fn clone(&self) -> Self {
        Recorder { inner: Rc::clone(&self.inner) }
    }
}

/// What a completion (whole or streamed) said about itself, read from its OpenAI-shaped JSON.
#[derive(Debug, Default, Clone)]
pub(crate) struct CompletionFacts {
    pub id: Option<String>,
    pub model: Option<String>,
    pub finish_reasons: Vec<String>,
    pub usage: Option<Usage>,
    pub tool_names: Vec<String>,
    pub tool_call_ids: Vec<String>,
    /// The answer's text, gathered (bounded) only when payload snapshots are on.
    pub text: Option<String>,
}

/// The most answer text gathered for a snapshot, before the configured cap applies.
const CAPTURE_LIMIT: usize = 64 * 1024;

fn count(v: &Json, path: &[&str]) -> u64 {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Json::as_u64).unwrap_or(0)
}

impl CompletionFacts {
    /// Reads a whole `chat.completion` (or another endpoint's JSON answer).
    pub fn observe(&mut self, v: &Json) {
        self.observe_head(v.get("id"), v.get("model"), v.get("usage"));
        for choice in v.get("choices").and_then(Json::as_array).into_iter().flatten() {
            let message = choice.get("message").or_else(|| choice.get("delta")).and_then(Json::as_object);
            self.observe_choice(choice.get("finish_reason").and_then(Json::as_str), message);
        }
    }

    /// Reads one `chat.completion.chunk`; call it for every chunk.
    pub fn observe_chunk(&mut self, chunk: &ChatChunk) {
        self.observe_head(chunk.rest.get("id"), chunk.rest.get("model"), chunk.usage.as_ref());
        for choice in &chunk.choices {
            self.observe_choice(choice.finish_reason.as_deref(), Some(&choice.delta));
        }
    }

    fn observe_head(&mut self, id: Option<&Json>, model: Option<&Json>, usage: Option<&Json>) {
        if let Some(id) = id.and_then(Json::as_str) {
            self.id.get_or_insert_with(|| id.to_owned());
        }
        if let Some(model) = model.and_then(Json::as_str) {
            self.model.get_or_insert_with(|| model.to_owned());
        }
        if let Some(usage) = usage.filter(|u| u.is_object()) {
            // Chat names (`prompt_tokens`) or Responses API names (`input_tokens`).
            self.usage = Some(Usage {
                prompt_tokens: count(usage, &["prompt_tokens"]).max(count(usage, &["input_tokens"])),
                completion_tokens: count(usage, &["completion_tokens"]).max(count(usage, &["output_tokens"])),
                cached_tokens: count(usage, &["prompt_tokens_details", "cached_tokens"])
                    .max(count(usage, &["input_tokens_details", "cached_tokens"])),
                reasoning_tokens: count(usage, &["completion_tokens_details", "reasoning_tokens"])
                    .max(count(usage, &["output_tokens_details", "reasoning_tokens"])),
            });
        }
    }

    /// One choice's finish reason and message (or delta): its text for a snapshot, its tool calls.
    fn observe_choice(&mut self, finish_reason: Option<&str>, message: Option<&serde_json::Map<String, Json>>) {
        if let Some(reason) = finish_reason {
            self.finish_reasons.push(reason.to_owned());
        }
        let content = message.and_then(|m| m.get("content")).and_then(Json::as_str);
        if let (Some(text), Some(content)) = (self.text.as_mut(), content) {
            if text.len() + content.len() <= CAPTURE_LIMIT {
                text.push_str(content);
            }
        }
        for call in message.and_then(|m| m.get("tool_calls")).and_then(Json::as_array).into_iter().flatten() {
            if let Some(id) = call.get("id").and_then(Json::as_str) {
                self.tool_call_ids.push(id.to_owned());
            }
            if let Some(name) = call.get("function").and_then(|f| f.get("name")).and_then(Json::as_str) {
                self.tool_names.push(name.to_owned());
            }
        }
    }
}

impl<H: Host + 'static> Recorder<H> {
    pub fn new(host: Rc<H>, trace: Trace) -> Self {
        Recorder {
            inner: Rc::new(Recording {
                host,
                trace: RefCell::new(trace),
                config: RefCell::new(None),
                timing: RefCell::new(Timing::default()),
                summary: RefCell::new(Vec::new()),
                snapshots: std::cell::Cell::new(None),
                tokens_used: std::cell::Cell::new(None),
                status: std::cell::Cell::new(None),
                recorded: std::cell::Cell::new(false),
                settlements: RefCell::new(Vec::new()),
            }),
        }
    }

    pub fn configure(&self, config: Rc<Config>) {
        *self.inner.config.borrow_mut() = Some(config);
    }

    fn now(&self) -> u64 {
        self.inner.host.now_millis()
    }

    pub fn root(&self) -> SpanRef {
        self.inner.trace.borrow().root()
    }

    pub fn trace_id_hex(&self) -> String {
        self.inner.trace.borrow().trace_id.to_hex()
    }

    /// The `traceparent` to send with a request made inside `span`.
    pub fn traceparent(&self, span: SpanRef) -> Option<String> {
        let trace = self.inner.trace.borrow();
        trace.span_id(span).map(|id| crate::trace::TraceParent::header(trace.trace_id, id, trace.sampled))
    }

    pub fn child(&self, parent: SpanRef, name: impl Into<String>, kind: SpanKind) -> SpanRef {
        let id = self.inner.host.random_u64();
        let now = self.now();
        self.inner.trace.borrow_mut().child(parent, name, kind, now, id)
    }

    pub fn set(&self, span: SpanRef, key: &'static str, value: impl Into<Value>) {
        self.inner.trace.borrow_mut().set(span, key, value);
    }

    pub fn rename(&self, span: SpanRef, name: impl Into<String>) {
        self.inner.trace.borrow_mut().rename(span, name);
    }

    pub fn fail(&self, span: SpanRef, message: impl Into<String>) {
        self.inner.trace.borrow_mut().fail(span, message);
    }

    pub fn end(&self, span: SpanRef) {
        let now = self.now();
        self.inner.trace.borrow_mut().end(span, now);
    }

    /// Adds an audit record to the trace (exported as an OTLP log record linked to `span`).
    pub fn audit(&self, span: SpanRef, body: impl Into<String>, attributes: Vec<(&'static str, Value)>) {
        let now = self.now();
        self.inner.trace.borrow_mut().audit(span, now, body, attributes);
    }

    /// A short phrase for the one-line summary (`scripts/dev` shows it).
    pub fn note(&self, text: impl Into<String>) {
        self.inner.summary.borrow_mut().push(text.into());
    }

    /// Turns payload snapshots on or off for this request: `telemetry.snapshots`, unless the
    /// route or MCP server says otherwise.
    pub fn choose_snapshots(&self, config: &Config, scoped: Option<bool>) {
        let on = scoped.unwrap_or(config.telemetry.snapshots);
        self.inner.snapshots.set(on.then_some(config.telemetry.snapshot_max_bytes));
    }

    /// Whether payload snapshots are on for this request.
    pub fn snapshots_on(&self) -> bool {
        self.inner.snapshots.get().is_some()
    }

    /// Facts to gather from a completion (its text too, when snapshots are on).
    pub fn new_facts(&self) -> CompletionFacts {
        CompletionFacts { text: self.snapshots_on().then(String::new), ..CompletionFacts::default() }
    }

    /// Records a payload on `span` when snapshots are on: PII and secrets replaced by the
    /// detectors, cut at the configured size.
    pub fn snapshot(&self, span: SpanRef, key: &'static str, payload: &str) {
        self.snapshot_with(span, key, || payload.to_owned());
    }

    /// As [`snapshot`](Self::snapshot), serializing the payload only when snapshots are on. A
    /// payload is kept once per span and key: the first recorded (a request as it first went
    /// out, before any fallback).
    pub fn snapshot_with(&self, span: SpanRef, key: &'static str, payload: impl FnOnce() -> String) {
        if let Some(max) = self.inner.snapshots.get() {
            if !self.inner.trace.borrow().has(span, key) {
                self.set(span, key, snapshot_text(&payload(), max));
            }
        }
    }

    pub fn upstream_started(&self) {
        let now = self.now();
        self.inner.timing.borrow_mut().upstream_start.get_or_insert(now);
    }

    /// The successful attempt's response head arrived.
    pub fn upstream_first_byte(&self, attempt_started: u64) {
        let now = self.now();
        self.inner.timing.borrow_mut().upstream_ttfb = Some(now.saturating_sub(attempt_started));
    }

    pub fn upstream_finished(&self) {
        let now = self.now();
        self.inner.timing.borrow_mut().upstream_end = Some(now);
    }

    /// Records a completion's facts on its gen_ai span, with its cost when a price is known.
    pub fn completion(&self, span: SpanRef, facts: &CompletionFacts, price: Option<&PriceConfig>) {
        if let Some(id) = &facts.id {
            self.set(span, GEN_AI_RESPONSE_ID, id.as_str());
        }
        if let Some(model) = &facts.model {
            self.set(span, GEN_AI_RESPONSE_MODEL, model.as_str());
        }
        if !facts.finish_reasons.is_empty() {
            self.set(span, GEN_AI_RESPONSE_FINISH_REASONS, facts.finish_reasons.clone());
        }
        if !facts.tool_names.is_empty() {
            self.set(span, GEN_AI_TOOL_NAMES, facts.tool_names.clone());
            self.set(span, GEN_AI_TOOL_CALL_IDS, facts.tool_call_ids.clone());
        }
        if let Some(text) = &facts.text {
            let messages = serde_json::json!([{"role": "assistant", "content": text}]);
            self.snapshot(span, GEN_AI_OUTPUT_MESSAGES, &messages.to_string());
        }
        if let Some(usage) = facts.usage {
            let used = self.inner.tokens_used.get().unwrap_or(0);
            let total = used.saturating_add(usage.prompt_tokens).saturating_add(usage.completion_tokens);
            self.inner.tokens_used.set(Some(total));
            self.set(span, GEN_AI_USAGE_INPUT_TOKENS, usage.prompt_tokens);
            self.set(span, GEN_AI_USAGE_OUTPUT_TOKENS, usage.completion_tokens);
            self.set(span, GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cached_tokens);
            self.set(span, GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning_tokens);
            self.note(format!("tokens {}→{}", usage.prompt_tokens, usage.completion_tokens));
            if let Some(price) = price {
                self.set(span, GATEWAY_COST_USD, price.cost(usage));
            }
        }
    }

    /// What settles the request's token reservations from the tokens it used, run once the
    /// response is over.
    pub fn on_settle(&self, settle: Settlement) {
        self.inner.settlements.borrow_mut().push(settle);
    }

    /// The answer used no model tokens (a cache hit): reservations are given back in full.
    pub fn no_tokens_used(&self) {
        self.inner.tokens_used.set(Some(self.inner.tokens_used.get().unwrap_or(0)));
    }

    /// Closes the root span with the status and latency breakdown. Called once the client has
    /// the whole response (for a stream: after its last chunk).
    pub fn finish(&self, status: u16) {
        self.inner.status.set(Some(status));
        let now = self.now();
        let root = self.root();
        let timing = *self.inner.timing.borrow();
        let mut trace = self.inner.trace.borrow_mut();
        let start = trace.span(root).map_or(now, |s| s.start_ms);
        let total = now.saturating_sub(start);
        trace.set(root, HTTP_RESPONSE_STATUS_CODE, status);
        trace.set(root, GATEWAY_LATENCY_TOTAL_MS, total);
        let upstream = match (timing.upstream_start, timing.upstream_end) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            (Some(a), None) => now.saturating_sub(a),
            _ => 0,
        };
        trace.set(root, GATEWAY_LATENCY_UPSTREAM_MS, upstream);
        if let Some(ttfb) = timing.upstream_ttfb {
            trace.set(root, GATEWAY_LATENCY_UPSTREAM_TTFB_MS, ttfb);
        }
        trace.set(root, GATEWAY_LATENCY_OVERHEAD_MS, total.saturating_sub(upstream));
        trace.end_all(now);
        drop(trace);
        self.note(format!("{total}ms (upstream {upstream}ms)"));
    }

    /// The last phase, once the response is over ([`Recorder::finish`]): token reservations
    /// settled and the trace exported, off the response path. Later calls do nothing.
    pub fn record(&self) {
        self.inner.settle_and_export();
    }
}

/// A payload as a snapshot keeps it: PII and secrets redacted, at most `max` bytes.
pub(crate) fn snapshot_text(payload: &str, max: usize) -> String {
    use crate::guard::{detect, redact, Category, Detectors};
    let only = Detectors { pii: true, secrets: true, injection: false, tool_args: false };
    let findings = detect::scan(payload, only);
    let redacted = redact::redact(payload, &findings, &[Category::Pii, Category::Secret]);
    let mut text = redacted.unwrap_or_else(|| payload.to_owned());
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = text.len() - cut;
        text.truncate(cut);
        text.push_str(&format!("…[{dropped} more bytes]"));
    }
    text
}

impl<H: Host + 'static> Recording<H> {
    /// Settles the request's token reservations from the usage recorded and exports its trace,
    /// both off the response path; once.
    fn settle_and_export(&self) {
        if self.recorded.replace(true) {
            return;
        }
        let settlements = std::mem::take(&mut *self.settlements.borrow_mut());
        // No usage reported: a failed request used nothing; an answer whose usage never came
        // (a cut stream, a client gone) keeps its estimate.
        let used = match (self.tokens_used.get(), self.status.get()) {
            (Some(used), _) => Some(used),
            (None, Some(status)) if !(200..300).contains(&status) => Some(0),
            (None, _) => None,
        };
        let settlement = used.filter(|_| !settlements.is_empty()).map(|used| async move {
            for settle in settlements {
                settle(used).await;
            }
        });
        let config = self.config.borrow_mut().take();
        let exported = config.as_ref().is_none_or(|c| {
            let telemetry = &c.telemetry;
            telemetry.collector_url.is_some() || telemetry.log_traces != Some(false)
        });
        if !exported {
            if let Some(settlement) = settlement {
                self.host.defer(Box::pin(settlement));
            }
            return;
        }
        let now = self.host.now_millis();
        let mut trace = std::mem::replace(&mut *self.trace.borrow_mut(), Trace::start(None, "", 0, || 1));
        trace.end_all(now);
        let summary = std::mem::take(&mut *self.summary.borrow_mut()).join(" ");
        let host = Rc::clone(&self.host);
        self.host.defer(Box::pin(async move {
            // Settled first: a request's trace at the collector means its quotas are settled too.
            if let Some(settlement) = settlement {
                settlement.await;
            }
            export(host, trace, config, summary).await;
        }));
    }
}

/// The fallback for a response that never finished (a client that left mid-stream): what it
/// had recorded is settled and exported all the same.
impl<H: Host + 'static> Drop for Recording<H> {
    fn drop(&mut self) {
        self.settle_and_export();
    }
}

/// Sends the trace to the collector, or writes it to the log: by default one short line (its id,
/// its summary and its audit records' bodies), with `log_traces: true` the whole trace as OTLP
/// JSON.
/// Bounded in time; a failure is one warning in the log and changes nothing else.
async fn export<H: Host>(host: Rc<H>, trace: Trace, config: Option<Rc<Config>>, summary: String) {
    let default = TelemetryConfig::default();
    let telemetry = config.as_ref().map_or(&default, |c| &c.telemetry);
    let Some(collector) = telemetry.collector_url.as_deref() else {
        match telemetry.log_traces {
            None => log_summary(&*host, &trace, &summary),
            Some(true) => log_whole(&*host, &trace, &summary),
            Some(false) => {}
        }
        return;
    };
    let spans = otlp::traces_body(&trace);
    let records = otlp::logs_body(&trace);
    post(&*host, telemetry, collector, "v1/traces", &spans, &trace).await;
    if let Some(records) = records {
        post(&*host, telemetry, collector, "v1/logs", &records, &trace).await;
    }
}

/// The default without a collector: `{"msg":"trace","trace_id":…,"summary":…}`, with `"audit"`
/// (the records' bodies) when the request left audit records.
fn log_summary<H: Host>(host: &H, trace: &Trace, summary: &str) {
    let mut line = serde_json::Map::new();
    line.insert("msg".into(), Json::from("trace"));
    line.insert("trace_id".into(), Json::from(trace.trace_id.to_hex()));
    line.insert("summary".into(), Json::from(summary));
    if !trace.records.is_empty() {
        line.insert("audit".into(), trace.records.iter().map(|r| Json::from(r.body.as_str())).collect());
    }
    host.log(LogLevel::Info, &Json::Object(line).to_string());
}

/// With `log_traces`: the trace as one OTLP JSON line, and its audit records as another.
fn log_whole<H: Host>(host: &H, trace: &Trace, summary: &str) {
    for (msg, body) in [("trace", Some(otlp::traces_body(trace))), ("audit", otlp::logs_body(trace))] {
        let Some(Json::Object(otlp)) = body else { continue };
        let mut line = serde_json::Map::new();
        line.insert("msg".into(), Json::from(msg));
        line.insert("trace_id".into(), Json::from(trace.trace_id.to_hex()));
        if msg == "trace" {
            line.insert("summary".into(), Json::from(summary));
        }
        line.extend(otlp);
        host.log(LogLevel::Info, &Json::Object(line).to_string());
    }
}

/// One OTLP POST, bounded by the export timeout; a failure is one warning.
async fn post<H: Host>(host: &H, telemetry: &TelemetryConfig, collector: &str, path: &str, body: &Json, trace: &Trace) {
    let url = format!("{}/{path}", collector.trim_end_matches('/'));
    let mut request = http::Request::post(&url).header(http::header::CONTENT_TYPE, "application/json");
    for (name, secret) in &telemetry.collector_headers {
        match host.secret(secret) {
            Some(value) => request = request.header(name.as_str(), value),
            None => {
                host.log(LogLevel::Warn, &format!("{{\"msg\":\"trace export header secret `{secret}` is not set\"}}"))
            }
        }
    }
    let Ok(request) = request.body(Bytes::from(serde_json::to_vec(body).unwrap_or_default())) else {
        host.log(LogLevel::Warn, "{\"msg\":\"trace export request could not be built\"}");
        return;
    };
    let outcome = with_timeout(host, telemetry.export_timeout_ms, host.fetch(request.map(Body::Full))).await;
    let problem = match outcome {
        Some(Ok(response)) if response.status().is_success() => return,
        Some(Ok(response)) => format!("collector answered HTTP {}", response.status().as_u16()),
        Some(Err(e)) => e.to_string(),
        None => format!("no answer within {} ms", telemetry.export_timeout_ms),
    };
    host.log(
        LogLevel::Warn,
        &serde_json::json!({"msg": "trace export failed", "path": path, "trace_id": trace.trace_id.to_hex(), "error": problem})
            .to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeAnswer, FakeHost};

    fn recorder(host: &Rc<FakeHost>, collector: Option<&str>) -> Recorder<FakeHost> {
        recorder_with(host, |t| t.collector_url = collector.map(str::to_owned))
    }

    fn recorder_with(host: &Rc<FakeHost>, telemetry: impl FnOnce(&mut TelemetryConfig)) -> Recorder<FakeHost> {
        let recorder = Recorder::new(Rc::clone(host), Trace::start(None, "root", 1, || 5));
        let mut config = Config::from_json(br#"{"version": 1}"#).unwrap();
        telemetry(&mut config.telemetry);
        recorder.configure(Rc::new(config));
        recorder
    }

    /// The log lines of a request that left one audit record, without a collector.
    fn logged_with_one_audit(log_traces: Option<bool>) -> Vec<String> {
        let host = Rc::new(FakeHost::default());
        let rec = recorder_with(&host, |t| t.log_traces = log_traces);
        rec.audit(rec.root(), "policy decision", Vec::new());
        drop(rec);
        run_deferred(&host);
        let logs = host.logs.borrow().clone();
        logs
    }

    #[test]
    fn with_log_traces_false_nothing_is_written() {
        let logs = logged_with_one_audit(Some(false));
        assert!(logs.is_empty(), "{logs:?}");
    }

    #[test]
    fn by_default_without_a_collector_a_request_is_one_short_log_line() {
        let host = Rc::new(FakeHost::default());
        let rec = recorder(&host, None);
        rec.note("POST /mcp/py/");
        rec.audit(rec.root(), "mcp py tools/call add: allowed (200)", vec![("gateway.mcp.server", "py".into())]);
        drop(rec);
        run_deferred(&host);
        let logs = host.logs.borrow();
        assert_eq!(logs.len(), 1, "{logs:?}");
        let line: Json = serde_json::from_str(&logs[0]).unwrap();
        assert_eq!(line["msg"], "trace");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32));
        assert_eq!(line["summary"], "POST /mcp/py/");
        assert_eq!(line["audit"], serde_json::json!(["mcp py tools/call add: allowed (200)"]));
        assert!(!logs[0].contains("resourceSpans") && !logs[0].contains("gateway.mcp.server"), "{}", logs[0]);
    }

    #[test]
    fn words_an_upstream_chose_cannot_forge_a_second_log_line() {
        let host = Rc::new(FakeHost::default());
        let rec = recorder(&host, None);
        rec.note("error: the upstream said\n{\"msg\":\"trace\",\"trace_id\":\"forged\"}");
        rec.audit(rec.root(), "mcp evil tools/call x\r\n{\"msg\":\"audit\"}: allowed (200)", Vec::new());
        drop(rec);
        run_deferred(&host);
        let logs = host.logs.borrow();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(!logs[0].contains('\n') && !logs[0].contains('\r'), "{}", logs[0]);
        let line: Json = serde_json::from_str(&logs[0]).unwrap();
        assert_ne!(line["trace_id"], "forged");
    }

    fn run_deferred(host: &FakeHost) {
        for work in host.take_deferred() {
            futures::executor::block_on(work);
        }
    }

    #[test]
    fn audit_records_go_to_the_collectors_logs_endpoint_after_the_trace() {
        let host = Rc::new(FakeHost::default());
        host.answer(FakeAnswer::json(200, "{}")).answer(FakeAnswer::json(200, "{}"));
        let rec = recorder(&host, Some("http://collector.test"));
        rec.audit(rec.root(), "tools/call allowed", vec![(GATEWAY_OUTCOME, Value::from("allow"))]);
        drop(rec);
        run_deferred(&host);
        let requests = host.requests.borrow();
        let uris: Vec<String> = requests.iter().map(|r| r.uri().to_string()).collect();
        assert_eq!(uris, vec!["http://collector.test/v1/traces", "http://collector.test/v1/logs"]);
        let logs: Json = serde_json::from_slice(requests[1].body()).unwrap_or_default();
        assert_eq!(
            logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"]["stringValue"],
            "tools/call allowed"
        );
    }

    #[test]
    fn with_log_traces_audit_records_are_a_log_line_of_their_own() {
        let logs = logged_with_one_audit(Some(true));
        assert_eq!(logs.len(), 2);
        assert!(logs[0].contains("\"msg\":\"trace\"") && logs[1].contains("\"msg\":\"audit\""));
    }
}
