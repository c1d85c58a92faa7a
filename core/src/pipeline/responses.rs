//! `/v1/responses` through chat: for routes with a target that has no native Responses API, the
//! request is translated to chat, run like any chat request (retries, fallbacks, traces), and the
//! answer translated back, incrementally when streamed.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use futures::StreamExt;
use http::HeaderValue;
use serde_json::{Map, Value};

use super::body::read_whole;
use super::chat;
use super::context::RequestContext;
use super::guard::Guard;
use super::resolve::Resolved;
use super::stream::{pump, Pull};
use crate::error::ApiError;
use crate::host::{Body, ByteStream, Host};
use crate::providers::Target;
use crate::responses::{from_completion, to_chat, Envelope, ResponsesStream};

/// Largest chat completion converted whole (a streamed answer is converted as it comes).
const MAX_COMPLETION_BYTES: usize = 32 * 1024 * 1024;

pub(crate) async fn translated<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    body: &Map<String, Value>,
    (resolved, needs_translation): (&Resolved<'_>, Option<&Target<'_>>),
    guard: Option<Rc<Guard<H>>>,
) -> Result<http::Response<Body>, ApiError> {
    let (host, config) = (cx.host, cx.config);
    let chat = to_chat(body).map_err(|mut e| {
        let why = match needs_translation {
            Some(target) => format!("provider `{}` has no native `/v1/responses`", target.provider_name),
            // Output guardrails read chat completions (and their streams) as they pass.
            None => "output guardrails are in scope on this route".to_owned(),
        };
        e.message = format!("{why}, so the gateway translates to chat completions: {}", e.message);
        e
    })?;
    let envelope = Envelope::new(body, format!("resp_{:016x}", host.random_u64()), host.now_millis() / 1000);
    let response = chat::run(cx, chat, resolved, guard).await?;
    let (mut parts, body) = response.into_parts();
    let is_stream = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let body = if is_stream {
        match body {
            Body::Full(bytes) => {
                let mut translator = ResponsesStream::new(envelope);
                let mut out: Vec<Bytes> = translator.push(&bytes);
                out.extend(translator.finish());
                Body::Full(out.concat().into())
            }
            Body::Stream(stream) => Body::Stream(translate_stream(stream, envelope)),
        }
    } else {
        let bytes = read_whole(&**host, body, MAX_COMPLETION_BYTES, config.timeouts.idle_ms)
            .await
            .map_err(|_| ApiError::bad_gateway("the chat completion could not be read whole"))?;
        let completion: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_gateway(format!("the chat completion is not JSON: {e}")))?;
        Body::Full(Bytes::from(serde_json::to_vec(&from_completion(&completion, &envelope)).unwrap_or_default()))
    };
    let content_type = if is_stream { "text/event-stream" } else { "application/json" };
    parts.headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(http::Response::from_parts(parts, body))
}

/// The chat stream's bytes through a [`ResponsesStream`], flushed chunk by chunk.
fn translate_stream(chat: ByteStream, envelope: Envelope) -> ByteStream {
    pump(ThroughChat { chat, translator: Some(ResponsesStream::new(envelope)), queue: VecDeque::new() })
}

/// A chat stream becoming a Responses stream.
struct ThroughChat {
    chat: ByteStream,
    /// `None` once the chat stream has ended and the translator finished.
    translator: Option<ResponsesStream>,
    queue: VecDeque<Bytes>,
}

impl Pull for ThroughChat {
    fn queue(&mut self) -> &mut VecDeque<Bytes> {
        &mut self.queue
    }

    fn done(&self) -> bool {
        self.translator.is_none()
    }

    async fn pull(&mut self) {
        let out = match (self.chat.next().await, self.translator.as_mut()) {
            (_, None) => return,
            (Some(Ok(bytes)), Some(translator)) => translator.push(&bytes),
            // The chat stream reports its own faults in-band; a raw error means it was cut.
            (Some(Err(_)) | None, Some(_)) => self.translator.take().map(ResponsesStream::finish).unwrap_or_default(),
        };
        if !out.is_empty() {
            self.queue.push_back(Bytes::from(out.concat()));
        }
    }
}
