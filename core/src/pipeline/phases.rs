//! The phases of the request lifecycle (README, "Request lifecycle"), as functions with those
//! names. Each endpoint calls them in order: `authenticate`, `resolve`, `rate_limit`, `input`,
//! `upstream` (which runs the output phase as it delivers), and `handle` ends with `record`.

use std::cell::Cell;
use std::rc::Rc;

use super::attempts::{skip_target, AfterTarget, Attempts, Delivery, Upstream};
use super::context::RequestContext;
use super::guard::Guard;
use super::limits::{self, Admitted, TokenEstimate};
use super::recorder::Recorder;
use super::resolve::{check_access, resolve as resolve_targets, Resolved};
use crate::config::{Config, PrincipalConfig};
use crate::error::ApiError;
use crate::host::{Body, Host};
use crate::policy::Scope;
use crate::providers::{ChatProvider, Target};
use crate::trace::attrs::*;
use crate::trace::{SpanKind, SpanRef};

/// Phase 1: the caller, from its gateway key, on an `authenticate` span.
pub(crate) fn authenticate<'c, H: Host + 'static>(
    config: &'c Config,
    parts: &http::request::Parts,
    recorder: &Recorder<H>,
) -> Result<&'c PrincipalConfig, ApiError> {
    let span = recorder.child(recorder.root(), "authenticate", SpanKind::Internal);
    let principal = crate::auth::authenticate(config, &parts.headers);
    match &principal {
        Ok(p) => {
            recorder.set(span, GATEWAY_PRINCIPAL_ID, p.id.as_str());
            recorder.set(span, GATEWAY_PRINCIPAL_KIND, format!("{:?}", p.kind).to_lowercase());
            recorder.set(recorder.root(), GATEWAY_PRINCIPAL_ID, p.id.as_str());
        }
        Err(e) => recorder.fail(span, e.to_string()),
    }
    recorder.end(span);
    Ok(principal?)
}

/// Phase 2: a model name (or the route in the path) to its targets, on a `resolve` span, once the
/// caller's key is found to be allowed it.
pub(crate) fn resolve<'c, H: Host + 'static>(
    cx: &RequestContext<'c, H>,
    route: Option<&str>,
    model: &str,
) -> Result<Resolved<'c>, ApiError> {
    let (config, recorder) = (cx.config, cx.recorder);
    let span = recorder.child(recorder.root(), "resolve", SpanKind::Internal);
    let resolved = check_access(config, route, model, cx.principal)
        .and_then(|()| resolve_targets(config, route, model, cx.host.random_u64()));
    match &resolved {
        Ok(resolved) => {
            if let Some((name, _)) = resolved.route {
                recorder.set(span, GATEWAY_ROUTE, name);
            }
            recorder.choose_snapshots(config, resolved.route.and_then(|(_, r)| r.snapshots));
            let names = resolved.targets.iter().map(|t| format!("{}/{}", t.provider_name, t.model)).collect::<Vec<_>>();
            recorder.set(span, GATEWAY_TARGETS, names);
        }
        Err(e) => recorder.fail(span, e.to_string()),
    }
    recorder.end(span);
    Ok(resolved?)
}

/// Phase 3: the route's and the key's quotas: over one, a 429 before anything else runs. `None` counts
/// the request only (no tokens: MCP).
pub(crate) async fn rate_limit<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    resolved: Option<&Resolved<'_>>,
    estimate: Option<TokenEstimate>,
) -> Result<Admitted, ApiError> {
    limits::admit(cx, resolved.and_then(|r| r.route), estimate).await
}

/// Phase 4: the guardrails in scope for the route (or the global ones): `None` when nothing is to be
/// checked. What they decide runs per target in [`upstream`] and on the answer as it is delivered.
pub(crate) async fn input<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    resolved: &Resolved<'_>,
) -> Result<Option<Rc<Guard<H>>>, ApiError> {
    let (scope, mode) = match resolved.route {
        Some((name, route)) => (Scope::Route(name), route.guard_mode),
        None => (Scope::Global, None),
    };
    Guard::new(cx, scope, mode).await
}

/// What one target is sent, once prepared.
pub(crate) enum Prepared {
    /// Send this through the provider, with retries.
    Send(&'static dyn ChatProvider, Upstream),
    /// Answered without an upstream (the built-in echo provider).
    Answered(Result<http::Response<Body>, ApiError>),
    /// This target cannot be used (no secret, a field or endpoint it lacks): the next one is tried.
    Skip(ApiError),
    /// Nothing more can be sent (a streamed upload already went to an earlier target).
    Spent(ApiError),
}

/// How one kind of request is tried on a target: the one thing that differs between chat, the
/// other operations and uploads in [`upstream`].
pub(crate) trait TargetPlan<H: Host + 'static> {
    /// Opens the target's span (named for the operation, with its request attributes).
    fn span(&self, recorder: &Recorder<H>, target: &Target<'_>, fallback: bool) -> SpanRef;
    /// The input phase for one target (a policy may name its model or provider).
    async fn check(&mut self, guard: &Guard<H>, target: &Target<'_>) -> Result<(), ApiError>;
    /// The request for this target.
    async fn prepare(&mut self, target: &Target<'_>, span: SpanRef) -> Prepared;
    /// What a successful answer becomes.
    fn delivery(&self) -> Delivery<'_>;
    /// A failure on the client's side that stands whatever the target answered (an upload cut).
    fn interrupted(&self) -> Option<ApiError> {
        None
    }
}

/// Phases 5 and 6: the targets in order: the input phase per target, retries, fallbacks, and the output
/// phase as the answer is delivered. A refused target is skipped; the last refusal stands when
/// none is left. The guard's flags go on the answer.
pub(crate) async fn upstream<H: Host + 'static, P: TargetPlan<H>>(
    cx: &RequestContext<'_, H>,
    resolved: &Resolved<'_>,
    guard: Option<&Rc<Guard<H>>>,
    plan: &mut P,
) -> Result<http::Response<Body>, ApiError> {
    let recorder = cx.recorder;
    let total_attempts = Cell::new(0);
    let mut last_error = ApiError::bad_gateway("no upstream target was tried");
    for (index, target) in resolved.targets.iter().enumerate() {
        let span = plan.span(recorder, target, index > 0);
        if let Some(guard) = guard {
            if let Err(error) = plan.check(guard, target).await {
                last_error = skip_target(recorder, span, error);
                continue;
            }
        }
        let (provider, upstream) = match plan.prepare(target, span).await {
            Prepared::Send(provider, upstream) => (provider, upstream),
            Prepared::Answered(answer) => return answer.map(|response| flagged(response, guard)),
            Prepared::Skip(error) => {
                last_error = skip_target(recorder, span, error);
                continue;
            }
            Prepared::Spent(error) => {
                skip_target(recorder, span, error);
                break;
            }
        };
        let attempts = Attempts {
            cx,
            provider,
            target,
            upstream: &upstream,
            delivery: plan.delivery(),
            resolved,
            gen_span: span,
            total_attempts: &total_attempts,
        };
        let outcome = attempts.conclude().await;
        if let Some(error) = plan.interrupted() {
            return Err(error);
        }
        match outcome {
            AfterTarget::Deliver(response) => return Ok(flagged(response, guard)),
            AfterTarget::Stop(error) => return Err(error),
            AfterTarget::Fallback(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// The answer with the guard's alerts, redactions and monitor-mode outcomes in its header.
fn flagged<H: Host + 'static>(
    mut response: http::Response<Body>,
    guard: Option<&Rc<Guard<H>>>,
) -> http::Response<Body> {
    if let Some(guard) = guard {
        guard.mark(&mut response);
    }
    response
}

/// Phase 7: the trace's root closed with the answer's status. A stream records itself after its last
/// chunk (or when the client leaves); settlement and export then run off the response path.
pub(crate) fn record<H: Host + 'static>(recorder: &Recorder<H>, response: &http::Response<Body>) {
    if !matches!(response.body(), Body::Stream(_)) {
        recorder.finish(response.status().as_u16());
        recorder.record();
    }
}
