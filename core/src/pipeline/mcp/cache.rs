//! `server/discover` and list results cached at the edge for their `ttlMs`, in KV: shared across
//! principals only when the server says `cacheScope: "public"`, else kept per principal.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Exchange;
use crate::host::Host;
use crate::mcp::era::CACHEABLE;
use crate::mcp::{key_hash, Message};

#[derive(Serialize, Deserialize)]
struct Cached {
    expires_ms: u64,
    result: Map<String, Value>,
}

impl<H: Host + 'static> Exchange<'_, H> {
    /// Whether a request's result may come from (and go to) the cache: a cacheable method, and
    /// not a multi-round-trip retry.
    pub(super) fn cacheable(&self, message: &Message) -> bool {
        let params = message.params();
        let retry = params.is_some_and(|p| p.contains_key("inputResponses") || p.contains_key("requestState"));
        message.method().is_some_and(|m| CACHEABLE.contains(&m)) && !retry
    }

    /// The cache keys (private, public): method, the parameters that shape the result (not
    /// `_meta`, except the client's capabilities), under the server and the scope (`public`, or
    /// the authorization context: the principal, and its own token under `oauth_passthrough`).
    fn cache_keys(&self, message: &Message) -> (String, String) {
        let mut params = message.params().cloned().unwrap_or_default();
        let capabilities = params
            .get("_meta")
            .and_then(|m| m.get(crate::mcp::era::META_CLIENT_CAPABILITIES))
            .cloned()
            .unwrap_or(Value::Null);
        params.remove("_meta");
        params.insert("_meta.capabilities".into(), capabilities);
        let method = message.method().unwrap_or_default();
        let hash = key_hash(&[method.as_bytes(), Value::Object(params).to_string().as_bytes()]);
        let context = key_hash(&[self.principal_identity().as_bytes()]);
        (format!("mcp:cache:{}:private:{context}:{hash}", self.slug), format!("mcp:cache:{}:public:{hash}", self.slug))
    }

    /// A fresh cached result for this request, its `ttlMs` set to what is left of it.
    pub(super) async fn cached(&self, message: &Message) -> Option<Map<String, Value>> {
        if !self.cacheable(message) {
            return None;
        }
        let now = self.cx.host.now_millis();
        let (private, public) = self.cache_keys(message);
        for key in [private, public] {
            let Some(stored) = self.kv_get(&key).await else { continue };
            let Ok(cached) = serde_json::from_slice::<Cached>(&stored) else { continue };
            if cached.expires_ms > now {
                let mut result = cached.result;
                result.insert("ttlMs".into(), Value::from(cached.expires_ms - now));
                return Some(result);
            }
        }
        None
    }

    /// Keeps a result the server marked cacheable (`ttlMs` > 0).
    pub(super) async fn remember(&self, message: &Message, result: &Map<String, Value>) {
        let ttl = result.get("ttlMs").and_then(Value::as_u64).unwrap_or(0);
        if !self.cacheable(message) || ttl == 0 || result.get("resultType").is_some_and(|t| t != "complete") {
            return;
        }
        let public = result.get("cacheScope").and_then(Value::as_str) == Some("public");
        let cached = Cached { expires_ms: self.cx.host.now_millis().saturating_add(ttl), result: result.clone() };
        if let Ok(bytes) = serde_json::to_vec(&cached) {
            let (private, shared) = self.cache_keys(message);
            self.kv_put(if public { &shared } else { &private }, Bytes::from(bytes)).await;
        }
    }
}
