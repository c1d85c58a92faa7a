//! `/mcp/{slug}` and `/mcp/{slug}/`: MCP Streamable HTTP to the client and to the registered
//! server, in the client's era or bridged to the server's. Registry checks (unknown slug,
//! disabled server, tools not enabled) come before anything is forwarded; every message the
//! server sends back is inspected on its way, in event streams too.

mod bridge;
mod cache;
mod credentials;
pub(crate) mod hooks;
pub(crate) mod oauth;
mod relay;
mod sessions;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::Value;

use self::credentials::Refusal;
use self::relay::{relay, rpc_response, upstream_request, Conversion, Outbound};
use super::body::read_body;
use super::body::with_timeout;
use super::context::RequestContext;
use super::guard::Guard;
use crate::config::{Config, CredentialConfig, McpProtocol, McpServerConfig, ServerStatus};
use crate::error::ApiError;
use crate::host::{Body, Host};
use crate::mcp::era::{self, Era};
use crate::mcp::{code, redact, GatewaySession, Message, RoutingHeaders, RpcError, SessionKind, ToolGate};
use crate::trace::SpanRef;
use crate::trace::{attrs, Value as TraceValue};

/// Longest wait for the key-value store.
const KV_TIMEOUT_MS: u64 = 2_000;
/// How long a server found to speak only the legacy protocol is remembered as such.
const LEGACY_MARKER_TTL_MS: u64 = 10 * 60 * 1000;

/// KV marker: this server answered a current-era request as only a legacy server does.
fn legacy_marker(slug: &str) -> String {
    format!("mcp:era:{slug}")
}

/// One client request to one registered server.
pub(crate) struct Exchange<'a, H: Host + 'static> {
    /// The client's request (its headers carry a passed-through bearer token).
    pub cx: &'a RequestContext<'a, H>,
    pub slug: &'a str,
    pub server: &'a McpServerConfig,
    pub span: SpanRef,
    pub facts: &'a RefCell<AuditFacts>,
    /// The server's `Authorization`, once resolved for this exchange.
    pub authorization: RefCell<Option<Option<String>>>,
    /// Guardrails and policies in this server's scope, when there are any.
    pub guard: Option<Rc<Guard<H>>>,
    /// The session the client presented, opened and checked (`sessions.rs`).
    pub session: Option<GatewaySession>,
}

/// An API error (from the shared steps: config, key, body) in the JSON-RPC shape MCP clients read.
pub(crate) fn api_error(error: &ApiError) -> http::Response<Body> {
    let rpc = match error.status {
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::BAD_REQUEST => RpcError::new(code::INVALID_REQUEST, &error.message),
        _ => RpcError::new(code::SERVER_ERROR, &error.message),
    };
    let mut response = rpc_response(error.status, &rpc, None);
    crate::error::insert_headers(response.headers_mut(), &error.headers);
    response
}

/// Serves one request for `/mcp/{slug}`.
pub(crate) async fn serve<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    body: Body,
    slug: &str,
) -> http::Response<Body> {
    let (config, parts, recorder) = (cx.config, cx.parts, cx.recorder);
    let started = cx.host.now_millis();
    let facts = RefCell::new(AuditFacts::default());
    let span = recorder.child(recorder.root(), format!("mcp {slug}"), crate::trace::SpanKind::Client);
    recorder.set(span, attrs::GATEWAY_MCP_SERVER, slug);
    let response = match config.mcp_servers.get_key_value(slug) {
        None => {
            facts.borrow_mut().refuse("unknown_server");
            let error = RpcError::new(code::SERVER_ERROR, format!("no MCP server `{slug}` is registered"));
            rpc_response(StatusCode::NOT_FOUND, &error, None)
        }
        Some((_, server)) if server.status == ServerStatus::Disabled => {
            facts.borrow_mut().refuse("server_disabled");
            let error = RpcError::new(code::SERVER_ERROR, format!("MCP server `{slug}` is disabled"));
            rpc_response(StatusCode::SERVICE_UNAVAILABLE, &error, None)
        }
        Some((_, server))
            if matches!(server.credential, CredentialConfig::OauthPassthrough)
                && !passthrough_ready(config, &parts.headers) =>
        {
            facts.borrow_mut().refuse("oauth_token_required");
            if parts.headers.contains_key("x-gateway-key") {
                oauth::unauthorized(&parts.headers, parts.uri.path())
            } else {
                // The client's Authorization is its OAuth token here, so the gateway key travels apart.
                let error = RpcError::new(
                    code::SERVER_ERROR,
                    "send the gateway key in `x-gateway-key`: `Authorization` carries this server's OAuth token",
                );
                rpc_response(StatusCode::UNAUTHORIZED, &error, None)
            }
        }
        Some((slug, server)) => match Guard::new(cx, crate::policy::Scope::Server(slug), server.guard_mode).await {
            Ok(guard) => exchange(cx, body, (slug, server), guard, (span, &facts)).await,
            // Refused before anything was tried: no audit record.
            Err(error) => return api_error(&error),
        },
    };
    let response = match config.mcp_servers.get(slug) {
        Some(server) => answer_challenge(server, &parts.headers, parts.uri.path(), response),
        None => response,
    };
    audit(cx, (slug, span, started), facts.into_inner(), &response);
    response
}

/// One request to a registered, usable server: its guard, the caller's session, the method.
async fn exchange<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    body: Body,
    (slug, server): (&str, &McpServerConfig),
    guard: Option<Rc<Guard<H>>>,
    (span, facts): (SpanRef, &RefCell<AuditFacts>),
) -> http::Response<Body> {
    let (parts, recorder) = (cx.parts, cx.recorder);
    recorder.choose_snapshots(cx.config, server.snapshots);
    let mut exchange =
        Exchange { cx, slug, server, span, facts, authorization: RefCell::new(None), guard, session: None };
    // A session that is not the caller's own is refused before anything is forwarded.
    let opened = match parts.method {
        http::Method::POST | http::Method::GET | http::Method::DELETE => exchange.open_session(parts).await,
        _ => Ok(None),
    };
    exchange.session = opened.as_ref().ok().cloned().flatten();
    if let Some(guard) = &exchange.guard {
        // The remote guard service hears of the session by its opaque sid, never its id.
        guard.set_session(exchange.session.as_ref().map(|s| s.sid.as_str()));
    }
    let mut response = match (opened, &parts.method) {
        (Err(refused), _) => refused,
        (Ok(_), &http::Method::POST) => exchange.post(parts, body).await,
        (Ok(_), &http::Method::GET) => exchange.listen(parts).await,
        (Ok(_), &http::Method::DELETE) => exchange.delete(parts).await,
        _ => {
            let error = RpcError::new(code::INVALID_REQUEST, "MCP endpoints take POST, GET and DELETE");
            let mut response = rpc_response(StatusCode::METHOD_NOT_ALLOWED, &error, None);
            response.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("POST, GET, DELETE"));
            response
        }
    };
    if matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        && response.headers().contains_key(http::header::WWW_AUTHENTICATE)
    {
        exchange.forget_brokered_token().await;
    }
    if let Some(guard) = &exchange.guard {
        // Alerts, redactions and monitor-mode outcomes of the input phase and of a whole
        // answer (an event stream's later decisions are in the trace).
        guard.mark(&mut response);
    }
    response
}

/// The MCP span named and attributed per OpenTelemetry's MCP conventions, and the request's
/// audit record.
fn audit<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    (slug, span, started): (&str, SpanRef, u64),
    facts: AuditFacts,
    response: &http::Response<Body>,
) {
    let recorder = cx.recorder;
    let status = response.status().as_u16();
    recorder.set(span, attrs::HTTP_RESPONSE_STATUS_CODE, status);
    let method = facts.method.clone().unwrap_or_else(|| cx.parts.method.to_string());
    let mut record = vec![
        (attrs::GATEWAY_PRINCIPAL_ID, TraceValue::from(cx.principal.id.as_str())),
        (attrs::GATEWAY_MCP_SERVER, TraceValue::from(slug)),
        (attrs::MCP_METHOD_NAME, TraceValue::from(method.as_str())),
        (attrs::GATEWAY_DECISION, TraceValue::from(facts.decision.as_str())),
        (attrs::HTTP_RESPONSE_STATUS_CODE, TraceValue::from(status)),
        (attrs::GATEWAY_LATENCY_TOTAL_MS, TraceValue::from(cx.host.now_millis().saturating_sub(started))),
    ];
    if let Some(tool) = &facts.tool {
        record.push((attrs::GEN_AI_TOOL_NAME, TraceValue::from(tool.as_str())));
    }
    if let Some(arguments) = facts.arguments {
        record.push((attrs::GATEWAY_MCP_ARGUMENTS, TraceValue::from(arguments)));
    }
    let name = facts.tool.map_or(String::new(), |t| format!(" {t}"));
    // OpenTelemetry's MCP conventions: the span is `{mcp.method.name} {target}`.
    recorder.rename(span, format!("{method}{name}"));
    if method == "tools/call" {
        recorder.set(span, attrs::GEN_AI_OPERATION_NAME, "execute_tool");
    }
    if let Some(version) = &facts.protocol_version {
        recorder.set(span, attrs::MCP_PROTOCOL_VERSION, version.as_str());
    }
    recorder.audit(span, format!("mcp {slug} {method}{name}: {} ({status})", facts.decision), record);
    recorder.end(span);
}

/// Whether an `oauth_passthrough` request carries both the gateway key (`x-gateway-key`) and a
/// bearer token for the server.
fn passthrough_ready(config: &Config, headers: &http::HeaderMap) -> bool {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() > 7 && v.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer ")))
        .and_then(|v| v.get(7..));
    // A gateway key in `Authorization` is never taken for the server's token (nor sent to it).
    let is_gateway_key = |token: &str| {
        let hash = crate::auth::hash_key(token.trim());
        crate::auth::key_with_hash(config, &hash).is_some()
    };
    headers.contains_key("x-gateway-key") && bearer.is_some_and(|token| !is_gateway_key(token))
}

/// The server's `401`/`403` challenge: for `oauth_passthrough`, pointed at the gateway's
/// metadata; for the gateway's own credentials, not the client's to answer: a `502`.
fn answer_challenge(
    server: &McpServerConfig,
    client: &http::HeaderMap,
    path: &str,
    mut response: http::Response<Body>,
) -> http::Response<Body> {
    let Some(upstream) = response.headers().get(http::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()) else {
        return response;
    };
    if !matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        response.headers_mut().remove(http::header::WWW_AUTHENTICATE);
        return response;
    }
    if matches!(server.credential, CredentialConfig::OauthPassthrough) {
        let rewritten = oauth::rewrite_challenge(upstream, client, path);
        if let Ok(value) = HeaderValue::from_str(&rewritten) {
            response.headers_mut().insert(http::header::WWW_AUTHENTICATE, value);
        }
        return response;
    }
    let error = RpcError::new(code::INTERNAL_ERROR, "the MCP server refused the gateway's credential for it");
    rpc_response(StatusCode::BAD_GATEWAY, &error, None)
}

/// What the audit record of one exchange says (filled in as the request is handled).
pub(crate) struct AuditFacts {
    method: Option<String>,
    /// The protocol version the client spoke.
    protocol_version: Option<String>,
    /// The tool or resource, as traces keep it (capped, redacted).
    tool: Option<String>,
    /// The tool called, as the server and the policies see it.
    called: Option<String>,
    /// Tool or prompt arguments, redacted and capped.
    arguments: Option<String>,
    /// `allowed`, or `refused: <reason>`.
    decision: String,
}

impl Default for AuditFacts {
    fn default() -> Self {
        AuditFacts {
            method: None,
            protocol_version: None,
            tool: None,
            called: None,
            arguments: None,
            decision: "allowed".into(),
        }
    }
}

impl AuditFacts {
    fn refuse(&mut self, reason: &str) {
        self.decision = format!("refused: {reason}");
    }

    fn request(&mut self, message: &Message) {
        self.method = message.method().map(str::to_owned);
        self.tool = message.name().map(redact::audit_name);
        self.called = message.name().map(str::to_owned);
        if let Some(arguments) = message.params().and_then(|p| p.get("arguments")) {
            // Key names and known prefixes are masked, then whatever the PII and secret
            // detectors find, wherever it sits in a value.
            let masked = redact::audit_arguments(arguments);
            self.arguments = Some(super::recorder::snapshot_text(&masked, usize::MAX));
        }
    }
}

impl<H: Host + 'static> Exchange<'_, H> {
    /// What keys per-principal state (sessions, tokens, private cache): the principal's kind
    /// and id, and with `oauth_passthrough` the client's own token, since one gateway key may
    /// front many users.
    pub(super) fn principal_identity(&self) -> String {
        let mut identity = format!("{:?}:{}", self.cx.principal.kind, self.cx.principal.id);
        if matches!(self.server.credential, CredentialConfig::OauthPassthrough) {
            let token =
                &self.cx.parts.headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
            identity.push(':');
            identity.push_str(&crate::mcp::key_hash(&[token]));
        }
        identity
    }

    /// A KV read bounded in time (a missing or slow store is a miss).
    pub(super) async fn kv_get(&self, key: &str) -> Option<Bytes> {
        with_timeout(&**self.cx.host, KV_TIMEOUT_MS, self.cx.host.kv_get(key)).await.and_then(Result::ok).flatten()
    }

    /// A KV write bounded in time (best effort: a failed write only costs a later miss).
    pub(super) async fn kv_put(&self, key: &str, value: Bytes) {
        let _ = with_timeout(&**self.cx.host, KV_TIMEOUT_MS, self.cx.host.kv_put(key, value)).await;
    }

    fn gate(&self) -> ToolGate<'_> {
        ToolGate { enabled: &self.server.tools }
    }

    /// Sends a request to the server with its credential, bounded by the first-byte timeout.
    pub(super) async fn send(
        &self,
        method: http::Method,
        client: &http::HeaderMap,
        overrides_in: &[(&'static str, Option<String>)],
        body: Bytes,
    ) -> Result<http::Response<Body>, Refusal> {
        let known = self.authorization.borrow().clone();
        let authorization = match known {
            Some(authorization) => authorization,
            None => {
                let resolved = self.authorization(&self.cx.parts.headers).await?;
                *self.authorization.borrow_mut() = Some(resolved.clone());
                resolved
            }
        };
        // The client's session id is the gateway's: the server gets its own (bridges override it).
        let mut overrides = vec![("mcp-session-id", self.upstream_session_id())];
        overrides.extend_from_slice(overrides_in);
        overrides.push(("traceparent", self.cx.recorder.traceparent(self.span)));
        let request = upstream_request(self.server, method, client, &overrides, authorization.as_deref(), body)?;
        let timeout = self.cx.config.timeouts.first_byte_ms;
        match with_timeout(&**self.cx.host, timeout, self.cx.host.fetch(request)).await {
            Some(Ok(response)) => Ok(response),
            Some(Err(fault)) => {
                self.cx.recorder.set(self.span, crate::trace::attrs::GATEWAY_UPSTREAM_ERROR_DETAIL, fault.detail());
                Err(RpcError::new(code::INTERNAL_ERROR, format!("cannot reach MCP server `{}`: {fault}", self.slug))
                    .into())
            }
            None => Err(RpcError::new(
                code::INTERNAL_ERROR,
                format!("MCP server `{}` sent no response within {timeout} ms", self.slug),
            )
            .into()),
        }
    }

    /// How the server's messages for this request are relayed to the client.
    pub(super) fn outbound(&self, method: Option<String>, conversion: Conversion) -> Outbound {
        let tool = if method.as_deref() == Some("tools/call") { self.facts.borrow().called.clone() } else { None };
        let guard = self.guard.as_ref().map(|guard| {
            Rc::new(hooks::McpGuard { guard: Rc::clone(guard), slug: self.slug.to_owned() })
                as Rc<dyn hooks::ServerGuard>
        });
        let snapshot = self.cx.recorder.snapshots_on().then(|| {
            let (recorder, span) = (self.cx.recorder.clone(), self.span);
            Rc::new(move |message: &Message| {
                recorder.snapshot_with(span, crate::trace::attrs::GATEWAY_MCP_RESPONSE_BODY, || {
                    String::from_utf8_lossy(&message.to_bytes()).into_owned()
                });
            }) as relay::Snapshot
        });
        Outbound { method, tool, enabled_tools: self.server.tools.clone(), conversion, guard, snapshot }
    }

    fn refuse_tool(&self, tool: &str, id: Option<&Value>) -> http::Response<Body> {
        let error =
            RpcError::new(code::SERVER_ERROR, format!("tool `{tool}` is not enabled on MCP server `{}`", self.slug))
                .with_data(serde_json::json!({"reason": "tool_not_enabled", "tool": tool}));
        rpc_response(StatusCode::FORBIDDEN, &error, id)
    }

    async fn post(&self, parts: &http::request::Parts, body: Body) -> http::Response<Body> {
        // Refused from the headers alone, before the body is read, where they suffice.
        let routing = RoutingHeaders::from(&parts.headers);
        if let (Some("tools/call"), Some(tool)) = (routing.method.as_deref(), routing.name.as_deref()) {
            if !self.gate().allows(tool) {
                let mut facts = self.facts.borrow_mut();
                facts.method = Some("tools/call".into());
                facts.tool = Some(redact::audit_name(tool));
                facts.refuse("tool_not_enabled");
                return self.refuse_tool(tool, None);
            }
        }
        let bytes = match read_body(&**self.cx.host, self.cx.config, parts, body).await {
            Ok(bytes) => bytes,
            Err(error) => return api_error(&error),
        };
        let (mut message, client_era) = match self.admit_message(&bytes, &parts.headers, &routing) {
            Ok(admitted) => admitted,
            Err(refused) => return *refused,
        };
        let id = message.id().cloned();
        if let Err(error) = hooks::input(self.guard.as_deref(), self.slug, &mut message).await {
            self.facts.borrow_mut().refuse(error.code.as_deref().unwrap_or("guardrail"));
            return rpc_response(error.status, &hooks::rpc_error(&error), id.as_ref());
        }
        self.cx.recorder.snapshot_with(self.span, crate::trace::attrs::GATEWAY_MCP_REQUEST_BODY, || {
            String::from_utf8_lossy(&message.to_bytes()).into_owned()
        });
        match (client_era, self.server.protocol) {
            (Era::Modern, McpProtocol::Legacy) => self.modern_to_legacy(message).await,
            (Era::Legacy(_), McpProtocol::Current) => {
                bridged(self.legacy_to_modern(parts, message).await, LEGACY_TO_CURRENT)
            }
            (Era::Modern, _) => self.modern(parts, message).await,
            (Era::Legacy(_), _) => self.forward(parts, message, Conversion::None).await,
        }
    }

    /// The client's message, parsed and checked before anything is forwarded: its era, its
    /// routing headers (current era) and, for `tools/call`, the tool gate.
    fn admit_message(
        &self,
        bytes: &[u8],
        headers: &http::HeaderMap,
        routing: &RoutingHeaders,
    ) -> Result<(Message, Era), Box<http::Response<Body>>> {
        let message = match Message::parse(bytes) {
            Ok(message) => message,
            Err(error) => {
                self.facts.borrow_mut().refuse("malformed");
                return Err(Box::new(rpc_response(StatusCode::BAD_REQUEST, &error, None)));
            }
        };
        self.facts.borrow_mut().request(&message);
        let id = message.id().cloned();
        let header_version = headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok());
        let client_era = era::era_of(header_version, &message);
        self.facts.borrow_mut().protocol_version = match &client_era {
            Era::Modern => Some(era::MODERN.to_owned()),
            Era::Legacy(version) => version.clone(),
        };
        if client_era == Era::Modern {
            if let Err(error) = routing.check(&message) {
                self.facts.borrow_mut().refuse("header_mismatch");
                return Err(Box::new(rpc_response(StatusCode::BAD_REQUEST, &error, id.as_ref())));
            }
        }
        if let Some(method) = message.method() {
            self.cx.recorder.set(self.span, crate::trace::attrs::MCP_METHOD_NAME, method.to_owned());
        }
        if message.method() == Some("tools/call") {
            let tool = message.name().unwrap_or_default().to_owned();
            self.cx.recorder.set(self.span, crate::trace::attrs::GEN_AI_TOOL_NAME, redact::audit_name(&tool));
            if !self.gate().allows(&tool) {
                self.facts.borrow_mut().refuse("tool_not_enabled");
                return Err(Box::new(self.refuse_tool(&tool, id.as_ref())));
            }
        }
        Ok((message, client_era))
    }

    /// A cacheable answer, read whole and remembered before it is relayed.
    async fn remembered(
        &self,
        message: &Message,
        response: http::Response<Body>,
        outbound: Outbound,
    ) -> http::Response<Body> {
        let (head, body) = response.into_parts();
        let limit = self.cx.config.limits.max_response_bytes;
        let Ok(bytes) = super::body::read_whole(&**self.cx.host, body, limit, self.cx.config.timeouts.idle_ms).await
        else {
            let error = RpcError::new(code::INTERNAL_ERROR, "the server's response could not be read");
            return rpc_response(StatusCode::BAD_GATEWAY, &error, message.id());
        };
        if let Some(result) = Message::parse(&bytes).ok().as_ref().and_then(Message::result).and_then(Value::as_object)
        {
            self.remember(message, result).await;
        }
        let response = http::Response::from_parts(head, Body::Full(bytes));
        with_cache_status(relay(self.cx.host, self.cx.config, response, outbound, None).await, "miss")
    }

    /// A current-era request an `auto` server refused with 400: when the legacy handshake then
    /// succeeds, the server is remembered as legacy for a while and the request bridged; else the
    /// refusal is relayed.
    async fn legacy_or_refusal(
        &self,
        message: Message,
        response: http::Response<Body>,
        (outbound, asked_at): (Outbound, u64),
    ) -> http::Response<Body> {
        let (head, body) = response.into_parts();
        let bytes = super::body::read_whole(&**self.cx.host, body, 64 * 1024, self.cx.config.timeouts.idle_ms)
            .await
            .unwrap_or_default();
        let meta = message.meta().cloned().unwrap_or_default();
        if refused_as_legacy(&bytes) && self.confirm_legacy(&meta).await {
            let expires = asked_at + LEGACY_MARKER_TTL_MS;
            self.kv_put(&legacy_marker(self.slug), Bytes::from(expires.to_string())).await;
            return self.modern_to_legacy(message).await;
        }
        let response = http::Response::from_parts(head, Body::Full(bytes));
        relay(self.cx.host, self.cx.config, response, outbound, None).await
    }

    /// The same era on both sides: the request as it is, the answer inspected.
    async fn forward(
        &self,
        parts: &http::request::Parts,
        message: Message,
        conversion: Conversion,
    ) -> http::Response<Body> {
        let id = message.id().cloned();
        let method = message.method().map(str::to_owned);
        let mut response =
            match self.send(http::Method::POST, &parts.headers, &[], Bytes::from(message.to_bytes())).await {
                Ok(response) => response,
                Err(refused) => return refused.response(id.as_ref()),
            };
        self.seal_server_session(&mut response);
        let outbound = self.outbound(method, conversion);
        relay(self.cx.host, self.cx.config, response, outbound, None).await
    }

    /// A current-era client: forwarded as it is, unless the server is known (or found, in
    /// `auto`) to speak only the legacy protocol, then bridged.
    /// The trace context in a current-era request's `_meta` (as well as in its header).
    fn with_trace_context(&self, message: &mut Message) {
        let Some(traceparent) = self.cx.recorder.traceparent(self.span) else { return };
        let Some(params) = message.params_mut() else { return };
        if let Some(meta) = params.entry("_meta").or_insert_with(|| serde_json::json!({})).as_object_mut() {
            meta.insert("traceparent".into(), Value::from(traceparent));
        }
    }

    async fn modern(&self, parts: &http::request::Parts, message: Message) -> http::Response<Body> {
        let auto = self.server.protocol == McpProtocol::Auto;
        let marker = legacy_marker(self.slug);
        let now = self.cx.host.now_millis();
        let marked = self.kv_get(&marker).await.and_then(|v| String::from_utf8(v.to_vec()).ok()?.parse::<u64>().ok());
        if auto && marked.is_some_and(|expires| expires > now) {
            return self.modern_to_legacy(message).await;
        }
        // As sent to a current-era server: the trace context in `_meta` too (a fallback to the
        // legacy handshake drops it again with the other per-request keys).
        let mut message = message;
        if message.kind() == Some(crate::mcp::Kind::Request) {
            self.with_trace_context(&mut message);
        }
        let id = message.id().cloned();
        let method = message.method().map(str::to_owned);
        let outbound = self.outbound(method.clone(), Conversion::None);
        if let Some(result) = self.cached(&message).await {
            let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result});
            return with_cache_status(
                relay(self.cx.host, self.cx.config, relay::message_response(&answer, None), outbound, None).await,
                "hit",
            );
        }
        let routing = [
            ("mcp-method", message.method().map(str::to_owned)),
            ("mcp-name", message.name().map(crate::mcp::gate::encode_header)),
        ];
        let mut response =
            match self.send(http::Method::POST, &parts.headers, &routing, Bytes::from(message.to_bytes())).await {
                Ok(response) => response,
                Err(refused) => return refused.response(id.as_ref()),
            };
        self.seal_server_session(&mut response);
        let is_json = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if response.status().is_success() && is_json && self.cacheable(&message) {
            return self.remembered(&message, response, outbound).await;
        }
        if auto && response.status() == StatusCode::BAD_REQUEST {
            return self.legacy_or_refusal(message, response, (outbound, now)).await;
        }
        relay(self.cx.host, self.cx.config, response, outbound, None).await
    }

    /// Whether the presented session is one the gateway bridges to a stateless server.
    fn bridged_session(&self) -> bool {
        matches!(&self.session, Some(GatewaySession { kind: SessionKind::Bridged { .. }, .. }))
    }

    /// `GET`: the legacy event stream for server-initiated messages.
    async fn listen(&self, parts: &http::request::Parts) -> http::Response<Body> {
        if self.server.protocol == McpProtocol::Current || self.bridged_session() {
            return bridge::no_stream();
        }
        let mut response = match self.send(http::Method::GET, &parts.headers, &[], Bytes::new()).await {
            Ok(response) => response,
            Err(refused) => return refused.response(None),
        };
        self.seal_server_session(&mut response);
        let outbound = self.outbound(None, Conversion::None);
        relay(self.cx.host, self.cx.config, response, outbound, None).await
    }

    /// `DELETE`: ends the session for every edge instance, and a relayed session at its server.
    async fn delete(&self, parts: &http::request::Parts) -> http::Response<Body> {
        let ended = relay::message_response(&serde_json::json!({}), None);
        if self.bridged_session() {
            self.end_session().await;
            return ended;
        }
        if self.session.is_none() && self.server.protocol == McpProtocol::Current {
            return ended;
        }
        let answer = self.send(http::Method::DELETE, &parts.headers, &[], Bytes::new()).await;
        self.end_session().await;
        match answer {
            Ok(mut response) => {
                self.seal_server_session(&mut response);
                let outbound = self.outbound(None, Conversion::None);
                relay(self.cx.host, self.cx.config, response, outbound, None).await
            }
            Err(refused) => refused.response(None),
        }
    }
}

/// Says whether a cacheable result came from the edge cache (`x-gateway-cache: hit|miss`).
fn with_cache_status(mut response: http::Response<Body>, status: &'static str) -> http::Response<Body> {
    response.headers_mut().insert("x-gateway-cache", HeaderValue::from_static(status));
    response
}

/// `x-gateway-mcp-bridge` values: which way a response was bridged between eras.
pub(crate) const LEGACY_TO_CURRENT: &str = "legacy-client;2026-07-28-server";
pub(crate) const CURRENT_TO_LEGACY: &str = "2026-07-28-client;legacy-server";

/// Marks a response as bridged between eras (for clients' and operators' debugging).
pub(crate) fn bridged(mut response: http::Response<Body>, how: &'static str) -> http::Response<Body> {
    response.headers_mut().insert("x-gateway-mcp-bridge", HeaderValue::from_static(how));
    response
}

/// Whether a `400` to a current-era request is a legacy server's refusal (no session, unknown
/// version), not a current-era server's own error (`-32020`, `-32021`, `-32022`, `-32602`).
fn refused_as_legacy(body: &[u8]) -> bool {
    let code =
        Message::parse(body).ok().and_then(|m| m.body.get("error").and_then(|e| e.get("code")).and_then(Value::as_i64));
    !matches!(code, Some(-32020 | -32021 | -32022 | -32602))
}

#[cfg(test)]
mod tests {
    #[test]
    fn legacy_refusals_are_told_from_current_era_errors() {
        assert!(super::refused_as_legacy(
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Request: Missing session ID"}}"#
        ));
        assert!(super::refused_as_legacy(b""));
        assert!(!super::refused_as_legacy(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"Header mismatch"}}"#
        ));
    }
}
