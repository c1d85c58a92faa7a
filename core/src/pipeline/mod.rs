//! The request pipeline, generic over [`Host`]: parse and authenticate, resolve, send with
//! retries and fallbacks, translate (incrementally for streams), record.

mod chat;
pub mod stream;

use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use futures::future::{select, Either};
use http::{HeaderValue, Method, StatusCode};
use serde_json::json;

use crate::auth;
use crate::config::{Config, ConfigCache, CONFIG_KV_KEY};
use crate::error::ApiError;
use crate::host::{Body, Host, LogLevel};

/// Resolves `fut`, or `None` once `millis` have passed.
pub(crate) async fn with_timeout<H: Host, F: Future>(host: &H, millis: u64, fut: F) -> Option<F::Output> {
    let sleep = host.sleep(millis);
    futures::pin_mut!(fut, sleep);
    match select(fut, sleep).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(_) => None,
    }
}

/// What the request asked for, from its method and path.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'p> {
    Health,
    ChatCompletions { route: Option<&'p str> },
    Models { route: Option<&'p str> },
}

fn endpoint<'p>(method: &Method, path: &'p str) -> Result<Endpoint<'p>, ApiError> {
    let trimmed = path.trim_end_matches('/');
    let (route, rest) = match trimmed.strip_prefix("/v1/") {
        Some(rest) => (None, rest),
        None => match trimmed.trim_start_matches('/').split_once("/v1/") {
            Some((route, rest)) if !route.is_empty() && !route.contains('/') => (Some(route), rest),
            _ if trimmed == "/healthz" => return Ok(Endpoint::Health),
            _ => return Err(ApiError::not_found(format!("no endpoint at `{path}`"))),
        },
    };
    let (found, allowed) = match rest {
        "chat/completions" => (Endpoint::ChatCompletions { route }, Method::POST),
        "models" => (Endpoint::Models { route }, Method::GET),
        _ => return Err(ApiError::not_found(format!("no endpoint at `{path}`"))),
    };
    if *method != allowed {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!("`{path}` accepts {allowed} only"),
        )
        .with_code("method_not_allowed"));
    }
    Ok(found)
}

/// The configuration: from the cache while fresh, else read from KV, validated and cached.
async fn load_config<H: Host>(host: &H, cache: &ConfigCache) -> Result<Rc<Config>, ApiError> {
    let now = host.now_millis();
    if let Some(config) = cache.fresh(now) {
        return Ok(config);
    }
    let raw = host
        .kv_get(CONFIG_KV_KEY)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read the configuration store: {e}")))?
        .ok_or_else(|| {
            ApiError::unavailable(
                "no configuration loaded: store the document under the key `config` (see the README, Configuration)",
            )
        })?;
    let config = Config::from_json(&raw).map_err(|e| {
        host.log(
            LogLevel::Error,
            &format!("{{\"msg\":\"stored configuration refused\",\"error\":{:?}}}", e.to_string()),
        );
        ApiError::unavailable(format!("the stored configuration is invalid: {e}"))
    })?;
    let config = Rc::new(config);
    cache.store(now, Rc::clone(&config));
    Ok(config)
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> http::Response<Body> {
    let mut response = http::Response::new(Body::Full(Bytes::from(serde_json::to_vec(body).unwrap_or_default())));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Handles one request. Never panics and never returns without a response. `cache` lives as long
/// as the runtime keeps the instance (a Worker isolate); pass a fresh one where nothing survives.
pub async fn handle<H: Host + 'static>(
    host: Rc<H>,
    cache: &ConfigCache,
    request: http::Request<Body>,
) -> http::Response<Body> {
    let started = host.now_millis();
    let request_id = format!("gw-{:016x}", host.random_u64());
    let (parts, body) = request.into_parts();
    let mut summary = chat::Summary::default();
    let mut response = match serve(&host, cache, &parts, body, &mut summary).await {
        Ok(response) => response,
        Err(error) => {
            summary.error = Some(error.message.clone());
            error.into_response()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if summary.log_requests {
        let line = json!({
            "msg": "request",
            "request_id": request_id,
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "status": response.status().as_u16(),
            "principal": summary.principal,
            "provider": summary.provider,
            "model": summary.model,
            "attempts": summary.attempts,
            "stream": summary.stream,
            "error": summary.error,
            "latency_ms": host.now_millis().saturating_sub(started),
        })
        .to_string();
        let deferred_host = Rc::clone(&host);
        host.defer(Box::pin(async move { deferred_host.log(LogLevel::Info, &line) }));
    }
    response
}

async fn serve<H: Host + 'static>(
    host: &Rc<H>,
    cache: &ConfigCache,
    parts: &http::request::Parts,
    body: Body,
    summary: &mut chat::Summary,
) -> Result<http::Response<Body>, ApiError> {
    let endpoint = endpoint(&parts.method, parts.uri.path())?;
    if endpoint == Endpoint::Health {
        return Ok(json_response(StatusCode::OK, &json!({"status": "ok"})));
    }
    let config = load_config(&**host, cache).await?;
    summary.log_requests = config.telemetry.log_requests;
    let principal = auth::authenticate(&config, &parts.headers)?;
    summary.principal = Some(principal.id.clone());
    match endpoint {
        Endpoint::Health => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        Endpoint::Models { route } => models(&**host, &config, route),
        Endpoint::ChatCompletions { route } => chat::chat_completions(host, &config, parts, body, route, summary).await,
    }
}

/// `GET /v1/models`: every `provider/model` listed in config whose provider is usable (its secret
/// is set), and every route.
fn models<H: Host>(host: &H, config: &Config, route: Option<&str>) -> Result<http::Response<Body>, ApiError> {
    let entry = |id: String, owner: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": owner});
    let data: Vec<_> = match route {
        Some(name) => {
            config.routes.get(name).ok_or_else(|| ApiError::not_found(format!("unknown route `{name}`")))?;
            vec![entry(name.to_owned(), "gateway")]
        }
        None => config
            .providers
            .iter()
            .filter(|(_, p)| p.api_key_secret.as_deref().is_none_or(|secret| host.secret(secret).is_some()))
            .flat_map(|(name, p)| p.models.iter().map(move |m| entry(format!("{name}/{m}"), name)))
            .chain(config.routes.keys().map(|r| entry(r.clone(), "gateway")))
            .collect(),
    };
    Ok(json_response(StatusCode::OK, &json!({"object": "list", "data": data})))
}

#[cfg(test)]
mod tests {
    use super::*;

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
