//! Turns an upstream byte stream into the client's SSE stream, chunk by chunk, with no buffering
//! beyond one upstream chunk. A stream that breaks, stalls or ends early closes with an error event.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use futures::StreamExt;

use super::with_timeout;
use crate::error::ApiError;
use crate::host::{ByteStream, Host};
use crate::providers::{ChatStreamTranslator, StreamEvent};
use crate::sse;

/// SSE bytes for one event.
pub fn encode(event: &StreamEvent) -> Bytes {
    match event {
        StreamEvent::Chunk(chunk) => sse::encode_data(chunk),
        StreamEvent::Done => Bytes::from_static(sse::DONE),
        StreamEvent::Error(error) => {
            let mut out = b"data: ".to_vec();
            out.extend_from_slice(&error.to_json());
            out.extend_from_slice(b"\n\n");
            Bytes::from(out)
        }
    }
}

/// Encodes a fixed list of events (answers produced in-process).
pub fn encode_all(events: &[StreamEvent]) -> Bytes {
    let mut out = Vec::new();
    for event in events {
        out.extend_from_slice(&encode(event));
    }
    Bytes::from(out)
}

struct Translating<H> {
    host: Rc<H>,
    upstream: ByteStream,
    translator: Option<Box<dyn ChatStreamTranslator>>,
    queue: VecDeque<Bytes>,
    idle_ms: u64,
}

impl<H: Host> Translating<H> {
    fn emit(&mut self, events: Vec<StreamEvent>) {
        for event in &events {
            self.queue.push_back(encode(event));
            if matches!(event, StreamEvent::Done | StreamEvent::Error(_)) {
                // Nothing follows a terminal event, whatever the upstream still sends.
                self.translator = None;
                return;
            }
        }
    }

    fn fail(&mut self, error: ApiError) {
        self.queue.push_back(encode(&StreamEvent::Error(error)));
        self.translator = None;
    }

    /// Pulls one upstream chunk (or its end, or a fault) through the translator.
    async fn pull(&mut self) {
        let next = with_timeout(&*self.host, self.idle_ms, self.upstream.next()).await;
        match next {
            Some(Some(Ok(bytes))) => {
                if let Some(t) = self.translator.as_mut() {
                    let events = t.push(&bytes);
                    self.emit(events);
                }
            }
            Some(None) => {
                if let Some(t) = self.translator.take() {
                    let events = t.finish();
                    self.emit(events);
                }
            }
            Some(Some(Err(e))) => self.fail(
                ApiError::bad_gateway(format!("the upstream stream broke off: {e}")).with_code("stream_interrupted"),
            ),
            None => self.fail(
                ApiError::new(
                    http::StatusCode::GATEWAY_TIMEOUT,
                    "upstream_error",
                    format!("the upstream stream stalled for more than {} ms", self.idle_ms),
                )
                .with_code("stream_timeout"),
            ),
        }
    }
}

/// The client-facing body: translated SSE, flushed as each upstream chunk is translated.
pub fn translate<H: Host + 'static>(
    host: Rc<H>,
    upstream: ByteStream,
    translator: Box<dyn ChatStreamTranslator>,
    idle_ms: u64,
) -> ByteStream {
    let state = Translating { host, upstream, translator: Some(translator), queue: VecDeque::new(), idle_ms };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(bytes) = state.queue.pop_front() {
                return Some((Ok(bytes), state));
            }
            state.translator.as_ref()?;
            state.pull().await;
        }
    }))
}
