//! `POST /v1/chat/completions`: parse, resolve targets, attempt with retries and fallbacks.

use std::rc::Rc;

use super::attempts::{mark, price_for, stream_answer, target_span, whole_answer, Delivery, Upstream};
use super::body::{read_body, RequestError};
use super::context::RequestContext;
use super::guard::{guard_events, guard_whole, Guard, OutputGuard};
use super::phases::{self, Prepared, TargetPlan};
use super::recorder::Recorder;
use super::resolve::{api_key, apply_body_transform, Resolved};
use super::stream::Encoder;
use super::{cached, chat_guard, limits};
use crate::config::{PriceConfig, ProviderType, TransformConfig};
use crate::error::ApiError;
use crate::host::{Body, Host};
use crate::openai::{ChatRequest, StreamOptions};
use crate::providers::{self, echo, ChatCall, StreamEvent, Target};
use crate::responses::Envelope;
use crate::trace::attrs::*;
use crate::trace::SpanRef;

pub(crate) async fn chat_completions<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    body: Body,
    route: Option<&str>,
) -> Result<http::Response<Body>, ApiError> {
    let (mut request, body_bytes) = parse(cx, body).await?;
    let resolved = phases::resolve(cx, route, &request.model)?;
    let keys = ["max_completion_tokens", "max_tokens"];
    let estimate = limits::estimate(body_bytes, request.max_output_tokens(), &keys, &resolved);
    let admitted = phases::rate_limit(cx, Some(&resolved), Some(estimate)).await?;
    let guard = phases::input(cx, &resolved).await?;
    let only_cached = cached::only_if_cached(&cx.parts.headers);
    let mut response = match cached::plan(&resolved, &request, cx.principal, &cx.parts.headers) {
        None if only_cached => return Err(cached::not_cached()),
        None => run(cx, request, &resolved, (guard, None)).await?,
        Some(plan) => match cached::lookup(&**cx.host, &plan, cx.recorder).await {
            Some(entry) => {
                let mut hit = cached::serve_hit(&**cx.host, entry, &mut request, &resolved, guard.as_ref()).await?;
                cx.recorder.no_tokens_used();
                cached::mark_outcome(&mut hit, true);
                hit
            }
            None if only_cached => return Err(cached::not_cached()),
            None => {
                let is_stream = request.is_stream();
                let mut fresh = run(cx, request, &resolved, (guard, None)).await?;
                if !is_stream {
                    cached::store(cx.host, plan, &fresh);
                }
                cached::mark_outcome(&mut fresh, false);
                fresh
            }
        },
    };
    admitted.mark(&mut response);
    Ok(response)
}

/// A parsed chat request through its resolved targets: transforms, then attempts with retries
/// and fallbacks. The answer is a chat completion, or a Responses API response for a client of
/// that API (`responses`).
pub(crate) async fn run<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    request: ChatRequest,
    resolved: &Resolved<'_>,
    (guard, responses): (Option<Rc<Guard<H>>>, Option<&Envelope>),
) -> Result<http::Response<Body>, ApiError> {
    let mut request = match resolved.transform() {
        Some(transform) => transformed(request, transform)?,
        None => request,
    };
    // Streams always ask the upstream for usage, so the trace has it; the stream strips it again
    // when the client did not ask.
    let client_wants_usage = request.wants_stream_usage();
    if request.is_stream() {
        request
            .stream_options
            .get_or_insert_with(|| StreamOptions { include_usage: None, rest: Default::default() })
            .include_usage = Some(true);
    }
    let output = guard.as_ref().map(|g| g as &dyn OutputGuard);
    let mut plan = ChatPlan { cx, request, client_wants_usage, output, responses };
    phases::upstream(cx, resolved, guard.as_ref(), &mut plan).await
}

/// How a chat request is tried on one target.
struct ChatPlan<'a, H: Host + 'static> {
    cx: &'a RequestContext<'a, H>,
    request: ChatRequest,
    client_wants_usage: bool,
    output: Option<&'a dyn OutputGuard>,
    responses: Option<&'a Envelope>,
}

impl<H: Host + 'static> TargetPlan<H> for ChatPlan<'_, H> {
    fn span(&self, recorder: &Recorder<H>, target: &Target<'_>, fallback: bool) -> SpanRef {
        gen_ai_span(recorder, target, &self.request, fallback)
    }

    async fn check(&mut self, guard: &Guard<H>, target: &Target<'_>) -> Result<(), ApiError> {
        chat_guard::check_chat(guard, &mut self.request, target).await
    }

    async fn prepare(&mut self, target: &Target<'_>, span: SpanRef) -> Prepared {
        let (host, recorder, request) = (self.cx.host, self.cx.recorder, &self.request);
        recorder.snapshot_with(recorder.root(), GEN_AI_INPUT_MESSAGES, || {
            serde_json::to_string(&request.messages).unwrap_or_default()
        });
        let Some(provider) = providers::chat_provider(target.provider.kind) else {
            let price = price_for(self.cx.config, target);
            let echo = EchoContext {
                client_wants_usage: self.client_wants_usage,
                target,
                recorder,
                gen_span: span,
                price,
                output: self.output,
                responses: self.responses,
            };
            return Prepared::Answered(echo_response(&**host, request, echo).await);
        };
        // A target that cannot be used (no secret, a field it cannot express) hands over to the next.
        let call = |key: Option<String>| {
            provider.chat_request(ChatCall { target, request, api_key: key.as_deref() }).map_err(ApiError::from)
        };
        match api_key(&**host, target).and_then(call) {
            Ok(upstream) => Prepared::Send(provider, Upstream::Replayable(upstream)),
            Err(error) => Prepared::Skip(error),
        }
    }

    fn delivery(&self) -> Delivery<'_> {
        Delivery::Chat {
            request: &self.request,
            client_wants_usage: self.client_wants_usage,
            output: self.output,
            responses: self.responses,
        }
    }
}

/// The request with a route's body defaults and overrides applied.
fn transformed(request: ChatRequest, transform: &TransformConfig) -> Result<ChatRequest, ApiError> {
    if transform.body_defaults.is_empty() && transform.body_overrides.is_empty() {
        return Ok(request);
    }
    let mut body = match serde_json::to_value(&request) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(ApiError::invalid_request("the request could not be re-encoded")),
    };
    apply_body_transform(&mut body, transform);
    serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::unavailable(format!("the route's body transform makes the request invalid: {e}")))
}

/// The inference span for one target, named and attributed per the GenAI conventions.
fn gen_ai_span<H: Host + 'static>(
    recorder: &Recorder<H>,
    target: &Target<'_>,
    request: &ChatRequest,
    fallback: bool,
) -> SpanRef {
    let span = target_span(recorder, target, "chat", fallback);
    recorder.set(span, GATEWAY_STREAM, request.is_stream());
    if let Some(max) = request.max_output_tokens() {
        recorder.set(span, GEN_AI_REQUEST_MAX_TOKENS, max);
    }
    if let Some(t) = request.temperature {
        recorder.set(span, GEN_AI_REQUEST_TEMPERATURE, t);
    }
    if let Some(p) = request.top_p {
        recorder.set(span, GEN_AI_REQUEST_TOP_P, p);
    }
    if let Some(stop) = &request.stop {
        recorder.set(span, GEN_AI_REQUEST_STOP_SEQUENCES, stop.sequences());
    }
    span
}

/// Reads the body (bounded) and parses it (with the body's length), naming the offending field on failure.
async fn parse<H: Host + 'static>(cx: &RequestContext<'_, H>, body: Body) -> Result<(ChatRequest, usize), ApiError> {
    let bytes = read_body(&**cx.host, cx.config, cx.parts, body).await?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    let request: ChatRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            RequestError::NotAChatRequest(inner.to_string())
        } else {
            RequestError::InvalidField { path, why: inner.to_string() }
        }
    })?;
    if request.messages.is_empty() {
        return Err(RequestError::Empty("messages").into());
    }
    Ok((request, bytes.len()))
}

/// What the built-in echo provider's answer is recorded and guarded with.
struct EchoContext<'a, H: Host + 'static> {
    client_wants_usage: bool,
    target: &'a Target<'a>,
    recorder: &'a Recorder<H>,
    gen_span: SpanRef,
    price: Option<&'a PriceConfig>,
    output: Option<&'a dyn OutputGuard>,
    responses: Option<&'a Envelope>,
}

async fn echo_response<H: Host + 'static>(
    host: &H,
    request: &ChatRequest,
    echo: EchoContext<'_, H>,
) -> Result<http::Response<Body>, ApiError> {
    let EchoContext { client_wants_usage, target, recorder, gen_span, price, output, responses } = echo;
    debug_assert_eq!(target.provider.kind, ProviderType::Echo);
    let id = format!("chatcmpl-echo-{:016x}", host.random_u64());
    let created = host.now_millis() / 1000;
    let mut facts = recorder.new_facts();
    let mut response = if request.is_stream() {
        let mut events = echo::stream(request, &target.model, &id, created);
        for event in &events {
            if let StreamEvent::Chunk(chunk) = event {
                facts.observe_chunk(chunk);
            }
        }
        if let Some(output) = output {
            events = guard_events(events, output, target).await;
        }
        events.retain(|e| client_wants_usage || !matches!(e, StreamEvent::Chunk(c) if c.is_usage_only()));
        stream_answer(Body::Full(Encoder::for_client(responses).encode_all(&events)), responses)
    } else {
        let mut completion = echo::completion(request, &target.model, &id, created);
        facts.observe(&completion);
        if let Some(output) = output {
            if let Err(error) = guard_whole(output, target, &mut completion).await {
                recorder.fail(gen_span, error.message.clone());
                recorder.end(gen_span);
                return Err(error);
            }
        }
        whole_answer(&completion, responses)
    };
    recorder.completion(gen_span, &facts, price);
    recorder.end(gen_span);
    mark(&mut response, target, 0);
    Ok(response)
}
