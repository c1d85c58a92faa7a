//! `POST /v1/chat/completions`: parse, resolve targets, attempt with retries and fallbacks.

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use http::StatusCode;

use super::attempts::{
    mark, price_for, skip_target, sse_response, target_span, AfterTarget, Attempts, Delivery, Upstream,
};
use super::guard::{guard_whole, stream_denied, Guard, OutputGuard, OutputTexts};
use super::{cached, chat_guard, limits};
use super::{json_response, read_whole, stream, ReadError, Recorder};
use crate::config::{Config, HeaderEdits, PriceConfig, PrincipalConfig, ProviderType, RouteConfig, TransformConfig};
use crate::error::ApiError;
use crate::guard::stream::{Decide, StreamGuard};
use crate::host::{Body, Host};
use crate::openai::{ChatRequest, StreamOptions};
use crate::policy::Scope;
use crate::providers::{self, echo, StreamEvent, Target};
use crate::retry::RetryPolicy;
use crate::trace::attrs::*;
use crate::trace::{SpanKind, SpanRef};

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
    let mut response = match cached::plan(&resolved, &request, principal, &parts.headers) {
        None => run(host, config, request, &resolved, guard, recorder).await?,
        Some(plan) => match cached::lookup(&**host, &plan, recorder).await {
            Some(entry) => {
                let mut hit = cached::serve_hit(&**host, entry, &mut request, &resolved, guard.as_ref()).await?;
                recorder.no_tokens_used();
                cached::mark_outcome(&mut hit, true);
                hit
            }
            None if plan.only_cached => return Err(cached::not_cached()),
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

/// The guardrails of a request on `resolved` (its route's policies and mode, or the global ones).
pub(crate) async fn route_guard<H: Host + 'static>(
    host: &Rc<H>,
    config: &Config,
    resolved: &Resolved<'_>,
    principal: &PrincipalConfig,
    recorder: &Recorder<H>,
) -> Result<Option<Rc<Guard<H>>>, ApiError> {
    let (scope, mode) = match resolved.route {
        Some((name, route)) => (Scope::Route(name), route.guard_mode),
        None => (Scope::Global, None),
    };
    Guard::new(host, config, scope, mode, principal, recorder, &recorder.trace_id_hex()).await
}

/// Whether the caller's key may use what it named: a route its key allows, or a `provider/model`
/// its key allows of a provider open to direct use. Route controls cannot be skipped by naming a
/// route's model directly once an operator closes that door.
fn check_access(
    config: &Config,
    route: Option<&str>,
    model: &str,
    principal: &crate::config::PrincipalConfig,
) -> Result<(), ApiError> {
    let key = config.keys.iter().find(|k| std::ptr::eq(&k.principal, principal));
    let refused = |message: String| {
        ApiError::new(StatusCode::FORBIDDEN, "permission_error", message)
            .with_param("model")
            .with_code("model_not_allowed")
    };
    if let Some(name) = route.or_else(|| config.routes.contains_key(model).then_some(model)) {
        return match key.is_none_or(|k| k.allows_route(name)) {
            true => Ok(()),
            false => Err(refused(format!("this key may not use the route `{name}`"))),
        };
    }
    let provider = model.split_once('/').map_or(model, |(p, _)| p);
    if config.providers.get(provider).is_some_and(|p| !p.direct) {
        return Err(refused(format!("provider `{provider}` is reachable only through routes")));
    }
    match key.is_none_or(|k| k.allows_model(model)) {
        true => Ok(()),
        false => Err(refused(format!("this key may not call `{model}` directly"))),
    }
}

/// Resolves a model name (or the route in the path) to its targets, on a `resolve` span, once the
/// caller's key is found to be allowed it.
pub(crate) fn resolve_recorded<'c, H: Host + 'static>(
    host: &H,
    config: &'c Config,
    (route, model): (Option<&str>, &str),
    principal: &crate::config::PrincipalConfig,
    recorder: &Recorder<H>,
) -> Result<Resolved<'c>, ApiError> {
    let span = recorder.child(recorder.root(), "resolve", SpanKind::Internal);
    let resolved =
        check_access(config, route, model, principal).and_then(|()| resolve(config, route, model, host.random_u64()));
    match &resolved {
        Ok(resolved) => {
            if let Some((name, _)) = resolved.route {
                recorder.set(span, GATEWAY_ROUTE, name);
            }
            recorder.choose_snapshots(config, resolved.route.and_then(|(_, r)| r.snapshots));
            let names = resolved.targets.iter().map(|t| format!("{}/{}", t.provider_name, t.model)).collect::<Vec<_>>();
            recorder.set(span, GATEWAY_TARGETS, names);
        }
        Err(e) => recorder.fail(span, e.message.clone()),
    }
    recorder.end(span);
    resolved
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

/// The provider's key, when it has one; a configured secret that is not set makes the target unusable.
pub(crate) fn api_key<H: Host>(host: &H, target: &Target<'_>) -> Result<Option<String>, ApiError> {
    match &target.provider.api_key_secret {
        Some(name) => host.secret(name).map(Some).ok_or_else(|| {
            ApiError::unavailable(format!(
                "provider `{}` is not usable: its secret `{name}` is not set",
                target.provider_name
            ))
        }),
        None => Ok(None),
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

/// Reads a request body, refusing more than `limits.max_request_bytes` (413) before reading it all.
pub(crate) async fn read_body<H: Host>(
    host: &H,
    config: &Config,
    parts: &http::request::Parts,
    body: Body,
) -> Result<Bytes, ApiError> {
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
    read_whole(host, body, limit, config.timeouts.idle_ms).await.map_err(|e| match e {
        ReadError::TooLarge => too_large(),
        ReadError::Broken(e) => ApiError::invalid_request(format!("the request body could not be read: {e}")),
        ReadError::Stalled => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!("the request body stalled for more than {} ms", config.timeouts.idle_ms),
        )
        .with_code("request_timeout"),
    })
}

/// What a model name resolves to.
pub(crate) struct Resolved<'c> {
    /// Targets in the order to try them.
    pub targets: Vec<Target<'c>>,
    pub policy: RetryPolicy,
    /// The route, when the request named one.
    pub route: Option<(&'c str, &'c RouteConfig)>,
}

impl Resolved<'_> {
    pub fn fallback_on(&self) -> &[u16] {
        self.route.map(|(_, r)| r.fallback_on.as_slice()).unwrap_or_default()
    }

    pub fn transform(&self) -> Option<&TransformConfig> {
        self.route.and_then(|(_, r)| r.transform.as_ref())
    }
}

/// A model name -> the ordered targets to try. With weights, `random` draws the primary.
pub(crate) fn resolve<'c>(
    config: &'c Config,
    route: Option<&str>,
    model: &str,
    random: u64,
) -> Result<Resolved<'c>, ApiError> {
    let route_name = route.or_else(|| config.routes.contains_key(model).then_some(model));
    let Some(name) = route_name else {
        return Ok(Resolved {
            targets: vec![target(config, model)?],
            policy: RetryPolicy::new(config.retry.clone()),
            route: None,
        });
    };
    let (name, route) =
        config.routes.get_key_value(name).ok_or_else(|| ApiError::not_found(format!("unknown route `{name}`")))?;
    let policy = RetryPolicy::new(route.retry.clone().unwrap_or_else(|| config.retry.clone()));
    if let Some(upstream) = &route.upstream {
        // A route of kind `custom`: its own raw upstream, named after the route.
        let target = Target { provider_name: name, provider: upstream, model: name.clone() };
        return Ok(Resolved { targets: vec![target], policy, route: Some((name.as_str(), route)) });
    }
    let mut targets = route.models.iter().map(|m| target(config, m.model())).collect::<Result<Vec<_>, _>>()?;
    if route.models.iter().any(|m| m.weight().is_some()) {
        let weights: Vec<u64> = route.models.iter().map(|m| u64::from(m.weight().unwrap_or(1))).collect();
        let mut draw = random % weights.iter().sum::<u64>().max(1);
        let primary = weights
            .iter()
            .position(|w| {
                draw < *w || {
                    draw -= w;
                    false
                }
            })
            .unwrap_or(0);
        let chosen = targets.remove(primary);
        targets.insert(0, chosen);
    }
    Ok(Resolved { targets, policy, route: Some((name.as_str(), route)) })
}

/// Applies a route's body defaults and overrides to a JSON request body.
pub(crate) fn apply_body_transform(body: &mut serde_json::Map<String, serde_json::Value>, transform: &TransformConfig) {
    for (key, value) in &transform.body_defaults {
        if body.get(key).is_none_or(serde_json::Value::is_null) {
            body.insert(key.clone(), value.clone());
        }
    }
    for (key, value) in &transform.body_overrides {
        body.insert(key.clone(), value.clone());
    }
}

/// Applies header edits to a header map.
pub(crate) fn apply_header_edits(headers: &mut http::HeaderMap, edits: &HeaderEdits) {
    for name in &edits.remove {
        if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
    for (name, value) in &edits.set {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value))
        {
            headers.insert(name, value);
        }
    }
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

/// A fixed list of stream events (an echo, a cache hit) through the output guardrails: decided as
/// a live stream would be, then the remote guard service is asked once about all of it before any
/// of it is delivered.
pub(crate) async fn guard_events(
    events: Vec<StreamEvent>,
    output: &dyn OutputGuard,
    target: &Target<'_>,
) -> Vec<StreamEvent> {
    let events = match output.for_stream(target) {
        Some((mut guard, mut decide)) => guard_list(events, &mut guard, decide.as_mut()),
        None => events,
    };
    let Some(remote) = output.remote(target) else { return events };
    let mut texts = OutputTexts::default();
    for event in &events {
        if let StreamEvent::Chunk(chunk) = event {
            texts.add(chunk);
        }
    }
    match remote.ask(texts).await {
        Ok(()) => events,
        Err(error) => vec![StreamEvent::Error(error)],
    }
}

fn guard_list(events: Vec<StreamEvent>, guard: &mut StreamGuard, decide: &mut dyn Decide) -> Vec<StreamEvent> {
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let passed = match event {
            StreamEvent::Chunk(chunk) => guard.push(chunk, decide),
            StreamEvent::Done => match guard.finish(decide) {
                Ok(chunks) => {
                    out.extend(chunks.into_iter().map(StreamEvent::Chunk));
                    out.push(StreamEvent::Done);
                    continue;
                }
                Err(denial) => Err(denial),
            },
            other => {
                out.push(other);
                continue;
            }
        };
        match passed {
            Ok(chunks) => out.extend(chunks.into_iter().map(StreamEvent::Chunk)),
            Err(denial) => {
                out.push(StreamEvent::Error(stream_denied(&denial)));
                break;
            }
        }
    }
    out
}
