//! The exact-match response cache on the chat path: look up before any attempt, serve a hit
//! (whole, or replayed as a stream) through the same guardrails as a fresh answer, store a
//! fresh whole answer after the response has left.

use std::rc::Rc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::attempts::{mark, sse_response};
use super::body::{json_response, with_timeout};
use super::chat_guard;
use super::guard::guard_events;
use super::guard::{guard_whole, Guard, OutputGuard};
use super::recorder::Recorder;
use super::resolve::{apply_header_edits, Resolved};
use super::stream;
use crate::config::PrincipalConfig;
use crate::error::{ApiError, ErrorClass, PhaseError};
use crate::host::{Body, Host, LogLevel};
use crate::openai::ChatRequest;
use crate::providers::StreamEvent;
use crate::response_cache::{self, CacheEntry, CacheScope};
use crate::trace::attrs::*;
use crate::trace::SpanKind;

/// Longest wait for the cache store; past it the request is a miss.
const CACHE_TIMEOUT_MS: u64 = 1_000;

/// What the cache does for one request on a route with a cache.
#[derive(Debug)]
pub(crate) struct CachePlan {
    key: String,
    ttl_seconds: u64,
    /// False under the client's `Cache-Control: no-cache` or `no-store`: a fresh answer.
    lookup: bool,
    /// False under `no-store`: the answer is not kept either.
    keep: bool,
}

/// Nothing cached for a client that asked for nothing else (`Cache-Control: only-if-cached`): a
/// 504, as RFC 9111 has it; the client's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no cached answer for this request, and the client asked for nothing else (Cache-Control: only-if-cached)")]
pub(crate) struct NotCached;

impl PhaseError for NotCached {
    fn class(&self) -> ErrorClass {
        ErrorClass::client(StatusCode::GATEWAY_TIMEOUT, "cache_miss", Some("cache_miss"))
    }
}

/// The answer to `only-if-cached` when nothing is cached.
pub(crate) fn not_cached() -> ApiError {
    NotCached.into()
}

/// The plan for a chat request on a route with a cache (`None` elsewhere).
pub(crate) fn plan(
    resolved: &Resolved<'_>,
    request: &ChatRequest,
    principal: &PrincipalConfig,
    headers: &http::HeaderMap,
) -> Option<CachePlan> {
    let (route, config) = resolved.route?;
    let cache = config.cache?;
    let directives = directives(headers);

    let body = serde_json::to_value(request).ok()?;
    let principal = format!("{:?}:{}", principal.kind, principal.id);
    let scope = CacheScope {
        route: Some(route),
        model: &request.model,
        principal: (!cache.shared).then_some(principal.as_str()),
    };
    Some(CachePlan {
        key: response_cache::key(&scope, &body),
        ttl_seconds: cache.ttl_seconds,
        lookup: !directives.iter().any(|d| d == "no-cache" || d == "no-store"),
        keep: !directives.iter().any(|d| d == "no-store"),
    })
}

/// The client's `Cache-Control` directives, lower-cased.
fn directives(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect()
}

/// `only-if-cached` (RFC 9111): a request the cache does not answer gets a `504`, never an upstream.
pub(crate) fn only_if_cached(headers: &http::HeaderMap) -> bool {
    directives(headers).iter().any(|d| d == "only-if-cached")
}

/// A fresh entry for the plan, if the store has one (a store that fails is a miss).
pub(crate) async fn lookup<H: Host + 'static>(
    host: &H,
    plan: &CachePlan,
    recorder: &Recorder<H>,
) -> Option<CacheEntry> {
    if !plan.lookup {
        recorder.set(recorder.root(), GATEWAY_CACHE, if plan.keep { "refresh" } else { "bypass" });
        return None;
    }
    let span = recorder.child(recorder.root(), "cache lookup", SpanKind::Internal);
    let found = match with_timeout(host, CACHE_TIMEOUT_MS, host.cache_get(&plan.key)).await {
        Some(Ok(found)) => found,
        failed => {
            let why = match failed {
                Some(Err(e)) => e.to_string(),
                _ => format!("no answer within {CACHE_TIMEOUT_MS} ms"),
            };
            host.log(
                LogLevel::Warn,
                &serde_json::json!({"msg": "response cache unavailable", "error": why}).to_string(),
            );
            recorder.fail(span, why);
            None
        }
    };
    let (entry, stale) = match found.map(|bytes| CacheEntry::decode(&bytes)) {
        None => (None, false),
        Some(Some(entry)) if entry.is_fresh(host.now_millis()) => (Some(entry), false),
        Some(_) => (None, true),
    };
    if stale {
        // Expired or unreadable: gone, so a store without expiry (Spin's) does not keep it forever.
        let _ = with_timeout(host, CACHE_TIMEOUT_MS, host.cache_delete(&plan.key)).await;
    }
    let outcome = if entry.is_some() { "hit" } else { "miss" };
    recorder.set(span, GATEWAY_CACHE, outcome);
    recorder.set(recorder.root(), GATEWAY_CACHE, outcome);
    recorder.end(span);
    entry
}

/// Serves a hit: the input guardrails decide as for the target that produced it, the output
/// guardrails see it as they see a fresh answer, and a streamed request gets it replayed.
pub(crate) async fn serve_hit<H: Host + 'static>(
    host: &H,
    entry: CacheEntry,
    request: &mut ChatRequest,
    resolved: &Resolved<'_>,
    guard: Option<&Rc<Guard<H>>>,
) -> Result<http::Response<Body>, ApiError> {
    let target = resolved
        .targets
        .iter()
        .find(|t| t.provider_name == entry.provider)
        .or_else(|| resolved.targets.first())
        .ok_or_else(|| ApiError::bad_gateway("the route has no target"))?;
    if let Some(guard) = guard {
        chat_guard::check_chat(guard, request, target).await?;
    }
    let output = guard.map(|g| g as &dyn OutputGuard);
    let age = entry.age_seconds(host.now_millis());
    let mut response = if request.is_stream() {
        let mut events = response_cache::replay(&entry.completion);
        if let Some(output) = output {
            events = guard_events(events, output, target).await;
        }
        let client_wants_usage = request.wants_stream_usage();
        events.retain(|e| client_wants_usage || !matches!(e, StreamEvent::Chunk(c) if c.is_usage_only()));
        sse_response(Body::Full(stream::encode_all(&events)))
    } else {
        let mut completion = entry.completion;
        if let Some(output) = output {
            guard_whole(output, target, &mut completion).await?;
        }
        json_response(StatusCode::OK, &completion)
    };
    mark(&mut response, target, 0);
    if let Some(transform) = resolved.transform() {
        apply_header_edits(response.headers_mut(), &transform.response_headers);
    }
    response.headers_mut().insert(http::header::AGE, HeaderValue::from(age));
    if let Some(guard) = guard {
        guard.mark(&mut response);
    }
    Ok(response)
}

/// Stores a fresh whole answer after the response has left (a streamed one is not stored): the
/// body is read back and checked off the response path.
pub(crate) fn store<H: Host + 'static>(host: &Rc<H>, plan: CachePlan, response: &http::Response<Body>) {
    let Body::Full(bytes) = response.body() else { return };
    if !plan.keep || response.status() != StatusCode::OK {
        return;
    }
    let bytes = bytes.clone();
    let provider =
        response.headers().get("x-gateway-provider").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let owner = Rc::clone(host);
    host.defer(Box::pin(async move {
        let Ok(completion) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return };
        if !response_cache::cacheable(&completion) {
            return;
        }
        let entry = CacheEntry::new(owner.now_millis(), plan.ttl_seconds, &provider, completion);
        let put = owner.cache_put(&plan.key, Bytes::from(entry.encode()), plan.ttl_seconds);
        if !matches!(with_timeout(&*owner, CACHE_TIMEOUT_MS, put).await, Some(Ok(()))) {
            owner.log(LogLevel::Warn, "{\"msg\":\"response cache entry not stored\"}");
        }
    }));
}

/// `x-gateway-cache: hit|miss` on a response of a route with a cache.
pub(crate) fn mark_outcome(response: &mut http::Response<Body>, hit: bool) {
    response.headers_mut().insert("x-gateway-cache", HeaderValue::from_static(if hit { "hit" } else { "miss" }));
}
