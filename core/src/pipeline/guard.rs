//! Guardrails in the pipeline: at each lifecycle point the detectors (and the remote guard
//! service, where configured) produce signals, Cedar decides, and the outcome is enforced (deny,
//! redact, alert) or, in monitor mode, only recorded. Nothing runs where nothing is in scope.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value};

use super::body::{read_whole, with_timeout};
use super::context::RequestContext;
use super::recorder::Recorder;
use crate::config::{FailureMode, GuardMode, PrincipalConfig, RemoteGuardConfig};
use crate::error::{ApiError, ErrorClass, PhaseError};
use crate::guard::remote::{GuardAnswer, GuardMetadata, GuardRequest};
use crate::guard::{detect, redact, Category, Detectors, Finding, Signals};
use crate::host::{Body, Host, LogLevel};
use crate::openai::ChatChunk;
use crate::policy::{
    Action, CompiledPolicies, Facts, PolicyRequest, Resource, Scope, ScopedPolicies, Verdict, COMPILED_KV_KEY,
};
use crate::providers::{StreamEvent, Target};
use crate::stream_guard::StreamGuard;
use crate::stream_guard::{Decide, Denial};
use crate::trace::attrs::*;
use crate::trace::{SpanKind, SpanRef};

/// The response header that carries alerts, redactions and monitor-mode findings.
pub(crate) const GUARDRAIL_HEADER: &str = "x-gateway-guardrail";

/// What a remote guard answer may take at most.
const REMOTE_ANSWER_BYTES: usize = 64 * 1024;

/// One lifecycle point to decide.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point<'a> {
    pub action: Action,
    pub resource: Resource<'a>,
    pub facts: Facts<'a>,
}

/// The guardrails of one request.
pub(crate) struct Guard<H: Host + 'static> {
    host: Rc<H>,
    recorder: Recorder<H>,
    policies: Rc<ScopedPolicies>,
    principal: PrincipalConfig,
    detectors: Detectors,
    mode: GuardMode,
    hold_chars: usize,
    remote: Option<RemoteGuardConfig>,
    request_id: String,
    /// The route the request came through, for the Cedar resource and context.
    route: Option<String>,
    /// Alerts, redactions and monitor-mode outcomes, for the response header.
    flags: RefCell<Vec<String>>,
    /// The client's MCP session, told to the remote guard service.
    session: RefCell<Option<String>>,
}

/// The payload may pass; `redacted[i]` replaces text `i` where it changed.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub redacted: Vec<Option<String>>,
}

impl Checked {
    /// Writes the redactions into the texts they were made from.
    fn write_back(self, slots: Vec<&mut String>) {
        for (slot, redacted) in slots.into_iter().zip(self.redacted) {
            if let Some(redacted) = redacted {
                *slot = redacted;
            }
        }
    }
}

/// How long a cold scope waits for the compiled policies before parsing its sets instead.
const COMPILED_READ_TIMEOUT_MS: u64 = 250;

/// Why the guardrails stop a request or an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GuardError {
    /// A policy denied it: the client's (what it asked, or what its request made the model say).
    #[error("denied by policy `{policy}` ({})", action.name())]
    Denied { action: Action, policy: String },
    /// The stored policies do not parse: the gateway's (the log names the set).
    #[error("the stored policies do not parse; the gateway log names the policy set")]
    PoliciesUnparsable,
    /// The remote guard service failed and the route fails closed: the gateway's.
    #[error("the guard service could not be consulted: {0}")]
    ServiceUnavailable(String),
}

impl PhaseError for GuardError {
    fn class(&self) -> ErrorClass {
        match self {
            GuardError::Denied { .. } => {
                ErrorClass::client(StatusCode::FORBIDDEN, "permission_error", Some("policy_denied"))
            }
            GuardError::PoliciesUnparsable => ErrorClass::gateway("gateway_unavailable"),
            GuardError::ServiceUnavailable(_) => ErrorClass::gateway("guard_unavailable"),
        }
    }
}

/// The refusal of a deny: `403`, naming the policy.
pub(crate) fn denied(action: Action, policy: &str) -> ApiError {
    GuardError::Denied { action, policy: policy.to_owned() }.into()
}

impl<H: Host + 'static> Guard<H> {
    /// The guard for a request in `scope`; `None` when no policy is configured, the default is
    /// allow and there is no remote guard service (then no detector ever runs).
    pub async fn new(
        cx: &RequestContext<'_, H>,
        scope: Scope<'_>,
        mode: Option<GuardMode>,
    ) -> Result<Option<Rc<Guard<H>>>, ApiError> {
        let (host, config, recorder) = (cx.host, cx.config, cx.recorder);
        let route = match scope {
            Scope::Route(name) => Some(name.to_owned()),
            _ => None,
        };
        // A scope loaded for the first time in this instance: from the compiled form, where the
        // configuration's push stored one, rather than by parsing (see `policy::compile`).
        let compiled = if cx.policies.pending(config, scope) {
            // Parsing instead costs milliseconds at most: a slow store is not waited for long.
            with_timeout(host.as_ref(), COMPILED_READ_TIMEOUT_MS, host.kv_get(COMPILED_KV_KEY))
                .await
                .and_then(Result::ok)
                .flatten()
                .and_then(CompiledPolicies::new)
        } else {
            None
        };
        let (policies, loaded) = cx.policies.load(config, scope, compiled.as_ref()).map_err(|e| {
            host.log(
                LogLevel::Error,
                &format!("{{\"msg\":\"stored policies refused\",\"error\":{:?}}}", e.to_string()),
            );
            ApiError::from(GuardError::PoliciesUnparsable)
        })?;
        if loaded {
            recorder.set(recorder.root(), GATEWAY_POLICY_SETS_COMPILED, policies.compiled_sets());
            recorder.set(recorder.root(), GATEWAY_POLICY_SETS_PARSED, policies.parsed_sets());
        }
        let remote = config.guardrails.remote.clone();
        if remote.is_none() && !crate::policy::Action::ALL.iter().any(|a| policies.applies(*a)) {
            return Ok(None);
        }
        Ok(Some(Rc::new(Guard {
            host: Rc::clone(host),
            recorder: recorder.clone(),
            policies,
            principal: cx.principal.clone(),
            detectors: config.guardrails.detectors.into(),
            mode: mode.unwrap_or(config.guardrails.mode),
            hold_chars: config.guardrails.stream_hold_back_chars,
            remote,
            request_id: recorder.trace_id_hex(),
            route,
            flags: RefCell::new(Vec::new()),
            session: RefCell::new(None),
        })))
    }

    /// The client's MCP session id, for the remote guard service's `session`.
    pub fn set_session(&self, session: Option<&str>) {
        *self.session.borrow_mut() = session.map(str::to_owned);
    }

    /// The detector families to run at `action`: the configured ones some policy there observes.
    fn detectors(&self, action: Action) -> Detectors {
        self.policies.detectors(action, self.detectors)
    }

    /// Whether anything is to be decided at `action`.
    pub fn wants(&self, action: Action) -> bool {
        self.policies.applies(action) || self.remote.is_some()
    }

    /// Whether model output or emitted tool calls are decided (by policies, or by the remote
    /// guard service, which is asked at the output points too).
    pub fn wants_output(&self) -> bool {
        self.remote.is_some()
            || self.policies.applies(Action::ProcessResponse)
            || self.policies.applies(Action::CallTool)
    }

    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// Inspects `texts` (one payload) at `point`, consulting the remote guard service too.
    async fn check(&self, point: Point<'_>, texts: &[&str]) -> Result<Checked, ApiError> {
        if !self.wants(point.action) {
            return Ok(Checked::default());
        }
        let answer = self.remote_answer(&point, texts).await?;
        self.check_with(point, texts, answer.as_ref())
    }

    /// The remote guard service's answer about `texts` at `point`, when it is configured and there
    /// is something to read.
    pub async fn remote_answer(&self, point: &Point<'_>, texts: &[&str]) -> Result<Option<GuardAnswer>, ApiError> {
        match self.remote.as_ref().filter(|_| texts.iter().any(|t| !t.trim().is_empty())) {
            Some(remote) if self.wants(point.action) => self.ask_remote(remote, point, texts).await,
            _ => Ok(None),
        }
    }

    /// Inspects `texts` at `point` with the remote service's `answer` already at hand.
    fn check_with(&self, point: Point<'_>, texts: &[&str], answer: Option<&GuardAnswer>) -> Result<Checked, ApiError> {
        if !self.wants(point.action) {
            return Ok(Checked::default());
        }
        let detectors = self.detectors(point.action);
        let findings: Vec<Vec<Finding>> = texts.iter().map(|t| detect::scan(t, detectors)).collect();
        let mut signals = Signals::default();
        findings.iter().for_each(|f| signals.add(f));
        if let Some(answer) = answer {
            answer.merge_into(&mut signals);
        }
        self.conclude(&point, &signals, texts, &findings)
    }

    /// As [`check_slots`](Self::check_slots), with the remote service's answer already asked
    /// (one call for many payloads at one point: every tool result of a request).
    pub fn check_slots_with(
        &self,
        point: Point<'_>,
        slots: Vec<&mut String>,
        answer: Option<&GuardAnswer>,
    ) -> Result<(), ApiError> {
        let copies: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
        let texts: Vec<&str> = copies.iter().map(String::as_str).collect();
        self.check_with(point, &texts, answer)?.write_back(slots);
        Ok(())
    }

    /// Checks the texts in `slots` (decided even when there are none: policies on the principal,
    /// model or route still apply) and writes redactions back into them.
    pub async fn check_slots(&self, point: Point<'_>, slots: Vec<&mut String>) -> Result<(), ApiError> {
        let copies: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
        let texts: Vec<&str> = copies.iter().map(String::as_str).collect();
        self.check(point, &texts).await?.write_back(slots);
        Ok(())
    }

    /// As [`check_slots`](Self::check_slots), without the remote service.
    pub fn check_slots_now(&self, point: Point<'_>, slots: Vec<&mut String>) -> Result<(), ApiError> {
        let copies: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
        let texts: Vec<&str> = copies.iter().map(String::as_str).collect();
        self.check_now(point, &texts)?.write_back(slots);
        Ok(())
    }

    /// As [`check`](Self::check), without the remote service (for decisions the service is not
    /// asked about: each entry of an MCP list).
    fn check_now(&self, point: Point<'_>, texts: &[&str]) -> Result<Checked, ApiError> {
        if !self.policies.applies(point.action) {
            return Ok(Checked::default());
        }
        let detectors = self.detectors(point.action);
        let findings: Vec<Vec<Finding>> = texts.iter().map(|t| detect::scan(t, detectors)).collect();
        let mut signals = Signals::default();
        findings.iter().for_each(|f| signals.add(f));
        self.conclude(&point, &signals, texts, &findings)
    }

    fn conclude(
        &self,
        point: &Point<'_>,
        signals: &Signals,
        texts: &[&str],
        findings: &[Vec<Finding>],
    ) -> Result<Checked, ApiError> {
        let families = self.decide_point(point, signals).map_err(|policy: String| denied(point.action, &policy))?;
        let redacted = if families.is_empty() {
            Vec::new()
        } else {
            texts.iter().zip(findings).map(|(text, found)| redact::redact(text, found, &families)).collect()
        };
        Ok(Checked { redacted })
    }

    /// Asks Cedar, records the decision on a span, and applies the mode: `Err(policy)` to deny,
    /// else the families to redact.
    fn decide_point(&self, point: &Point<'_>, signals: &Signals) -> Result<Vec<Category>, String> {
        let mut verdict = if self.policies.applies(point.action) {
            self.policies.evaluate(&PolicyRequest {
                principal: &self.principal,
                action: point.action,
                resource: point.resource,
                facts: point.facts,
                signals,
            })
        } else {
            Verdict::default()
        };
        if signals.remote_deny && verdict.denied_by.is_none() {
            verdict.denied_by = Some("gateway.remote_guard".into());
        }
        self.record(point.action, signals, &verdict);
        if self.mode == GuardMode::Monitor {
            if let Some(policy) = &verdict.denied_by {
                self.flag(format!("monitor:deny:{policy}"));
            }
            for (policy, _) in &verdict.redact {
                self.flag(format!("monitor:redact:{policy}"));
            }
            for policy in &verdict.alerts {
                self.flag(format!("monitor:alert:{policy}"));
            }
            return Ok(Vec::new());
        }
        if let Some(policy) = verdict.denied_by {
            return Err(policy);
        }
        for policy in &verdict.alerts {
            self.flag(format!("alert:{policy}"));
        }
        for (policy, _) in &verdict.redact {
            self.flag(format!("redact:{policy}"));
        }
        Ok(verdict.redacted_families())
    }

    fn flag(&self, flag: String) {
        let mut flags = self.flags.borrow_mut();
        if !flags.contains(&flag) {
            flags.push(flag);
        }
    }

    fn record(&self, action: Action, signals: &Signals, verdict: &Verdict) {
        let r = &self.recorder;
        let span = r.child(r.root(), format!("guardrail {}", action.name()), SpanKind::Internal);
        r.set(span, GATEWAY_GUARDRAIL_ACTION, action.name());
        r.set(span, GATEWAY_GUARDRAIL_MODE, if self.mode == GuardMode::Monitor { "monitor" } else { "enforce" });
        r.set(span, GATEWAY_GUARDRAIL_SIGNALS, signals.kinds.iter().cloned().collect::<Vec<_>>());
        r.set(span, GATEWAY_GUARDRAIL_MAX_SCORE, i64::from(signals.max_score()));
        let (decision, policies): (&str, Vec<String>) = match &verdict.denied_by {
            Some(policy) => ("deny", vec![policy.clone()]),
            None if !verdict.redact.is_empty() => ("redact", verdict.redact.iter().map(|(p, _)| p.clone()).collect()),
            None if !verdict.alerts.is_empty() => ("alert", verdict.alerts.clone()),
            None => ("allow", Vec::new()),
        };
        r.set(span, GATEWAY_POLICY_DECISION, decision);
        if !policies.is_empty() {
            r.set(span, GATEWAY_POLICY_DETERMINING, policies.clone());
        }
        if !verdict.errors.is_empty() {
            r.set(span, GATEWAY_POLICY_ERRORS, verdict.errors.clone());
        }
        if decision != "allow" {
            let mode = if self.mode == GuardMode::Monitor { " (monitor: not enforced)" } else { "" };
            r.note(format!("{} {decision} {}{mode}", action.name(), policies.join(",")));
            r.audit(
                span,
                format!("guardrail {} {decision}", action.name()),
                vec![
                    (GATEWAY_GUARDRAIL_ACTION, action.name().into()),
                    (GATEWAY_POLICY_DECISION, decision.into()),
                    (GATEWAY_POLICY_DETERMINING, policies.into()),
                    (GATEWAY_PRINCIPAL_ID, self.principal.id.clone().into()),
                ],
            );
        }
        r.end(span);
    }

    /// Sets the guardrail header (alerts, redactions, monitor-mode outcomes) on a response.
    pub fn mark(&self, response: &mut http::Response<Body>) {
        let flags = self.flags.borrow();
        if let Some(value) = (!flags.is_empty()).then(|| HeaderValue::from_str(&flags.join(", ")).ok()).flatten() {
            response.headers_mut().insert(GUARDRAIL_HEADER, value);
        }
    }

    async fn ask_remote(
        &self,
        remote: &RemoteGuardConfig,
        point: &Point<'_>,
        texts: &[&str],
    ) -> Result<Option<GuardAnswer>, ApiError> {
        let content = texts.join("\n\n");
        let f = &point.facts;
        let nonempty = |s: &str| (!s.is_empty()).then_some(s.to_owned());
        let (tool, model, route, server) = (nonempty(f.tool), nonempty(f.model), nonempty(f.route), nonempty(f.server));
        let session = self.session.borrow().clone();
        let body = GuardRequest {
            content: &content,
            content_type: match point.action {
                Action::ProcessPrompt => "prompt",
                Action::CallTool => "tool_call",
                Action::ProcessResponse => "response",
                _ => "tool_response",
            },
            action: point.action.name(),
            tool: tool.as_deref(),
            model: model.as_deref(),
            session: session.as_deref(),
            metadata: GuardMetadata {
                principal: &self.principal.id,
                principal_kind: crate::policy::principal_kind_name(self.principal.kind),
                route: route.as_deref(),
                server: server.as_deref(),
                request_id: &self.request_id,
            },
        };
        let span = self.recorder.child(self.recorder.root(), "guardrail remote", SpanKind::Client);
        let outcome = self.call_remote(remote, &body).await;
        let answer = match outcome {
            Ok(answer) => {
                self.recorder.set(span, GATEWAY_GUARDRAIL_REMOTE, format!("{:?}", answer.decision).to_lowercase());
                self.recorder.end(span);
                return Ok(Some(answer));
            }
            Err(problem) => problem,
        };
        self.recorder.fail(span, answer.clone());
        let outcome = self.remote_failed(remote, span, &answer);
        self.recorder.end(span);
        outcome
    }

    /// A guard service that could not be consulted: skipped (fail open) or refused (fail closed).
    fn remote_failed(
        &self,
        remote: &RemoteGuardConfig,
        span: SpanRef,
        answer: &str,
    ) -> Result<Option<GuardAnswer>, ApiError> {
        match remote.on_failure {
            FailureMode::Open => {
                self.recorder.set(span, GATEWAY_GUARDRAIL_REMOTE, "failed_open");
                self.recorder.note(format!("guard service failed open: {answer}"));
                self.host.log(
                    LogLevel::Warn,
                    &format!("{{\"msg\":\"guard service failed; continuing (fail open)\",\"error\":{answer:?}}}"),
                );
                Ok(None)
            }
            FailureMode::Closed if self.mode == GuardMode::Monitor => {
                // Monitor mode never blocks: it records that enforce would have refused.
                self.recorder.set(span, GATEWAY_GUARDRAIL_REMOTE, "failed_closed_monitored");
                self.flag("monitor:guard_unavailable".to_owned());
                Ok(None)
            }
            FailureMode::Closed => {
                self.recorder.set(span, GATEWAY_GUARDRAIL_REMOTE, "failed_closed");
                Err(GuardError::ServiceUnavailable(answer.to_string()).into())
            }
        }
    }

    async fn call_remote(&self, remote: &RemoteGuardConfig, body: &GuardRequest<'_>) -> Result<GuardAnswer, String> {
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let mut request = http::Request::new(Body::Full(Bytes::from(bytes)));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = remote.url.parse().map_err(|_| "the guard service URL is not valid".to_owned())?;
        let headers = request.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secret) = remote.api_key_secret.as_deref() {
            let key = self.host.secret(secret).ok_or_else(|| format!("the secret `{secret}` is not set"))?;
            let value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| "the guard service key is not a valid header".to_owned())?;
            headers.insert(http::header::AUTHORIZATION, value);
        }
        let timeout = remote.timeout_ms;
        let call = async {
            let response = self.host.fetch(request).await.map_err(|e| format!("unreachable: {e}"))?;
            let status = response.status();
            let body = read_whole(&*self.host, response.into_body(), REMOTE_ANSWER_BYTES, timeout)
                .await
                .map_err(|_| "its answer could not be read".to_owned())?;
            if !status.is_success() {
                return Err(format!("it answered {status}"));
            }
            GuardAnswer::parse(&body)
        };
        with_timeout(&*self.host, timeout, call).await.unwrap_or_else(|| Err(format!("no answer within {timeout} ms")))
    }
}

/// The stream guard's decisions go through the request's guard.
pub(crate) struct StreamDecider<H: Host + 'static> {
    pub guard: Rc<Guard<H>>,
    pub model: String,
    pub provider: String,
    pub route: Option<String>,
}

impl<H: Host + 'static> Decide for StreamDecider<H> {
    fn decide(&mut self, action: Action, signals: &Signals, tool: Option<(&str, &str)>) -> Verdict {
        let (name, arguments) = tool.unwrap_or_default();
        let resource = match action {
            Action::CallTool => Resource::Tool { name, server: None },
            _ => Resource::Model { name: &self.model, provider: &self.provider, route: self.route.as_deref() },
        };
        let facts = Facts {
            model: &self.model,
            provider: &self.provider,
            route: self.route.as_deref().unwrap_or_default(),
            tool: name,
            arguments,
            streaming: true,
            phase: "output",
            ..Facts::default()
        };
        let point = Point { action, resource, facts };
        match self.guard.decide_point(&point, signals) {
            Err(policy) => Verdict { denied_by: Some(policy), ..Verdict::default() },
            Ok(families) if families.is_empty() => Verdict::default(),
            Ok(families) => Verdict { redact: vec![(String::new(), families)], ..Verdict::default() },
        }
    }
}

impl<H: Host + 'static> Clone for StreamDecider<H> {
    fn clone(&self) -> Self {
        StreamDecider {
            guard: Rc::clone(&self.guard),
            model: self.model.clone(),
            provider: self.provider.clone(),
            route: self.route.clone(),
        }
    }
}

impl<H: Host + 'static> StreamDecider<H> {
    /// Asks the remote guard service about chat output (one call for all of `output`), and
    /// decides the answer and each tool call in it with the service's signals.
    async fn ask_remote(&mut self, output: OutputTexts) -> Result<(), ApiError> {
        let guard = Rc::clone(&self.guard);
        let Some(remote) = guard.remote.as_ref() else { return Ok(()) };
        let texts = output.texts();
        if texts.iter().all(|t| t.trim().is_empty()) {
            return Ok(());
        }
        let resource = Resource::Model { name: &self.model, provider: &self.provider, route: self.route.as_deref() };
        let facts = Facts {
            model: &self.model,
            provider: &self.provider,
            route: self.route.as_deref().unwrap_or_default(),
            phase: "output",
            ..Facts::default()
        };
        let point = Point { action: Action::ProcessResponse, resource, facts };
        let Some(answer) = guard.ask_remote(remote, &point, &texts).await? else { return Ok(()) };
        let mut signals = Signals::default();
        answer.merge_into(&mut signals);
        if let Some(policy) = self.decide(Action::ProcessResponse, &signals, None).denied_by {
            return Err(denied(Action::ProcessResponse, &policy));
        }
        for (name, arguments) in output.calls.values() {
            if let Some(policy) = self.decide(Action::CallTool, &signals, Some((name, arguments))).denied_by {
                return Err(denied(Action::CallTool, &policy));
            }
        }
        Ok(())
    }
}

/// Chat output as the remote guard service reads it: each choice's text per field, and each tool
/// call whole (stream deltas are joined, so the service never reads a word cut in two).
#[derive(Debug, Default)]
pub(crate) struct OutputTexts {
    texts: std::collections::BTreeMap<(u64, &'static str), String>,
    /// Per (choice, tool index): name and arguments.
    calls: std::collections::BTreeMap<(u64, u64), (String, String)>,
    /// Characters of text and arguments added so far.
    chars: usize,
}

impl OutputTexts {
    pub fn of(value: &Value) -> OutputTexts {
        let mut out = OutputTexts::default();
        out.add(value);
        out
    }

    /// Adds what a whole completion carries (`choices[].message`).
    pub fn add(&mut self, value: &Value) {
        for choice in value.get("choices").and_then(Value::as_array).into_iter().flatten() {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            if let Some(message) = choice.get("message").or_else(|| choice.get("delta")).and_then(Value::as_object) {
                self.add_message(index, message);
            }
        }
    }

    /// Adds what a chunk carries (`choices[].delta`).
    pub fn add_chunk(&mut self, chunk: &ChatChunk) {
        for choice in &chunk.choices {
            self.add_message(choice.index, &choice.delta);
        }
    }

    fn add_message(&mut self, index: u64, message: &Map<String, Value>) {
        let transcript = message.get("audio").and_then(|audio| audio.get("transcript"));
        let fields = ["content", "reasoning_content", "refusal"].map(|field| (field, message.get(field)));
        for (field, value) in fields.into_iter().chain([("audio", transcript)]) {
            if let Some(Value::String(text)) = value {
                self.chars += text.chars().count();
                self.texts.entry((index, field)).or_default().push_str(text);
            }
        }
        // Stream deltas name their call's index; a whole message's calls are its list.
        let calls = message.get("tool_calls").and_then(Value::as_array).into_iter().flatten();
        for (position, call) in (0_u64..).zip(calls) {
            let tool = call.get("index").and_then(Value::as_u64).unwrap_or(position);
            self.add_call((index, tool), call.get("function"));
        }
        if let Some(function) = message.get("function_call") {
            self.add_call((index, u64::MAX), Some(function));
        }
    }

    fn add_call(&mut self, key: (u64, u64), function: Option<&Value>) {
        let Some(function) = function else { return };
        let (name, arguments) = self.calls.entry(key).or_default();
        if let Some(n) = function.get("name").and_then(Value::as_str).filter(|_| name.is_empty()) {
            n.clone_into(name);
        }
        if let Some(a) = function.get("arguments").and_then(Value::as_str) {
            arguments.push_str(a);
            self.chars += a.chars().count();
        }
    }

    /// Characters held (text and arguments).
    pub fn chars(&self) -> usize {
        self.chars
    }

    fn texts(&self) -> Vec<&str> {
        self.texts.values().map(String::as_str).chain(self.calls.values().map(|(_, a)| a.as_str())).collect()
    }
}

/// The remote guard service over one answer's output: asked once about a whole answer, or once
/// per window of a stream's released output.
pub(crate) struct RemoteOutput {
    /// A stream's output is asked about once this many characters are held (or it ends).
    pub window_chars: usize,
    ask: Box<dyn Fn(OutputTexts) -> futures::future::LocalBoxFuture<'static, Result<(), ApiError>>>,
}

impl RemoteOutput {
    /// `Err` is the refusal (a deny, or a service that failed closed).
    pub async fn ask(&self, output: OutputTexts) -> Result<(), ApiError> {
        (self.ask)(output).await
    }
}

/// A whole answer through the output guardrails: decided and redacted in place, then the remote
/// guard service is asked about what would be delivered.
pub(crate) async fn guard_whole(
    output: &dyn OutputGuard,
    target: &Target<'_>,
    completion: &mut Value,
) -> Result<(), ApiError> {
    output.whole(target, completion)?;
    match output.remote(target) {
        Some(remote) => remote.ask(OutputTexts::of(completion)).await,
        None => Ok(()),
    }
}

/// The error that ends a denied stream.
pub(crate) fn stream_denied(denial: &Denial) -> ApiError {
    denied(denial.action, &denial.policy)
}

/// Output guardrails for chat answers, as the attempts loop sees them (not generic over the host).
pub(crate) trait OutputGuard {
    /// A guard for the stream from `target`, when model output or tool calls are inspected.
    fn for_stream(&self, target: &Target<'_>) -> Option<(StreamGuard, Box<dyn Decide>)>;
    /// Inspects a whole completion from `target`: redacts in place, or refuses it.
    fn whole(&self, target: &Target<'_>, completion: &mut Value) -> Result<(), ApiError>;
    /// The remote guard service over output from `target`, when one is configured.
    fn remote(&self, target: &Target<'_>) -> Option<RemoteOutput>;
}

fn decider<H: Host + 'static>(guard: &Rc<Guard<H>>, target: &Target<'_>) -> StreamDecider<H> {
    StreamDecider {
        guard: Rc::clone(guard),
        model: format!("{}/{}", target.provider_name, target.model),
        provider: target.provider_name.to_owned(),
        route: guard.route.clone(),
    }
}

impl<H: Host + 'static> OutputGuard for Rc<Guard<H>> {
    fn for_stream(&self, target: &Target<'_>) -> Option<(StreamGuard, Box<dyn Decide>)> {
        if !self.wants_output() {
            return None;
        }
        // One scanner for the answer's text and its tool calls' arguments.
        let detectors = self.detectors(Action::ProcessResponse).or(self.detectors(Action::CallTool));
        let guard = StreamGuard::new(self.hold_chars, detectors);
        Some((guard, Box::new(decider(self, target))))
    }

    fn remote(&self, target: &Target<'_>) -> Option<RemoteOutput> {
        let window_chars = self.remote.as_ref()?.stream_window_chars.max(1);
        let decider = decider(self, target);
        let ask = move |output: OutputTexts| {
            let mut decider = decider.clone();
            Box::pin(async move { decider.ask_remote(output).await }) as futures::future::LocalBoxFuture<'static, _>
        };
        Some(RemoteOutput { window_chars, ask: Box::new(ask) })
    }

    fn whole(&self, target: &Target<'_>, completion: &mut Value) -> Result<(), ApiError> {
        if !self.wants_output() {
            return Ok(());
        }
        let mut decide = decider(self, target);
        let choices = completion.get_mut("choices").and_then(Value::as_array_mut).into_iter().flatten();
        for choice in choices {
            let mut redacted_any = false;
            let Some(message) = choice.get_mut("message").and_then(Value::as_object_mut) else { continue };
            // The answer, its reasoning and a refusal: one decision over all of their findings.
            let mut texts: Vec<(&mut String, Vec<crate::guard::Finding>)> = message
                .iter_mut()
                .filter_map(|(key, value)| match (key.as_str(), value) {
                    ("content" | "reasoning_content" | "refusal", Value::String(text)) => Some(text),
                    // Spoken answers carry their words as a transcript.
                    ("audio", Value::Object(audio)) => match audio.get_mut("transcript") {
                        Some(Value::String(text)) => Some(text),
                        _ => None,
                    },
                    _ => None,
                })
                .map(|text| {
                    let found = detect::scan(text, self.detectors(Action::ProcessResponse));
                    (text, found)
                })
                .collect();
            if !texts.is_empty() {
                let mut signals = Signals::default();
                texts.iter().for_each(|(_, found)| signals.add(found));
                let verdict = decide.decide(Action::ProcessResponse, &signals, None);
                if let Some(policy) = verdict.denied_by {
                    return Err(denied(Action::ProcessResponse, &policy));
                }
                let families = verdict.redacted_families();
                for (text, found) in texts.iter_mut() {
                    if let Some(redacted) = redact::redact(text, found, &families) {
                        **text = redacted;
                        redacted_any = true;
                    }
                }
            }
            // Tool calls, and the legacy functions API's `function_call`: each decided as a call.
            let mut functions: Vec<&mut Value> = Vec::new();
            for (key, value) in message.iter_mut() {
                match key.as_str() {
                    "tool_calls" => functions
                        .extend(value.as_array_mut().into_iter().flatten().filter_map(|call| call.get_mut("function"))),
                    "function_call" => functions.push(value),
                    _ => {}
                }
            }
            for function in functions {
                let Some(function) = function.as_object_mut() else { continue };
                let name = function.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                let Some(Value::String(arguments)) = function.get_mut("arguments") else { continue };
                let found = detect::scan(arguments, self.detectors(Action::CallTool));
                let mut signals = Signals::default();
                signals.add(&found);
                let verdict = decide.decide(Action::CallTool, &signals, Some((&name, arguments)));
                if let Some(policy) = verdict.denied_by {
                    return Err(denied(Action::CallTool, &policy));
                }
                if let Some(redacted) = redact::redact(arguments, &found, &verdict.redacted_families()) {
                    *arguments = redacted;
                }
            }
            if redacted_any {
                // Token log-probabilities would repeat what was redacted.
                if let Some(choice) = choice.as_object_mut() {
                    choice.remove("logprobs");
                }
            }
        }
        Ok(())
    }
}

/// Every string inside `value`, for inspection and in-place redaction.
pub(crate) fn string_leaves_mut<'v>(value: &'v mut Value, out: &mut Vec<&'v mut String>) {
    match value {
        Value::String(text) => out.push(text),
        Value::Array(items) => items.iter_mut().for_each(|item| string_leaves_mut(item, out)),
        Value::Object(map) => map.values_mut().for_each(|item| string_leaves_mut(item, out)),
        _ => {}
    }
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
            texts.add_chunk(chunk);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::OutputTexts;

    #[test]
    fn each_call_of_a_whole_answer_is_its_own_entry_and_stream_deltas_join_per_call() {
        let whole = json!({"choices": [{"index": 0, "message": {"content": "ok", "tool_calls": [
            {"id": "t1", "function": {"name": "search", "arguments": "{\"q\":1}"}},
            {"id": "t2", "function": {"name": "drop_db", "arguments": "{}"}}]}}]});
        let texts = OutputTexts::of(&whole);
        let calls: Vec<_> = texts.calls.values().cloned().collect();
        assert_eq!(calls, [("search".into(), "{\"q\":1}".into()), ("drop_db".into(), "{}".into())]);
        let mut streamed = OutputTexts::default();
        for (index, name, args) in [(0, Some("a"), "{\"x\""), (1, Some("b"), "{}"), (0, None, ":1}")] {
            let mut function = json!({"arguments": args});
            if let Some(name) = name {
                function["name"] = json!(name);
            }
            streamed.add(
                &json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, "function": function}]}}]}),
            );
        }
        let calls: Vec<_> = streamed.calls.values().cloned().collect();
        assert_eq!(calls, [("a".into(), "{\"x\":1}".into()), ("b".into(), "{}".into())]);
    }
}
