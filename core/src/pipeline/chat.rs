//! `POST /v1/chat/completions`: parse, resolve targets, attempt with retries and fallbacks.

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::stream::StreamTrace;
use super::{json_response, stream, with_timeout, CompletionFacts, Recorder};
use crate::config::{Config, PriceConfig, ProviderType};
use crate::error::ApiError;
use crate::host::{Body, CollectError, FetchError, Host};
use crate::openai::{ChatRequest, StreamOptions};
use crate::providers::{self, echo, ChatProvider, ResponseContext, StreamEvent, Target};
use crate::retry::{is_retryable_status, retry_after_ms, RetryDecision, RetryPolicy};
use crate::trace::attrs::*;
use crate::trace::{SpanKind, SpanRef};

/// Largest upstream error body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub(crate) async fn chat_completions<H: Host + 'static>(
    host: &Rc<H>,
    config: &Config,
    parts: &http::request::Parts,
    body: Body,
    route: Option<&str>,
    recorder: &Recorder<H>,
) -> Result<http::Response<Body>, ApiError> {
    let request = parse(config, parts, body).await?;
    let span = recorder.child(recorder.root(), "resolve", SpanKind::Internal);
    let resolved = resolve(config, route, &request.model);
    match &resolved {
        Ok((targets, _, route_name)) => {
            if let Some(name) = route_name {
                recorder.set(span, GATEWAY_ROUTE, *name);
            }
            let names = targets.iter().map(|t| format!("{}/{}", t.provider_name, t.model)).collect::<Vec<_>>();
            recorder.set(span, GATEWAY_TARGETS, names);
        }
        Err(e) => recorder.fail(span, e.message.clone()),
    }
    recorder.end(span);
    let (targets, retry, _) = resolved?;
    let policy = RetryPolicy::new(retry);
    // Streams always ask the upstream for usage, so the trace has it; the stream strips it again
    // when the client did not ask.
    let mut upstream_request = request.clone();
    if request.is_stream() {
        upstream_request
            .stream_options
            .get_or_insert_with(|| StreamOptions { include_usage: None, rest: Default::default() })
            .include_usage = Some(true);
    }
    let mut last_error = ApiError::bad_gateway("no upstream target was tried");
    let total_attempts = Cell::new(0);
    for (index, target) in targets.iter().enumerate() {
        let gen_span = gen_ai_span(recorder, target, &request, index > 0);
        recorder.note(format!("{}/{}", target.provider_name, target.model));
        let price = config.telemetry.prices.get(&format!("{}/{}", target.provider_name, target.model));
        let Some(provider) = providers::chat_provider(target.provider.kind) else {
            return Ok(echo_response(&**host, &request, target, recorder, gen_span, price));
        };
        let api_key = match &target.provider.api_key_secret {
            Some(name) => Some(host.secret(name).ok_or_else(|| {
                ApiError::unavailable(format!(
                    "provider `{}` is not usable: its secret `{name}` is not set",
                    target.provider_name
                ))
            })?),
            None => None,
        };
        let upstream = provider.chat_request(target, &upstream_request, api_key.as_deref())?;
        let attempts = Attempts {
            host,
            config,
            provider,
            target,
            upstream: &upstream,
            request: &request,
            policy: &policy,
            recorder,
            gen_span,
            price,
            total_attempts: &total_attempts,
        };
        match attempts.run().await {
            Ok(response) => return Ok(response),
            Err(failure) => {
                let (Failure::Final(error) | Failure::Exhausted(error)) = &failure;
                recorder.fail(gen_span, error.message.clone());
                recorder.end(gen_span);
                match failure {
                    Failure::Final(error) => return Err(error),
                    Failure::Exhausted(error) => last_error = error,
                }
            }
        }
    }
    Err(last_error)
}

/// The inference span for one target, named and attributed per the GenAI conventions.
fn gen_ai_span<H: Host + 'static>(
    recorder: &Recorder<H>,
    target: &Target<'_>,
    request: &ChatRequest,
    fallback: bool,
) -> SpanRef {
    let span = recorder.child(recorder.root(), format!("chat {}", target.model), SpanKind::Client);
    recorder.set(span, GEN_AI_OPERATION_NAME, "chat");
    recorder.set(span, GEN_AI_PROVIDER_NAME, providers::otel_provider_name(target.provider.kind));
    recorder.set(span, GEN_AI_REQUEST_MODEL, target.model.as_str());
    recorder.set(span, GATEWAY_PROVIDER, target.provider_name);
    recorder.set(span, GATEWAY_STREAM, request.is_stream());
    recorder.set(span, GATEWAY_FALLBACK, fallback);
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

/// Reads the body (bounded) and parses it, naming the offending field on failure.
async fn parse(config: &Config, parts: &http::request::Parts, body: Body) -> Result<ChatRequest, ApiError> {
    let limit = config.limits.max_request_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("request body exceeds {limit} bytes"),
        )
        .with_code("request_too_large")
    };
    let declared = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let bytes = body.collect(limit).await.map_err(|e| match e {
        CollectError::TooLarge { .. } => too_large(),
        CollectError::Body(e) => ApiError::invalid_request(format!("the request body could not be read: {e}")),
    })?;
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
    Ok(request)
}

/// A model name -> the ordered targets to try, and the retry settings that apply.
fn resolve<'c>(
    config: &'c Config,
    route: Option<&str>,
    model: &str,
) -> Result<(Vec<Target<'c>>, crate::config::RetryConfig, Option<&'c str>), ApiError> {
    let route_name = route.or_else(|| config.routes.contains_key(model).then_some(model));
    if let Some(name) = route_name {
        let (name, route) =
            config.routes.get_key_value(name).ok_or_else(|| ApiError::not_found(format!("unknown route `{name}`")))?;
        let targets = route.models.iter().map(|m| target(config, m)).collect::<Result<Vec<_>, _>>()?;
        return Ok((targets, route.retry.clone().unwrap_or_else(|| config.retry.clone()), Some(name.as_str())));
    }
    Ok((vec![target(config, model)?], config.retry.clone(), None))
}

fn model_not_found(message: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
        .with_param("model")
        .with_code("model_not_found")
}

fn target<'c>(config: &'c Config, model: &str) -> Result<Target<'c>, ApiError> {
    let Some((name, id)) = model.split_once('/').filter(|(p, m)| !p.is_empty() && !m.is_empty()) else {
        return Err(model_not_found(format!(
            "model `{model}` is neither a route nor `provider/model` (e.g. `openai/gpt-4o`)"
        )));
    };
    let (provider_name, provider) = config
        .providers
        .get_key_value(name)
        .ok_or_else(|| model_not_found(format!("unknown provider `{name}` in model `{model}`")))?;
    if !provider.models.is_empty() && !provider.models.iter().any(|m| m == id) {
        return Err(model_not_found(format!("model `{id}` is not enabled for provider `{name}`")));
    }
    Ok(Target { provider_name, provider, model: id.to_owned() })
}

/// Why a target produced no response.
enum Failure {
    /// Not worth another target (the request itself was refused).
    Final(ApiError),
    /// Retries on this target are spent; a fallback may still succeed.
    Exhausted(ApiError),
}

/// Everything one target's attempts need.
struct Attempts<'a, H: Host + 'static> {
    host: &'a Rc<H>,
    config: &'a Config,
    provider: &'a dyn ChatProvider,
    target: &'a Target<'a>,
    upstream: &'a http::Request<Bytes>,
    request: &'a ChatRequest,
    policy: &'a RetryPolicy,
    recorder: &'a Recorder<H>,
    gen_span: SpanRef,
    price: Option<&'a PriceConfig>,
    /// Attempts across all targets so far (for `x-gateway-attempts`).
    total_attempts: &'a Cell<u32>,
}

impl<H: Host + 'static> Attempts<'_, H> {
    /// Attempts the target until success, a non-retryable error, or retries run out.
    async fn run(&self) -> Result<http::Response<Body>, Failure> {
        let (host, recorder, target) = (self.host, self.recorder, self.target);
        let timeouts = &self.config.timeouts;
        let mut attempt = 0;
        let mut backoff = 0;
        loop {
            attempt += 1;
            self.total_attempts.set(self.total_attempts.get() + 1);
            let span = recorder.child(self.gen_span, "POST", SpanKind::Client);
            recorder.set(span, HTTP_REQUEST_METHOD, "POST");
            if let Some(host_name) = self.upstream.uri().host() {
                recorder.set(span, SERVER_ADDRESS, host_name);
            }
            recorder.set(span, GATEWAY_ATTEMPT, attempt);
            if attempt > 1 {
                recorder.set(span, HTTP_REQUEST_RESEND_COUNT, attempt - 1);
                recorder.set(span, GATEWAY_BACKOFF_MS, backoff);
            }
            let mut upstream = self.upstream.clone();
            if let Some(value) = recorder.traceparent(span).and_then(|v| HeaderValue::from_str(&v).ok()) {
                upstream.headers_mut().insert("traceparent", value);
            }
            recorder.upstream_started();
            let started = host.now_millis();
            let sent = with_timeout(&**host, timeouts.first_byte_ms, host.fetch(upstream)).await;
            let (error, retry_after) = match sent {
                Some(Ok(response)) if response.status().is_success() => {
                    recorder.upstream_first_byte(started);
                    recorder.set(span, HTTP_RESPONSE_STATUS_CODE, response.status().as_u16());
                    let delivered = if self.request.is_stream() {
                        Ok(self.stream_response(response, span))
                    } else {
                        self.whole_response(response, span).await
                    };
                    match delivered {
                        Ok(mut response) => {
                            mark(&mut response, target, self.total_attempts.get());
                            return Ok(response);
                        }
                        // Nothing reached the client yet, so a body that broke off may be retried.
                        Err(error) => (error, None),
                    }
                }
                Some(Ok(response)) => {
                    let status = response.status();
                    recorder.set(span, HTTP_RESPONSE_STATUS_CODE, status.as_u16());
                    let retry_after = retry_after_ms(response.headers());
                    let body = with_timeout(&**host, timeouts.idle_ms, response.into_body().collect(MAX_ERROR_BODY))
                        .await
                        .and_then(Result::ok)
                        .unwrap_or_default();
                    let error = self.provider.error(target.provider_name, status, &body);
                    if !is_retryable_status(status) {
                        self.attempt_failed(span, &error);
                        return Err(Failure::Final(error));
                    }
                    (error, retry_after)
                }
                Some(Err(FetchError::Invalid(reason))) => {
                    let error = ApiError::unavailable(format!(
                        "the runtime refused the request to provider `{}`: {reason}",
                        target.provider_name
                    ));
                    self.attempt_failed(span, &error);
                    return Err(Failure::Final(error));
                }
                Some(Err(FetchError::Connect(reason))) => {
                    (ApiError::bad_gateway(format!("cannot reach provider `{}`: {reason}", target.provider_name)), None)
                }
                None => (
                    ApiError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "upstream_error",
                        format!(
                            "provider `{}` sent no response within {} ms",
                            target.provider_name, timeouts.first_byte_ms
                        ),
                    )
                    .with_code("upstream_timeout"),
                    None,
                ),
            };
            self.attempt_failed(span, &error);
            match self.policy.after_failure(attempt, retry_after, host.random_u64()) {
                RetryDecision::RetryAfter { millis } => {
                    backoff = millis;
                    host.sleep(millis).await;
                }
                RetryDecision::GiveUp => return Err(Failure::Exhausted(error)),
            }
        }
    }

    fn response_context(&self, include_usage: bool) -> ResponseContext {
        ResponseContext {
            created: self.host.now_millis() / 1000,
            include_usage,
            fallback_id: format!("chatcmpl-gw-{:016x}", self.host.random_u64()),
        }
    }

    fn attempt_failed(&self, span: SpanRef, error: &ApiError) {
        self.recorder.fail(span, error.message.clone());
        self.recorder.set(span, ERROR_TYPE, error.code.clone().unwrap_or_else(|| error.kind.to_string()));
        self.recorder.end(span);
        self.recorder.upstream_finished();
    }

    fn stream_response(&self, response: http::Response<Body>, attempt_span: SpanRef) -> http::Response<Body> {
        let upstream = match response.into_body() {
            Body::Stream(s) => s,
            Body::Full(bytes) => Box::pin(futures::stream::iter([Ok(bytes)])),
        };
        let ctx = self.response_context(true);
        let trace = StreamTrace::new(
            self.recorder.clone(),
            self.gen_span,
            attempt_span,
            self.request.wants_stream_usage(),
            self.price.cloned(),
        );
        let body = stream::translate(
            Rc::clone(self.host),
            upstream,
            self.provider.chat_stream(ctx),
            self.config.timeouts.idle_ms,
            trace,
        );
        sse_response(Body::Stream(body))
    }

    async fn whole_response(
        &self,
        response: http::Response<Body>,
        attempt_span: SpanRef,
    ) -> Result<http::Response<Body>, ApiError> {
        let limit = self.config.limits.max_response_bytes;
        let idle = self.config.timeouts.idle_ms;
        let body = match with_timeout(&**self.host, idle, response.into_body().collect(limit)).await {
            Some(Ok(body)) => body,
            Some(Err(CollectError::TooLarge { .. })) => {
                return Err(ApiError::bad_gateway(format!("the upstream response exceeds {limit} bytes")))
            }
            Some(Err(CollectError::Body(e))) => {
                return Err(ApiError::bad_gateway(format!("the upstream response broke off: {e}")))
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_error",
                    format!("the upstream response body stalled for more than {idle} ms"),
                )
                .with_code("upstream_timeout"))
            }
        };
        let ctx = self.response_context(false);
        let completion = self.provider.chat_response(&body, &ctx)?;
        self.recorder.end(attempt_span);
        self.recorder.upstream_finished();
        let mut facts = CompletionFacts::default();
        facts.observe(&completion);
        self.recorder.completion(self.gen_span, &facts, self.price);
        self.recorder.end(self.gen_span);
        Ok(json_response(StatusCode::OK, &completion))
    }
}

/// Tells the client where the answer came from and how many attempts it took.
fn mark(response: &mut http::Response<Body>, target: &Target<'_>, attempts: u32) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(target.provider_name) {
        headers.insert("x-gateway-provider", v);
    }
    headers.insert("x-gateway-attempts", HeaderValue::from(attempts));
}

fn sse_response(body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn echo_response<H: Host + 'static>(
    host: &H,
    request: &ChatRequest,
    target: &Target<'_>,
    recorder: &Recorder<H>,
    gen_span: SpanRef,
    price: Option<&PriceConfig>,
) -> http::Response<Body> {
    debug_assert_eq!(target.provider.kind, ProviderType::Echo);
    let id = format!("chatcmpl-echo-{:016x}", host.random_u64());
    let created = host.now_millis() / 1000;
    let mut facts = CompletionFacts::default();
    let mut response = if request.is_stream() {
        let mut events = echo::stream(request, &target.model, &id, created);
        for event in &events {
            if let StreamEvent::Chunk(chunk) = event {
                facts.observe(chunk);
            }
        }
        events.retain(|e| {
            request.wants_stream_usage() || !matches!(e, StreamEvent::Chunk(c) if stream::is_usage_only(c))
        });
        sse_response(Body::Full(stream::encode_all(&events)))
    } else {
        let completion = echo::completion(request, &target.model, &id, created);
        facts.observe(&completion);
        json_response(StatusCode::OK, &completion)
    };
    recorder.completion(gen_span, &facts, price);
    recorder.end(gen_span);
    mark(&mut response, target, 0);
    response
}
