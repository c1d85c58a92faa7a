//! The admin API: configuration pushed, checked, read back and rolled back over HTTP,
//! authenticated by the admin key (the secret `gateway_admin_key`).
//!
//! | method and path | what it does |
//! | --- | --- |
//! | `PUT /admin/config` | validates fully (Cedar included), stores it as the next version |
//! | `POST /admin/config/validate` | the same checks, nothing stored |
//! | `GET /admin/config` | the current document (`ETag: "v{n}"`), secret-shaped strings masked |
//! | `GET /admin/config/history` | the versions kept, newest first |
//! | `POST /admin/config/rollback` | `{"version": n}`: stores version n again, as the next version |
//!
//! The document being served stays under `config` (one read on the request path); each accepted
//! version is also kept under `config/v/{n}`, and `config/history` lists them.

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::body::{json_response, read_whole, with_timeout, ReadError};
use crate::auth::{hash_key, sha256_hex};
use crate::config::{Config, ConfigError, CONFIG_KV_KEY, CONFIG_VERSION};
use crate::config_cache::ConfigCache;
use crate::error::{ApiError, ErrorClass, PhaseError};
use crate::guard::{detect, redact, Category, Detectors};
use crate::host::{Body, Host, LogLevel};
use crate::policy::{compile, COMPILED_KV_KEY};

/// Longest wait for the configuration store.
pub(super) const KV_TIMEOUT_MS: u64 = 10_000;

/// The secret holding the admin key; without it the admin API is off.
pub const ADMIN_KEY_SECRET: &str = "gateway_admin_key";

/// How many accepted versions are kept for rollback.
pub const HISTORY_KEPT: usize = 10;

/// Largest configuration document accepted.
const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

const HISTORY_KEY: &str = "config/history";

fn version_key(version: u64) -> String {
    format!("config/v/{version}")
}

/// An admin operation, from its method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminCall {
    Get,
    Put,
    Validate,
    History,
    Rollback,
}

/// The admin call at `path`: `None` when the path is not under `/admin/`, an error for a known
/// path with the wrong method or an unknown one.
pub(crate) fn call(method: &Method, path: &str) -> Option<Result<AdminCall, ApiError>> {
    let rest = path.trim_end_matches('/').strip_prefix("/admin/")?;
    let found = match (rest, method.as_str()) {
        ("config", "GET") => AdminCall::Get,
        ("config", "PUT") => AdminCall::Put,
        ("config/validate", "POST") => AdminCall::Validate,
        ("config/history", "GET") => AdminCall::History,
        ("config/rollback", "POST") => AdminCall::Rollback,
        ("config" | "config/validate" | "config/history" | "config/rollback", _) => {
            return Some(Err(AdminError::NotAnOperation(format!("{method} {path}")).into()))
        }
        _ => return Some(Err(AdminError::NoEndpoint(path.to_owned()).into())),
    };
    Some(Ok(found))
}

/// Why an admin call fails: the caller's (a key, a method, a document, a version), or the
/// gateway's (its store).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AdminError {
    #[error("`{0}` is not an admin operation (see the README, Admin API)")]
    NotAnOperation(String),
    #[error("no admin endpoint at `{0}`")]
    NoEndpoint(String),
    #[error("the admin API is off: set the secret `{ADMIN_KEY_SECRET}` to turn it on")]
    Off,
    #[error("missing admin key: send `Authorization: Bearer <admin key>`")]
    MissingKey,
    #[error("invalid admin key")]
    InvalidKey,
    #[error("a configuration document is at most {MAX_DOCUMENT_BYTES} bytes")]
    DocumentTooLarge,
    #[error("the document could not be read: {0}")]
    DocumentUnreadable(String),
    #[error("the document stalled")]
    DocumentStalled,
    #[error("the configuration changed: `If-Match: {expected}` but the current version is {current}")]
    VersionMismatch { expected: String, current: String },
    #[error("a rollback takes `{{\"version\": N}}`, N from GET /admin/config/history")]
    RollbackWithoutVersion,
    #[error("version {0} is not kept (the last {HISTORY_KEPT} are; see GET /admin/config/history)")]
    VersionNotKept(u64),
    #[error("no configuration stored yet: PUT /admin/config")]
    NothingStored,
    #[error("the configuration store did not answer in time")]
    StoreTimeout,
    #[error("cannot read the configuration store: {0}")]
    StoreRead(String),
    #[error("cannot write the configuration store: {0}")]
    StoreWrite(String),
    #[error("the configuration history (`{HISTORY_KEY}`) is unreadable: {0}")]
    HistoryUnreadable(String),
    #[error("the stored document is not JSON: {0}")]
    StoredNotJson(String),
}

impl PhaseError for AdminError {
    fn class(&self) -> ErrorClass {
        let client = ErrorClass::client;
        match self {
            AdminError::NotAnOperation(_) => {
                client(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", Some("method_not_allowed"))
            }
            AdminError::NoEndpoint(_) | AdminError::VersionNotKept(_) | AdminError::NothingStored => {
                client(StatusCode::NOT_FOUND, "invalid_request_error", Some("not_found"))
            }
            AdminError::Off => client(StatusCode::FORBIDDEN, "permission_error", Some("admin_disabled")),
            AdminError::MissingKey | AdminError::InvalidKey => {
                client(StatusCode::UNAUTHORIZED, "authentication_error", Some("invalid_api_key"))
            }
            AdminError::DocumentTooLarge => ErrorClass::TOO_LARGE,
            AdminError::VersionMismatch { .. } => {
                client(StatusCode::PRECONDITION_FAILED, "invalid_request_error", Some("version_mismatch"))
            }
            AdminError::DocumentUnreadable(_) | AdminError::DocumentStalled | AdminError::RollbackWithoutVersion => {
                ErrorClass::INVALID_REQUEST
            }
            AdminError::StoreTimeout
            | AdminError::StoreRead(_)
            | AdminError::StoreWrite(_)
            | AdminError::HistoryUnreadable(_)
            | AdminError::StoredNotJson(_) => ErrorClass::gateway("gateway_unavailable"),
        }
    }
    fn param(&self) -> Option<String> {
        matches!(self, AdminError::RollbackWithoutVersion).then(|| "version".to_owned())
    }
}

/// One kept version.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: u64,
    pub stored_at_ms: u64,
    /// SHA-256 of the stored document.
    pub sha256: String,
    pub bytes: usize,
    /// Set when this version was a rollback to an earlier one.
    pub rollback_of: Option<u64>,
}

/// The versions kept, oldest first (the last one is being served).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub versions: Vec<VersionInfo>,
    /// A seeded document not yet kept as version 0.
    #[serde(skip)]
    seeded: Option<Bytes>,
}

impl History {
    fn current(&self) -> Option<u64> {
        self.versions.last().map(|v| v.version)
    }
}

/// Serves one admin call. Needs no configuration: the first document is pushed through here too.
pub(crate) async fn serve<H: Host>(
    host: &H,
    cache: &ConfigCache,
    parts: &http::request::Parts,
    body: Body,
    call: AdminCall,
) -> Result<http::Response<Body>, ApiError> {
    authorize(host, &parts.headers)?;
    match call {
        AdminCall::Get => current(host).await,
        AdminCall::History => {
            let history = history(host).await?;
            let versions: Vec<&VersionInfo> = history.versions.iter().rev().collect();
            Ok(json_response(StatusCode::OK, &json!({"current": history.current(), "versions": versions})))
        }
        AdminCall::Validate => {
            let document = read_document(host, body).await?;
            let config = accept(&document)?;
            Ok(json_response(StatusCode::OK, &json!({"valid": true, "summary": summary(&config)})))
        }
        AdminCall::Put => {
            let document = read_document(host, body).await?;
            put(host, cache, document, &parts.headers).await
        }
        AdminCall::Rollback => {
            let document = read_document(host, body).await?;
            rollback(host, cache, &document).await
        }
    }
}

/// A new document stored as the next version, when `If-Match` (if sent) names the current one.
async fn put<H: Host>(
    host: &H,
    cache: &ConfigCache,
    document: Bytes,
    headers: &http::HeaderMap,
) -> Result<http::Response<Body>, ApiError> {
    let config = accept(&document)?;
    let history = history(host).await?;
    if let Some(expected) = headers.get(http::header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        let current = history.current().map(etag);
        if expected.trim() != "*" && current.as_deref() != Some(expected.trim()) {
            let current = current.unwrap_or_else(|| "none".into());
            return Err(AdminError::VersionMismatch { expected: expected.to_owned(), current }.into());
        }
    }
    let stored = store(host, history, document, &config, None).await?;
    cache.clear();
    Ok(stored_response(&stored, &config))
}

/// A kept version (`{"version": N}`) stored again as the next version.
async fn rollback<H: Host>(host: &H, cache: &ConfigCache, request: &[u8]) -> Result<http::Response<Body>, ApiError> {
    let version = serde_json::from_slice::<Value>(request)
        .ok()
        .and_then(|v| v.get("version")?.as_u64())
        .ok_or(AdminError::RollbackWithoutVersion)?;
    let history = history(host).await?;
    let listed = history.versions.iter().any(|v| v.version == version);
    let kept = match (&history.seeded, version) {
        (Some(seeded), 0) => Some(seeded.clone()),
        _ if listed => read(host, &version_key(version)).await?,
        _ => None,
    };
    let Some(document) = kept else {
        return Err(AdminError::VersionNotKept(version).into());
    };
    // Accepted again: the gateway may have grown stricter since that version was stored.
    let config = accept(&document)?;
    let stored = store(host, history, document, &config, Some(version)).await?;
    cache.clear();
    Ok(stored_response(&stored, &config))
}

/// The admin key, from `x-gateway-admin-key` or `Authorization: Bearer`, compared by hash.
fn authorize<H: Host>(host: &H, headers: &http::HeaderMap) -> Result<(), AdminError> {
    let Some(expected) = host.secret(ADMIN_KEY_SECRET) else {
        return Err(AdminError::Off);
    };
    let presented = headers
        .get("x-gateway-admin-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .or_else(|| crate::auth::bearer(headers));
    let Some(presented) = presented.filter(|k| !k.is_empty()) else {
        return Err(AdminError::MissingKey);
    };
    // Equal-length digests compared whole: the time taken says nothing about the key.
    if !crate::auth::same(hash_key(presented).as_bytes(), hash_key(&expected).as_bytes()) {
        return Err(AdminError::InvalidKey);
    }
    Ok(())
}

async fn read_document<H: Host>(host: &H, body: Body) -> Result<Bytes, AdminError> {
    read_whole(host, body, MAX_DOCUMENT_BYTES, KV_TIMEOUT_MS).await.map_err(|e| match e {
        ReadError::TooLarge => AdminError::DocumentTooLarge,
        ReadError::Broken(e) => AdminError::DocumentUnreadable(e.to_string()),
        ReadError::Stalled => AdminError::DocumentStalled,
    })
}

/// Every check a document must pass before it is stored; the error names the field.
fn accept(document: &[u8]) -> Result<Config, ApiError> {
    crate::policy::accept(document).map_err(|e: ConfigError| {
        // The message may quote a value of the document (a type error does): a secret pasted in
        // the wrong field is masked before it reaches the answer, the log or the trace.
        let mut message = Value::String(format!("configuration refused: {e}"));
        mask(&mut message, None);
        let message = message.as_str().unwrap_or("configuration refused").to_owned();
        let mut error = ApiError::invalid_request(message).with_code("invalid_config");
        if !e.path.is_empty() {
            error = error.with_param(e.path);
        }
        error
    })
}

fn summary(config: &Config) -> Value {
    let policies = config.policies.len()
        + config.routes.values().map(|r| r.policies.len()).sum::<usize>()
        + config.mcp_servers.values().map(|s| s.policies.len()).sum::<usize>();
    json!({
        "format_version": CONFIG_VERSION,
        "providers": config.providers.len(),
        "routes": config.routes.len(),
        "mcp_servers": config.mcp_servers.len(),
        "keys": config.keys.len(),
        "policies": policies,
    })
}

fn etag(version: u64) -> String {
    format!("\"v{version}\"")
}

fn stored_response(stored: &VersionInfo, config: &Config) -> http::Response<Body> {
    let body = json!({
        "version": stored.version,
        "stored_at_ms": stored.stored_at_ms,
        "sha256": stored.sha256,
        "rollback_of": stored.rollback_of,
        "summary": summary(config),
    });
    let mut response = json_response(StatusCode::OK, &body);
    if let Ok(value) = HeaderValue::from_str(&etag(stored.version)) {
        response.headers_mut().insert(http::header::ETAG, value);
    }
    response
}

async fn read<H: Host>(host: &H, key: &str) -> Result<Option<Bytes>, AdminError> {
    with_timeout(host, KV_TIMEOUT_MS, host.kv_get(key))
        .await
        .ok_or(AdminError::StoreTimeout)?
        .map_err(|e| AdminError::StoreRead(e.to_string()))
}

async fn write<H: Host>(host: &H, key: &str, value: Bytes) -> Result<(), AdminError> {
    with_timeout(host, KV_TIMEOUT_MS, host.kv_put(key, value))
        .await
        .ok_or(AdminError::StoreTimeout)?
        .map_err(|e| AdminError::StoreWrite(e.to_string()))
}

/// The history; a store seeded without the admin API (a first `wrangler kv` put, `scripts/dev`)
/// has a document but no history: that document is version 0, kept once the next is stored.
async fn history<H: Host>(host: &H) -> Result<History, ApiError> {
    if let Some(bytes) = read(host, HISTORY_KEY).await? {
        // Unreadable, it would restart the numbering over kept versions: refuse instead.
        return serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::from(AdminError::HistoryUnreadable(e.to_string())));
    }
    let Some(seeded) = read(host, CONFIG_KV_KEY).await? else { return Ok(History::default()) };
    let info = VersionInfo {
        version: 0,
        stored_at_ms: 0,
        sha256: sha256_hex(&seeded),
        bytes: seeded.len(),
        rollback_of: None,
    };
    Ok(History { versions: vec![info], seeded: Some(seeded) })
}

/// Stores an accepted document as the next version: kept copy first, then the served key, then
/// the history (pruned to [`HISTORY_KEPT`]). A failure before the served key is written leaves the
/// previous document served; one after it leaves the history a version behind, which the next
/// push repairs (it takes the same version number and overwrites the kept copy).
async fn store<H: Host>(
    host: &H,
    mut history: History,
    document: Bytes,
    config: &Config,
    rollback_of: Option<u64>,
) -> Result<VersionInfo, ApiError> {
    let version = history.current().map_or(1, |v| v + 1);
    let info = VersionInfo {
        version,
        stored_at_ms: host.now_millis(),
        sha256: sha256_hex(&document),
        bytes: document.len(),
        rollback_of,
    };
    if let Some(seeded) = history.seeded.take() {
        write(host, &version_key(0), seeded).await?;
    }
    write(host, &version_key(version), document.clone()).await?;
    // The compiled policies go first, so that the document is never served without them. They are
    // a cache keyed by each set's text: should this write fail, the sets are parsed instead.
    if let Err(e) = write(host, COMPILED_KV_KEY, Bytes::from(compile(config))).await {
        host.log(
            LogLevel::Warn,
            &json!({"msg": "compiled policies not stored: they are parsed per request", "error": e.to_string()})
                .to_string(),
        );
    }
    write(host, CONFIG_KV_KEY, document).await?;
    history.versions.push(info.clone());
    let dropped: Vec<u64> = {
        let excess = history.versions.len().saturating_sub(HISTORY_KEPT);
        history.versions.drain(..excess).map(|v| v.version).collect()
    };
    // The document is served from here on: a history that fails to follow is a warning, not a
    // failed push (the next push takes the same number and repairs it).
    if let Err(e) = write(host, HISTORY_KEY, Bytes::from(serde_json::to_vec(&history).unwrap_or_default())).await {
        host.log(
            LogLevel::Warn,
            &json!({"msg": "configuration stored, history not updated", "version": version, "error": e.to_string()})
                .to_string(),
        );
    }
    for old in dropped {
        if let Some(Err(e)) = with_timeout(host, KV_TIMEOUT_MS, host.kv_delete(&version_key(old))).await {
            host.log(
                LogLevel::Warn,
                &json!({"msg": "old configuration version not deleted", "version": old, "error": e.to_string()})
                    .to_string(),
            );
        }
    }
    host.log(
        LogLevel::Info,
        &json!({"msg": "configuration stored", "version": version, "rollback_of": rollback_of}).to_string(),
    );
    Ok(info)
}

/// `GET /admin/config`: the document being served, with any string a secret detector flags masked
/// (the document names secrets; a value pasted in by mistake is still never sent back).
async fn current<H: Host>(host: &H) -> Result<http::Response<Body>, ApiError> {
    // The version first, then its own kept copy: the body and its ETag always go together.
    let version = history(host).await?.current();
    let kept = match version {
        Some(v) if v > 0 => read(host, &version_key(v)).await?,
        _ => None,
    };
    let bytes = match kept {
        Some(bytes) => bytes,
        None => read(host, CONFIG_KV_KEY).await?.ok_or(AdminError::NothingStored)?,
    };
    let mut document: Value = serde_json::from_slice(&bytes).map_err(|e| AdminError::StoredNotJson(e.to_string()))?;
    mask_secrets(&mut document);
    let mut response = json_response(StatusCode::OK, &document);
    if let Some(version) = version {
        if let Ok(value) = HeaderValue::from_str(&etag(version)) {
            response.headers_mut().insert(http::header::ETAG, value);
        }
    }
    Ok(response)
}

/// Masks secret-shaped strings anywhere in a JSON value, every value under a credential-like
/// name (`authorization`, `x-api-key`, `*token*`, `*secret*`, `*password*`, `*-key`), and the
/// password of a URL's user info. Secret *names* (`api_key_secret`, `secret`) are kept: they are
/// what the document is meant to hold.
pub fn mask_secrets(value: &mut Value) {
    mask(value, None);
}

const MASK: &str = "[REDACTED:secret]";

/// Field names whose string values are references to secrets, not secrets.
const SECRET_NAME_FIELDS: &[&str] = &["api_key_secret", "secret"];

/// Maps whose values are secret names (header name -> secret name).
const SECRET_NAME_MAPS: &[&str] = &["collector_headers"];

fn credential_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if SECRET_NAME_FIELDS.contains(&name.as_str()) || name == "sha256" {
        return false;
    }
    ["authorization", "token", "secret", "password", "passwd", "cookie", "credential"].iter().any(|w| name.contains(w))
        || name.ends_with("key")
}

fn mask(value: &mut Value, field: Option<&str>) {
    match value {
        Value::String(text) => {
            if field.is_some_and(credential_name) && !text.is_empty() {
                *text = MASK.to_owned();
                return;
            }
            let only = Detectors { pii: false, secrets: true, injection: false, tool_args: false };
            let findings = detect::scan(text, only);
            if let Some(masked) = redact::redact(text, &findings, &[Category::Secret]) {
                *text = masked;
            }
            mask_url_password(text);
        }
        Value::Array(items) => items.iter_mut().for_each(|item| mask(item, field)),
        Value::Object(map) if field.is_some_and(|f| SECRET_NAME_MAPS.contains(&f)) => {
            // Values are secret names; a secret-shaped one is still masked.
            for item in map.values_mut() {
                mask(item, Some("secret"));
            }
        }
        Value::Object(map) => map.iter_mut().for_each(|(name, item)| mask(item, Some(name))),
        _ => {}
    }
}

/// `scheme://user:password@host...` -> `scheme://user:[REDACTED:secret]@host...`, for every URL
/// in the text.
fn mask_url_password(text: &mut String) {
    let mut from = 0;
    while let Some(start) = text.get(from..).and_then(|rest| rest.find("://")).map(|i| from + i + 3) {
        let rest = text.get(start..).unwrap_or_default();
        let authority = rest.split(['/', '?', '#', ' ', '"']).next().unwrap_or_default();
        from = start + authority.len();
        let Some((user_info, _host)) = authority.rsplit_once('@') else { continue };
        let Some((user, password)) = user_info.split_once(':') else { continue };
        if password.is_empty() || password == MASK {
            continue;
        }
        let password_start = start + user.len() + 1;
        let password_end = password_start + password.len();
        text.replace_range(password_start..password_end, MASK);
        from = password_start + MASK.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_covers_credential_names_url_passwords_and_secret_shapes_but_keeps_secret_names() {
        let mut doc = json!({
            "providers": {"p": {"api_key_secret": "openai_api_key", "headers": {"x-api-key": "abc123", "x-team": "search"},
                                "base_url": "https://admin:hunter2@a.test/v1 and http://u:p%40ss@b.test"}},
            "telemetry": {"collector_headers": {"authorization": "otlp_token"}},
            "notes": ["ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5"],
            "keys": [{"sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]
        });
        mask_secrets(&mut doc);
        assert_eq!(doc["providers"]["p"]["api_key_secret"], "openai_api_key");
        assert_eq!(doc["providers"]["p"]["headers"]["x-api-key"], MASK);
        assert_eq!(doc["providers"]["p"]["headers"]["x-team"], "search");
        assert_eq!(
            doc["providers"]["p"]["base_url"],
            "https://admin:[REDACTED:secret]@a.test/v1 and http://u:[REDACTED:secret]@b.test"
        );
        assert_eq!(doc["telemetry"]["collector_headers"]["authorization"], "otlp_token", "a secret's name");
        assert!(doc["notes"][0].as_str().unwrap().starts_with("[REDACTED"));
        assert_eq!(doc["keys"][0]["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn url_masking_never_panics_on_odd_text() {
        for text in ["://", "a://@", "x://:@", "é://ü:ö@ä", "http://u:@h", "://a:b@c://d:e@f", "http://[::1]:8/"] {
            let mut owned = text.to_owned();
            mask_url_password(&mut owned);
        }
    }
}
