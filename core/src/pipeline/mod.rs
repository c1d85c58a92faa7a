//! The request pipeline, generic over [`Host`]: parse and authenticate, resolve, send with
//! retries and fallbacks, translate (incrementally for streams), record.

mod admin;
mod attempts;
mod body;
mod cached;
mod chat;
mod chat_guard;
mod context;
mod guard;
mod limits;
mod mcp;
mod operations;
mod phases;
mod recorder;
mod resolve;
mod responses;
pub mod stream;
mod uploads;

use std::cell::Cell;
use std::rc::Rc;

use http::{HeaderValue, Method, StatusCode};
use serde_json::json;

use crate::config::{Config, CONFIG_KV_KEY};
use crate::config_cache::{ConfigCache, Loaded};
use crate::error::{ApiError, ErrorClass, PhaseError};
use crate::host::{Body, Host, LogLevel};
use crate::origin;
use crate::providers::Operation;
use crate::trace::attrs::*;
use crate::trace::{Trace, TraceParent};

use admin::KV_TIMEOUT_MS;
use body::{json_response, with_timeout};
use context::RequestContext;
use recorder::Recorder;

/// What the request asked for, from its method and path.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'p> {
    Health,
    /// A browser's CORS preflight (`OPTIONS`), answered for allowed origins only.
    Preflight,
    /// The admin API (`/admin/config...`): its own key, no configuration needed.
    Admin(admin::AdminCall),
    ChatCompletions {
        route: Option<&'p str>,
    },
    Operation {
        route: Option<&'p str>,
        op: Operation,
    },
    Upload {
        route: Option<&'p str>,
        op: Operation,
    },
    Mcp {
        slug: &'p str,
    },
    /// RFC 9728 metadata for an `oauth_passthrough` MCP server: public, no key.
    McpResourceMetadata {
        slug: &'p str,
    },
    Models {
        route: Option<&'p str>,
    },
}

fn endpoint<'p>(method: &Method, path: &'p str) -> Result<Endpoint<'p>, ApiError> {
    if let Some(call) = admin::call(method, path) {
        return call.map(Endpoint::Admin);
    }
    let trimmed = path.trim_end_matches('/');
    if let Some(slug) = trimmed.strip_prefix("/mcp/").filter(|s| !s.is_empty() && !s.contains('/')) {
        return Ok(Endpoint::Mcp { slug });
    }
    let metadata = trimmed.strip_prefix(mcp::oauth::METADATA_PREFIX).and_then(|p| p.strip_prefix("/mcp/"));
    if let Some(slug) = metadata.filter(|s| !s.is_empty() && !s.contains('/')) {
        if *method != Method::GET {
            return Err(EndpointError::MetadataIsGetOnly.into());
        }
        return Ok(Endpoint::McpResourceMetadata { slug });
    }
    let (route, rest) = match trimmed.strip_prefix("/v1/") {
        Some(rest) => (None, rest),
        None => match trimmed.trim_start_matches('/').split_once("/v1/") {
            Some((route, rest)) if !route.is_empty() && !route.contains('/') => (Some(route), rest),
            _ if trimmed == "/healthz" => return Ok(Endpoint::Health),
            _ => return Err(EndpointError::NotFound(path.to_owned()).into()),
        },
    };
    let (found, allowed) = match rest {
        "chat/completions" => (Endpoint::ChatCompletions { route }, Method::POST),
        "embeddings" => (Endpoint::Operation { route, op: Operation::Embeddings }, Method::POST),
        "images/generations" => (Endpoint::Operation { route, op: Operation::ImageGenerations }, Method::POST),
        "moderations" => (Endpoint::Operation { route, op: Operation::Moderations }, Method::POST),
        "audio/speech" => (Endpoint::Operation { route, op: Operation::Speech }, Method::POST),
        "responses" => (Endpoint::Operation { route, op: Operation::Responses }, Method::POST),
        "audio/transcriptions" => (Endpoint::Upload { route, op: Operation::Transcriptions }, Method::POST),
        "audio/translations" => (Endpoint::Upload { route, op: Operation::Translations }, Method::POST),
        "models" => (Endpoint::Models { route }, Method::GET),
        _ => return Err(EndpointError::NotFound(path.to_owned()).into()),
    };
    if *method != allowed {
        return Err(EndpointError::MethodNotAllowed { path: path.to_owned(), allowed }.into());
    }
    Ok(found)
}

/// Why a request names no endpoint the gateway serves: the client's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum EndpointError {
    #[error("no endpoint at `{0}`")]
    NotFound(String),
    #[error("`{path}` accepts {allowed} only")]
    MethodNotAllowed { path: String, allowed: Method },
    #[error("metadata is GET only")]
    MetadataIsGetOnly,
    #[error("a preflight names its origin")]
    PreflightWithoutOrigin,
}

impl PhaseError for EndpointError {
    fn class(&self) -> ErrorClass {
        match self {
            EndpointError::NotFound(_) => {
                ErrorClass::client(StatusCode::NOT_FOUND, "invalid_request_error", Some("not_found"))
            }
            _ => {
                ErrorClass::client(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", Some("method_not_allowed"))
            }
        }
    }
}

/// Why no configuration is in force: the gateway's (its store, or the document pushed to it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ConfigLoadError {
    #[error("the configuration store did not answer in time")]
    Timeout,
    #[error("cannot read the configuration store: {0}")]
    Store(String),
    #[error("no configuration loaded: store the document under the key `config` (see the README, Configuration)")]
    Missing,
    /// The detail (which may quote a value) goes to the log, not to unauthenticated callers.
    #[error("the stored configuration is invalid; the gateway log names the field")]
    Invalid,
}

impl PhaseError for ConfigLoadError {
    fn class(&self) -> ErrorClass {
        ErrorClass::gateway("gateway_unavailable")
    }
}

/// The configuration: from the cache while fresh, else read from KV, validated and cached.
async fn load_config<H: Host>(host: &H, cache: &ConfigCache) -> Result<Loaded, ConfigLoadError> {
    let now = host.now_millis();
    if let Some(config) = cache.fresh(now) {
        return Ok(config);
    }
    let raw = with_timeout(host, KV_TIMEOUT_MS, host.kv_get(CONFIG_KV_KEY))
        .await
        .ok_or(ConfigLoadError::Timeout)?
        .map_err(|e| ConfigLoadError::Store(e.to_string()))?
        .ok_or(ConfigLoadError::Missing)?;
    // Unchanged since it was parsed: keep the parsed form, and the policies it has parsed.
    if let Some(loaded) = cache.unchanged(now, &raw) {
        return Ok(loaded);
    }
    let config = Config::from_json(&raw).map_err(|e| {
        host.log(
            LogLevel::Error,
            &format!(
                "{{\"msg\":\"stored configuration refused\",\"field\":{:?},\"error\":{:?}}}",
                e.path,
                mask_quoted(&e.message)
            ),
        );
        ConfigLoadError::Invalid
    })?;
    let loaded = Loaded::new(Rc::new(config));
    cache.store(now, raw, loaded.clone());
    Ok(loaded)
}

/// An error message with every quoted span (`…` or "…") masked: a refused document's message
/// may quote a value, which may be a secret pasted into the wrong field.
fn mask_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(quote) if c == quote => {
                out.push_str("***");
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if matches!(c, '`' | '"') {
                    open = Some(c);
                }
            }
        }
    }
    if open.is_some() {
        out.push_str("***");
    }
    out
}

/// Handles one request. Never panics and never returns without a response. `cache` lives as long
/// as the runtime keeps the instance (a Worker isolate); pass a fresh one where nothing survives.
pub async fn handle<H: Host + 'static>(
    host: Rc<H>,
    cache: &ConfigCache,
    request: http::Request<Body>,
) -> http::Response<Body> {
    // Objects parsed from here on (client and upstream JSON) hash their keys with fresh keys: a
    // pre-initialized Spin snapshot would otherwise give every instance the same, known ones.
    serde_json::seed::reseed(host.random_u64(), host.random_u64());
    let (parts, body) = request.into_parts();
    // A DNS-rebound page reaches a loopback listener under a foreign name: refused first.
    let loopback_only = host.secret(origin::LOOPBACK_ONLY_SECRET).is_some_and(|v| v.trim() == "true");
    if let Err(error) = origin::check_host(&parts.headers, loopback_only) {
        return match parts.uri.path().starts_with("/mcp/") {
            true => mcp::api_error(&error),
            false => error.into_response(),
        };
    }
    let endpoint = match origin::is_preflight(&parts.method, &parts.headers) {
        true => Ok(Endpoint::Preflight),
        false => endpoint(&parts.method, parts.uri.path()),
    };
    let endpoint = match endpoint {
        Ok(Endpoint::Health) => return json_response(StatusCode::OK, &json!({"status": "ok"})),
        other => other,
    };
    let request_id = format!("gw-{:016x}", host.random_u64());
    let recorder = start_trace(&host, &parts, &request_id);
    let cors = Cell::new(None);
    let outcome = match endpoint {
        Ok(endpoint) => serve(&host, cache, &parts, body, endpoint, &recorder, &cors).await,
        Err(error) => Err(error),
    };
    let mut response = match outcome {
        Ok(response) => response,
        Err(error) => {
            let root = recorder.root();
            recorder.fail(root, error.message.clone());
            recorder.set(root, ERROR_TYPE, error.code.clone().unwrap_or_else(|| error.kind.to_string()));
            recorder.set(root, GATEWAY_ERROR_BLAME, error.blame().as_str());
            recorder.note(format!("error: {}", error.message));
            error.into_response()
        }
    };
    recorder.note(response.status().as_u16().to_string());
    let headers = response.headers_mut();
    if let Some(origin) = cors.take() {
        origin::allow(headers, origin);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    if let Ok(value) = HeaderValue::from_str(&recorder.trace_id_hex()) {
        headers.insert("x-trace-id", value);
    }
    phases::record(&recorder, &response);
    response
}

/// The request's trace, its root span named for the method and path (continuing the client's
/// `traceparent`, if any).
fn start_trace<H: Host + 'static>(host: &Rc<H>, parts: &http::request::Parts, request_id: &str) -> Recorder<H> {
    let parent = parts.headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(TraceParent::parse);
    let name = format!("{} {}", parts.method, parts.uri.path());
    let trace = Trace::start(parent, name, host.now_millis(), || host.random_u64());
    let recorder = Recorder::new(Rc::clone(host), trace);
    let root = recorder.root();
    recorder.set(root, HTTP_REQUEST_METHOD, parts.method.as_str());
    recorder.set(root, URL_PATH, parts.uri.path());
    recorder.set(root, GATEWAY_REQUEST_ID, request_id);
    recorder.note(format!("{} {}", parts.method, parts.uri.path()));
    recorder
}

async fn serve<H: Host + 'static>(
    host: &Rc<H>,
    cache: &ConfigCache,
    parts: &http::request::Parts,
    body: Body,
    endpoint: Endpoint<'_>,
    recorder: &Recorder<H>,
    cors: &Cell<Option<HeaderValue>>,
) -> Result<http::Response<Body>, ApiError> {
    if let Endpoint::Admin(call) = endpoint {
        // No web page may push a configuration, whatever origins the configuration allows.
        origin::check_admin(&parts.headers)?;
        return admin::serve(&**host, cache, parts, body, call).await;
    }
    let Loaded { config, policies } = load_config(&**host, cache).await?;
    recorder.configure(Rc::clone(&config));
    // A page of another origin is refused before its key is even looked at.
    match origin::check_origin(&parts.headers, &config.allowed_origins) {
        Ok(allowed) => cors.set(allowed),
        Err(error) if matches!(endpoint, Endpoint::Mcp { .. }) => return Ok(mcp::api_error(&error)),
        Err(error) => return Err(error),
    }
    if endpoint == Endpoint::Preflight {
        return match cors.take() {
            Some(origin) => Ok(origin::preflight(origin, &parts.headers)),
            None => Err(EndpointError::PreflightWithoutOrigin.into()),
        };
    }
    if let Endpoint::McpResourceMetadata { slug } = endpoint {
        let path = parts.uri.path().strip_prefix(mcp::oauth::METADATA_PREFIX).unwrap_or_default();
        return Ok(mcp::oauth::resource_metadata(&**host, &config, &parts.headers, slug, path).await);
    }
    let principal = phases::authenticate(&config, parts, recorder);
    let cx = |principal| RequestContext { host, config: &config, policies: &policies, parts, principal, recorder };
    if let Endpoint::Mcp { slug } = endpoint {
        return Ok(match principal {
            Ok(principal) => mcp_call(&cx(principal), body, slug).await,
            Err(error) => mcp::api_error(&error),
        });
    }
    let cx = cx(principal?);
    match endpoint {
        Endpoint::Models { route } => models(&cx, route),
        Endpoint::ChatCompletions { route } => chat::chat_completions(&cx, body, route).await,
        Endpoint::Operation { route, op } => operations::forward(&cx, body, (route, op)).await,
        Endpoint::Upload { route, op } => uploads::upload(&cx, body, (route, op)).await,
        Endpoint::Health
        | Endpoint::Mcp { .. }
        | Endpoint::McpResourceMetadata { .. }
        | Endpoint::Admin(_)
        | Endpoint::Preflight => Err(ApiError::not_found("health, MCP and admin requests are served above")),
    }
}

/// An MCP request, counted against the key's own quota (routes do not apply to MCP).
async fn mcp_call<H: Host + 'static>(cx: &RequestContext<'_, H>, body: Body, slug: &str) -> http::Response<Body> {
    match phases::rate_limit(cx, None, None).await {
        Ok(admitted) => {
            let mut response = mcp::serve(cx, body, slug).await;
            admitted.mark(&mut response);
            response
        }
        Err(error) => mcp::api_error(&error),
    }
}

/// `GET /v1/models`: every `provider/model` listed in config whose provider is usable (its secret
/// is set) and open to direct use, and every route, as far as the caller's key may use them.
fn models<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    route: Option<&str>,
) -> Result<http::Response<Body>, ApiError> {
    let (host, config, principal) = (&**cx.host, cx.config, cx.principal);
    let key = config.keys.iter().find(|k| std::ptr::eq(&k.principal, principal));
    let may_route = |name: &str| key.is_none_or(|k| k.allows_route(name));
    let entry = |id: String, owner: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": owner});
    let data: Vec<_> = match route {
        Some(name) => {
            config.routes.get(name).ok_or_else(|| ApiError::not_found(format!("unknown route `{name}`")))?;
            may_route(name).then(|| entry(name.to_owned(), "gateway")).into_iter().collect()
        }
        None => config
            .providers
            .iter()
            .filter(|(_, p)| p.direct && p.api_key_secret.as_deref().is_none_or(|secret| host.secret(secret).is_some()))
            .flat_map(|(name, p)| p.models.iter().map(move |m| (name, format!("{name}/{m}"))))
            .filter(|(_, id)| key.is_none_or(|k| k.allows_model(id)))
            .map(|(name, id)| entry(id, name))
            .chain(config.routes.keys().filter(|r| may_route(r)).map(|r| entry(r.clone(), "gateway")))
            .collect(),
    };
    Ok(json_response(StatusCode::OK, &json!({"object": "list", "data": data})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_documents_message_is_logged_with_its_quoted_values_masked() {
        assert_eq!(
            mask_quoted("invalid type: string \"sk-live-123\", expected u32 at `keys[0]`"),
            "invalid type: string \"***\", expected u32 at `***`"
        );
        assert_eq!(mask_quoted("unterminated `sk-live"), "unterminated `***");
    }

    #[test]
    fn paths_map_to_endpoints() {
        assert_eq!(endpoint(&Method::POST, "/v1/chat/completions"), Ok(Endpoint::ChatCompletions { route: None }));
        assert_eq!(
            endpoint(&Method::POST, "/fast/v1/chat/completions"),
            Ok(Endpoint::ChatCompletions { route: Some("fast") })
        );
        assert_eq!(endpoint(&Method::GET, "/v1/models/"), Ok(Endpoint::Models { route: None }));
        assert_eq!(endpoint(&Method::GET, "/healthz"), Ok(Endpoint::Health));
        assert_eq!(endpoint(&Method::GET, "/v1/chat/completions").unwrap_err().status, 405);
        assert_eq!(endpoint(&Method::POST, "/a/b/v1/chat/completions").unwrap_err().status, 404);
        assert_eq!(endpoint(&Method::POST, "/nope").unwrap_err().status, 404);
    }
}
