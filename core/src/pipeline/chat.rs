//! `POST /v1/chat/completions`: parse, resolve targets, attempt with retries and fallbacks.

use std::cell::Cell;
use std::rc::Rc;

use http::StatusCode;

use super::attempts::{
    mark, price_for, skip_target, sse_response, target_span, AfterTarget, Attempts, Delivery, Upstream,
};
use super::body::{json_response, read_body};
use super::guard::{guard_events, guard_whole, route_guard, Guard, OutputGuard};
use super::recorder::Recorder;
use super::resolve::{api_key, apply_body_transform, resolve_recorded, Resolved};
use super::stream;
use super::{cached, chat_guard, limits};
use crate::config::{Config, PriceConfig, PrincipalConfig, ProviderType, TransformConfig};
use crate::error::ApiError;
use crate::host::{Body, Host};
use crate::openai::{ChatRequest, StreamOptions};
use crate::providers::{self, echo, StreamEvent, Target};
use crate::trace::attrs::*;
use crate::trace::SpanRef;

pub(crate) async fn chat_completions<H: Host + 'static>(
    host: &Rc<H>,
    config: &Config,
    parts: &http::request::Parts,
    body: Body,
    route: Option<&str>,
    principal: &PrincipalConfig,
    recorder: &Recorder<H>,
) -> Result<http::Response<Body>, ApiError> {
    let (mut request, body_bytes) = parse(&**host, config, parts, body).await?;
    let resolved = resolve_recorded(&**host, config, (route, &request.model), principal, recorder)?;
    let keys = ["max_completion_tokens", "max_tokens"];
    let estimate = limits::estimate(body_bytes, request.max_output_tokens(), &keys, &resolved);
    let admitted = limits::admit(host, config, resolved.route, principal, Some(estimate), recorder).await?;
    let guard = route_guard(host, config, &resolved, principal, recorder).await?;
    let only_cached = cached::only_if_cached(&parts.headers);
    let mut response = match cached::plan(&resolved, &request, principal, &parts.headers) {
        None if only_cached => return Err(cached::not_cached()),
        None => run(host, config, request, &resolved, guard, recorder).await?,
        Some(plan) => match cached::lookup(&**host, &plan, recorder).await {
            Some(entry) => {
                let mut hit = cached::serve_hit(&**host, entry, &mut request, &resolved, guard.as_ref()).await?;
                recorder.no_tokens_used();
                cached::mark_outcome(&mut hit, true);
                hit
            }
            None if only_cached => return Err(cached::not_cached()),
            None => {
                let is_stream = request.is_stream();
                let mut fresh = run(host, config, request, &resolved, guard, recorder).await?;
                if !is_stream {
                    cached::store(host, plan, &fresh);
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
/// and fallbacks.
pub(crate) async fn run<H: Host + 'static>(
    host: &Rc<H>,
    config: &Config,
    request: ChatRequest,
    resolved: &Resolved<'_>,
    guard: Option<Rc<Guard<H>>>,
    recorder: &Recorder<H>,
) -> Result<http::Response<Body>, ApiError> {
    let request = match resolved.transform() {
        Some(transform) => transformed(request, transform)?,
        None => request,
    };
    let mut response = attempt_targets(host, config, request, resolved, guard.as_ref(), recorder).await?;
    if let Some(guard) = &guard {
        guard.mark(&mut response);
    }
    Ok(response)
}

/// The targets in order: retries, fallbacks, delivery.
async fn attempt_targets<H: Host + 'static>(
    host: &Rc<H>,
    config: &Config,
    mut request: ChatRequest,
    resolved: &Resolved<'_>,
    guard: Option<&Rc<Guard<H>>>,
    recorder: &Recorder<H>,
) -> Result<http::Response<Body>, ApiError> {
    let output = guard.map(|g| g as &dyn OutputGuard);
    // Streams always ask the upstream for usage, so the trace has it; the stream strips it again
    // when the client did not ask.
    let client_wants_usage = request.wants_stream_usage();
    if request.is_stream() {
        request
            .stream_options
            .get_or_insert_with(|| StreamOptions { include_usage: None, rest: Default::default() })
            .include_usage = Some(true);
    }
    let mut last_error = ApiError::bad_gateway("no upstream target was tried");
    let total_attempts = Cell::new(0);
    for (index, target) in resolved.targets.iter().enumerate() {
        let gen_span = gen_ai_span(recorder, target, &request, index > 0);
        // The input phase is decided per target (a policy may name the model or provider): a
        // target the policies refuse is skipped, and the refusal stands when none is left.
        if let Some(guard) = guard {
            if let Err(error) = chat_guard::check_chat(guard, &mut request, target).await {
                last_error = skip_target(recorder, gen_span, error);
                continue;
            }
        }
        recorder.snapshot_with(recorder.root(), GEN_AI_INPUT_MESSAGES, || {
            serde_json::to_string(&request.messages).unwrap_or_default()
        });
        let Some(provider) = providers::chat_provider(target.provider.kind) else {
            let price = price_for(config, target);
            let echo = EchoContext { client_wants_usage, target, recorder, gen_span, price, output };
            return echo_response(&**host, &request, echo).await;
        };
        // A target that cannot be used (no secret, a field it cannot express) hands over to the next.
        let prepared = api_key(&**host, target).and_then(|key| provider.chat_request(target, &request, key.as_deref()));
        let upstream = match prepared {
            Ok(upstream) => upstream,
            Err(error) => {
                last_error = skip_target(recorder, gen_span, error);
                continue;
            }
        };
        let attempts = Attempts {
            host,
            config,
            provider,
            target,
            upstream: &Upstream::Replayable(upstream),
            delivery: Delivery::Chat { request: &request, client_wants_usage, output },
            resolved,
            recorder,
            gen_span,
            total_attempts: &total_attempts,
        };
        match attempts.conclude().await {
            AfterTarget::Deliver(response) => return Ok(response),
            AfterTarget::Stop(error) => return Err(error),
            AfterTarget::Fallback(error) => last_error = error,
        }
    }
    Err(last_error)
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
async fn parse<H: Host>(
    host: &H,
    config: &Config,
    parts: &http::request::Parts,
    body: Body,
) -> Result<(ChatRequest, usize), ApiError> {
    let bytes = read_body(host, config, parts, body).await?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    let request: ChatRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            ApiError::invalid_request(format!("request body is not a valid chat completion request: {inner}"))
        } else {
            ApiError::invalid_request(format!("invalid `{path}`: {inner}")).with_param(path)
        }
    })?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid_request("`messages` must not be empty").with_param("messages"));
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
}

async fn echo_response<H: Host + 'static>(
    host: &H,
    request: &ChatRequest,
    echo: EchoContext<'_, H>,
) -> Result<http::Response<Body>, ApiError> {
    let EchoContext { client_wants_usage, target, recorder, gen_span, price, output } = echo;
    debug_assert_eq!(target.provider.kind, ProviderType::Echo);
    let id = format!("chatcmpl-echo-{:016x}", host.random_u64());
    let created = host.now_millis() / 1000;
    let mut facts = recorder.new_facts();
    let mut response = if request.is_stream() {
        let mut events = echo::stream(request, &target.model, &id, created);
        for event in &events {
            if let StreamEvent::Chunk(chunk) = event {
                facts.observe(chunk);
            }
        }
        if let Some(output) = output {
            events = guard_events(events, output, target).await;
        }
        events.retain(|e| client_wants_usage || !matches!(e, StreamEvent::Chunk(c) if stream::is_usage_only(c)));
        sse_response(Body::Full(stream::encode_all(&events)))
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
        json_response(StatusCode::OK, &completion)
    };
    recorder.completion(gen_span, &facts, price);
    recorder.end(gen_span);
    mark(&mut response, target, 0);
    Ok(response)
}
