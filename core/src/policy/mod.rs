//! Cedar policies. A configuration's policies are validated against the gateway's schema once,
//! when the configuration is accepted ([`accept`]), and compiled then ([`compile`]); the request
//! path loads only the policies in its scope (global, plus its route's or its MCP server's), from
//! their compiled form or else their text, keeps them with the parsed configuration, and evaluates
//! each lifecycle point with one or two `is_authorized` calls.

mod accept;
mod compiled;
mod entities;
mod reads;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::str::FromStr;

use cedar_policy::{ActionConstraint, Authorizer, Decision, EntityUid, Policy, PolicyId, PolicySet};

pub use accept::{schema_json, schema_text, validate, SCHEMA_JSON_TEMPLATE, SCHEMA_TEMPLATE};
pub use compiled::{compile, decode_unchecked, CompiledPolicies, COMPILED_KV_KEY};
use entities::Parties;
pub use entities::{principal_kind_name, Facts, PolicyRequest, Resource};
use reads::{reads, Reads};

use crate::config::{Config, ConfigError, DefaultDecision, PolicyConfig};
use crate::guard::{Category, Detectors};

/// The lifecycle points, as Cedar actions (`Gateway::Action::"process_prompt"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ProcessPrompt,
    CallTool,
    ProcessToolResponse,
    ProcessResponse,
    List,
    GetPrompt,
    ReadResource,
    ConnectServer,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::ProcessPrompt,
        Action::CallTool,
        Action::ProcessToolResponse,
        Action::ProcessResponse,
        Action::List,
        Action::GetPrompt,
        Action::ReadResource,
        Action::ConnectServer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::ProcessPrompt => "process_prompt",
            Action::CallTool => "call_tool",
            Action::ProcessToolResponse => "process_tool_response",
            Action::ProcessResponse => "process_response",
            Action::List => "list",
            Action::GetPrompt => "get_prompt",
            Action::ReadResource => "read_resource",
            Action::ConnectServer => "connect_server",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// What a satisfied `forbid` asks for, from its `@outcome` annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No annotation, or `@outcome("deny")`: refuse.
    Deny,
    /// `@outcome("redact")`: replace the matched spans of these families (`@redact("pii,secret")`;
    /// pii and secret by default) and let the payload through.
    Redact(Vec<Category>),
    /// `@outcome("alert")`: let it through, flagged.
    Alert,
}

/// A policy's annotation. Cedar's own `Policy::annotation` parses the key with its full parser on
/// every call (a fresh lexer each time), which costs more than the rest of loading a policy.
pub(crate) fn annotation<'p>(policy: &'p Policy, key: &str) -> Option<&'p str> {
    policy.annotations().find_map(|(k, v)| (k == key).then_some(v))
}

impl Outcome {
    fn of(policy: &Policy) -> Result<Outcome, String> {
        match annotation(policy, "outcome").unwrap_or("deny") {
            "deny" => Ok(Outcome::Deny),
            "alert" => Ok(Outcome::Alert),
            "redact" => {
                let Some(list) = annotation(policy, "redact") else {
                    return Ok(Outcome::Redact(vec![Category::Pii, Category::Secret]));
                };
                list.split(',')
                    .map(|name| {
                        Category::parse(name.trim()).ok_or_else(|| {
                            format!("@redact names `{}`: use pii, secret, injection or tool_args", name.trim())
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Outcome::Redact)
            }
            other => Err(format!("@outcome(\"{other}\") is not one of deny, redact, alert")),
        }
    }
}

/// Which configured policies a request is subject to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Global,
    Route(&'a str),
    Server(&'a str),
}

impl Scope<'_> {
    fn key(self) -> String {
        match self {
            Scope::Global => String::new(),
            Scope::Route(name) => format!("route:{name}"),
            Scope::Server(slug) => format!("mcp:{slug}"),
        }
    }

    fn sets(self, config: &Config) -> impl Iterator<Item = &PolicyConfig> {
        let scoped: &[PolicyConfig] = match self {
            Scope::Global => &[],
            Scope::Route(name) => config.routes.get(name).map_or(&[], |r| r.policies.as_slice()),
            Scope::Server(slug) => config.mcp_servers.get(slug).map_or(&[], |s| s.policies.as_slice()),
        };
        config.policies.iter().chain(scoped)
    }
}

/// The stored policies could not be parsed (the document was written around the accepting check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy set `{set}` does not parse: {message}")]
pub struct PolicyError {
    pub set: String,
    pub message: String,
}

/// Parsed policies per scope, kept beside the parsed configuration they came from (in the
/// instance's [`crate::ConfigCache`]).
#[derive(Debug, Default)]
pub struct PolicyCache(RefCell<HashMap<String, Rc<ScopedPolicies>>>);

/// The policies of one scope, ready to evaluate.
#[derive(Debug)]
pub struct ScopedPolicies {
    /// Deny policies and every `permit`. When the default is allow, Cedar's answer of deny with
    /// no determining policy (nothing permitted, nothing forbidden) is read as allow.
    enforce: PolicySet,
    /// `forbid` policies with a redact or alert outcome, evaluated on their own.
    advice: PolicySet,
    outcomes: BTreeMap<String, Outcome>,
    /// Bit per [`Action`] some policy may apply to.
    actions: u8,
    /// Per [`Action`], the detector families some policy that may apply to it can observe.
    observes: [Detectors; Action::ALL.len()],
    /// The context fields some policy names (see [`reads`]): the context holds
    /// only these.
    context_fields: u32,
    /// The principal, resource and entities of the last decision, for the next one about the
    /// same (a request's points share them; so do a key's requests to a model in a warm isolate).
    parties: RefCell<Option<Rc<Parties>>>,
    default: DefaultDecision,
    /// How many of the scope's sets came from their compiled form, and how many from their text.
    compiled_sets: u32,
    parsed_sets: u32,
}

/// The name a default-deny configuration's refusal carries.
pub const DEFAULT_DENY: &str = "gateway.default_deny";

/// The policies of one configured set, each with its final id: the `@id` annotation, else the
/// set id (one policy) or `{set id}.{n}`. Compiled entries store these ids: a change to the rule
/// bumps `compiled::RULES`.
pub(crate) fn parse_set(set: &PolicyConfig) -> Result<Vec<Policy>, Box<cedar_policy::ParseErrors>> {
    let parsed = PolicySet::from_str(&set.cedar).map_err(Box::new)?;
    let mut policies: Vec<&Policy> = parsed.policies().collect();
    // Cedar numbers the policies of a text `policy0`, `policy1`, ... in source order.
    policies.sort_by_key(|p| p.id().to_string().trim_start_matches("policy").parse::<usize>().unwrap_or(usize::MAX));
    let single = policies.len() == 1;
    Ok(policies
        .into_iter()
        .enumerate()
        .map(|(n, p)| {
            let id = match annotation(p, "id") {
                Some(id) => id.to_owned(),
                None if single => set.id.clone(),
                None => format!("{}.{n}", set.id),
            };
            p.new_id(PolicyId::new(id))
        })
        .collect())
}

/// The policies of one configured set, parsed from its text, each with what it reads.
fn parse_with_reads(set: &PolicyConfig) -> Result<Vec<(Policy, Reads)>, PolicyError> {
    let error = |message: String| PolicyError { set: set.id.clone(), message };
    parse_set(set)
        .map_err(|e| error(e.to_string()))?
        .into_iter()
        .map(|policy| {
            let outcome = Outcome::of(&policy).map_err(error)?;
            let reads = reads(&policy.to_string(), &outcome);
            Ok((policy, reads))
        })
        .collect()
}

/// Builds Cedar's lazily constructed parsers and runs one evaluation, so that an instance
/// pre-initialized at build time (the Spin component, through Wizer) starts with them ready:
/// Spin runs every request in a fresh instance, and building them costs about a millisecond there.
pub fn warm_up() {
    entities::parse_entity_types();
    compiled::warm_up_names();
    let Ok(policies) = parse_with_reads(&warm_up_set()) else { return };
    // Loading a compiled set goes through Cedar's own conversions: compiling checks by loading.
    let _ = compiled::encode_set(&policies);
    let mut scoped = ScopedPolicies {
        enforce: PolicySet::new(),
        advice: PolicySet::new(),
        outcomes: BTreeMap::new(),
        actions: u8::MAX,
        observes: [Detectors::ALL; Action::ALL.len()],
        context_fields: u32::MAX,
        parties: RefCell::new(None),
        default: DefaultDecision::Allow,
        compiled_sets: 0,
        parsed_sets: 0,
    };
    for (policy, _) in policies {
        let _ = scoped.enforce.add(policy);
    }
    let principal = crate::config::PrincipalConfig {
        kind: crate::config::PrincipalKind::User,
        id: "warm".into(),
        attributes: BTreeMap::new(),
    };
    let signals = crate::guard::Signals::default();
    let request = PolicyRequest {
        principal: &principal,
        action: Action::ProcessPrompt,
        resource: Resource::Model { name: "m/x", provider: "m", route: Some("r") },
        facts: Facts::default(),
        signals: &signals,
    };
    let _ = scoped.evaluate(&request);
}

/// The warm-up's policies.
fn warm_up_set() -> PolicyConfig {
    PolicyConfig {
        id: "gateway.warm_up".into(),
        // Every token kind a policy may use, so that the lexer's states are in the snapshot too.
        cedar: r#"// warm-up
@id("warm.forbid") @outcome("redact") @redact("pii, secret")
forbid(principal, action == Gateway::Action::"process_prompt", resource)
when { context.max_score > 50 && context.pii_kinds.contains("ssn") && principal has team && resource.name like "m*" };
forbid (principal in Gateway::ApiKey::"k-1", action in [Gateway::Action::"call_tool", Gateway::Action::"list"], resource is Gateway::Tool)
when { context.scores.injection >= 70 || context.secret_count != 0 || !(context.streaming) }
unless { (context.tool == "read_file" && context.arguments like "*\"path\"*") || principal.role in ["reader", "viewer"] };
permit(principal is Gateway::Agent, action, resource in Gateway::McpServer::"fs")
when { if context.pii_count <= -1 then false else context.signals.containsAny(["email", "phone"]) }
unless { principal.allowed_tools.isEmpty() || principal.team < "a" || [1, 2 * 3 - 4].containsAll([1]) || {a: 1}.a == 1 };
permit(principal, action, resource);"#
            .into(),
    }
}

fn applies_to(policy: &Policy) -> u8 {
    let named = |uid: &EntityUid| {
        Action::ALL.iter().filter(|a| uid.id().unescaped() == a.name()).fold(0, |bits, a| bits | a.bit())
    };
    match policy.action_constraint() {
        ActionConstraint::Any => u8::MAX,
        ActionConstraint::Eq(uid) => named(&uid),
        ActionConstraint::In(uids) => uids.iter().fold(0, |bits, uid| bits | named(uid)),
    }
}

impl ScopedPolicies {
    fn load(
        config: &Config,
        scope: Scope<'_>,
        compiled: Option<&CompiledPolicies>,
    ) -> Result<ScopedPolicies, PolicyError> {
        let default = config.guardrails.default_decision;
        let mut scoped = ScopedPolicies {
            enforce: PolicySet::new(),
            advice: PolicySet::new(),
            outcomes: BTreeMap::new(),
            actions: if default == DefaultDecision::Deny { u8::MAX } else { 0 },
            observes: [Detectors::NONE; Action::ALL.len()],
            context_fields: 0,
            parties: RefCell::new(None),
            default,
            compiled_sets: 0,
            parsed_sets: 0,
        };
        // Nothing in scope and allow by default: nothing to parse (Cedar's parser costs about a
        // millisecond to build in a cold WebAssembly instance).
        if default == DefaultDecision::Allow && scope.sets(config).next().is_none() {
            return Ok(scoped);
        }
        let error = |set: &PolicyConfig, message: String| PolicyError { set: set.id.clone(), message };
        for set in scope.sets(config) {
            let policies = match compiled.and_then(|c| c.load(set)) {
                Some(policies) => {
                    scoped.compiled_sets += 1;
                    policies
                }
                None => {
                    scoped.parsed_sets += 1;
                    parse_with_reads(set)?
                }
            };
            for (policy, reads) in policies {
                let actions = applies_to(&policy);
                scoped.actions |= actions;
                let outcome = Outcome::of(&policy).map_err(|e| error(set, e))?;
                scoped.context_fields |= reads.fields;
                for (action, slot) in Action::ALL.iter().zip(scoped.observes.iter_mut()) {
                    if actions & action.bit() != 0 {
                        *slot = slot.or(reads.families);
                    }
                }
                let id = policy.id().to_string();
                let target = match (&outcome, policy.effect()) {
                    (Outcome::Deny, _) | (_, cedar_policy::Effect::Permit) => &mut scoped.enforce,
                    _ => &mut scoped.advice,
                };
                target.add(policy).map_err(|e| error(set, e.to_string()))?;
                scoped.outcomes.insert(id, outcome);
            }
        }
        Ok(scoped)
    }

    /// How many of the scope's policy sets were loaded from their compiled form.
    pub fn compiled_sets(&self) -> u32 {
        self.compiled_sets
    }

    /// How many of the scope's policy sets were parsed from their text.
    pub fn parsed_sets(&self) -> u32 {
        self.parsed_sets
    }

    /// Whether any policy (or a default of deny) can apply to `action`: when none can, the
    /// detectors need not run at that point.
    pub fn applies(&self, action: Action) -> bool {
        self.actions & action.bit() != 0
    }

    /// The detector families to run at `action`: those `configured` that some policy able to
    /// apply there can observe. The rest could change no decision.
    pub fn detectors(&self, action: Action, configured: Detectors) -> Detectors {
        self.observes.get(action as usize).map_or(configured, |observed| configured.and(*observed))
    }

    /// The parties of `request`: the last decision's when they are about the same.
    fn parties(&self, request: &PolicyRequest<'_>) -> Result<Rc<Parties>, String> {
        let key = request.parties_key();
        if let Some(last) = self.parties.borrow().as_ref().filter(|last| last.is_for(&key)) {
            return Ok(Rc::clone(last));
        }
        let parties = Rc::new(request.parties(key)?);
        *self.parties.borrow_mut() = Some(Rc::clone(&parties));
        Ok(parties)
    }

    /// Decides one lifecycle point.
    pub fn evaluate(&self, request: &PolicyRequest<'_>) -> Verdict {
        let mut verdict = Verdict::default();
        let built = self.parties(request).and_then(|parties| {
            let cedar_request = request.cedar_request(&parties, self.context_fields)?;
            Ok((cedar_request, parties))
        });
        let (cedar_request, parties) = match built {
            Ok(built) => built,
            Err(e) => {
                // Facts the gateway built itself failed to convert: refuse rather than skip policies.
                verdict.errors.push(e);
                verdict.denied_by = Some("gateway.invalid_request_facts".into());
                return verdict;
            }
        };
        let authorizer = Authorizer::new();
        let entities = parties.entities();
        let answer = authorizer.is_authorized(&cedar_request, &self.enforce, entities);
        verdict.errors.extend(answer.diagnostics().errors().map(|e| e.to_string()));
        // Cedar skips a policy that fails to evaluate; a `forbid` that cannot be evaluated must
        // not become an allow, so it denies (named as itself).
        let failed_forbid = answer.diagnostics().errors().find_map(|e| {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
            let id = e.policy_id();
            (self.enforce.policy(id).map(Policy::effect) == Some(cedar_policy::Effect::Forbid)).then(|| id.to_string())
        });
        if let Some(policy) = failed_forbid {
            verdict.denied_by = Some(policy);
            return verdict;
        }
        if answer.decision() == Decision::Deny {
            let mut reasons: Vec<String> = answer.diagnostics().reason().map(ToString::to_string).collect();
            reasons.sort();
            let denied_by = match (reasons.into_iter().next(), self.default) {
                (Some(policy), _) => Some(policy),
                (None, DefaultDecision::Deny) => Some(DEFAULT_DENY.to_owned()),
                // Nothing forbade it and allow is the default.
                (None, DefaultDecision::Allow) => None,
            };
            if denied_by.is_some() {
                verdict.denied_by = denied_by;
                return verdict;
            }
        }
        if !self.advice.is_empty() {
            let advice = authorizer.is_authorized(&cedar_request, &self.advice, entities);
            verdict.errors.extend(advice.diagnostics().errors().map(|e| e.to_string()));
            // A redacting or alerting policy that cannot be evaluated might have had to redact:
            // it fails the way a forbid does (named as itself), never silently.
            let failed = advice.diagnostics().errors().map(|e| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
                e.policy_id().to_string()
            });
            if let Some(policy) = failed.min() {
                verdict.denied_by = Some(policy);
                return verdict;
            }
            for id in advice.diagnostics().reason() {
                let id = id.to_string();
                match self.outcomes.get(&id) {
                    Some(Outcome::Redact(families)) => verdict.redact.push((id, families.clone())),
                    Some(Outcome::Alert) => verdict.alerts.push(id),
                    Some(Outcome::Deny) | None => {}
                }
            }
            verdict.redact.sort();
            verdict.alerts.sort();
        }
        verdict
    }
}

/// Cedar's answer for one lifecycle point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The determining policy of a deny (the first by id when several forbid).
    pub denied_by: Option<String>,
    /// Redacting policies satisfied, with the families each redacts.
    pub redact: Vec<(String, Vec<Category>)>,
    /// Alerting policies satisfied.
    pub alerts: Vec<String>,
    /// Policies that failed to evaluate (Cedar skips them).
    pub errors: Vec<String>,
}

impl Verdict {
    /// The families to redact, over every redacting policy.
    pub fn redacted_families(&self) -> Vec<Category> {
        let mut all: Vec<Category> = self.redact.iter().flat_map(|(_, f)| f.iter().copied()).collect();
        all.sort();
        all.dedup();
        all
    }
}

impl PolicyCache {
    /// The policies of `scope` in `config`, loaded on first use from `compiled` where it holds a
    /// set (see [`compile`]), else parsed, and kept for as long as this cache; with whether this
    /// call loaded them (rather than found them loaded). Keep one cache per parsed document.
    pub fn load(
        &self,
        config: &Config,
        scope: Scope<'_>,
        compiled: Option<&CompiledPolicies>,
    ) -> Result<(Rc<ScopedPolicies>, bool), PolicyError> {
        let key = scope.key();
        if let Some(found) = self.0.borrow().get(&key) {
            return Ok((Rc::clone(found), false));
        }
        let loaded = Rc::new(ScopedPolicies::load(config, scope, compiled)?);
        self.0.borrow_mut().insert(key, Rc::clone(&loaded));
        Ok((loaded, true))
    }

    /// Whether loading the policies of `scope` is still to come and has sets to load: only then
    /// is their compiled form worth reading.
    pub fn pending(&self, config: &Config, scope: Scope<'_>) -> bool {
        !self.0.borrow().contains_key(&scope.key()) && scope.sets(config).next().is_some()
    }
}

impl Config {
    /// The policies of `scope`, parsed now (the request path keeps them in a [`PolicyCache`]).
    pub fn policies_for(&self, scope: Scope<'_>) -> Result<Rc<ScopedPolicies>, PolicyError> {
        self.policies_compiled(scope, None).map(|(policies, _)| policies)
    }

    /// The policies of `scope`, loaded from `compiled` where it holds a set, else parsed.
    pub fn policies_compiled(
        &self,
        scope: Scope<'_>,
        compiled: Option<&CompiledPolicies>,
    ) -> Result<(Rc<ScopedPolicies>, bool), PolicyError> {
        PolicyCache::default().load(self, scope, compiled)
    }
}

/// Parses, validates and checks every Cedar policy against the gateway's schema: what a
/// configuration must pass before it is stored (`gateway-config check`, the admin push). The
/// request path uses [`Config::from_json`], which leaves the Cedar work out.
pub fn accept(bytes: &[u8]) -> Result<Config, ConfigError> {
    let config = Config::from_json(bytes)?;
    validate(&config)?;
    Ok(config)
}

#[cfg(test)]
mod tests;
