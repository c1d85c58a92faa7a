//! Checks a parsed document beyond its types: names, URLs, cross references.

use std::collections::BTreeSet;

use super::{
    Config, CredentialConfig, PolicyConfig, ProviderConfig, ProviderType, RetryConfig, RouteKind, CONFIG_VERSION,
};

/// A configuration document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration invalid at `{path}`: {message}")]
pub struct ConfigError {
    /// Dotted path of the offending field, e.g. `providers.openai.base_url`.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), message: message.into() }
    }
}

/// Route names that would shadow the gateway's own paths.
const RESERVED_ROUTE_NAMES: &[&str] = &["v1", "mcp", "admin", "healthz", ".well-known"];

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.len() <= 64
}

/// Secret names follow Spin's variable rules so one name works on both targets.
fn is_secret_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_url(path: String, url: &str) -> Result<(), ConfigError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !url.contains(char::is_whitespace) => Ok(()),
        _ => Err(ConfigError::new(path, format!("`{url}` is not an http(s) URL"))),
    }
}

fn check_policies(path: &str, policies: &[PolicyConfig], seen: &mut BTreeSet<String>) -> Result<(), ConfigError> {
    for (i, policy) in policies.iter().enumerate() {
        if !is_name(&policy.id) {
            return Err(ConfigError::new(
                format!("{path}[{i}].id"),
                "policy ids are 1-64 letters, digits, `-`, `_`, `.`",
            ));
        }
        if !seen.insert(policy.id.clone()) {
            return Err(ConfigError::new(format!("{path}[{i}].id"), format!("duplicate policy id `{}`", policy.id)));
        }
    }
    Ok(())
}

/// Checks one provider (also a custom route's `upstream`).
fn check_provider(at: &str, provider: &ProviderConfig) -> Result<(), ConfigError> {
    if let Some(url) = &provider.base_url {
        check_url(format!("{at}.base_url"), url)?;
    } else if matches!(provider.kind, ProviderType::Azure | ProviderType::Custom) {
        return Err(ConfigError::new(
            format!("{at}.base_url"),
            "azure needs its resource endpoint (`https://my-resource.openai.azure.com`), custom its full URL",
        ));
    }
    let azure_only = provider.api_version.is_some() || !provider.deployments.is_empty();
    if azure_only && provider.kind != ProviderType::Azure {
        return Err(ConfigError::new(at, "`api_version` and `deployments` apply to azure providers only"));
    }
    match (&provider.custom, provider.kind) {
        (Some(mapping), ProviderType::Custom) => mapping.check(&format!("{at}.custom"))?,
        (None, ProviderType::Custom) => {
            return Err(ConfigError::new(
                format!("{at}.custom"),
                "a custom provider needs its request and response mapping",
            ));
        }
        (Some(_), _) => {
            return Err(ConfigError::new(format!("{at}.custom"), "applies to providers of type `custom` only"))
        }
        (None, _) => {}
    }
    if let Some(secret) = &provider.api_key_secret {
        if !is_secret_name(secret) {
            return Err(ConfigError::new(
                format!("{at}.api_key_secret"),
                "secret names are lowercase letters, digits and `_`, starting with a letter",
            ));
        }
    }
    for header in provider.headers.keys() {
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            return Err(ConfigError::new(format!("{at}.headers.{header}"), "not a valid header name"));
        }
    }
    Ok(())
}

/// A quota names at least one positive rate.
fn check_rate(at: &str, quota: super::RateLimitConfig) -> Result<(), ConfigError> {
    if quota.requests_per_minute.is_none() && quota.tokens_per_minute.is_none() {
        return Err(ConfigError::new(at, "set `requests_per_minute`, `tokens_per_minute` or both"));
    }
    for (name, value) in
        [("requests_per_minute", quota.requests_per_minute), ("tokens_per_minute", quota.tokens_per_minute)]
    {
        if value.is_some_and(|v| v == 0 || v > MAX_RATE_PER_MINUTE) {
            return Err(ConfigError::new(format!("{at}.{name}"), format!("must be 1 to {MAX_RATE_PER_MINUTE}")));
        }
    }
    Ok(())
}

/// Longest a cached answer may be served: a week.
const MAX_CACHE_TTL_SECONDS: u64 = 604_800;

/// Largest quota accepted: a billion per minute.
const MAX_RATE_PER_MINUTE: u64 = 1_000_000_000;

fn check_retry(path: &str, retry: &RetryConfig) -> Result<(), ConfigError> {
    if !(1..=10).contains(&retry.attempts) {
        return Err(ConfigError::new(format!("{path}.attempts"), "must be between 1 and 10"));
    }
    if retry.initial_backoff_ms > retry.max_backoff_ms {
        return Err(ConfigError::new(format!("{path}.initial_backoff_ms"), "must not exceed max_backoff_ms"));
    }
    Ok(())
}

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.version != CONFIG_VERSION {
            return Err(ConfigError::new(
                "version",
                format!("unsupported version {}, expected {CONFIG_VERSION}", self.version),
            ));
        }
        for (name, provider) in &self.providers {
            let at = format!("providers.{name}");
            if !is_name(name) {
                return Err(ConfigError::new(at, "provider names are 1-64 letters, digits, `-`, `_`, `.`"));
            }
            check_provider(&at, provider)?;
        }
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            if !crate::origin::is_origin(origin) {
                return Err(ConfigError::new(
                    format!("allowed_origins[{i}]"),
                    "an origin is `https://host` or `http://host:port`, with no path or trailing slash",
                ));
            }
        }
        let mut policy_ids = BTreeSet::new();
        check_policies("policies", &self.policies, &mut policy_ids)?;
        if let Some(remote) = &self.guardrails.remote {
            check_url("guardrails.remote.url".into(), &remote.url)?;
            if remote.api_key_secret.as_deref().is_some_and(|s| !is_secret_name(s)) {
                return Err(ConfigError::new(
                    "guardrails.remote.api_key_secret",
                    "secret names are lowercase letters, digits and `_`, starting with a letter",
                ));
            }
            if remote.timeout_ms == 0 {
                return Err(ConfigError::new("guardrails.remote.timeout_ms", "must be at least 1"));
            }
        }
        for (name, route) in &self.routes {
            let at = format!("routes.{name}");
            if !is_name(name) || RESERVED_ROUTE_NAMES.contains(&name.as_str()) {
                return Err(ConfigError::new(
                    at,
                    "route names are 1-64 letters, digits, `-`, `_`, `.` and not a reserved path",
                ));
            }
            if let Some(limit) = &route.rate_limit {
                check_rate(&format!("{at}.rate_limit"), limit.quota())?;
            }
            if let Some(cache) = &route.cache {
                if cache.ttl_seconds == 0 || cache.ttl_seconds > MAX_CACHE_TTL_SECONDS {
                    return Err(ConfigError::new(
                        format!("{at}.cache.ttl_seconds"),
                        format!("must be 1 to {MAX_CACHE_TTL_SECONDS} (a week)"),
                    ));
                }
            }
            match (route.kind, &route.upstream) {
                (RouteKind::Simplified, None) if route.models.is_empty() => {
                    return Err(ConfigError::new(
                        format!("{at}.models"),
                        "a route needs at least one `provider/model`",
                    ));
                }
                (RouteKind::Simplified, None) => {}
                (RouteKind::Simplified, Some(_)) => {
                    return Err(ConfigError::new(format!("{at}.upstream"), "only routes of kind `custom` have one"));
                }
                (RouteKind::Custom, None) => {
                    return Err(ConfigError::new(format!("{at}.upstream"), "a route of kind `custom` needs one"));
                }
                (RouteKind::Custom, Some(_)) if !route.models.is_empty() => {
                    return Err(ConfigError::new(
                        format!("{at}.models"),
                        "a route of kind `custom` sends to its `upstream`, not to `models`",
                    ));
                }
                (RouteKind::Custom, Some(upstream)) if upstream.kind != ProviderType::Custom => {
                    return Err(ConfigError::new(format!("{at}.upstream.type"), "must be `custom`"));
                }
                (RouteKind::Custom, Some(upstream)) => check_provider(&format!("{at}.upstream"), upstream)?,
            }
            for (i, entry) in route.models.iter().enumerate() {
                let target = entry.model();
                if entry.weight() == Some(0) {
                    return Err(ConfigError::new(format!("{at}.models[{i}].weight"), "weights must be positive"));
                }
                let provider = target.split_once('/').filter(|(_, m)| !m.is_empty());
                match provider {
                    Some((p, _)) if self.providers.contains_key(p) => {}
                    Some((p, _)) => {
                        return Err(ConfigError::new(format!("{at}.models[{i}]"), format!("unknown provider `{p}`")));
                    }
                    None => {
                        return Err(ConfigError::new(
                            format!("{at}.models[{i}]"),
                            format!("`{target}` is not `provider/model`"),
                        ));
                    }
                }
            }
            for status in &route.fallback_on {
                if !(400..=599).contains(status) {
                    return Err(ConfigError::new(
                        format!("{at}.fallback_on"),
                        format!("{status} is not an HTTP error status"),
                    ));
                }
            }
            if let Some(transform) = &route.transform {
                let edits = [
                    ("request_headers", &transform.request_headers),
                    ("response_headers", &transform.response_headers),
                ];
                for (name, edit) in edits {
                    for header in edit.set.keys().chain(edit.remove.iter()) {
                        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                            return Err(ConfigError::new(
                                format!("{at}.transform.{name}"),
                                format!("`{header}` is not a valid header name"),
                            ));
                        }
                    }
                    for (header, value) in &edit.set {
                        if http::HeaderValue::from_str(value).is_err() {
                            return Err(ConfigError::new(
                                format!("{at}.transform.{name}.set.{header}"),
                                "not a valid header value",
                            ));
                        }
                    }
                }
                if transform.body_overrides.contains_key("model") || transform.body_defaults.contains_key("model") {
                    return Err(ConfigError::new(
                        format!("{at}.transform"),
                        "`model` is chosen by the route's `models`",
                    ));
                }
            }
            // Ids are unique among the policies one request sees: the global ones and its scope's.
            check_policies(&format!("{at}.policies"), &route.policies, &mut policy_ids.clone())?;
            if let Some(retry) = &route.retry {
                check_retry(&format!("{at}.retry"), retry)?;
            }
        }
        for (slug, server) in &self.mcp_servers {
            let at = format!("mcp_servers.{slug}");
            if !is_name(slug) {
                return Err(ConfigError::new(at, "slugs are 1-64 letters, digits, `-`, `_`, `.`"));
            }
            check_url(format!("{at}.url"), &server.url)?;
            match &server.credential {
                CredentialConfig::Internal { secret } if !is_secret_name(secret) => {
                    return Err(ConfigError::new(format!("{at}.credential.secret"), "not a valid secret name"));
                }
                CredentialConfig::TokenBroker { url, secret } => {
                    check_url(format!("{at}.credential.url"), url)?;
                    if secret.as_deref().is_some_and(|s| !is_secret_name(s)) {
                        return Err(ConfigError::new(format!("{at}.credential.secret"), "not a valid secret name"));
                    }
                }
                _ => {}
            }
            check_policies(&format!("{at}.policies"), &server.policies, &mut policy_ids.clone())?;
        }
        let mut hashes = BTreeSet::new();
        for (i, key) in self.keys.iter().enumerate() {
            let at = format!("keys[{i}]");
            let hex_ok =
                key.sha256.len() == 64 && key.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex_ok {
                return Err(ConfigError::new(
                    format!("{at}.sha256"),
                    "must be 64 lowercase hex digits (the SHA-256 of the key)",
                ));
            }
            if !hashes.insert(key.sha256.as_str()) {
                return Err(ConfigError::new(format!("{at}.sha256"), "duplicate key"));
            }
            if key.principal.id.is_empty() {
                return Err(ConfigError::new(format!("{at}.principal.id"), "must not be empty"));
            }
            if let Some(quota) = key.rate_limit {
                check_rate(&format!("{at}.rate_limit"), quota)?;
            }
        }
        if let Some(url) = &self.telemetry.collector_url {
            check_url("telemetry.collector_url".into(), url)?;
        }
        for (header, secret) in &self.telemetry.collector_headers {
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(ConfigError::new(
                    format!("telemetry.collector_headers.{header}"),
                    "not a valid header name",
                ));
            }
            if !is_secret_name(secret) {
                return Err(ConfigError::new(
                    format!("telemetry.collector_headers.{header}"),
                    "not a valid secret name",
                ));
            }
        }
        for (model, price) in &self.telemetry.prices {
            let valid = |p: f64| p.is_finite() && p >= 0.0;
            if !model.contains('/') {
                return Err(ConfigError::new(
                    format!("telemetry.prices.{model}"),
                    "prices are keyed by `provider/model`",
                ));
            }
            if !valid(price.input_per_million)
                || !valid(price.output_per_million)
                || !price.cached_input_per_million.is_none_or(valid)
            {
                return Err(ConfigError::new(
                    format!("telemetry.prices.{model}"),
                    "prices must be finite and not negative",
                ));
            }
        }
        check_retry("retry", &self.retry)?;
        if self.limits.max_request_bytes == 0 {
            return Err(ConfigError::new("limits.max_request_bytes", "must be positive"));
        }
        if self.timeouts.first_byte_ms == 0 || self.timeouts.idle_ms == 0 {
            return Err(ConfigError::new("timeouts", "timeouts must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    fn err(doc: &str) -> String {
        match Config::from_json(doc.as_bytes()) {
            Ok(_) => String::from("accepted"),
            Err(e) => e.path,
        }
    }

    #[test]
    fn minimal_document_is_accepted() {
        assert_eq!(err(r#"{"version": 1}"#), "accepted");
    }

    #[test]
    fn wrong_version_names_the_version_field() {
        assert_eq!(err(r#"{"version": 2}"#), "version");
    }

    #[test]
    fn type_errors_name_the_nested_field() {
        assert_eq!(
            err(r#"{"version": 1, "providers": {"openai": {"type": "openai", "base_url": 5}}}"#),
            "providers.openai.base_url"
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let doc = r#"{"version": 1, "providers": {"openai": {"type": "openai", "base_ur": "https://x"}}}"#;
        let e = Config::from_json(doc.as_bytes()).unwrap_err();
        assert_eq!(e.path, "providers.openai.base_ur");
        assert!(e.message.contains("base_ur"), "{e}");
    }

    #[test]
    fn unknown_provider_type_is_refused() {
        assert_eq!(err(r#"{"version": 1, "providers": {"x": {"type": "nope"}}}"#), "providers.x.type");
    }

    #[test]
    fn route_to_an_unknown_provider_names_the_model_entry() {
        let doc = r#"{"version": 1, "providers": {"openai": {"type": "openai"}},
            "routes": {"chat": {"models": ["openai/gpt-4o", "nope/x"]}}}"#;
        assert_eq!(err(doc), "routes.chat.models[1]");
    }

    #[test]
    fn malformed_key_hash_is_refused() {
        let doc = r#"{"version": 1, "keys": [{"sha256": "abc", "principal": {"kind": "user", "id": "a"}}]}"#;
        assert_eq!(err(doc), "keys[0].sha256");
    }

    #[test]
    fn base_url_must_be_http() {
        assert_eq!(
            err(r#"{"version": 1, "providers": {"o": {"type": "openai", "base_url": "ftp://x"}}}"#),
            "providers.o.base_url"
        );
    }

    #[test]
    fn secret_names_follow_spin_variable_rules() {
        let doc = r#"{"version": 1, "providers": {"o": {"type": "openai", "api_key_secret": "OPENAI-KEY"}}}"#;
        assert_eq!(err(doc), "providers.o.api_key_secret");
    }

    #[test]
    fn reserved_route_names_are_refused() {
        let doc = r#"{"version": 1, "providers": {"o": {"type": "openai"}}, "routes": {"v1": {"models": ["o/m"]}}}"#;
        assert_eq!(err(doc), "routes.v1");
    }

    #[test]
    fn route_weights_fallback_statuses_and_transforms_are_checked() {
        let base = r#"{"version": 1, "providers": {"o": {"type": "openai"}}, "routes": {"r": ROUTE}}"#;
        let doc = |route: &str| base.replace("ROUTE", route);
        assert_eq!(err(&doc(r#"{"models": [{"model": "o/m", "weight": 0}]}"#)), "routes.r.models[0].weight");
        assert_eq!(err(&doc(r#"{"models": ["o/m"], "fallback_on": [200]}"#)), "routes.r.fallback_on");
        assert_eq!(
            err(&doc(r#"{"models": ["o/m"], "transform": {"body_overrides": {"model": "x"}}}"#)),
            "routes.r.transform"
        );
        assert_eq!(
            err(&doc(r#"{"models": ["o/m"], "transform": {"request_headers": {"set": {"bad header": "x"}}}}"#)),
            "routes.r.transform.request_headers"
        );
        assert_eq!(
            err(&doc(r#"{"models": [{"model": "o/m", "weight": 2}, "o/n"], "fallback_on": [400, 404]}"#)),
            "accepted"
        );
    }

    #[test]
    fn custom_routes_and_providers_are_checked() {
        let mapping = r#"{"request": {"q": "{{prompt}}"}, "response": {"content": "/text"}}"#;
        let base = r#"{"version": 1, "providers": {"o": {"type": "openai"}}, "routes": {"r": ROUTE}}"#;
        let doc = |route: &str| base.replace("ROUTE", &route.replace("MAPPING", mapping));
        let upstream = r#"{"type": "custom", "base_url": "https://x.test/gen", "custom": MAPPING}"#;
        assert!(Config::from_json(doc(&format!(r#"{{"kind": "custom", "upstream": {upstream}}}"#)).as_bytes()).is_ok());
        assert_eq!(err(&doc(r#"{"kind": "custom"}"#)), "routes.r.upstream");
        assert_eq!(err(&doc(&format!(r#"{{"upstream": {upstream}, "models": ["o/m"]}}"#))), "routes.r.upstream");
        assert_eq!(
            err(&doc(&format!(r#"{{"kind": "custom", "upstream": {upstream}, "models": ["o/m"]}}"#))),
            "routes.r.models"
        );
        let openai = r#"{"kind": "custom", "upstream": {"type": "openai"}}"#;
        assert_eq!(err(&doc(openai)), "routes.r.upstream.type");
        let no_url = r#"{"kind": "custom", "upstream": {"type": "custom", "custom": MAPPING}}"#;
        assert_eq!(err(&doc(no_url)), "routes.r.upstream.base_url");
        let unknown =
            upstream.replace("MAPPING", r#"{"request": {"q": "{{question}}"}, "response": {"content": "/t"}}"#);
        assert_eq!(
            err(&doc(&format!(r#"{{"kind": "custom", "upstream": {unknown}}}"#))),
            "routes.r.upstream.custom.request"
        );
        let pointer = upstream.replace("MAPPING", r#"{"request": {}, "response": {"content": "text"}}"#);
        assert_eq!(
            err(&doc(&format!(r#"{{"kind": "custom", "upstream": {pointer}}}"#))),
            "routes.r.upstream.custom.response.content"
        );
        let stray =
            r#"{"version": 1, "providers": {"o": {"type": "openai", "custom": MAPPING}}}"#.replace("MAPPING", mapping);
        assert_eq!(err(&stray), "providers.o.custom");
    }

    #[test]
    fn retry_attempts_are_bounded() {
        assert_eq!(err(r#"{"version": 1, "retry": {"attempts": 0}}"#), "retry.attempts");
    }
}
