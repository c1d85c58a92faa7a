//! The credential an MCP server gets, per its mode: none, a shared secret (`internal`), the
//! client's own bearer token (`oauth_passthrough`), or the calling principal's token from a
//! broker (`token_broker`, cached in KV no longer than it is valid).

use bytes::Bytes;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::super::body::{read_whole, with_timeout};
use super::Exchange;
use crate::config::CredentialConfig;
use crate::host::{Body, FetchError, Host};
use crate::mcp::{code, RpcError};

/// Longest wait for the token broker.
const BROKER_TIMEOUT_MS: u64 = 5_000;
/// A cached token is not used within this margin of its expiry.
const EXPIRY_MARGIN_MS: u64 = 5_000;

/// Why no credential could be had: the status and JSON-RPC error the client gets.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub error: RpcError,
}

impl Refusal {
    pub fn response(&self, id: Option<&Value>) -> http::Response<Body> {
        super::relay::rpc_response(self.status, &self.error, id)
    }
}

impl From<RpcError> for Refusal {
    fn from(error: RpcError) -> Self {
        Refusal { status: StatusCode::BAD_GATEWAY, error }
    }
}

#[derive(Serialize, Deserialize)]
struct CachedToken {
    token: String,
    expires_ms: u64,
}

/// What the broker answers with a token.
#[derive(Deserialize)]
struct BrokerToken {
    access_token: String,
    /// Seconds the token stays valid; without it the token is not cached.
    #[serde(default)]
    expires_in: Option<u64>,
}

impl<H: Host + 'static> Exchange<'_, H> {
    /// The `Authorization` value for the server, if its mode has one.
    pub(super) async fn authorization(&self, client: &http::HeaderMap) -> Result<Option<String>, Refusal> {
        match &self.server.credential {
            CredentialConfig::None => Ok(None),
            CredentialConfig::Internal { secret } => match self.cx.host.secret(secret) {
                Some(token) => Ok(Some(format!("Bearer {token}"))),
                None => Err(Refusal {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    error: RpcError::new(
                        code::INTERNAL_ERROR,
                        format!("the server's credential secret `{secret}` is not set"),
                    ),
                }),
            },
            // Checked before anything is forwarded (`super::oauth`): here it is passed on unchanged.
            CredentialConfig::OauthPassthrough => {
                Ok(client.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned))
            }
            CredentialConfig::TokenBroker { url, secret } => {
                let token = self.brokered_token(url, secret.as_deref()).await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Forgets a brokered token the server refused, so the next request asks the broker again.
    pub(super) async fn forget_brokered_token(&self) {
        if matches!(self.server.credential, CredentialConfig::TokenBroker { .. }) {
            let expired = CachedToken { token: String::new(), expires_ms: 0 };
            if let Ok(bytes) = serde_json::to_vec(&expired) {
                self.kv_put(&self.broker_key(), Bytes::from(bytes)).await;
            }
        }
    }

    fn broker_key(&self) -> String {
        format!("mcp:broker:{}:{}", self.slug, crate::mcp::key_hash(&[self.principal_identity().as_bytes()]))
    }

    async fn brokered_token(&self, url: &str, secret: Option<&str>) -> Result<String, Refusal> {
        let key = self.broker_key();
        let now = self.cx.host.now_millis();
        if let Some(stored) = self.kv_get(&key).await {
            if let Ok(cached) = serde_json::from_slice::<CachedToken>(&stored) {
                if cached.expires_ms > now.saturating_add(EXPIRY_MARGIN_MS) {
                    return Ok(cached.token);
                }
            }
        }
        let down = |why: String| Refusal {
            status: StatusCode::BAD_GATEWAY,
            error: RpcError::new(code::INTERNAL_ERROR, format!("the token broker for `{}` failed: {why}", self.slug)),
        };
        let body = json!({
            "principal": {"kind": self.cx.principal.kind, "id": self.cx.principal.id, "attributes": self.cx.principal.attributes},
            "server": self.slug,
            "resource": self.server.url,
        });
        let mut request = http::Request::post(url).header(http::header::CONTENT_TYPE, "application/json");
        if let Some(name) = secret {
            let value = self.cx.host.secret(name).ok_or_else(|| down(format!("its secret `{name}` is not set")))?;
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {value}"));
        }
        let request = request
            .body(Body::Full(Bytes::from(body.to_string())))
            .map_err(|e| down(format!("the request could not be built: {e}")))?;
        let response = match with_timeout(&**self.cx.host, BROKER_TIMEOUT_MS, self.cx.host.fetch(request)).await {
            Some(Ok(response)) => response,
            Some(Err(FetchError::Connect(e) | FetchError::Invalid(e))) => {
                return Err(down(format!("unreachable: {e}")))
            }
            None => return Err(down(format!("no answer within {BROKER_TIMEOUT_MS} ms"))),
        };
        let status = response.status();
        let bytes = read_whole(&**self.cx.host, response.into_body(), 64 * 1024, BROKER_TIMEOUT_MS)
            .await
            .map_err(|_| down("its answer could not be read".into()))?;
        if status == StatusCode::NOT_FOUND {
            // The principal has no token for this server: they must authorize it first.
            let mut data = json!({"reason": "downstream_auth_required", "server": self.slug});
            if let Some(url) =
                serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v.get("authorization_url").cloned())
            {
                if let Some(map) = data.as_object_mut() {
                    map.insert("authorization_url".into(), url);
                }
            }
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                error: RpcError::new(
                    code::SERVER_ERROR,
                    format!(
                        "downstream_auth_required: no token for `{}` on MCP server `{}`",
                        self.cx.principal.id, self.slug
                    ),
                )
                .with_data(data),
            });
        }
        if !status.is_success() {
            return Err(down(format!("HTTP {}", status.as_u16())));
        }
        let token: BrokerToken =
            serde_json::from_slice(&bytes).map_err(|e| down(format!("its answer has no `access_token`: {e}")))?;
        if let Some(seconds) = token.expires_in {
            let cached = CachedToken {
                token: token.access_token.clone(),
                expires_ms: now.saturating_add(seconds.saturating_mul(1000)),
            };
            if let Ok(bytes) = serde_json::to_vec(&cached) {
                self.kv_put(&key, Bytes::from(bytes)).await;
            }
        }
        Ok(token.access_token)
    }
}
