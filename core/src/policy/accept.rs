//! When a configuration is accepted: the schema is completed with the keys' principal attributes
//! and every policy is parsed and validated against it (strict mode). Errors name the policy set,
//! the policy and the line. Never run on the request path (about 4.5 ms for schema and policies).

use std::collections::{BTreeMap, BTreeSet};

use std::str::FromStr;

use cedar_policy::{PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;

use super::{parse_set, Outcome, DEFAULT_DENY};
use crate::config::{Config, ConfigError, PolicyConfig};

/// The checked-in schema; see `core/policy/gateway.cedarschema`.
pub const SCHEMA_TEMPLATE: &str = include_str!("../../policy/gateway.cedarschema");
const ATTRIBUTES_MARK: &str = "/* principal attributes */";

/// Principal attributes every schema declares (optional), so cookbook policies validate whether
/// or not a key sets them.
const WELL_KNOWN_ATTRIBUTES: [(&str, &str); 3] =
    [("allowed_tools", "Set<String>"), ("role", "String"), ("team", "String")];

/// The Cedar type of a principal attribute's JSON value.
fn cedar_type(value: &serde_json::Value) -> Option<&'static str> {
    use serde_json::Value;
    match value {
        Value::String(_) => Some("String"),
        Value::Bool(_) => Some("Bool"),
        Value::Number(n) if n.is_i64() => Some("Long"),
        Value::Array(items) => {
            let types: BTreeSet<_> = items.iter().map(cedar_type).collect();
            match types.into_iter().collect::<Vec<_>>().as_slice() {
                [] | [Some("String")] => Some("Set<String>"),
                [Some("Long")] => Some("Set<Long>"),
                _ => None,
            }
        }
        _ => None,
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The principal attributes of a configuration's keys, with their Cedar types.
fn principal_attributes(config: &Config) -> Result<BTreeMap<&str, &'static str>, ConfigError> {
    let mut types: BTreeMap<&str, &'static str> = WELL_KNOWN_ATTRIBUTES.into_iter().collect();
    for (i, key) in config.keys.iter().enumerate() {
        for (name, value) in &key.principal.attributes {
            let path = format!("keys[{i}].principal.attributes.{name}");
            if !is_identifier(name) || name == "id" {
                return Err(ConfigError::new(
                    path,
                    "attribute names are Cedar identifiers (letters, digits, `_`), not `id`",
                ));
            }
            let ty = cedar_type(value).ok_or_else(|| {
                ConfigError::new(
                    &path,
                    "attributes are strings, booleans, integers, or lists of strings or of integers",
                )
            })?;
            if let Some(seen) = types.insert(name, ty).filter(|seen| *seen != ty) {
                return Err(ConfigError::new(path, format!("`{name}` is a {ty} here but a {seen} elsewhere")));
            }
        }
    }
    Ok(types)
}

/// The gateway's schema (Cedar's human syntax) with this configuration's principal attributes in
/// place: what `gateway-config cedar-schema` prints.
pub fn schema_text(config: &Config) -> Result<String, ConfigError> {
    let attributes: String =
        principal_attributes(config)?.iter().map(|(name, ty)| format!(",\n    {name}?: {ty}")).collect();
    Ok(SCHEMA_TEMPLATE.replace(ATTRIBUTES_MARK, &attributes))
}

/// The same schema in Cedar's JSON format, checked in beside the text (a test keeps the two
/// equal). Validation, which the targets now run too (the admin API), builds the schema from this
/// one, so their bundles leave out Cedar's parser for the human syntax (about 12 KB gzip).
pub const SCHEMA_JSON_TEMPLATE: &str = include_str!("../../policy/gateway.cedarschema.json");

/// The entity types that stand for principals, whose shapes get the keys' attributes.
const PRINCIPAL_TYPES: [&str; 3] = ["User", "Agent", "ApiKey"];

/// A Cedar type in the JSON schema format.
fn json_type(ty: &str) -> serde_json::Value {
    use serde_json::json;
    match ty {
        "Set<String>" => json!({"type": "Set", "element": {"type": "String"}}),
        "Set<Long>" => json!({"type": "Set", "element": {"type": "Long"}}),
        "Bool" => json!({"type": "Boolean"}),
        other => json!({"type": other}),
    }
}

/// The gateway's schema in Cedar's JSON format with this configuration's principal attributes.
pub fn schema_json(config: &Config) -> Result<serde_json::Value, ConfigError> {
    let broken = |why: &str| ConfigError::new("keys", format!("the gateway's Cedar schema is broken: {why}"));
    let mut schema: serde_json::Value =
        serde_json::from_str(SCHEMA_JSON_TEMPLATE).map_err(|e| broken(&e.to_string()))?;
    let attributes = principal_attributes(config)?;
    for entity in PRINCIPAL_TYPES {
        let pointer = format!("/Gateway/entityTypes/{entity}/shape/attributes");
        let shape = schema
            .pointer_mut(&pointer)
            .and_then(serde_json::Value::as_object_mut)
            .ok_or_else(|| broken(&format!("no {pointer}")))?;
        for (name, ty) in &attributes {
            let mut attribute = json_type(ty);
            if let Some(fields) = attribute.as_object_mut() {
                fields.insert("required".into(), serde_json::Value::Bool(false));
            }
            shape.insert((*name).to_owned(), attribute);
        }
    }
    Ok(schema)
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |before| before.matches('\n').count() + 1)
}

/// The first labelled location of a Cedar diagnostic, as ` (line N)`.
fn located(text: &str, diagnostic: &dyn Diagnostic) -> String {
    diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| format!(" (line {})", line_of(text, label.offset())))
        .unwrap_or_default()
}

/// Checks every policy of the configuration against the gateway's schema.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let schema = Schema::from_json_value(schema_json(config)?)
        .map_err(|e| ConfigError::new("keys", format!("the Cedar schema does not build: {e}")))?;
    let validator = Validator::new(schema);
    // Policy ids are unique among the policies one request sees: the global ones and its scope's.
    let mut global_ids = BTreeSet::new();
    for (i, set) in config.policies.iter().enumerate() {
        check_set(&validator, &format!("policies[{i}].cedar"), set, &mut global_ids)?;
    }
    let routes = config.routes.iter().map(|(name, r)| (format!("routes.{name}"), &r.policies));
    let servers = config.mcp_servers.iter().map(|(slug, s)| (format!("mcp_servers.{slug}"), &s.policies));
    for (at, sets) in routes.chain(servers) {
        let mut ids = global_ids.clone();
        for (i, set) in sets.iter().enumerate() {
            check_set(&validator, &format!("{at}.policies[{i}].cedar"), set, &mut ids)?;
        }
    }
    Ok(())
}

fn check_set(
    validator: &Validator,
    path: &str,
    set: &PolicyConfig,
    ids: &mut BTreeSet<String>,
) -> Result<(), ConfigError> {
    let text = &set.cedar;
    let policies = parse_set(set).map_err(|e| {
        let detail =
            e.iter().next().map(|first| format!("{first}{}", located(text, first))).unwrap_or_else(|| e.to_string());
        ConfigError::new(path, format!("policy set `{}` does not parse: {detail}", set.id))
    })?;
    if PolicySet::from_str(text).is_ok_and(|parsed| parsed.templates().next().is_some()) {
        return Err(ConfigError::new(
            path,
            format!("policy set `{}` holds a template (`?principal`, `?resource`): write policies", set.id),
        ));
    }
    if policies.is_empty() {
        return Err(ConfigError::new(path, format!("policy set `{}` holds no policy", set.id)));
    }
    let mut pset = PolicySet::new();
    for policy in policies {
        let id = policy.id().to_string();
        let line = text
            .find(&format!("@id(\"{id}\")"))
            .map(|offset| format!(" (line {})", line_of(text, offset)))
            .unwrap_or_default();
        if id.starts_with("gateway.") || id == DEFAULT_DENY {
            return Err(ConfigError::new(path, format!("policy id `{id}`{line}: the `gateway.` prefix is reserved")));
        }
        if !ids.insert(id.clone()) {
            return Err(ConfigError::new(path, format!("policy id `{id}`{line} is used twice")));
        }
        if let Err(message) = Outcome::of(&policy) {
            return Err(ConfigError::new(path, format!("policy `{id}`{line}: {message}")));
        }
        if policy.effect() == cedar_policy::Effect::Permit && super::annotation(&policy, "outcome").is_some() {
            return Err(ConfigError::new(path, format!("policy `{id}`{line}: @outcome is for `forbid` policies")));
        }
        pset.add(policy).map_err(|e| ConfigError::new(path, format!("policy `{id}`{line}: {e}")))?;
    }
    let result = validator.validate(&pset, ValidationMode::Strict);
    if let Some(error) = result.validation_errors().next() {
        return Err(ConfigError::new(path, format!("policy `{}`{}: {error}", error.policy_id(), located(text, error))));
    }
    Ok(())
}
