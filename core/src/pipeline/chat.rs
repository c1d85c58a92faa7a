//! `POST /v1/chat/completions`: parse, resolve targets, attempt with retries and fallbacks.

use std::rc::Rc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::{json_response, stream, with_timeout};
use crate::config::{Config, ProviderType};
use crate::error::ApiError;
use crate::host::{Body, CollectError, FetchError, Host};
use crate::openai::ChatRequest;
use crate::providers::{self, echo, ChatProvider, ResponseContext, Target};
use crate::retry::{is_retryable_status, retry_after_ms, RetryDecision, RetryPolicy};

/// Facts about one request, for its log line.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub log_requests: bool,
    pub principal: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub attempts: u32,
    pub stream: bool,
    pub error: Option<String>,
}

/// Largest upstream error body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub(crate) async fn chat_completions<H: Host + 'static>(
    host: &Rc<H>,
    config: &Config,
    parts: &http::request::Parts,
    body: Body,
    route: Option<&str>,
    summary: &mut Summary,
) -> Result<http::Response<Body>, ApiError> {
    let request = parse(config, parts, body).await?;
    summary.stream = request.is_stream();
    let (targets, retry) = resolve(config, route, &request.model)?;
    let policy = RetryPolicy::new(retry);
    let mut last_error = ApiError::bad_gateway("no upstream target was tried");
    for target in &targets {
        summary.provider = Some(target.provider_name.to_owned());
        summary.model = Some(target.model.clone());
        let Some(provider) = providers::chat_provider(target.provider.kind) else {
            return Ok(echo_response(&**host, &request, target));
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
        let upstream = provider.chat_request(target, &request, api_key.as_deref())?;
        match attempt_target(host, config, provider, target, &upstream, &request, &policy, summary).await {
            Ok(response) => return Ok(response),
            Err(Failure::Final(error)) => return Err(error),
            Err(Failure::Exhausted(error)) => last_error = error,
        }
    }
    Err(last_error)
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
) -> Result<(Vec<Target<'c>>, crate::config::RetryConfig), ApiError> {
    let route_name = route.or_else(|| config.routes.contains_key(model).then_some(model));
    if let Some(name) = route_name {
        let route = config.routes.get(name).ok_or_else(|| ApiError::not_found(format!("unknown route `{name}`")))?;
        let targets = route.models.iter().map(|m| target(config, m)).collect::<Result<Vec<_>, _>>()?;
        return Ok((targets, route.retry.clone().unwrap_or_else(|| config.retry.clone())));
    }
    Ok((vec![target(config, model)?], config.retry.clone()))
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

/// Attempts one target until success, a non-retryable error, or retries run out.
#[allow(clippy::too_many_arguments)]
async fn attempt_target<H: Host + 'static>(
    host: &Rc<H>,
    config: &Config,
    provider: &dyn ChatProvider,
    target: &Target<'_>,
    upstream: &http::Request<Bytes>,
    request: &ChatRequest,
    policy: &RetryPolicy,
    summary: &mut Summary,
) -> Result<http::Response<Body>, Failure> {
    let ctx = ResponseContext { created: host.now_millis() / 1000, include_usage: request.wants_stream_usage() };
    let timeouts = &config.timeouts;
    let mut attempt = 0;
    loop {
        attempt += 1;
        summary.attempts += 1;
        let sent = with_timeout(&**host, timeouts.first_byte_ms, host.fetch(upstream.clone())).await;
        let (error, retry_after) = match sent {
            Some(Ok(response)) if response.status().is_success() => {
                let delivered = if request.is_stream() {
                    Ok(stream_response(host, provider, response, ctx.clone(), timeouts.idle_ms))
                } else {
                    whole_response(host, config, provider, response, &ctx).await
                };
                match delivered {
                    Ok(mut response) => {
                        mark(&mut response, target, summary.attempts);
                        return Ok(response);
                    }
                    // Nothing reached the client yet, so a body that broke off may be retried.
                    Err(error) => (error, None),
                }
            }
            Some(Ok(response)) => {
                let status = response.status();
                let retry_after = retry_after_ms(response.headers());
                let body = with_timeout(&**host, timeouts.idle_ms, response.into_body().collect(MAX_ERROR_BODY))
                    .await
                    .and_then(Result::ok)
                    .unwrap_or_default();
                let error = provider.error(target.provider_name, status, &body);
                if !is_retryable_status(status) {
                    return Err(Failure::Final(error));
                }
                (error, retry_after)
            }
            Some(Err(FetchError::Invalid(reason))) => {
                return Err(Failure::Final(ApiError::unavailable(format!(
                    "the runtime refused the request to provider `{}`: {reason}",
                    target.provider_name
                ))))
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
        match policy.after_failure(attempt, retry_after, host.random_u64()) {
            RetryDecision::RetryAfter { millis } => host.sleep(millis).await,
            RetryDecision::GiveUp => return Err(Failure::Exhausted(error)),
        }
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

fn stream_response<H: Host + 'static>(
    host: &Rc<H>,
    provider: &dyn ChatProvider,
    response: http::Response<Body>,
    ctx: ResponseContext,
    idle_ms: u64,
) -> http::Response<Body> {
    let upstream = match response.into_body() {
        Body::Stream(s) => s,
        Body::Full(bytes) => Box::pin(futures::stream::iter([Ok(bytes)])),
    };
    let body = stream::translate(Rc::clone(host), upstream, provider.chat_stream(ctx), idle_ms);
    sse_response(Body::Stream(body))
}

fn sse_response(body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn whole_response<H: Host>(
    host: &Rc<H>,
    config: &Config,
    provider: &dyn ChatProvider,
    response: http::Response<Body>,
    ctx: &ResponseContext,
) -> Result<http::Response<Body>, ApiError> {
    let limit = config.limits.max_response_bytes;
    let idle = config.timeouts.idle_ms;
    let body = match with_timeout(&**host, idle, response.into_body().collect(limit)).await {
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
    Ok(json_response(StatusCode::OK, &provider.chat_response(&body, ctx)?))
}

fn echo_response<H: Host>(host: &H, request: &ChatRequest, target: &Target<'_>) -> http::Response<Body> {
    debug_assert_eq!(target.provider.kind, ProviderType::Echo);
    let id = format!("chatcmpl-echo-{:016x}", host.random_u64());
    let created = host.now_millis() / 1000;
    let mut response = if request.is_stream() {
        sse_response(Body::Full(stream::encode_all(&echo::stream(request, &target.model, &id, created))))
    } else {
        json_response(StatusCode::OK, &echo::completion(request, &target.model, &id, created))
    };
    mark(&mut response, target, 0);
    response
}
