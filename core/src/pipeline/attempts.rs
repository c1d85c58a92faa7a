//! Attempts on one target: send with a timeout, retry with backoff or `Retry-After`, and deliver
//! the successful response (a translated chat completion, or another endpoint's body as it is).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::body::{json_response, read_whole, upstream_fault, with_timeout, ReadError, Reading, UpstreamError};
use super::context::RequestContext;
use super::guard::{guard_whole, OutputGuard};
use super::recorder::Recorder;
use super::resolve::{apply_header_edits, Resolved};
use super::stream;
use super::stream::{ClientStream, Encoder, StreamTrace};
use crate::config::{Config, PriceConfig};
use crate::error::ApiError;
use crate::host::{Body, FetchError, Host};
use crate::openai::ChatRequest;
use crate::providers::{ChatProvider, Operation, ResponseContext, Target};
use crate::responses::{from_completion, Envelope};
use crate::retry::{is_retryable_status, retry_after_ms, RetryDecision};
use crate::trace::attrs::*;
use crate::trace::{SpanKind, SpanRef};

/// Largest upstream error body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What a successful response becomes.
#[derive(Clone, Copy)]
pub(crate) enum Delivery<'a> {
    /// A chat completion, translated from the provider's format (incrementally when streamed);
    /// the stream keeps usage only when the client asked for it.
    /// A client of the Responses API (`responses`) gets the answer in that API's shape instead.
    Chat {
        request: &'a ChatRequest,
        client_wants_usage: bool,
        output: Option<&'a dyn OutputGuard>,
        responses: Option<&'a Envelope>,
    },
    /// Another endpoint's response: translated when the provider speaks its own format, else
    /// passed through as it is.
    Operation { op: Operation, base64_embeddings: bool },
}

/// Why a successful response head did not become a response for the client.
pub(crate) enum Undelivered {
    /// The body broke off or stalled before anything reached the client: worth another attempt.
    Retry(ApiError),
    /// The body is too large or cannot be translated: another attempt would fail the same way.
    GiveUp(ApiError),
    /// A policy refused the answer: no other target is tried.
    Refused(ApiError),
}

/// What comes after one target.
pub(crate) enum AfterTarget {
    /// The response for the client.
    Deliver(http::Response<Body>),
    /// A failure no other target would mend (the request itself was refused).
    Stop(ApiError),
    /// This target is spent; the next one (a fallback) may succeed.
    Fallback(ApiError),
}

/// The price table entry for a target (`provider/model`), if any.
pub(crate) fn price_for<'c>(config: &'c Config, target: &Target<'_>) -> Option<&'c PriceConfig> {
    config.telemetry.prices.get(&format!("{}/{}", target.provider_name, target.model))
}

/// Opens the span for one target of an operation (`chat`, `embeddings`, ...), with the GenAI
/// attributes every operation shares.
pub(crate) fn target_span<H: Host + 'static>(
    recorder: &Recorder<H>,
    target: &Target<'_>,
    operation: &str,
    fallback: bool,
) -> SpanRef {
    let span = recorder.child(recorder.root(), format!("{operation} {}", target.model), SpanKind::Client);
    recorder.set(span, GEN_AI_OPERATION_NAME, operation.to_owned());
    recorder.set(span, GEN_AI_PROVIDER_NAME, crate::providers::otel_provider_name(target.provider.kind));
    recorder.set(span, GEN_AI_REQUEST_MODEL, target.model.as_str());
    recorder.set(span, GATEWAY_PROVIDER, target.provider_name);
    recorder.set(span, GATEWAY_FALLBACK, fallback);
    recorder.note(format!("{}/{}", target.provider_name, target.model));
    span
}

/// The provider behind one target of an endpoint other than chat, and what `build` makes of it
/// with the provider's key; a 400 naming both when the provider does not offer the endpoint.
pub(crate) fn operation_target<H: Host, T>(
    host: &H,
    target: &Target<'_>,
    op: Operation,
    build: impl FnOnce(&'static dyn ChatProvider, Option<&str>) -> Option<Result<T, ApiError>>,
) -> Result<(&'static dyn ChatProvider, T), ApiError> {
    let unsupported = || crate::providers::unsupported_operation(target.provider_name, target.provider.kind, op);
    let provider = crate::providers::spec(target.provider.kind).chat.ok_or_else(unsupported)?;
    let key = super::resolve::api_key(host, target)?;
    let built = build(provider, key.as_deref()).ok_or_else(unsupported)??;
    Ok((provider, built))
}

/// A target that could not even be tried (no secret, a field or endpoint it lacks): recorded on
/// its span; the next target is tried.
pub(crate) fn skip_target<H: Host + 'static>(recorder: &Recorder<H>, gen_span: SpanRef, error: ApiError) -> ApiError {
    recorder.fail(gen_span, error.message.clone());
    recorder.end(gen_span);
    error
}

/// Why a target produced no response.
pub(crate) enum Failure {
    /// Not worth another target (the request itself was refused).
    Final(ApiError),
    /// Retries on this target are spent; a fallback may still succeed.
    Exhausted(ApiError),
}

/// What one attempt came to, when it was not the target's end.
enum Tried {
    Delivered(http::Response<Body>),
    /// Worth another attempt; with the upstream's `Retry-After` in milliseconds, if it sent one.
    Failed(ApiError, Option<u64>),
}

/// The request one target's attempts send.
pub(crate) enum Upstream {
    /// A buffered body: each attempt sends a copy.
    Replayable(http::Request<Bytes>),
    /// A streamed body (an upload passed through as it arrives): sent once, never retried.
    Once(RefCell<Option<http::Request<Body>>>),
}

impl Upstream {
    fn uri(&self) -> Option<http::Uri> {
        match self {
            Upstream::Replayable(request) => Some(request.uri().clone()),
            Upstream::Once(request) => request.borrow().as_ref().map(|r| r.uri().clone()),
        }
    }

    /// The request for the next attempt; `None` once a streamed body has been sent.
    fn next(&self) -> Option<http::Request<Body>> {
        match self {
            Upstream::Replayable(request) => Some(request.clone().map(Body::Full)),
            Upstream::Once(request) => request.borrow_mut().take(),
        }
    }
}

/// Everything one target's attempts need.
pub(crate) struct Attempts<'a, H: Host + 'static> {
    pub cx: &'a RequestContext<'a, H>,
    pub provider: &'a dyn ChatProvider,
    pub target: &'a Target<'a>,
    pub upstream: &'a Upstream,
    pub delivery: Delivery<'a>,
    /// The route's (or global) retry policy, fallback statuses and transforms.
    pub resolved: &'a Resolved<'a>,
    pub gen_span: SpanRef,
    /// Attempts across all targets so far (for `x-gateway-attempts`).
    pub total_attempts: &'a Cell<u32>,
}

impl<H: Host + 'static> Attempts<'_, H> {
    fn price(&self) -> Option<&PriceConfig> {
        price_for(self.cx.config, self.target)
    }

    /// An error says which provider was tried last and how many attempts were made, as an answer does.
    fn marked(&self, error: ApiError) -> ApiError {
        error
            .with_header("x-gateway-provider", self.target.provider_name.to_owned())
            .with_header("x-gateway-attempts", self.total_attempts.get().to_string())
    }

    /// Runs the attempts; applies the route's response header edits to a success, records a failure.
    pub async fn conclude(&self) -> AfterTarget {
        match self.run().await {
            Ok(mut response) => {
                if let Some(transform) = self.resolved.transform() {
                    apply_header_edits(response.headers_mut(), &transform.response_headers);
                }
                AfterTarget::Deliver(response)
            }
            Err(Failure::Final(error)) => {
                AfterTarget::Stop(skip_target(self.cx.recorder, self.gen_span, self.marked(error)))
            }
            Err(Failure::Exhausted(error)) => {
                AfterTarget::Fallback(skip_target(self.cx.recorder, self.gen_span, self.marked(error)))
            }
        }
    }

    /// Attempts the target until success, a non-retryable error, or retries run out.
    pub async fn run(&self) -> Result<http::Response<Body>, Failure> {
        let host = self.cx.host;
        let mut attempt = 0;
        let mut backoff = 0;
        loop {
            attempt += 1;
            self.total_attempts.set(self.total_attempts.get() + 1);
            let span = self.attempt_span(attempt, backoff);
            let (error, retry_after) = match self.attempt(span).await? {
                Tried::Delivered(response) => return Ok(response),
                Tried::Failed(error, retry_after) => (error, retry_after),
            };
            self.attempt_failed(span, &error);
            if matches!(self.upstream, Upstream::Once(_)) {
                // Its body is spent: no retry, and the error says why it was not retried.
                return Err(Failure::Exhausted(error));
            }
            match self.resolved.policy.after_failure(attempt, retry_after, host.random_u64()) {
                RetryDecision::RetryAfter { millis } => {
                    backoff = millis;
                    host.sleep(millis).await;
                }
                // The upstream's own `Retry-After` (past the cap, or on the last attempt) is the client's.
                RetryDecision::GiveUp => {
                    let error = match retry_after {
                        Some(millis) => error.with_header("retry-after", millis.div_ceil(1000).to_string()),
                        None => error,
                    };
                    return Err(Failure::Exhausted(error));
                }
            }
        }
    }

    /// The span of one attempt (`POST`), numbered, with the backoff that preceded it.
    fn attempt_span(&self, attempt: u32, backoff: u64) -> SpanRef {
        let recorder = self.cx.recorder;
        let span = recorder.child(self.gen_span, "POST", SpanKind::Client);
        recorder.set(span, HTTP_REQUEST_METHOD, "POST");
        if let Some(host_name) = self.upstream.uri().as_ref().and_then(http::Uri::host) {
            recorder.set(span, SERVER_ADDRESS, host_name);
        }
        recorder.set(span, GATEWAY_ATTEMPT, attempt);
        if attempt > 1 {
            recorder.set(span, HTTP_REQUEST_RESEND_COUNT, attempt - 1);
            recorder.set(span, GATEWAY_BACKOFF_MS, backoff);
        }
        span
    }

    /// One attempt: the request sent with the route's header edits and the trace's `traceparent`,
    /// bounded by the first-byte timeout; what came back delivered or judged.
    async fn attempt(&self, span: SpanRef) -> Result<Tried, Failure> {
        let (host, recorder, target) = (self.cx.host, self.cx.recorder, self.target);
        let Some(mut upstream) = self.upstream.next() else {
            let error = ApiError::from(UpstreamError::UploadSpent);
            self.attempt_failed(span, &error);
            return Err(Failure::Exhausted(error));
        };
        if let Some(transform) = self.resolved.transform() {
            apply_header_edits(upstream.headers_mut(), &transform.request_headers);
        }
        if let Some(value) = recorder.traceparent(span).and_then(|v| HeaderValue::from_str(&v).ok()) {
            upstream.headers_mut().insert("traceparent", value);
        }
        recorder.upstream_started();
        let started = host.now_millis();
        let first_byte_ms = self.cx.config.timeouts.first_byte_ms;
        match with_timeout(&**host, first_byte_ms, host.fetch(upstream)).await {
            Some(Ok(response)) if response.status().is_success() => {
                recorder.upstream_first_byte(started);
                recorder.set(span, HTTP_RESPONSE_STATUS_CODE, response.status().as_u16());
                self.deliver(response, span).await
            }
            Some(Ok(response)) => self.upstream_error(response, span).await,
            Some(Err(fault @ FetchError::Invalid(_))) => {
                recorder.set(span, GATEWAY_UPSTREAM_ERROR_DETAIL, fault.detail());
                let error = UpstreamError::RuntimeRefused(target.provider_name.to_owned()).into();
                self.attempt_failed(span, &error);
                Err(Failure::Final(error))
            }
            Some(Err(fault @ FetchError::Connect(_))) => {
                recorder.set(span, GATEWAY_UPSTREAM_ERROR_DETAIL, fault.detail());
                let provider = target.provider_name.to_owned();
                let error = UpstreamError::Unreachable { provider, detail: fault.to_string() }.into();
                Ok(Tried::Failed(error, None))
            }
            None => {
                let provider = target.provider_name.to_owned();
                Ok(Tried::Failed(UpstreamError::NoResponse { provider, ms: first_byte_ms }.into(), None))
            }
        }
    }

    /// A successful head made into the client's response, as the delivery says.
    async fn deliver(&self, response: http::Response<Body>, span: SpanRef) -> Result<Tried, Failure> {
        let delivered = match self.delivery {
            Delivery::Chat { request, client_wants_usage, output, responses } if request.is_stream() => {
                Ok(self.stream_response((client_wants_usage, responses), output, response, span))
            }
            Delivery::Chat { output, responses, .. } => self.whole_response((output, responses), response, span).await,
            Delivery::Operation { op, base64_embeddings } => {
                self.operation_response(op, base64_embeddings, response, span).await
            }
        };
        match delivered {
            Ok(mut response) => {
                mark(&mut response, self.target, self.total_attempts.get());
                Ok(Tried::Delivered(response))
            }
            // Nothing reached the client yet, so a body that broke off may be retried.
            Err(Undelivered::Retry(error)) => Ok(Tried::Failed(error, None)),
            Err(Undelivered::GiveUp(error)) => {
                self.attempt_failed(span, &error);
                Err(Failure::Exhausted(error))
            }
            Err(Undelivered::Refused(error)) => {
                self.attempt_failed(span, &error);
                Err(Failure::Final(error))
            }
        }
    }

    /// An upstream's error status, in the provider's words: a fallback status hands over to the
    /// next target, a retryable one is tried again, any other is final.
    async fn upstream_error(&self, response: http::Response<Body>, span: SpanRef) -> Result<Tried, Failure> {
        let status = response.status();
        self.cx.recorder.set(span, HTTP_RESPONSE_STATUS_CODE, status.as_u16());
        let retry_after = retry_after_ms(response.headers());
        let idle_ms = self.cx.config.timeouts.idle_ms;
        let body = read_whole(&**self.cx.host, response.into_body(), MAX_ERROR_BODY, idle_ms).await.unwrap_or_default();
        let error = self.provider.error(self.target.provider_name, status, &body);
        if self.resolved.fallback_on().contains(&status.as_u16()) {
            self.attempt_failed(span, &error);
            self.cx.recorder.set(span, GATEWAY_OUTCOME, "fallback_on_status");
            return Err(Failure::Exhausted(error));
        }
        if !is_retryable_status(status) {
            self.attempt_failed(span, &error);
            return Err(Failure::Final(error));
        }
        Ok(Tried::Failed(error, retry_after))
    }

    fn response_context(&self) -> ResponseContext {
        ResponseContext {
            created: self.cx.host.now_millis() / 1000,
            model: self.target.model.clone(),
            fallback_id: format!("chatcmpl-gw-{:016x}", self.cx.host.random_u64()),
            base64_embeddings: false,
            custom: self.target.provider.custom.as_ref().map(|c| c.response.clone()),
        }
    }

    fn attempt_failed(&self, span: SpanRef, error: &ApiError) {
        self.cx.recorder.fail(span, error.message.clone());
        self.cx.recorder.set(span, ERROR_TYPE, error.code.clone().unwrap_or_else(|| error.kind.to_string()));
        self.cx.recorder.end(span);
        self.cx.recorder.upstream_finished();
    }

    fn stream_response(
        &self,
        (client_wants_usage, responses): (bool, Option<&Envelope>),
        output: Option<&dyn OutputGuard>,
        response: http::Response<Body>,
        attempt_span: SpanRef,
    ) -> http::Response<Body> {
        let upstream = match response.into_body() {
            Body::Stream(s) => s,
            Body::Full(bytes) => Box::pin(futures::stream::iter([Ok(bytes)])),
        };
        let ctx = self.response_context();
        let trace = StreamTrace::new(
            self.cx.recorder.clone(),
            self.gen_span,
            attempt_span,
            client_wants_usage,
            self.price().cloned(),
        );
        let guard = output.and_then(|o| o.for_stream(self.target));
        let client = ClientStream::new(self.provider.chat_stream(ctx), guard);
        let body = stream::translate(
            (Rc::clone(self.cx.host), upstream, self.cx.config.timeouts.idle_ms),
            client,
            Encoder::for_client(responses),
            trace,
            output.and_then(|o| o.remote(self.target)),
        );
        stream_answer(Body::Stream(body), responses)
    }

    /// Reads a whole upstream body, bounded in size and in the silence between chunks.
    async fn collect_upstream(&self, response: http::Response<Body>) -> Result<Bytes, Undelivered> {
        let limit = self.cx.config.limits.max_response_bytes;
        let idle = self.cx.config.timeouts.idle_ms;
        match read_whole(&**self.cx.host, response.into_body(), limit, idle).await {
            Ok(body) => Ok(body),
            Err(ReadError::TooLarge) => Err(Undelivered::GiveUp(UpstreamError::TooLarge(limit).into())),
            Err(ReadError::Broken(e)) => Err(Undelivered::Retry(upstream_fault(Reading::Whole, Some(&e), idle))),
            Err(ReadError::Stalled) => Err(Undelivered::Retry(upstream_fault(Reading::Whole, None, idle))),
        }
    }

    /// Records a whole response's facts and closes its spans.
    fn record_whole(&self, attempt_span: SpanRef, body: &serde_json::Value) {
        self.cx.recorder.end(attempt_span);
        self.cx.recorder.upstream_finished();
        let mut facts = self.cx.recorder.new_facts();
        facts.observe(body);
        self.cx.recorder.completion(self.gen_span, &facts, self.price());
        self.cx.recorder.end(self.gen_span);
    }

    async fn whole_response(
        &self,
        (output, responses): (Option<&dyn OutputGuard>, Option<&Envelope>),
        response: http::Response<Body>,
        attempt_span: SpanRef,
    ) -> Result<http::Response<Body>, Undelivered> {
        let body = self.collect_upstream(response).await?;
        let mut completion =
            self.provider.chat_response(&body, &self.response_context()).map_err(|e| Undelivered::GiveUp(e.into()))?;
        self.record_whole(attempt_span, &completion);
        if let Some(output) = output {
            guard_whole(output, self.target, &mut completion).await.map_err(Undelivered::Refused)?;
        }
        Ok(whole_answer(&completion, responses))
    }

    /// Another endpoint's response as it is: JSON read whole (for its usage), anything else
    /// (audio, server-sent events) streamed through chunk by chunk.
    async fn operation_response(
        &self,
        op: Operation,
        base64_embeddings: bool,
        response: http::Response<Body>,
        attempt_span: SpanRef,
    ) -> Result<http::Response<Body>, Undelivered> {
        let content_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
        let kind = content_type.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
        let mut out = if kind.starts_with("application/json") {
            let body = self.collect_upstream(response).await?;
            let ctx = ResponseContext { base64_embeddings, ..self.response_context() };
            if let Some(translated) = self.provider.operation_response(op, &body, &ctx) {
                let value = translated.map_err(|e| Undelivered::GiveUp(e.into()))?;
                self.record_whole(attempt_span, &value);
                return Ok(json_response(StatusCode::OK, &value));
            }
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
                self.record_whole(attempt_span, &value);
            } else {
                self.record_whole(attempt_span, &serde_json::Value::Null);
            }
            http::Response::new(Body::Full(body))
        } else {
            let upstream = match response.into_body() {
                Body::Stream(s) => s,
                Body::Full(bytes) => Box::pin(futures::stream::iter([Ok(bytes)])),
            };
            let trace =
                StreamTrace::new(self.cx.recorder.clone(), self.gen_span, attempt_span, true, self.price().cloned());
            let sse = kind.starts_with("text/event-stream");
            let body =
                stream::passthrough(Rc::clone(self.cx.host), upstream, self.cx.config.timeouts.idle_ms, sse, trace);
            http::Response::new(Body::Stream(body))
        };
        if let Some(content_type) = content_type {
            out.headers_mut().insert(http::header::CONTENT_TYPE, content_type);
        }
        Ok(out)
    }
}

/// Tells the client where the answer came from and how many attempts it took.
pub(crate) fn mark(response: &mut http::Response<Body>, target: &Target<'_>, attempts: u32) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(target.provider_name) {
        headers.insert("x-gateway-provider", v);
    }
    headers.insert("x-gateway-attempts", HeaderValue::from(attempts));
}

/// A whole chat completion as the client reads it: as it is, or as a Responses API response.
pub(crate) fn whole_answer(completion: &serde_json::Value, responses: Option<&Envelope>) -> http::Response<Body> {
    match responses {
        Some(envelope) => json_response(StatusCode::OK, &from_completion(completion, envelope)),
        None => json_response(StatusCode::OK, completion),
    }
}

/// A streamed answer as the client reads it: chat SSE, or the Responses API's events (whose
/// content type names no charset, as OpenAI's does not).
pub(crate) fn stream_answer(body: Body, responses: Option<&Envelope>) -> http::Response<Body> {
    let mut response = sse_response(body);
    if responses.is_some() {
        response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    }
    response
}

pub(crate) fn sse_response(body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
