//! Gateway API keys: the caller presents a key, the config holds its SHA-256.

use http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

use crate::config::{Config, PrincipalConfig};
use crate::error::{ErrorClass, PhaseError};

/// Lowercase hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Lowercase hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Constant-time equality: the time taken says nothing about where two values differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The configured key whose hash is `hash`, every stored hash compared in constant time (and
/// every one compared, so the time taken does not tell which matched).
pub fn key_with_hash<'c>(config: &'c Config, hash: &str) -> Option<&'c crate::config::KeyConfig> {
    config.keys.iter().fold(None, |found, key| match same(key.sha256.as_bytes(), hash.as_bytes()) {
        true => found.or(Some(key)),
        false => found,
    })
}

/// Lowercase hex SHA-256 of a key, as stored in `keys[].sha256`.
pub fn hash_key(key: &str) -> String {
    sha256_hex(key.as_bytes())
}

/// The token of `Authorization: Bearer <token>`, trimmed.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The gateway key a request presents: `x-gateway-key` wins (then `Authorization` may carry an
/// upstream token), else `Authorization: Bearer`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-gateway-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    bearer(headers)
}

/// Why a request has no principal: a 401, the client's to mend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing gateway API key: send `Authorization: Bearer <key>` or `x-gateway-key`")]
    Missing,
    #[error("invalid gateway API key")]
    Invalid,
}

impl PhaseError for AuthError {
    fn class(&self) -> ErrorClass {
        ErrorClass::client(StatusCode::UNAUTHORIZED, "authentication_error", Some("invalid_api_key"))
    }
}

/// Maps the presented key to its principal.
pub fn authenticate<'c>(config: &'c Config, headers: &HeaderMap) -> Result<&'c PrincipalConfig, AuthError> {
    let key = presented_key(headers).filter(|k| !k.is_empty()).ok_or(AuthError::Missing)?;
    let hash = hash_key(key);
    key_with_hash(config, &hash).map(|k| &k.principal).ok_or(AuthError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    fn config() -> Config {
        let doc = format!(
            r#"{{"version": 1, "keys": [{{"sha256": "{}", "principal": {{"kind": "user", "id": "alice"}}}}]}}"#,
            hash_key("sk-test")
        );
        Config::from_json(doc.as_bytes()).unwrap()
    }

    #[test]
    fn hash_matches_a_known_sha256() {
        assert_eq!(hash_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn bearer_key_maps_to_its_principal() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer sk-test".parse().unwrap());
        assert_eq!(authenticate(&config(), &headers).unwrap().id, "alice");
    }

    #[test]
    fn x_gateway_key_wins_over_authorization() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer upstream-token".parse().unwrap());
        headers.insert("x-gateway-key", "sk-test".parse().unwrap());
        assert_eq!(authenticate(&config(), &headers).unwrap().id, "alice");
    }

    #[test]
    fn missing_and_wrong_keys_are_401() {
        let cfg = config();
        assert_eq!(ApiError::from(authenticate(&cfg, &HeaderMap::new()).unwrap_err()).status, 401);
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer nope".parse().unwrap());
        let err = ApiError::from(authenticate(&cfg, &headers).unwrap_err());
        assert_eq!(err.status, 401);
        assert_eq!(err.message, "invalid gateway API key");
    }
}
