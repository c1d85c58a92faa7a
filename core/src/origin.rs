//! The browser boundary: which web pages may drive the gateway. A request whose `Origin` is
//! present and not in `allowed_origins` is refused before anything else; the admin API takes no
//! browser request at all; on a loopback listener (the local scripts) a `Host` that is not a
//! loopback name is refused, so a DNS-rebound page cannot reach a developer's gateway. Allowed
//! origins get their CORS preflight answered and CORS headers on every response.

use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::error::ApiError;

/// The secret (Spin variable, Worker binding) the local scripts set: `true` on a loopback listener.
pub const LOOPBACK_ONLY_SECRET: &str = "gateway_loopback_only";

/// Request headers a browser app may send (echoed from the preflight when they are all tokens).
const MAX_REQUEST_HEADERS: usize = 2048;

/// Response headers an allowed browser app may read.
const EXPOSED: &str = "mcp-session-id, mcp-protocol-version, www-authenticate, retry-after, x-request-id, \
                       x-trace-id, x-gateway-cache, x-gateway-guardrail, x-gateway-attempts, x-gateway-provider, \
                       x-gateway-mcp-bridge, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, \
                       x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens";

fn forbidden(message: &str, code: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "permission_error", message).with_code(code)
}

/// Whether `host` (a `Host` header: name and optional port) names this machine's loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((name, port)) if port.is_empty() || port.strip_prefix(':').is_some_and(is_port) => {
                return name == "::1";
            }
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(&name);
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let octets: Vec<&str> = name.split('.').collect();
    octets.len() == 4
        && octets.first() == Some(&"127")
        && octets
            .iter()
            .all(|o| !o.is_empty() && o.len() <= 3 && o.bytes().all(|b| b.is_ascii_digit()) && o.parse::<u8>().is_ok())
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// On a loopback listener, a `Host` that is not a loopback name (a DNS-rebound page) is refused.
pub fn check_host(headers: &HeaderMap, loopback_only: bool) -> Result<(), ApiError> {
    if !loopback_only {
        return Ok(());
    }
    let host = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if is_loopback_host(host) {
        Ok(())
    } else {
        Err(forbidden("this gateway listens on loopback and serves only loopback host names", "host_not_allowed"))
    }
}

/// The request's `Origin`, if it sent one (browsers do on every cross-origin request).
pub fn origin(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get(http::header::ORIGIN)
}

/// The admin API answers no browser: any `Origin` is refused.
pub fn check_admin(headers: &HeaderMap) -> Result<(), ApiError> {
    match origin(headers) {
        None => Ok(()),
        Some(_) => Err(forbidden("the admin API does not accept requests from web pages", "origin_not_allowed")),
    }
}

/// Whether the request's `Origin`, when present, is one of `allowed` (`None`: no `Origin`).
pub fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<Option<HeaderValue>, ApiError> {
    let Some(value) = origin(headers) else { return Ok(None) };
    let text = value.to_str().unwrap_or_default();
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(text)) {
        Ok(Some(value.clone()))
    } else {
        Err(forbidden("requests from this web origin are not allowed (see `allowed_origins`)", "origin_not_allowed"))
    }
}

/// Whether this is a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`).
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to an allowed origin's preflight: the methods the gateway takes, the headers asked
/// for (when they are all header names), for ten minutes.
pub fn preflight(origin: HeaderValue, headers: &HeaderMap) -> http::Response<crate::host::Body> {
    let mut response = http::Response::new(crate::host::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let out = response.headers_mut();
    out.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    out.insert(http::header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE, OPTIONS"));
    let asked = headers.get(http::header::ACCESS_CONTROL_REQUEST_HEADERS).and_then(|v| v.to_str().ok());
    let names = asked.filter(|a| {
        a.len() <= MAX_REQUEST_HEADERS
            && a.split(',').all(|n| {
                let n = n.trim();
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    });
    if let Some(value) = names.and_then(|n| HeaderValue::from_str(n).ok()) {
        out.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, value);
    }
    out.insert(http::header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    out.insert(
        http::header::VARY,
        HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    );
    response
}

/// CORS headers on a response to an allowed origin.
pub fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
    headers.append(http::header::VARY, HeaderValue::from_static("Origin"));
}

/// Whether an `allowed_origins` entry is an origin as browsers send it: `http(s)://host[:port]`.
pub fn is_origin(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")) else { return false };
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses_with_or_without_a_port() {
        for host in [
            "localhost",
            "localhost:8787",
            "127.0.0.1",
            "127.0.0.1:1",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8787",
            "app.localhost:3000",
            "LOCALHOST.",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:8787",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "127.0.0.256",
            "[::2]:80",
            "[::1]x",
            "10.0.0.1",
            "0.0.0.0",
            "localhost:x",
            "127.0.0.1:",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn an_origin_not_listed_is_refused_and_a_listed_one_allowed() {
        let allowed = vec!["https://app.example".to_owned()];
        let mut headers = HeaderMap::new();
        assert_eq!(check_origin(&headers, &allowed).unwrap(), None);
        headers.insert(http::header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert_eq!(check_origin(&headers, &allowed).unwrap_err().status, StatusCode::FORBIDDEN);
        headers.insert(http::header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check_origin(&headers, &allowed).is_err());
        headers.insert(http::header::ORIGIN, HeaderValue::from_static("https://app.example"));
        assert!(check_origin(&headers, &allowed).unwrap().is_some());
        assert!(check_admin(&headers).is_err(), "not even an allowed origin reaches the admin API");
    }

    #[test]
    fn a_preflight_echoes_only_header_names() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("authorization, x-stainless-os"),
        );
        let response = preflight(HeaderValue::from_static("https://app.example"), &headers);
        assert_eq!(response.headers()[http::header::ACCESS_CONTROL_ALLOW_HEADERS], "authorization, x-stainless-os");
        headers.insert(http::header::ACCESS_CONTROL_REQUEST_HEADERS, HeaderValue::from_static("a; b"));
        let response = preflight(HeaderValue::from_static("https://app.example"), &headers);
        assert!(!response.headers().contains_key(http::header::ACCESS_CONTROL_ALLOW_HEADERS));
    }

    #[test]
    fn configured_origins_have_the_shape_browsers_send() {
        assert!(is_origin("https://app.example") && is_origin("http://localhost:3000") && is_origin("http://[::1]:80"));
        assert!(
            !is_origin("https://app.example/")
                && !is_origin("app.example")
                && !is_origin("*")
                && !is_origin("https://")
        );
    }
}
