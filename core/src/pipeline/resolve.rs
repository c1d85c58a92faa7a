//! Resolution: a model name (or a route's) becomes the ordered targets it may be sent to, checked
//! against what the caller's key may use; and the route's edits to bodies and headers.

use http::StatusCode;

use crate::config::{Config, HeaderEdits, RouteConfig, TransformConfig};
use crate::error::{ApiError, ErrorClass, PhaseError};
use crate::host::Host;
use crate::providers::Target;
use crate::retry::RetryPolicy;

/// Whether the caller's key may use what it named: a route its key allows, or a `provider/model`
/// its key allows of a provider open to direct use. Route controls cannot be skipped by naming a
/// route's model directly once an operator closes that door.
pub(crate) fn check_access(
    config: &Config,
    route: Option<&str>,
    model: &str,
    principal: &crate::config::PrincipalConfig,
) -> Result<(), ResolveError> {
    let key = config.keys.iter().find(|k| std::ptr::eq(&k.principal, principal));
    if let Some(name) = route.or_else(|| config.routes.contains_key(model).then_some(model)) {
        return match key.is_none_or(|k| k.allows_route(name)) {
            true => Ok(()),
            false => Err(ResolveError::RouteNotAllowed(name.to_owned())),
        };
    }
    let provider = model.split_once('/').map_or(model, |(p, _)| p);
    if config.providers.get(provider).is_some_and(|p| !p.direct) {
        return Err(ResolveError::RoutesOnly(provider.to_owned()));
    }
    match key.is_none_or(|k| k.allows_model(model)) {
        true => Ok(()),
        false => Err(ResolveError::ModelNotAllowed(model.to_owned())),
    }
}

/// Why a model name (or route) gives no target the caller may use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResolveError {
    #[error("this key may not use the route `{0}`")]
    RouteNotAllowed(String),
    #[error("provider `{0}` is reachable only through routes")]
    RoutesOnly(String),
    #[error("this key may not call `{0}` directly")]
    ModelNotAllowed(String),
    #[error("unknown route `{0}`")]
    UnknownRoute(String),
    #[error("model `{0}` is neither a route nor `provider/model` (e.g. `openai/gpt-4o`)")]
    NotAModel(String),
    #[error("unknown provider `{provider}` in model `{model}`")]
    UnknownProvider { provider: String, model: String },
    #[error("model `{model}` is not enabled for provider `{provider}`")]
    ModelNotEnabled { provider: String, model: String },
}

impl PhaseError for ResolveError {
    fn class(&self) -> ErrorClass {
        match self {
            ResolveError::RouteNotAllowed(_) | ResolveError::RoutesOnly(_) | ResolveError::ModelNotAllowed(_) => {
                ErrorClass::client(StatusCode::FORBIDDEN, "permission_error", Some("model_not_allowed"))
            }
            ResolveError::UnknownRoute(_) => {
                ErrorClass::client(StatusCode::NOT_FOUND, "invalid_request_error", Some("not_found"))
            }
            _ => ErrorClass::client(StatusCode::NOT_FOUND, "invalid_request_error", Some("model_not_found")),
        }
    }
    fn param(&self) -> Option<String> {
        match self {
            ResolveError::UnknownRoute(_) => None,
            _ => Some("model".into()),
        }
    }
}

/// The provider's key, when it has one; a configured secret that is not set makes the target unusable.
pub(crate) fn api_key<H: Host>(host: &H, target: &Target<'_>) -> Result<Option<String>, ApiError> {
    match &target.provider.api_key_secret {
        Some(name) => host.secret(name).map(Some).ok_or_else(|| {
            ApiError::unavailable(format!(
                "provider `{}` is not usable: its secret `{name}` is not set",
                target.provider_name
            ))
        }),
        None => Ok(None),
    }
}

/// What a model name resolves to.
pub(crate) struct Resolved<'c> {
    /// Targets in the order to try them.
    pub targets: Vec<Target<'c>>,
    pub policy: RetryPolicy,
    /// The route, when the request named one.
    pub route: Option<(&'c str, &'c RouteConfig)>,
}

impl Resolved<'_> {
    pub fn fallback_on(&self) -> &[u16] {
        self.route.map(|(_, r)| r.fallback_on.as_slice()).unwrap_or_default()
    }

    pub fn transform(&self) -> Option<&TransformConfig> {
        self.route.and_then(|(_, r)| r.transform.as_ref())
    }
}

/// A model name -> the ordered targets to try. With weights, `random` draws the primary.
pub(crate) fn resolve<'c>(
    config: &'c Config,
    route: Option<&str>,
    model: &str,
    random: u64,
) -> Result<Resolved<'c>, ResolveError> {
    let route_name = route.or_else(|| config.routes.contains_key(model).then_some(model));
    let Some(name) = route_name else {
        return Ok(Resolved {
            targets: vec![target(config, model)?],
            policy: RetryPolicy::new(config.retry.clone()),
            route: None,
        });
    };
    let (name, route) = config.routes.get_key_value(name).ok_or_else(|| ResolveError::UnknownRoute(name.to_owned()))?;
    let policy = RetryPolicy::new(route.retry.clone().unwrap_or_else(|| config.retry.clone()));
    if let Some(upstream) = &route.upstream {
        // A route of kind `custom`: its own raw upstream, named after the route.
        let target = Target { provider_name: name, provider: upstream, model: name.clone() };
        return Ok(Resolved { targets: vec![target], policy, route: Some((name.as_str(), route)) });
    }
    let mut targets = route.models.iter().map(|m| target(config, m.model())).collect::<Result<Vec<_>, _>>()?;
    if route.models.iter().any(|m| m.weight().is_some()) {
        let weights: Vec<u64> = route.models.iter().map(|m| u64::from(m.weight().unwrap_or(1))).collect();
        let mut draw = random % weights.iter().sum::<u64>().max(1);
        let primary = weights
            .iter()
            .position(|w| {
                draw < *w || {
                    draw -= w;
                    false
                }
            })
            .unwrap_or(0);
        let chosen = targets.remove(primary);
        targets.insert(0, chosen);
    }
    Ok(Resolved { targets, policy, route: Some((name.as_str(), route)) })
}

/// Applies a route's body defaults and overrides to a JSON request body.
pub(crate) fn apply_body_transform(body: &mut serde_json::Map<String, serde_json::Value>, transform: &TransformConfig) {
    for (key, value) in &transform.body_defaults {
        if body.get(key).is_none_or(serde_json::Value::is_null) {
            body.insert(key.clone(), value.clone());
        }
    }
    for (key, value) in &transform.body_overrides {
        body.insert(key.clone(), value.clone());
    }
}

/// Applies header edits to a header map.
pub(crate) fn apply_header_edits(headers: &mut http::HeaderMap, edits: &HeaderEdits) {
    for name in &edits.remove {
        if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
    for (name, value) in &edits.set {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value))
        {
            headers.insert(name, value);
        }
    }
}

fn target<'c>(config: &'c Config, model: &str) -> Result<Target<'c>, ResolveError> {
    let Some((name, id)) = model.split_once('/').filter(|(p, m)| !p.is_empty() && !m.is_empty()) else {
        return Err(ResolveError::NotAModel(model.to_owned()));
    };
    let (provider_name, provider) = config
        .providers
        .get_key_value(name)
        .ok_or_else(|| ResolveError::UnknownProvider { provider: name.to_owned(), model: model.to_owned() })?;
    if !provider.models.is_empty() && !provider.models.iter().any(|m| m == id) {
        return Err(ResolveError::ModelNotEnabled { provider: name.to_owned(), model: id.to_owned() });
    }
    Ok(Target { provider_name, provider, model: id.to_owned() })
}
