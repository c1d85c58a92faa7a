//! Turns an upstream byte stream into the client's SSE stream, chunk by chunk, with no buffering
//! beyond one upstream chunk. A stream that breaks, stalls or ends early closes with an error event.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use futures::StreamExt;

use serde_json::Value;

use super::body::{upstream_fault, with_timeout, Reading};
use super::guard::{OutputTexts, RemoteOutput};
use super::recorder::{CompletionFacts, Recorder};
use crate::config::PriceConfig;
use crate::error::ApiError;
use crate::host::{ByteStream, Host};
use crate::openai::ChatChunk;
use crate::providers::{ChatStreamTranslator, StreamEvent};
use crate::responses::{Envelope, ResponsesStream};
use crate::sse;
use crate::stream_guard::{Decide, StreamGuard};
use crate::trace::SpanRef;

/// Watches the translated chunks for the trace, and hides the usage the gateway asked for on the
/// trace's behalf when the client did not ask for it.
pub(crate) struct StreamTrace<H: Host + 'static> {
    recorder: Recorder<H>,
    gen_span: SpanRef,
    attempt_span: SpanRef,
    client_wants_usage: bool,
    price: Option<PriceConfig>,
    facts: CompletionFacts,
    finished: bool,
}

impl<H: Host + 'static> StreamTrace<H> {
    pub fn new(
        recorder: Recorder<H>,
        gen_span: SpanRef,
        attempt_span: SpanRef,
        client_wants_usage: bool,
        price: Option<PriceConfig>,
    ) -> Self {
        let facts = recorder.new_facts();
        StreamTrace { recorder, gen_span, attempt_span, client_wants_usage, price, facts, finished: false }
    }

    /// Records a chunk; returns what the client should get of it.
    fn filter(&mut self, mut chunk: ChatChunk) -> Option<ChatChunk> {
        self.facts.observe_chunk(&chunk);
        if self.client_wants_usage {
            return Some(chunk);
        }
        if chunk.is_usage_only() {
            return None;
        }
        chunk.usage = None;
        Some(chunk)
    }

    /// The runtime's own words for a body that broke off, on the attempt's span (never the client's).
    pub(crate) fn upstream_fault(&self, error: &crate::host::BodyError) {
        self.recorder.set(self.attempt_span, crate::trace::attrs::GATEWAY_UPSTREAM_ERROR_DETAIL, error.detail());
    }

    /// The stream ended (cleanly, with an error event, or abandoned): close the trace.
    pub(crate) fn finish(&mut self, error: Option<&str>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let recorder = &self.recorder;
        recorder.upstream_finished();
        recorder.completion(self.gen_span, &self.facts, self.price.as_ref());
        if let Some(message) = error {
            recorder.fail(self.attempt_span, message);
            recorder.fail(self.gen_span, message);
            recorder.fail(recorder.root(), message);
            recorder.note(format!("stream error: {message}"));
        }
        recorder.end(self.attempt_span);
        recorder.end(self.gen_span);
        recorder.finish(200);
    }

    /// The stream's last bytes have been handed to the client: the last phase runs now. (A
    /// stream dropped before that, by a client that left or by a pipeline that discarded it,
    /// is recorded when its last handle goes.)
    pub(crate) fn delivered(&mut self) {
        self.recorder.record();
    }
}

impl<H: Host + 'static> Drop for StreamTrace<H> {
    fn drop(&mut self) {
        self.finish(Some("the client went away before the stream ended"));
    }
}

/// SSE bytes for one event.
pub fn encode(event: &StreamEvent) -> Bytes {
    match event {
        StreamEvent::Chunk(chunk) => sse::encode_data(chunk),
        StreamEvent::Done => Bytes::from_static(sse::DONE),
        StreamEvent::Error(error) => error_event(error),
    }
}

/// The chat stream's error event: the OpenAI error object as a `data:` line.
fn error_event(error: &ApiError) -> Bytes {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&error.to_json());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Encodes a fixed list of events (answers produced in-process) as chat SSE.
pub fn encode_all(events: &[StreamEvent]) -> Bytes {
    Encoder::Chat.encode_all(events)
}

/// How the client reads its stream: chat completion chunks, or the Responses API's events
/// (translated from the typed chunks as they are released, never from encoded chat SSE).
pub(crate) enum Encoder {
    Chat,
    Responses(Box<ResponsesStream>),
}

impl Encoder {
    /// The encoder for a client of the Responses API (`envelope`), else of chat completions.
    pub fn for_client(responses: Option<&Envelope>) -> Encoder {
        match responses {
            Some(envelope) => Encoder::Responses(Box::new(ResponsesStream::new(envelope.clone()))),
            None => Encoder::Chat,
        }
    }

    fn chunk(&mut self, chunk: &ChatChunk) -> Vec<Bytes> {
        match self {
            Encoder::Chat => vec![sse::encode_data(chunk)],
            Encoder::Responses(stream) => stream.chunk(chunk),
        }
    }

    /// The stream's last bytes: completed, or failed with `error`.
    fn end(&mut self, error: Option<&ApiError>) -> Bytes {
        match (self, error) {
            (Encoder::Chat, None) => Bytes::from_static(sse::DONE),
            (Encoder::Chat, Some(error)) => error_event(error),
            (Encoder::Responses(stream), None) => stream.done().concat().into(),
            (Encoder::Responses(stream), Some(error)) => {
                stream.error(error.code.as_deref().unwrap_or("upstream_error"), &error.message).concat().into()
            }
        }
    }

    /// A fixed list of events (answers produced in-process), encoded at once.
    pub fn encode_all(mut self, events: &[StreamEvent]) -> Bytes {
        let mut out = Vec::new();
        for event in events {
            match event {
                StreamEvent::Chunk(chunk) => self.chunk(chunk).iter().for_each(|b| out.extend_from_slice(b)),
                StreamEvent::Done => out.extend_from_slice(&self.end(None)),
                StreamEvent::Error(error) => out.extend_from_slice(&self.end(Some(error))),
            }
        }
        Bytes::from(out)
    }
}

/// What the pure half of a client's stream releases.
pub(crate) enum Released {
    /// A chunk the client may have.
    Chunk(ChatChunk),
    /// The stream is over: completed (`None`) or failed.
    End(Option<ApiError>),
}

/// The pure half of a client's stream: upstream bytes through the provider's translator, then
/// the output guard (text held back, tool calls held whole), into the chunks the client may have
/// and how the stream ends. No I/O: the async pump around it reads the upstream, records usage,
/// asks the remote guard service and encodes.
pub(crate) struct ClientStream {
    translator: Option<Box<dyn ChatStreamTranslator>>,
    guard: Option<(StreamGuard, Box<dyn Decide>)>,
}

impl ClientStream {
    pub fn new(translator: Box<dyn ChatStreamTranslator>, guard: Option<(StreamGuard, Box<dyn Decide>)>) -> Self {
        ClientStream { translator: Some(translator), guard }
    }

    /// Upstream bytes in; what they release out.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Released> {
        match self.translator.as_mut() {
            Some(translator) => {
                let events = translator.push(bytes);
                self.guarded(events)
            }
            None => Vec::new(),
        }
    }

    /// The upstream ended.
    pub fn finish(&mut self) -> Vec<Released> {
        match self.translator.take() {
            Some(translator) => self.guarded(translator.finish()),
            None => Vec::new(),
        }
    }

    /// The upstream broke off or stalled: what the guard holds is released first (unless it is
    /// itself denied), then the error.
    pub fn fail(&mut self, error: ApiError) -> Vec<Released> {
        let mut out = Vec::new();
        self.failed(error, &mut out);
        out
    }

    /// Stops the stream where it is (the remote guard service refused what it released).
    pub fn stop(&mut self) {
        self.translator = None;
    }

    /// Whether nothing more will be released.
    pub fn is_over(&self) -> bool {
        self.translator.is_none()
    }

    fn guarded(&mut self, events: Vec<StreamEvent>) -> Vec<Released> {
        let mut out = Vec::new();
        for event in events {
            match event {
                StreamEvent::Chunk(chunk) => {
                    let guarded = match self.guard.as_mut() {
                        Some((guard, decide)) => guard.push(chunk, decide.as_mut()),
                        None => Ok(vec![chunk]),
                    };
                    match guarded {
                        Ok(chunks) => out.extend(chunks.into_iter().map(Released::Chunk)),
                        Err(denial) => {
                            self.guard = None;
                            self.failed(super::guard::stream_denied(&denial), &mut out);
                            return out;
                        }
                    }
                }
                // Nothing follows a terminal event, whatever the upstream still sends.
                StreamEvent::Done => {
                    if self.release_held(&mut out) {
                        self.end(None, &mut out);
                    }
                    return out;
                }
                StreamEvent::Error(error) => {
                    self.failed(error, &mut out);
                    return out;
                }
            }
        }
        out
    }

    /// Releases what the guard still holds; `false` when a policy denied it (the stream is over).
    fn release_held(&mut self, out: &mut Vec<Released>) -> bool {
        let Some((guard, decide)) = self.guard.as_mut() else { return true };
        match guard.finish(decide.as_mut()) {
            Ok(chunks) => {
                out.extend(chunks.into_iter().map(Released::Chunk));
                true
            }
            Err(denial) => {
                self.guard = None;
                self.failed(super::guard::stream_denied(&denial), out);
                false
            }
        }
    }

    fn failed(&mut self, error: ApiError, out: &mut Vec<Released>) {
        // Text held back for the guard is delivered before the error, unless it is itself denied.
        if self.guard.is_some() && !self.release_held(out) {
            return;
        }
        self.end(Some(error), out);
    }

    fn end(&mut self, error: Option<ApiError>, out: &mut Vec<Released>) {
        self.translator = None;
        out.push(Released::End(error));
    }
}

/// The async half of a client's stream: reads the upstream into the [`ClientStream`], records
/// what it releases, holds it for the remote guard service and encodes it for the client.
struct Translating<H: Host + 'static> {
    host: Rc<H>,
    upstream: ByteStream,
    client: ClientStream,
    encoder: Encoder,
    out: Outlet,
    idle_ms: u64,
    trace: StreamTrace<H>,
    /// The remote guard service, asked about each window of released output before it leaves.
    gate: Option<Gate>,
}

/// Output the remote guard service has not yet allowed, cut into windows as it is released
/// (however the upstream's bytes were framed): a window closes at `window_chars` characters of text
/// and arguments, or at [`WINDOW_MAX_BYTES`] of encoded events (audio data, log-probabilities).
struct Gate {
    remote: RemoteOutput,
    /// Closed windows, oldest first, each to be asked about once.
    closed: VecDeque<Window>,
    /// The window being filled.
    open: Window,
    /// How the stream ends (completed, or its error), kept until the last window is allowed. It
    /// is encoded only then, so a refusal of that window still reaches the client as the end.
    ending: Option<Option<ApiError>>,
}

/// Chunks held back, not yet encoded (the client's encoder sees only what is allowed), and the
/// text the remote guard service reads of them.
#[derive(Default)]
struct Window {
    chunks: Vec<ChatChunk>,
    /// Their size as chat SSE events.
    bytes: usize,
    texts: OutputTexts,
}

/// A window closes at this many bytes of chat SSE events, whatever text it holds.
const WINDOW_MAX_BYTES: usize = 64 * 1024;

impl Gate {
    fn hold(&mut self, chunk: ChatChunk) {
        self.open.texts.add_chunk(&chunk);
        self.open.bytes += sse::encode_data(&chunk).len();
        self.open.chunks.push(chunk);
        if self.open.texts.chars() >= self.remote.window_chars || self.open.bytes >= WINDOW_MAX_BYTES {
            self.closed.push_back(std::mem::take(&mut self.open));
        }
    }

    fn holds_anything(&self) -> bool {
        !self.closed.is_empty() || !self.open.chunks.is_empty()
    }

    /// Whether a window is to be asked about now: a closed one, or the last once the upstream is over.
    fn due(&self, upstream_over: bool) -> bool {
        !self.closed.is_empty() || (upstream_over && !self.open.chunks.is_empty())
    }

    /// The next window to ask about.
    fn next(&mut self) -> Window {
        self.closed.pop_front().unwrap_or_else(|| std::mem::take(&mut self.open))
    }
}

impl<H: Host + 'static> Translating<H> {
    fn take(&mut self, released: Vec<Released>) {
        for released in released {
            match released {
                Released::Chunk(chunk) => self.deliver(chunk),
                Released::End(error) => self.end(error),
            }
        }
    }

    fn deliver(&mut self, chunk: ChatChunk) {
        let Some(chunk) = self.trace.filter(chunk) else { return };
        match self.gate.as_mut() {
            Some(gate) => gate.hold(chunk),
            None => {
                let events = self.encoder.chunk(&chunk);
                self.out.queue.extend(events);
            }
        }
    }

    /// The stream's last bytes (completed, or the error): after any output still held for the
    /// remote guard service, and the trace closed once that output is decided.
    fn end(&mut self, error: Option<ApiError>) {
        match self.gate.as_mut() {
            Some(gate) if gate.holds_anything() => gate.ending = Some(error),
            _ => self.close(error),
        }
    }

    /// Closes the trace and encodes the stream's end for the client.
    fn close(&mut self, error: Option<ApiError>) {
        self.trace.finish(error.as_ref().map(|e| e.message.as_str()));
        let bytes = self.encoder.end(error.as_ref());
        self.out.queue.push_back(bytes);
    }

    /// Asks the remote guard service about the next window: delivered when allowed, replaced by
    /// the refusal (which ends the stream) when not.
    async fn ask_gate(&mut self) {
        let Some(gate) = self.gate.as_mut() else { return };
        let window = gate.next();
        match gate.remote.ask(window.texts).await {
            Ok(()) => {
                for chunk in &window.chunks {
                    let events = self.encoder.chunk(chunk);
                    self.out.queue.extend(events);
                }
                let gate = self.gate.as_mut().filter(|g| !g.holds_anything());
                if let Some(ending) = gate.and_then(|g| g.ending.take()) {
                    self.close(ending);
                }
            }
            Err(error) => {
                self.gate = None;
                self.client.stop();
                self.close(Some(error));
            }
        }
    }

    /// Whether the held window is to be asked about now.
    fn gate_due(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| g.due(self.client.is_over()))
    }

    /// Pulls one upstream chunk (or its end, or a fault) through the client stream.
    async fn pull_upstream(&mut self) {
        let released = match with_timeout(&*self.host, self.idle_ms, self.upstream.next()).await {
            Some(Some(Ok(bytes))) => self.client.push(&bytes),
            Some(None) => self.client.finish(),
            Some(Some(Err(e))) => {
                self.trace.upstream_fault(&e);
                self.client.fail(upstream_fault(Reading::Stream, Some(&e), self.idle_ms))
            }
            None => self.client.fail(upstream_fault(Reading::Stream, None, self.idle_ms)),
        };
        self.take(released);
    }
}

/// The client-facing body: translated SSE, flushed as each upstream chunk is translated.
pub(crate) fn translate<H: Host + 'static>(
    (host, upstream, idle_ms): (Rc<H>, ByteStream, u64),
    client: ClientStream,
    encoder: Encoder,
    trace: StreamTrace<H>,
    remote: Option<RemoteOutput>,
) -> ByteStream {
    let gate = remote.map(|remote| Gate { remote, closed: VecDeque::new(), open: Window::default(), ending: None });
    pump(Translating { host, upstream, client, encoder, out: Outlet::default(), idle_ms, trace, gate })
}

/// What a pulled body has ready for the client, and whether it will have more.
#[derive(Default)]
pub(crate) struct Outlet {
    /// The bytes ready to go out, in order.
    pub queue: VecDeque<Bytes>,
    /// No pull will queue anything more.
    pub done: bool,
}

/// A body produced by pulling: each pull may queue bytes for the client.
pub(crate) trait Pull {
    fn outlet(&mut self) -> &mut Outlet;
    /// Whether no pull will queue anything more.
    fn done(&mut self) -> bool {
        self.outlet().done
    }
    /// Reads once from the upstream (or decides what is held), queuing what may go out.
    async fn pull(&mut self);
    /// Once done and the queue is empty: why the body is cut rather than ended (the runtime then
    /// aborts it), if it is.
    fn cut(&mut self) -> Option<crate::host::BodyError> {
        None
    }
    /// Called once, when everything has been handed out.
    fn ended(&mut self) {}
}

/// The one driver of pulled bodies: what is queued goes out first, then the next pull, until
/// the source is done.
pub(crate) fn pump<P: Pull + 'static>(source: P) -> ByteStream {
    Box::pin(futures::stream::unfold(source, |mut source| async move {
        loop {
            if let Some(bytes) = source.outlet().queue.pop_front() {
                return Some((Ok(bytes), source));
            }
            if source.done() {
                if let Some(reason) = source.cut() {
                    return Some((Err(reason), source));
                }
                source.ended();
                return None;
            }
            source.pull().await;
        }
    }))
}

impl<H: Host + 'static> Pull for Translating<H> {
    fn outlet(&mut self) -> &mut Outlet {
        &mut self.out
    }

    fn done(&mut self) -> bool {
        self.client.is_over() && !self.gate_due()
    }

    async fn pull(&mut self) {
        match self.gate_due() {
            true => self.ask_gate().await,
            false => self.pull_upstream().await,
        }
    }

    fn ended(&mut self) {
        self.trace.delivered();
    }
}

struct Passing<H: Host + 'static> {
    host: Rc<H>,
    upstream: ByteStream,
    idle_ms: u64,
    sse: bool,
    /// An event stream's events, read beside the bytes passed on, for the usage they report.
    events: Option<crate::sse::SseParser>,
    trace: StreamTrace<H>,
    out: Outlet,
    /// A body that is not an event stream is cut, not ended, when the upstream's breaks.
    cut: Option<crate::host::BodyError>,
}

impl<H: Host + 'static> Passing<H> {
    /// Reads the usage a passed-through event stream reports, so token quotas settle from it:
    /// a Responses stream's `response.completed` (`response.usage`), a streamed transcription's
    /// `transcript.text.done` (`usage`).
    fn observe(&mut self, bytes: &[u8]) {
        let Some(parser) = self.events.as_mut() else { return };
        let Ok(events) = parser.push(bytes) else {
            self.events = None;
            return;
        };
        for event in events.iter().filter(|e| e.data.contains("\"usage\"")) {
            let Ok(value) = serde_json::from_str::<Value>(&event.data) else { continue };
            // A Responses stream's `response.completed` carries the usage inside `response`.
            match value.get("response").filter(|r| r.get("usage").is_some()) {
                Some(response) => self.trace.facts.observe(response),
                None => self.trace.facts.observe(&value),
            }
        }
    }
}

/// Another endpoint's streamed body, forwarded chunk by chunk as it is. A break or stall ends an
/// event stream with an error event, and any other body with an error (the connection is cut
/// rather than ended cleanly where the runtime allows it).
pub(crate) fn passthrough<H: Host + 'static>(
    host: Rc<H>,
    upstream: ByteStream,
    idle_ms: u64,
    sse: bool,
    trace: StreamTrace<H>,
) -> ByteStream {
    let events = sse.then(crate::sse::SseParser::new);
    pump(Passing { host, upstream, idle_ms, sse, events, trace, out: Outlet::default(), cut: None })
}

impl<H: Host + 'static> Pull for Passing<H> {
    fn outlet(&mut self) -> &mut Outlet {
        &mut self.out
    }

    async fn pull(&mut self) {
        let failure = match with_timeout(&*self.host, self.idle_ms, self.upstream.next()).await {
            Some(Some(Ok(bytes))) => {
                self.observe(&bytes);
                self.out.queue.push_back(bytes);
                return;
            }
            Some(None) => {
                self.out.done = true;
                self.trace.finish(None);
                return;
            }
            Some(Some(Err(e))) => {
                self.trace.upstream_fault(&e);
                upstream_fault(Reading::Stream, Some(&e), self.idle_ms)
            }
            None => upstream_fault(Reading::Stream, None, self.idle_ms),
        };
        self.out.done = true;
        self.trace.finish(Some(&failure.message));
        if self.sse {
            let mut out = b"event: error\ndata: ".to_vec();
            out.extend_from_slice(&failure.to_json());
            out.extend_from_slice(b"\n\n");
            self.out.queue.push_back(Bytes::from(out));
        } else {
            self.cut = Some(crate::host::BodyError(failure.message));
        }
    }

    fn cut(&mut self) -> Option<crate::host::BodyError> {
        self.cut.take()
    }

    fn ended(&mut self) {
        self.trace.delivered();
    }
}
