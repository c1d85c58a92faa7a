//! Clients and servers of different eras. A current-era (stateless) client in front of a legacy
//! server: the gateway performs the server's `initialize` handshake and keeps the session in KV
//! (re-made when missing or expired). A legacy client in front of a current-era server: the
//! gateway answers `initialize` from the server's `server/discover` and issues a sealed session
//! id from which every later request's `_meta` is rebuilt.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::credentials::Refusal;
use super::relay::{
    accepted, first_response, message_response, relay, rpc_response, upstream_request, Conversion, Responder,
};
use super::Exchange;
use crate::host::{Body, Host};
use crate::mcp::era::{self, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, MODERN};
use crate::mcp::{code, key_hash, GatewaySession, Kind, Message, RpcError, SessionKind};

/// How long a legacy server's session is reused before a new handshake.
const SESSION_TTL_MS: u64 = 10 * 60 * 1000;

/// A legacy server's session held for current-era clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UpstreamSession {
    id: Option<String>,
    version: String,
    initialize: serde_json::Map<String, Value>,
    expires_ms: u64,
}

impl<H: Host + 'static> Exchange<'_, H> {
    fn session_key(&self, capabilities: &Value) -> String {
        let hash = key_hash(&[self.principal_identity().as_bytes(), capabilities.to_string().as_bytes()]);
        format!("mcp:session:{}:{hash}", self.slug)
    }

    /// The legacy server's session for this principal and client capabilities: from KV, or a
    /// new `initialize` handshake (then stored).
    async fn upstream_session(
        &self,
        meta: &serde_json::Map<String, Value>,
        fresh: bool,
    ) -> Result<UpstreamSession, Refusal> {
        let capabilities = meta.get(META_CLIENT_CAPABILITIES).cloned().unwrap_or_else(|| json!({}));
        let key = self.session_key(&capabilities);
        let now = self.cx.host.now_millis();
        if !fresh {
            if let Some(stored) = self.kv_get(&key).await {
                if let Ok(session) = serde_json::from_slice::<UpstreamSession>(&stored) {
                    if session.expires_ms > now {
                        return Ok(session);
                    }
                }
            }
        }
        let client_info = meta
            .get(META_CLIENT_INFO)
            .cloned()
            .unwrap_or_else(|| json!({"name": "edge-gateway", "version": env!("CARGO_PKG_VERSION")}));
        let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": era::LATEST_LEGACY, "capabilities": capabilities, "clientInfo": client_info}});
        let none = http::HeaderMap::new();
        let body = Bytes::from(serde_json::to_vec(&initialize).unwrap_or_default());
        let response = self.send(http::Method::POST, &none, &[], body).await?;
        let id = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let status = response.status();
        let answer = first_response(&**self.cx.host, self.cx.config, response).await;
        let result =
            answer.as_ref().and_then(Message::result).and_then(Value::as_object).cloned().ok_or_else(|| {
                RpcError::new(
                    code::INTERNAL_ERROR,
                    format!("the server refused the gateway's initialize (HTTP {status})"),
                )
            })?;
        let version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or(era::LATEST_LEGACY).to_owned();
        let session = UpstreamSession { id, version, initialize: result, expires_ms: now + SESSION_TTL_MS };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let body = Bytes::from(serde_json::to_vec(&initialized).unwrap_or_default());
        let _ = self.send(http::Method::POST, &none, &session.headers(), body).await?;
        if let Ok(stored) = serde_json::to_vec(&session) {
            self.kv_put(&key, Bytes::from(stored)).await;
        }
        Ok(session)
    }

    /// Whether the server takes the legacy handshake (its session is then kept for what follows).
    pub(super) async fn confirm_legacy(&self, meta: &serde_json::Map<String, Value>) -> bool {
        self.upstream_session(meta, true).await.is_ok()
    }

    /// A current-era client's request to a legacy server.
    pub(super) async fn modern_to_legacy(&self, message: Message) -> http::Response<Body> {
        super::bridged(self.modern_to_legacy_unmarked(message).await, super::CURRENT_TO_LEGACY)
    }

    async fn modern_to_legacy_unmarked(&self, message: Message) -> http::Response<Body> {
        let id = message.id().cloned();
        let meta = message.meta().cloned().unwrap_or_default();
        let mut session = match self.upstream_session(&meta, false).await {
            Ok(session) => session,
            Err(refused) => return refused.response(id.as_ref()),
        };
        let server_info = session.initialize.get("serverInfo").cloned();
        if message.method() == Some("server/discover") {
            let mut result = era::discover_from_initialize(&session.initialize);
            if let Some(map) = result.as_object_mut() {
                map.retain(|k, _| k != "tools");
            }
            return message_response(&json!({"jsonrpc": "2.0", "id": id, "result": result}), None);
        }
        let method = message.method().map(str::to_owned);
        let mut legacy = message;
        era::to_legacy_request(&mut legacy);
        let body = Bytes::from(legacy.to_bytes());
        let none = http::HeaderMap::new();
        for attempt in 0..2 {
            let response = match self.send(http::Method::POST, &none, &session.headers(), body.clone()).await {
                Ok(response) => response,
                Err(refused) => return refused.response(id.as_ref()),
            };
            // An expired session: one new handshake, then the request again.
            if response.status() == StatusCode::NOT_FOUND && attempt == 0 && session.id.is_some() {
                session = match self.upstream_session(&meta, true).await {
                    Ok(session) => session,
                    Err(refused) => return refused.response(id.as_ref()),
                };
                continue;
            }
            if legacy.kind() != Some(Kind::Request) {
                return accepted();
            }
            let outbound = self.outbound(method.clone(), Conversion::ToModern { server_info: server_info.clone() });
            let responder = self.responder(&session);
            return relay(self.cx.host, self.cx.config, response, outbound, responder).await;
        }
        rpc_response(
            StatusCode::BAD_GATEWAY,
            &RpcError::new(code::INTERNAL_ERROR, "the server lost its session"),
            id.as_ref(),
        )
    }

    fn responder(&self, session: &UpstreamSession) -> Option<Responder> {
        let none = http::HeaderMap::new();
        let authorization = self.authorization.borrow().clone().flatten();
        let request = upstream_request(
            self.server,
            http::Method::POST,
            &none,
            &session.headers(),
            authorization.as_deref(),
            Bytes::new(),
        )
        .ok()?
        .map(|_| Bytes::new());
        Some(Responder { request })
    }

    /// A legacy client's request to a current-era server.
    pub(super) async fn legacy_to_modern(
        &self,
        parts: &http::request::Parts,
        message: Message,
    ) -> http::Response<Body> {
        let id = message.id().cloned();
        let method = message.method().unwrap_or_default().to_owned();
        if method == "initialize" {
            return self.initialize_for_legacy(message).await;
        }
        let (client_info, capabilities) = match &self.session {
            None => {
                if message.kind() != Some(Kind::Request) {
                    return accepted();
                }
                let error = RpcError::new(code::INVALID_REQUEST, "Bad Request: Missing session ID");
                return rpc_response(StatusCode::BAD_REQUEST, &error, id.as_ref());
            }
            Some(GatewaySession { kind: SessionKind::Bridged { client_info, capabilities, .. }, .. }) => {
                (client_info, capabilities)
            }
            // A relayed session belongs to a legacy server, not to this bridge.
            Some(_) => return super::sessions::session_not_found(id.as_ref()),
        };
        // Notifications and responses have nowhere to go on a stateless server.
        if message.kind() != Some(Kind::Request) {
            return accepted();
        }
        if let Some(local) = era::local_legacy_answer(&method) {
            return match local {
                Ok(result) => message_response(&json!({"jsonrpc": "2.0", "id": id, "result": result}), None),
                Err(error) => rpc_response(StatusCode::OK, &error, id.as_ref()),
            };
        }
        let mut modern = message;
        era::to_modern_request(&mut modern, client_info, capabilities);
        self.with_trace_context(&mut modern);
        let name = modern.name().map(str::to_owned);
        let overrides = [
            ("mcp-protocol-version", Some(MODERN.to_owned())),
            ("mcp-session-id", None),
            ("last-event-id", None),
            ("mcp-method", Some(method.clone())),
            ("mcp-name", name),
        ];
        let response =
            match self.send(http::Method::POST, &parts.headers, &overrides, Bytes::from(modern.to_bytes())).await {
                Ok(response) => response,
                Err(refused) => return refused.response(id.as_ref()),
            };
        let outbound = self.outbound(Some(method), Conversion::ToLegacy);
        relay(self.cx.host, self.cx.config, response, outbound, None).await
    }

    /// `initialize` from a legacy client, answered from the server's `server/discover`.
    async fn initialize_for_legacy(&self, message: Message) -> http::Response<Body> {
        let id = message.id().cloned();
        let params = message.params().cloned().unwrap_or_default();
        let version = era::negotiate_legacy(params.get("protocolVersion").and_then(Value::as_str));
        let client_info = params.get("clientInfo").cloned().unwrap_or_else(|| json!({}));
        let capabilities = params.get("capabilities").cloned().unwrap_or_else(|| json!({}));
        let discover = json!({"jsonrpc": "2.0", "id": id.clone().unwrap_or(json!(0)), "method": "server/discover",
            "params": {"_meta": {era::META_VERSION: MODERN, META_CLIENT_INFO: client_info.clone(),
                                 META_CLIENT_CAPABILITIES: capabilities.clone()}}});
        let overrides =
            [("mcp-protocol-version", Some(MODERN.to_owned())), ("mcp-method", Some("server/discover".to_owned()))];
        let none = http::HeaderMap::new();
        let body = Bytes::from(serde_json::to_vec(&discover).unwrap_or_default());
        let response = match self.send(http::Method::POST, &none, &overrides, body).await {
            Ok(response) => response,
            Err(refused) => return refused.response(id.as_ref()),
        };
        let status = response.status();
        let answer = first_response(&**self.cx.host, self.cx.config, response).await;
        let Some(result) = answer.as_ref().and_then(Message::result).and_then(Value::as_object) else {
            let error =
                RpcError::new(code::INTERNAL_ERROR, format!("the server answered server/discover with HTTP {status}"));
            return rpc_response(StatusCode::BAD_GATEWAY, &error, id.as_ref());
        };
        let session = self.new_session(SessionKind::Bridged { version: version.to_owned(), client_info, capabilities });
        let result = era::initialize_from_discover(result, version);
        let sealed = session.seal(&self.session_keys());
        message_response(&json!({"jsonrpc": "2.0", "id": id, "result": result}), Some(&sealed))
    }

    /// The key sessions are sealed with: the `mcp_session_key` secret, else one derived from
    /// the configured key hashes (stable, and never sent to clients).
    pub(super) fn session_key_material(&self) -> Vec<u8> {
        if let Some(secret) = self.cx.host.secret("mcp_session_key").filter(|s| !s.trim().is_empty()) {
            return secret.into_bytes();
        }
        let mut hasher = Sha256::new().chain_update(b"edge-gateway mcp session v1");
        for key in &self.cx.config.keys {
            hasher.update(key.sha256.as_bytes());
        }
        hasher.finalize().to_vec()
    }
}

impl UpstreamSession {
    fn headers(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("mcp-session-id", self.id.clone()),
            ("mcp-protocol-version", Some(self.version.clone())),
            ("mcp-method", None),
            ("mcp-name", None),
        ]
    }
}

/// `405` with the methods a bridged legacy session has.
pub(super) fn no_stream() -> http::Response<Body> {
    let error = RpcError::new(code::INVALID_REQUEST, "this server has no event stream to listen on (2026-07-28)");
    let mut response = rpc_response(StatusCode::METHOD_NOT_ALLOWED, &error, None);
    response.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("POST, DELETE"));
    response
}
