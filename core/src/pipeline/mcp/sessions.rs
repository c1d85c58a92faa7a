//! The sessions MCP clients hold through the gateway: opened from the client's `Mcp-Session-Id`
//! before anything is forwarded (a session of another principal, server or key, an expired or an
//! ended one is `404 Session not found`), sealed again on the way back, revoked by `DELETE`.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::super::body::with_timeout;
use super::relay::rpc_response;
use super::Exchange;
use crate::config::CredentialConfig;
use crate::host::{Body, Host};
use crate::mcp::session::SESSION_LIFETIME_MS;
use crate::mcp::{code, GatewaySession, RpcError, SessionKeys, SessionKind, SessionRefused};

/// Longest wait for the revocation store.
const REVOCATION_TIMEOUT_MS: u64 = 2_000;

/// The store key under which an ended session is remembered until it would have expired.
fn revocation_key(sid: &str) -> String {
    format!("mcp:ended:{sid}")
}

/// `404 Session not found`, what the protocol tells a client to answer with a new session.
pub(super) fn session_not_found(id: Option<&serde_json::Value>) -> http::Response<Body> {
    rpc_response(StatusCode::NOT_FOUND, &RpcError::new(code::INVALID_REQUEST, "Session not found"), id)
}

impl<H: Host + 'static> Exchange<'_, H> {
    /// Who a session belongs to: the principal, and with `oauth_passthrough` the subject of the
    /// client's token too (one gateway key may front many users). A JWT's issuer and subject are
    /// read unverified, which is enough: the server checks the token on every request, so a
    /// forged one with another user's subject gets nowhere. An opaque token stands for itself.
    pub(super) fn session_owner(&self) -> String {
        let mut owner = format!("{:?}:{}", self.cx.principal.kind, self.cx.principal.id);
        if matches!(self.server.credential, CredentialConfig::OauthPassthrough) {
            let token = crate::auth::bearer(&self.cx.parts.headers).unwrap_or_default();
            owner.push(':');
            match crate::mcp::jwt_subject(token) {
                Some((issuer, subject)) => {
                    owner.push_str(&crate::mcp::key_hash(&[issuer.as_bytes(), subject.as_bytes()]));
                }
                None => owner.push_str(&crate::mcp::key_hash(&[token.as_bytes()])),
            }
        }
        owner
    }

    pub(super) fn session_keys(&self) -> SessionKeys {
        SessionKeys::new(&self.session_key_material())
    }

    /// The session the client presents, if any: opened, checked against its owner, server,
    /// expiry and the revocation store. A refusal is the response to send, with nothing forwarded.
    pub(super) async fn open_session(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Option<GatewaySession>, http::Response<Body>> {
        let Some(value) = parts.headers.get("mcp-session-id") else { return Ok(None) };
        let refuse = |reason: &str| {
            self.facts.borrow_mut().refuse(reason);
            session_not_found(None)
        };
        let id = value.to_str().map_err(|_| refuse("session_unreadable"))?;
        let now = self.cx.host.now_millis();
        let session = GatewaySession::open(id, &self.session_keys(), self.slug, &self.session_owner(), now).map_err(
            |refused| {
                refuse(match refused {
                    SessionRefused::Unreadable => "session_unreadable",
                    SessionRefused::Expired => "session_expired",
                    SessionRefused::Foreign => "session_foreign",
                })
            },
        )?;
        let key = revocation_key(&session.sid);
        match with_timeout(&**self.cx.host, REVOCATION_TIMEOUT_MS, self.cx.host.cache_get(&key)).await {
            Some(Ok(None)) => Ok(Some(session)),
            Some(Ok(Some(_))) => Err(refuse("session_ended")),
            // Whether the session was ended cannot be told: it is not used.
            Some(Err(_)) | None => {
                self.facts.borrow_mut().refuse("session_store_unavailable");
                let error = RpcError::new(code::SERVER_ERROR, "the session store did not answer; try again");
                Err(rpc_response(StatusCode::SERVICE_UNAVAILABLE, &error, None))
            }
        }
    }

    /// A new session of this owner at this server.
    pub(super) fn new_session(&self, kind: SessionKind) -> GatewaySession {
        let now = self.cx.host.now_millis();
        GatewaySession {
            sid: format!("{:016x}{:016x}{now:x}", self.cx.host.random_u64(), self.cx.host.random_u64()),
            slug: self.slug.to_owned(),
            owner: self.session_owner(),
            expires_ms: now + SESSION_LIFETIME_MS,
            kind,
        }
    }

    /// The server's own session id, sent in place of the client's gateway-issued one.
    pub(super) fn upstream_session_id(&self) -> Option<String> {
        match &self.session {
            Some(GatewaySession { kind: SessionKind::Relayed { upstream }, .. }) => Some(upstream.clone()),
            _ => None,
        }
    }

    /// A server's answer that names its session: the client gets the gateway's sealed id for
    /// it instead (the same id again for the session it presented).
    pub(super) fn seal_server_session(&self, response: &mut http::Response<Body>) {
        let Some(upstream) = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let session = match &self.session {
            Some(session @ GatewaySession { kind: SessionKind::Relayed { upstream: known }, .. })
                if known == upstream =>
            {
                session.clone()
            }
            _ => self.new_session(SessionKind::Relayed { upstream: upstream.to_owned() }),
        };
        match HeaderValue::from_str(&session.seal(&self.session_keys())) {
            Ok(value) => response.headers_mut().insert("mcp-session-id", value),
            Err(_) => response.headers_mut().remove("mcp-session-id"),
        };
    }

    /// Ends the presented session for every edge instance: it is refused from now until it
    /// would have expired.
    pub(super) async fn end_session(&self) {
        let Some(session) = &self.session else { return };
        let now = self.cx.host.now_millis();
        let ttl_seconds = session.expires_ms.saturating_sub(now).div_ceil(1000).max(1);
        let value = Bytes::from(session.expires_ms.to_string());
        let key = revocation_key(&session.sid);
        let _ = with_timeout(&**self.cx.host, REVOCATION_TIMEOUT_MS, self.cx.host.cache_put(&key, value, ttl_seconds))
            .await;
    }
}
