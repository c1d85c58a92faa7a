//! `oauth_passthrough`: the client runs its own OAuth 2.1 flow against the server's authorization
//! server and its bearer token goes upstream unchanged (never stored, never logged). The gateway
//! publishes protected-resource metadata (RFC 9728) for `/mcp/{slug}`, challenges a request that
//! has no token, and points the server's own challenges at that metadata.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::super::body::{read_whole, with_timeout};
use super::relay::rpc_response;
use crate::config::{Config, CredentialConfig, McpServerConfig};
use crate::host::{Body, Host};
use crate::mcp::{code, RpcError};

/// The well-known prefix of protected-resource metadata (RFC 9728 section 3).
pub const METADATA_PREFIX: &str = "/.well-known/oauth-protected-resource";
/// How long the server's own metadata is reused.
const UPSTREAM_METADATA_TTL_MS: u64 = 5 * 60 * 1000;
const UPSTREAM_METADATA_TIMEOUT_MS: u64 = 5_000;

/// The gateway's public origin, from the request: `x-forwarded-proto` or `https`, except plain
/// `http` for a loopback host (local runs).
pub fn origin(headers: &http::HeaderMap) -> String {
    let host = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let local = ["localhost", "127.0.0.1", "[::1]"].iter().any(|h| host == *h || host.starts_with(&format!("{h}:")));
    let scheme =
        headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).unwrap_or(if local { "http" } else { "https" });
    format!("{scheme}://{host}")
}

/// `WWW-Authenticate` pointing a client at this resource's metadata.
pub fn challenge(headers: &http::HeaderMap, path: &str, extra: &str) -> String {
    let extra = if extra.is_empty() { String::new() } else { format!(", {extra}") };
    format!("Bearer resource_metadata=\"{}{METADATA_PREFIX}{path}\"{extra}", origin(headers))
}

/// The `401` for a request to an `oauth_passthrough` server that carries no bearer token.
pub fn unauthorized(headers: &http::HeaderMap, path: &str) -> http::Response<Body> {
    let error = RpcError::new(code::SERVER_ERROR, "this MCP server needs the client's own OAuth token");
    let mut response = rpc_response(StatusCode::UNAUTHORIZED, &error, None);
    if let Ok(value) = HeaderValue::from_str(&challenge(headers, path, "")) {
        response.headers_mut().insert(http::header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The server's challenge with its `resource_metadata` replaced by the gateway's (its `error`,
/// `scope` and other parameters kept), so the client asks the right authorization server for a
/// token meant for this resource.
pub fn rewrite_challenge(upstream: &str, headers: &http::HeaderMap, path: &str) -> String {
    let params = upstream.trim_start().trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let kept: Vec<&str> = split_params(params)
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.to_ascii_lowercase().starts_with("resource_metadata="))
        .collect();
    challenge(headers, path, &kept.join(", "))
}

/// Auth parameters split on the commas outside quoted strings.
fn split_params(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(text.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text.get(start..).unwrap_or_default());
    parts
}

/// The metadata document for `/mcp/{slug}` (`path` as the client asked for it).
pub async fn resource_metadata<H: Host>(
    host: &H,
    config: &Config,
    headers: &http::HeaderMap,
    slug: &str,
    path: &str,
) -> http::Response<Body> {
    let Some(server) =
        config.mcp_servers.get(slug).filter(|s| matches!(s.credential, CredentialConfig::OauthPassthrough))
    else {
        let error = RpcError::new(code::SERVER_ERROR, format!("no OAuth-protected MCP server `{slug}`"));
        return rpc_response(StatusCode::NOT_FOUND, &error, None);
    };
    let (servers, scopes) = if server.authorization_servers.is_empty() {
        match upstream_metadata(host, slug, server).await {
            Some(found) => found,
            None => {
                let error =
                    RpcError::new(code::INTERNAL_ERROR, "the server's own protected-resource metadata is unavailable");
                return rpc_response(StatusCode::BAD_GATEWAY, &error, None);
            }
        }
    } else {
        (server.authorization_servers.clone(), Vec::new())
    };
    let mut document = json!({
        "resource": format!("{}{path}", origin(headers)),
        "authorization_servers": servers,
        "bearer_methods_supported": ["header"],
        "resource_name": format!("MCP server `{slug}` through the gateway"),
    });
    if let (false, Some(map)) = (scopes.is_empty(), document.as_object_mut()) {
        map.insert("scopes_supported".into(), json!(scopes));
    }
    let mut response = http::Response::new(Body::Full(Bytes::from(document.to_string())));
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    response
}

/// The authorization servers and scopes of the server's own metadata, cached in KV.
async fn upstream_metadata<H: Host>(
    host: &H,
    slug: &str,
    server: &McpServerConfig,
) -> Option<(Vec<String>, Vec<String>)> {
    let key = format!("mcp:prm:{slug}");
    let now = host.now_millis();
    if let Ok(Some(stored)) = host.kv_get(&key).await {
        if let Ok(cached) = serde_json::from_slice::<Value>(&stored) {
            if cached.get("expires_ms").and_then(Value::as_u64).is_some_and(|e| e > now) {
                return Some(lists(cached.get("document").unwrap_or(&Value::Null)));
            }
        }
    }
    let uri: http::Uri = server.url.parse().ok()?;
    let url =
        format!("{}://{}{METADATA_PREFIX}{}", uri.scheme_str()?, uri.authority()?, uri.path().trim_end_matches('/'));
    let request = http::Request::get(url).header(http::header::ACCEPT, "application/json").body(Body::empty()).ok()?;
    let response = with_timeout(host, UPSTREAM_METADATA_TIMEOUT_MS, host.fetch(request)).await?.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let bytes = read_whole(host, response.into_body(), 64 * 1024, UPSTREAM_METADATA_TIMEOUT_MS).await.ok()?;
    let document: Value = serde_json::from_slice(&bytes).ok()?;
    let cached = json!({"expires_ms": now + UPSTREAM_METADATA_TTL_MS, "document": document});
    let _ = host.kv_put(&key, Bytes::from(cached.to_string())).await;
    Some(lists(&document))
}

fn lists(document: &Value) -> (Vec<String>, Vec<String>) {
    let strings = |key: &str| -> Vec<String> {
        document[key].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
    };
    (strings("authorization_servers"), strings("scopes_supported"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        h
    }

    #[test]
    fn challenges_point_at_the_gateways_metadata_and_keep_the_servers_parameters() {
        assert_eq!(origin(&headers("127.0.0.1:8787")), "http://127.0.0.1:8787");
        assert_eq!(origin(&headers("gw.example.com")), "https://gw.example.com");
        let rewritten = rewrite_challenge(
            r#"Bearer error="invalid_token", error_description="expired, sorry", resource_metadata="https://up.test/.well-known/oauth-protected-resource/mcp", scope="files:read""#,
            &headers("gw.example.com"),
            "/mcp/files",
        );
        assert_eq!(
            rewritten,
            r#"Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/mcp/files", error="invalid_token", error_description="expired, sorry", scope="files:read""#
        );
    }
}
