//! The Cedar request for one lifecycle point: principal, action, resource and the context built
//! from request facts and detector signals. No schema is consulted on the request path (the
//! policies were validated against it when the configuration was accepted).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression};

use super::Action;
use crate::config::{PrincipalConfig, PrincipalKind};
use crate::guard::Signals;

/// What a lifecycle point is about.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    /// An LLM target, reached through `route` when there is one.
    Model { name: &'a str, provider: &'a str, route: Option<&'a str> },
    /// A tool: an MCP server's, or one an LLM emitted (`server: None`).
    Tool { name: &'a str, server: Option<&'a str> },
    /// An MCP server.
    Server { slug: &'a str },
}

/// Request facts for the context; empty where they do not apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    pub model: &'a str,
    pub provider: &'a str,
    pub route: &'a str,
    pub server: &'a str,
    pub tool: &'a str,
    /// Tool-call arguments, as JSON text.
    pub arguments: &'a str,
    /// A prompt's name or a resource's URI (MCP).
    pub name: &'a str,
    /// The MCP method.
    pub method: &'a str,
    pub streaming: bool,
    /// `input` (on its way to the upstream) or `output` (on its way back to the client).
    pub phase: &'a str,
}

/// One question to Cedar.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    pub principal: &'a PrincipalConfig,
    pub action: Action,
    pub resource: Resource<'a>,
    pub facts: Facts<'a>,
    pub signals: &'a Signals,
}

/// The gateway's entity types.
const ENTITY_TYPES: [&str; 8] = [
    "Gateway::User",
    "Gateway::Agent",
    "Gateway::ApiKey",
    "Gateway::Route",
    "Gateway::Model",
    "Gateway::McpServer",
    "Gateway::Tool",
    "Gateway::Action",
];

thread_local! {
    /// Parsed once per instance (a name is parsed by Cedar's full parser); an instance
    /// pre-initialized at build time starts with them parsed ([`parse_entity_types`]).
    static PARSED_TYPES: RefCell<Vec<(&'static str, EntityTypeName)>> = const { RefCell::new(Vec::new()) };
}

fn type_name(kind: &'static str) -> Result<EntityTypeName, String> {
    PARSED_TYPES.with(|parsed| {
        if let Some((_, name)) = parsed.borrow().iter().find(|(k, _)| *k == kind) {
            return Ok(name.clone());
        }
        let name = EntityTypeName::from_str(kind).map_err(|e| e.to_string())?;
        parsed.borrow_mut().push((kind, name.clone()));
        Ok(name)
    })
}

/// Parses every entity type name the requests use, for a pre-initialized instance.
pub(super) fn parse_entity_types() {
    for kind in ENTITY_TYPES {
        let _ = type_name(kind);
    }
}

fn uid(kind: &'static str, id: &str) -> Result<EntityUid, String> {
    Ok(EntityUid::from_type_name_and_id(type_name(kind)?, EntityId::new(id)))
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn strings<'s>(items: impl IntoIterator<Item = &'s String>) -> RestrictedExpression {
    RestrictedExpression::new_set(items.into_iter().map(|s| string(s)))
}

fn entity(
    uid: EntityUid,
    attrs: Vec<(&str, RestrictedExpression)>,
    parent: Option<EntityUid>,
) -> Result<Entity, String> {
    let attrs: HashMap<String, RestrictedExpression> = attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Entity::new(uid, attrs, parent.into_iter().collect::<HashSet<_>>()).map_err(|e| e.to_string())
}

/// A principal attribute from the key's config. Types were checked when the document was accepted.
fn attribute(value: &serde_json::Value) -> Option<RestrictedExpression> {
    use serde_json::Value;
    match value {
        Value::String(s) => Some(string(s)),
        Value::Bool(b) => Some(RestrictedExpression::new_bool(*b)),
        Value::Number(n) => n.as_i64().map(RestrictedExpression::new_long),
        Value::Array(items) => {
            items.iter().map(attribute).collect::<Option<Vec<_>>>().map(RestrictedExpression::new_set)
        }
        _ => None,
    }
}

/// The principal kind as config and logs spell it.
pub fn principal_kind_name(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "user",
        PrincipalKind::Agent => "agent",
        PrincipalKind::ApiKey => "api_key",
    }
}

pub(super) fn principal_type(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "Gateway::User",
        PrincipalKind::Agent => "Gateway::Agent",
        PrincipalKind::ApiKey => "Gateway::ApiKey",
    }
}

/// The context's fields, in the order [`PolicyRequest::context`] builds them.
pub(super) const CONTEXT_FIELDS: [&str; 17] = [
    "model",
    "provider",
    "route",
    "server",
    "tool",
    "arguments",
    "name",
    "method",
    "phase",
    "streaming",
    "max_score",
    "pii_kinds",
    "pii_count",
    "secret_kinds",
    "secret_count",
    "signals",
    "scores",
];

/// Who asks about what: the Cedar principal and resource and their entities. The same for every
/// lifecycle point of a request about one resource, so it is built once and reused.
#[derive(Debug)]
pub(super) struct Parties {
    /// Who and what, as a key: equal keys build equal parties.
    key: String,
    principal: EntityUid,
    resource: EntityUid,
    entities: Entities,
}

impl Parties {
    pub(super) fn entities(&self) -> &Entities {
        &self.entities
    }

    pub(super) fn is_for(&self, key: &str) -> bool {
        self.key == key
    }
}

impl PolicyRequest<'_> {
    /// The key the parties of this request are built from.
    pub(super) fn parties_key(&self) -> String {
        let p = self.principal;
        // Keys may share a principal id with different attributes: the attributes are in the key.
        let attributes = serde_json::to_string(&p.attributes).unwrap_or_default();
        let resource = match self.resource {
            Resource::Model { name, provider, route } => {
                format!("{:?}\0{}\0model\0{name}\0{provider}\0{}", p.kind, p.id, route.unwrap_or("\u{1}"))
            }
            Resource::Tool { name, server } => {
                format!("{:?}\0{}\0tool\0{name}\0{}", p.kind, p.id, server.unwrap_or("\u{1}"))
            }
            Resource::Server { slug } => format!("{:?}\0{}\0server\0{slug}", p.kind, p.id),
        };
        format!("{resource}\0{attributes}")
    }

    pub(super) fn parties(&self, key: String) -> Result<Parties, String> {
        let mut entities = Vec::with_capacity(3);
        let p = self.principal;
        let principal = uid(principal_type(p.kind), &p.id)?;
        let mut attrs = vec![("id", string(&p.id))];
        attrs.extend(p.attributes.iter().filter_map(|(k, v)| Some((k.as_str(), attribute(v)?))));
        entities.push(entity(principal.clone(), attrs, None)?);
        let mut add = |kind: &'static str, id: &str, attrs, parent| -> Result<EntityUid, String> {
            let at = uid(kind, id)?;
            entities.push(entity(at.clone(), attrs, parent)?);
            Ok(at)
        };
        let resource = match self.resource {
            Resource::Model { name, provider, route } => {
                let parent = route.map(|r| add("Gateway::Route", r, vec![("name", string(r))], None)).transpose()?;
                add("Gateway::Model", name, vec![("name", string(name)), ("provider", string(provider))], parent)?
            }
            Resource::Tool { name, server } => {
                let parent =
                    server.map(|s| add("Gateway::McpServer", s, vec![("slug", string(s))], None)).transpose()?;
                // Tools of different servers may share a name: the id is qualified by the server.
                let id = server.map_or_else(|| name.to_owned(), |slug| format!("{slug}/{name}"));
                let attrs = vec![("name", string(name)), ("server", string(server.unwrap_or_default()))];
                add("Gateway::Tool", &id, attrs, parent)?
            }
            Resource::Server { slug } => add("Gateway::McpServer", slug, vec![("slug", string(slug))], None)?,
        };
        let entities = Entities::from_entities(entities, None).map_err(|e| e.to_string())?;
        Ok(Parties { key, principal, resource, entities })
    }

    /// The Cedar request, with the context fields in `fields` (see [`super::reads`]).
    pub(super) fn cedar_request(&self, parties: &Parties, fields: u32) -> Result<Request, String> {
        let action = uid("Gateway::Action", self.action.name())?;
        let context = Context::from_pairs(self.context(fields)).map_err(|e| e.to_string())?;
        Request::new(parties.principal.clone(), action, parties.resource.clone(), context, None)
            .map_err(|e| e.to_string())
    }

    fn context(&self, fields: u32) -> Vec<(String, RestrictedExpression)> {
        let f = &self.facts;
        let s = self.signals;
        let long = |n: u8| RestrictedExpression::new_long(i64::from(n));
        let value = |field: usize| -> Option<RestrictedExpression> {
            Some(match field {
                0 => string(f.model),
                1 => string(f.provider),
                2 => string(f.route),
                3 => string(f.server),
                4 => string(f.tool),
                5 => string(f.arguments),
                6 => string(f.name),
                7 => string(f.method),
                8 => string(f.phase),
                9 => RestrictedExpression::new_bool(f.streaming),
                10 => long(s.max_score()),
                11 => strings(&s.pii_kinds),
                12 => RestrictedExpression::new_long(i64::from(s.pii_count)),
                13 => strings(&s.secret_kinds),
                14 => RestrictedExpression::new_long(i64::from(s.secret_count)),
                15 => strings(&s.kinds),
                _ => RestrictedExpression::new_record([
                    ("pii".to_owned(), long(s.pii)),
                    ("secret".to_owned(), long(s.secret)),
                    ("injection".to_owned(), long(s.injection)),
                    ("tool_args".to_owned(), long(s.tool_args)),
                    ("remote".to_owned(), long(s.remote)),
                ])
                .ok()?,
            })
        };
        CONTEXT_FIELDS
            .iter()
            .enumerate()
            .filter(|(i, _)| fields & (1 << i) != 0)
            .filter_map(|(i, name)| Some(((*name).to_owned(), value(i)?)))
            .collect()
    }
}
