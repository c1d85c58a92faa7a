//! Rate limits on the request path: a request is admitted against its route's and its key's
//! quotas before anything goes upstream, and the tokens it reserved are settled from the usage
//! actually recorded once its response is over (see [`super::recorder::Recorder::on_settle`]).

use std::rc::Rc;

use http::StatusCode;

use super::body::with_timeout;
use super::context::RequestContext;
use super::recorder::Recorder;
use super::resolve::Resolved;
use crate::config::{Config, LimitPer, PrincipalConfig, RateLimitConfig, RouteConfig};
use crate::error::{ApiError, ErrorClass, PhaseError};
use crate::host::{Body, Host, LogLevel};
use crate::ratelimit::{self, Admission, LimitStep, Quota};
use crate::trace::attrs::*;
use crate::trace::{SpanKind, SpanRef};

/// Longest wait for the limiter store; past it the request goes ahead (limits fail open).
const LIMIT_TIMEOUT_MS: u64 = 2_000;

/// Tokens reserved on one limiter when a request was admitted.
#[derive(Debug)]
pub(crate) struct Reservation {
    key: String,
    per_minute: u64,
    estimate: u64,
}

/// One limiter a request counts against.
struct Limiter {
    key: String,
    quota: RateLimitConfig,
    /// For messages: `route `chat` per key`, `key`.
    label: String,
}

/// The headers of an admitted request (`x-ratelimit-*`), to put on its response.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Admitted {
    headers: Vec<(&'static str, String)>,
}

impl Admitted {
    pub fn mark(&self, response: &mut http::Response<Body>) {
        crate::error::insert_headers(response.headers_mut(), &self.headers);
    }
}

/// Output tokens reserved for a request that sets no maximum, when neither its route nor its
/// provider says otherwise.
pub(crate) const DEFAULT_OUTPUT_RESERVE: u32 = 4096;

/// What a request reserves of token quotas: a quarter of its text's bytes (a common rule of thumb
/// for English and code; a tokenizer per model would cost more than the limit protects), plus the
/// output it allows itself. A request that sets no maximum reserves a default output, at most
/// what a quota holds in a minute: it is limited (a stream left early keeps its reservation), and
/// never refused for a size it did not ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenEstimate {
    prompt: u64,
    output: u64,
    /// The output is a default, not the client's maximum: capped at each quota.
    capped: bool,
}

impl TokenEstimate {
    /// Nothing but the prompt's size (no output tokens: embeddings, uploads).
    pub fn input_only(text_bytes: usize) -> TokenEstimate {
        TokenEstimate { prompt: (text_bytes as u64).div_ceil(4), output: 0, capped: false }
    }

    /// What it costs on a quota of `per_minute` tokens.
    fn cost_on(self, per_minute: Option<u64>) -> u64 {
        let total = self.prompt.saturating_add(self.output);
        match (self.capped, per_minute) {
            (true, Some(per_minute)) => total.min(per_minute.max(self.prompt)),
            _ => total,
        }
    }
}

/// The estimate of a generating request: its prompt, and its maximum output as the route's body
/// transform leaves it (an override wins, then the client's, then the route's default), else the
/// default reserve of the route or its primary provider.
pub(crate) fn estimate(
    text_bytes: usize,
    client_max: Option<u32>,
    keys: &[&str],
    resolved: &Resolved<'_>,
) -> TokenEstimate {
    let transform = resolved.transform();
    let read = |map: &serde_json::Map<String, serde_json::Value>| {
        keys.iter().find_map(|k| map.get(*k)?.as_u64()).and_then(|n| u32::try_from(n).ok())
    };
    let max = transform
        .and_then(|t| read(&t.body_overrides))
        .or(client_max)
        .or_else(|| transform.and_then(|t| read(&t.body_defaults)));
    let prompt = TokenEstimate::input_only(text_bytes).prompt;
    match max {
        Some(max) => TokenEstimate { prompt, output: u64::from(max), capped: false },
        None => {
            let provider = resolved.targets.first().map(|t| t.provider);
            let reserve = resolved
                .route
                .and_then(|(_, r)| r.default_max_output_tokens)
                .or_else(|| provider.and_then(|p| p.default_max_output_tokens.or(p.default_max_tokens)))
                .unwrap_or(DEFAULT_OUTPUT_RESERVE);
            TokenEstimate { prompt, output: u64::from(reserve), capped: true }
        }
    }
}

/// The limiters of a request: its route's (per key or shared), then its key's.
fn limiters(config: &Config, route: Option<(&str, &RouteConfig)>, principal: &PrincipalConfig) -> Vec<Limiter> {
    let route_limit = route.and_then(|(name, r)| Some((name, r.rate_limit.as_ref()?)));
    let key = config.keys.iter().find(|k| std::ptr::eq(&k.principal, principal));
    if route_limit.is_none() && key.is_none_or(|k| k.rate_limit.is_none()) {
        return Vec::new(); // the common case: no name to build
    }
    // A key is named by a prefix of its hash: stable, and nothing of the key itself.
    let key_name = key.map_or_else(|| format!("principal:{}", principal.id), |k| k.sha256.chars().take(16).collect());
    let mut out = Vec::new();
    if let Some((route, limit)) = route_limit {
        let (key, label) = match limit.per {
            LimitPer::Key => (format!("route/{route}/key/{key_name}"), format!("route `{route}` per key")),
            LimitPer::Route => (format!("route/{route}"), format!("route `{route}`")),
        };
        out.push(Limiter { key, quota: limit.quota(), label });
    }
    if let Some(quota) = key.and_then(|k| k.rate_limit) {
        out.push(Limiter { key: format!("key/{key_name}"), quota, label: "this key".into() });
    }
    out
}

fn step(now_ms: u64, quota: RateLimitConfig, requests: i64, tokens: i64, force: bool) -> LimitStep {
    LimitStep {
        now_ms,
        requests: quota.requests_per_minute.map(|per_minute| Quota { per_minute, cost: requests }),
        tokens: quota.tokens_per_minute.map(|per_minute| Quota { per_minute, cost: tokens }),
        force,
    }
}

/// Admits a request estimated at `estimate` tokens, or answers 429 with `Retry-After` and the
/// `x-ratelimit-*` headers of the limiter that refused it. A limiter store that fails or does not
/// answer in time lets the request through, with a warning in the log and the trace. `route` is
/// the resolved route, if any; `estimate` is `None` for a request that uses no model tokens (MCP),
/// which token quotas then leave alone.
pub(crate) async fn admit<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    route: Option<(&str, &RouteConfig)>,
    estimate: Option<TokenEstimate>,
) -> Result<Admitted, ApiError> {
    let (host, recorder) = (cx.host, cx.recorder);
    let mut limiters = limiters(cx.config, route, cx.principal);
    if estimate.is_none() {
        limiters.retain_mut(|limiter| {
            limiter.quota.tokens_per_minute = None;
            limiter.quota.requests_per_minute.is_some()
        });
    }
    let estimate = estimate.unwrap_or(TokenEstimate::input_only(0));
    if limiters.is_empty() {
        return Ok(Admitted::default());
    }
    let span = recorder.child(recorder.root(), "rate_limit", SpanKind::Internal);
    let mut admitted: Vec<(&Limiter, Admission, i64)> = Vec::new();
    for limiter in &limiters {
        recorder.set(span, GATEWAY_RATELIMIT_KEY, limiter.label.as_str());
        let estimate = estimate.cost_on(limiter.quota.tokens_per_minute);
        let tokens = i64::try_from(estimate).unwrap_or(i64::MAX);
        if let Some(per_minute) = limiter.quota.tokens_per_minute.filter(|limit| estimate > *limit) {
            refund(host, &admitted);
            recorder.set(span, GATEWAY_RATELIMIT_OUTCOME, "too_large");
            recorder.end(span);
            let label = limiter.label.clone();
            return Err(LimitError::TooLarge { label, estimate, per_minute }.into());
        }
        let Some(admission) = ask(&**host, limiter, tokens, (recorder, span)).await else { continue };
        if !admission.allowed {
            refund(host, &admitted);
            recorder.set(span, GATEWAY_RATELIMIT_OUTCOME, "refused");
            recorder.end(span);
            return Err(refused(limiter, &admission).into());
        }
        admitted.push((limiter, admission, tokens));
    }
    recorder.set(span, GATEWAY_RATELIMIT_OUTCOME, "admitted");
    recorder.end(span);
    let reservations: Vec<Reservation> = admitted
        .iter()
        .filter_map(|(limiter, _, tokens)| {
            let per_minute = limiter.quota.tokens_per_minute?;
            Some(Reservation { key: limiter.key.clone(), per_minute, estimate: u64::try_from(*tokens).unwrap_or(0) })
        })
        .collect();
    if !reservations.is_empty() {
        let host = Rc::clone(host);
        recorder.on_settle(Box::new(move |used| Box::pin(settle(host, reservations, used))));
    }
    Ok(Admitted { headers: ratelimit::headers(&tightest(admitted.iter().map(|(_, a, _)| *a))) })
}

/// One limiter's answer for a request of `tokens`; `None` (admitted, with a warning) when the
/// limiter fails or does not answer in time: an outage of the store does not stop traffic.
async fn ask<H: Host + 'static>(
    host: &H,
    limiter: &Limiter,
    tokens: i64,
    (recorder, span): (&Recorder<H>, SpanRef),
) -> Option<Admission> {
    let step = step(host.now_millis(), limiter.quota, 1, tokens, false);
    let why = match with_timeout(host, LIMIT_TIMEOUT_MS, host.rate_limit(&limiter.key, &step)).await {
        Some(Ok(admission)) => return Some(admission),
        Some(Err(e)) => e.to_string(),
        None => format!("no answer within {LIMIT_TIMEOUT_MS} ms"),
    };
    host.log(
        LogLevel::Warn,
        &serde_json::json!({"msg": "rate limiter unavailable, request admitted", "limiter": limiter.label, "error": why})
            .to_string(),
    );
    recorder.set(span, GATEWAY_RATELIMIT_ERROR, why);
    None
}

/// Why a request is not admitted: a 429, the client's (its key's or route's quota).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitError {
    /// Larger than a token quota allows at all: no `Retry-After`, waiting does not make it fit.
    #[error(
        "request too large for {label}: an estimated {estimate} tokens, and the limit is {per_minute} tokens per minute"
    )]
    TooLarge { label: String, estimate: u64, per_minute: u64 },
    /// A quota ran out: which (`requests` or `tokens`), and when to come back.
    #[error("rate limit reached for {label}: {quota}; retry after {seconds} s")]
    Exhausted { label: String, kind: &'static str, quota: String, seconds: u64, headers: Vec<(&'static str, String)> },
}

impl PhaseError for LimitError {
    fn class(&self) -> ErrorClass {
        let kind = match self {
            LimitError::TooLarge { .. } => "tokens",
            LimitError::Exhausted { kind, .. } => kind,
        };
        ErrorClass::client(StatusCode::TOO_MANY_REQUESTS, kind, Some("rate_limit_exceeded"))
    }
    fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            LimitError::TooLarge { per_minute, .. } => vec![("x-ratelimit-limit-tokens", per_minute.to_string())],
            LimitError::Exhausted { headers, .. } => headers.clone(),
        }
    }
}

/// The 429 for a refusal: which quota ran out, and when to come back.
fn refused(limiter: &Limiter, admission: &Admission) -> LimitError {
    let requests_out = admission.requests.is_some_and(|w| w.remaining == 0);
    let (kind, quota) = match (requests_out, limiter.quota.requests_per_minute, limiter.quota.tokens_per_minute) {
        (true, Some(rpm), _) | (false, Some(rpm), None) => ("requests", format!("{rpm} requests per minute")),
        (_, _, Some(tpm)) => ("tokens", format!("{tpm} tokens per minute")),
        (_, None, None) => ("requests", "its quota".to_owned()),
    };
    let seconds = admission.retry_after_ms.div_ceil(1000).max(1);
    let headers = ratelimit::headers(admission);
    LimitError::Exhausted { label: limiter.label.clone(), kind, quota, seconds, headers }
}

/// Of several admissions, per quota the window with the least left: what the client can count on.
fn tightest(admissions: impl Iterator<Item = Admission>) -> Admission {
    let mut out = Admission { allowed: true, requests: None, tokens: None, retry_after_ms: 0 };
    for admission in admissions {
        for (mine, theirs) in [(&mut out.requests, admission.requests), (&mut out.tokens, admission.tokens)] {
            if let Some(theirs) = theirs {
                if mine.is_none_or(|m| theirs.remaining < m.remaining) {
                    *mine = Some(theirs);
                }
            }
        }
    }
    out
}

/// Gives back what earlier limiters took for a request a later one refused (after the response).
fn refund<H: Host + 'static>(host: &Rc<H>, admitted: &[(&Limiter, Admission, i64)]) {
    for (limiter, _, tokens) in admitted {
        let step = step(host.now_millis(), limiter.quota, -1, -*tokens, true);
        let (key, owner) = (limiter.key.clone(), Rc::clone(host));
        host.defer(Box::pin(async move {
            apply_forced(&*owner, &key, &step).await;
        }));
    }
}

/// Settles reservations from the tokens a request actually used: the difference is charged (or
/// given back) on each limiter that reserved them.
pub(crate) async fn settle<H: Host>(host: Rc<H>, reservations: Vec<Reservation>, used: u64) {
    for reservation in reservations {
        let difference = i128::from(used) - i128::from(reservation.estimate);
        let Ok(cost) = i64::try_from(difference) else { continue };
        if cost == 0 {
            continue;
        }
        let step = LimitStep {
            now_ms: host.now_millis(),
            requests: None,
            tokens: Some(Quota { per_minute: reservation.per_minute, cost }),
            force: true,
        };
        apply_forced(&*host, &reservation.key, &step).await;
    }
}

async fn apply_forced<H: Host>(host: &H, key: &str, step: &LimitStep) {
    let outcome = with_timeout(host, LIMIT_TIMEOUT_MS, host.rate_limit(key, step)).await;
    if !matches!(outcome, Some(Ok(_))) {
        host.log(
            LogLevel::Warn,
            &serde_json::json!({"msg": "rate limiter settlement lost", "limiter": key}).to_string(),
        );
    }
}
