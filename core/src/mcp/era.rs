//! Protocol eras: the current, stateless 2026-07-28 revision and the earlier stateful ones, and
//! the conversions that bridge a client of one era to a server of the other.

use serde_json::{json, Map, Value};

use super::message::{code, Message, RpcError};

/// The current revision.
pub const MODERN: &str = "2026-07-28";
/// The stateful revisions still in use (an `initialize` handshake and sessions).
pub const LEGACY: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The legacy version the gateway offers when a client asks for one it does not know.
pub const LATEST_LEGACY: &str = "2025-11-25";

pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

/// Results that carry `ttlMs` / `cacheScope` in the current revision.
pub const CACHEABLE: &[&str] =
    &["server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"];

/// Which era a client request speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    Modern,
    /// A stateful revision; the version the request names, if any.
    Legacy(Option<String>),
}

/// The era of a client's POST: the current revision names itself in `MCP-Protocol-Version` and
/// in `_meta`; anything else (no header, a handshake version, `initialize`) is legacy.
pub fn era_of(header_version: Option<&str>, message: &Message) -> Era {
    let meta_version = message.meta().and_then(|m| m.get(META_VERSION)).and_then(Value::as_str);
    if message.method() == Some("initialize") {
        let asked = message.params().and_then(|p| p.get("protocolVersion")).and_then(Value::as_str);
        return Era::Legacy(asked.map(str::to_owned));
    }
    match (header_version, meta_version) {
        (Some(h), _) if !LEGACY.contains(&h) => Era::Modern,
        (None, Some(m)) if !LEGACY.contains(&m) => Era::Modern,
        (h, _) => Era::Legacy(h.map(str::to_owned)),
    }
}

/// The legacy version to answer an `initialize` asking for `asked`.
pub fn negotiate_legacy(asked: Option<&str>) -> &'static str {
    LEGACY.iter().copied().find(|v| Some(*v) == asked).unwrap_or(LATEST_LEGACY)
}

/// A result for a legacy client: the current revision's additions removed.
pub fn to_legacy_result(result: &mut Map<String, Value>) {
    for key in ["resultType", "ttlMs", "cacheScope"] {
        result.remove(key);
    }
    if let Some(meta) = result.get_mut("_meta").and_then(Value::as_object_mut) {
        meta.remove(META_SERVER_INFO);
        if meta.is_empty() {
            result.remove("_meta");
        }
    }
}

/// A legacy server's result for a current-era client: complete, and not to be cached beyond
/// this principal (the safe reading of a server that says nothing about caching).
pub fn to_modern_result(method: &str, result: &mut Map<String, Value>, server_info: Option<&Value>) {
    result.entry("resultType").or_insert_with(|| json!("complete"));
    if CACHEABLE.contains(&method) {
        result.entry("ttlMs").or_insert_with(|| json!(0));
        result.entry("cacheScope").or_insert_with(|| json!("private"));
    }
    if let Some(info) = server_info {
        if let Some(meta) = result.entry("_meta").or_insert_with(|| json!({})).as_object_mut() {
            meta.entry(META_SERVER_INFO).or_insert_with(|| info.clone());
        }
    }
}

/// A current-era request for a legacy server: the per-request `_meta` keys the legacy server
/// learnt from `initialize`, and the current era's `traceparent` key, are dropped (the progress
/// token stays; the trace context travels in the header).
pub fn to_legacy_request(message: &mut Message) {
    let Some(params) = message.params_mut() else { return };
    if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
        meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/") && k != "traceparent");
        if meta.is_empty() {
            params.remove("_meta");
        }
    }
}

/// A legacy client's request for a current-era server: the `_meta` every request must carry,
/// from what the client said in its `initialize`.
pub fn to_modern_request(message: &mut Message, client_info: &Value, capabilities: &Value) {
    let Some(params) = message.params_mut() else { return };
    let Some(meta) = params.entry("_meta").or_insert_with(|| json!({})).as_object_mut() else { return };
    meta.insert(META_VERSION.into(), json!(MODERN));
    meta.insert(META_CLIENT_INFO.into(), client_info.clone());
    meta.insert(META_CLIENT_CAPABILITIES.into(), capabilities.clone());
}

/// The `initialize` result a legacy client gets from a current-era server's `server/discover`.
pub fn initialize_from_discover(discover: &Map<String, Value>, version: &str) -> Value {
    let server_info = discover
        .get("_meta")
        .and_then(|m| m.get(META_SERVER_INFO))
        .cloned()
        .unwrap_or_else(|| json!({"name": "mcp-server", "version": "unknown"}));
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": discover.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": server_info,
    });
    if let (Some(instructions), Some(map)) = (discover.get("instructions"), result.as_object_mut()) {
        map.insert("instructions".into(), instructions.clone());
    }
    result
}

/// The `server/discover` result a current-era client gets from a legacy server's `initialize`.
pub fn discover_from_initialize(initialize: &Map<String, Value>) -> Value {
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": [MODERN],
        "capabilities": initialize.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "ttlMs": 0,
        "cacheScope": "private",
    });
    if let Some(map) = result.as_object_mut() {
        if let Some(info) = initialize.get("serverInfo") {
            map.insert("_meta".into(), json!({META_SERVER_INFO: info}));
        }
        if let Some(instructions) = initialize.get("instructions") {
            map.insert("instructions".into(), instructions.clone());
        }
    }
    result
}

/// Whether a legacy client's method is one the current revision dropped, and the gateway's
/// local answer to it when bridging to a current-era server.
pub fn local_legacy_answer(method: &str) -> Option<Result<Value, RpcError>> {
    match method {
        "ping" => Some(Ok(json!({}))),
        // Per-request `logLevel` replaced it; without a place to keep the level, it is accepted.
        "logging/setLevel" => Some(Ok(json!({}))),
        "resources/subscribe" | "resources/unsubscribe" => Some(Err(RpcError::new(
            code::METHOD_NOT_FOUND,
            "resource subscriptions are not available through the gateway for this server (2026-07-28)",
        ))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(v: Value) -> Message {
        Message::from_value(v).unwrap()
    }

    #[test]
    fn eras_come_from_the_header_the_meta_or_initialize() {
        let modern = message(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                                    "params": {"_meta": {META_VERSION: MODERN}}}));
        assert_eq!(era_of(Some(MODERN), &modern), Era::Modern);
        assert_eq!(era_of(None, &modern), Era::Modern);
        let legacy = message(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        assert_eq!(era_of(Some("2025-06-18"), &legacy), Era::Legacy(Some("2025-06-18".into())));
        assert_eq!(era_of(None, &legacy), Era::Legacy(None));
        let init = message(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                  "params": {"protocolVersion": "2025-03-26"}}));
        assert_eq!(era_of(None, &init), Era::Legacy(Some("2025-03-26".into())));
        assert_eq!(negotiate_legacy(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate_legacy(Some("1999-01-01")), LATEST_LEGACY);
    }

    #[test]
    fn results_and_requests_cross_between_eras() {
        let mut result = json!({"tools": [], "resultType": "complete", "ttlMs": 5, "cacheScope": "public",
                                "_meta": {META_SERVER_INFO: {"name": "s"}}});
        to_legacy_result(result.as_object_mut().unwrap());
        assert_eq!(result, json!({"tools": []}));
        let mut result = json!({"tools": []});
        to_modern_result("tools/list", result.as_object_mut().unwrap(), Some(&json!({"name": "s"})));
        assert_eq!(result["ttlMs"], 0);
        assert_eq!(result["cacheScope"], "private");
        assert_eq!(result["_meta"][META_SERVER_INFO]["name"], "s");
        let mut request = message(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "add", "_meta": {META_VERSION: MODERN, "progressToken": 7}}}));
        to_legacy_request(&mut request);
        assert_eq!(request.meta().unwrap(), json!({"progressToken": 7}).as_object().unwrap());
        to_modern_request(&mut request, &json!({"name": "c"}), &json!({}));
        assert_eq!(request.meta().unwrap()[META_VERSION], MODERN);
        assert_eq!(request.meta().unwrap()["progressToken"], 7);
    }

    #[test]
    fn handshakes_are_answered_from_each_other() {
        let discover = json!({"supportedVersions": [MODERN], "capabilities": {"tools": {}},
                              "_meta": {META_SERVER_INFO: {"name": "s", "version": "1"}}, "instructions": "hi"});
        let init = initialize_from_discover(discover.as_object().unwrap(), "2025-06-18");
        assert_eq!(
            init,
            json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                                "serverInfo": {"name": "s", "version": "1"}, "instructions": "hi"})
        );
        let back = discover_from_initialize(init.as_object().unwrap());
        assert_eq!(back["supportedVersions"], json!([MODERN]));
        assert_eq!(back["_meta"][META_SERVER_INFO]["name"], "s");
        assert_eq!(back["capabilities"], json!({"tools": {}}));
    }
}
