use super::*;
use crate::auth::hash_key;
use crate::config::Config;
use crate::guard::Signals;

fn config(policies: &str, extra: &str) -> Config {
    let doc = format!(
        r#"{{"version": 1,
            "keys": [
              {{"sha256": "{alice}", "principal": {{"kind": "user", "id": "alice", "attributes": {{"role": "admin"}}}}}},
              {{"sha256": "{bot}", "principal": {{"kind": "agent", "id": "bot",
                 "attributes": {{"allowed_tools": ["search", "read_file"], "read_only": true}}}}}}
            ],
            "providers": {{"openai": {{"type": "openai", "base_url": "http://127.0.0.1:1"}}}},
            "routes": {{"support": {{"models": ["openai/gpt-4o"]}}}},
            "mcp_servers": {{"files": {{"url": "http://127.0.0.1:2/mcp", "tools": ["*"]}}}},
            "policies": {policies}
            {extra}}}"#,
        alice = hash_key("a"),
        bot = hash_key("b"),
    );
    Config::from_json(doc.as_bytes()).unwrap()
}

fn policies(sets: &[(&str, &str)]) -> String {
    serde_json::to_string(
        &sets.iter().map(|(id, cedar)| serde_json::json!({"id": id, "cedar": cedar})).collect::<Vec<_>>(),
    )
    .unwrap()
}

const COOKBOOK: &str = r#"
@id("block-injection")
forbid(principal, action == Gateway::Action::"process_prompt", resource)
when { context.scores.injection >= 70 };

@id("no-secrets-out")
forbid(principal, action == Gateway::Action::"process_response", resource)
when { context.secret_count > 0 };

@id("agents-listed-tools")
forbid(principal is Gateway::Agent, action == Gateway::Action::"call_tool", resource)
unless { principal has allowed_tools && principal.allowed_tools.contains(resource.name) };

@id("redact-pii-in-tool-results")
@outcome("redact")
@redact("pii")
forbid(principal, action == Gateway::Action::"process_tool_response", resource)
when { context.pii_count > 0 };

@id("admins-only-list")
forbid(principal, action in [Gateway::Action::"list", Gateway::Action::"get_prompt",
                             Gateway::Action::"read_resource", Gateway::Action::"connect_server"], resource)
unless { principal has role && principal.role == "admin" };

@id("alert-on-pii-prompt")
@outcome("alert")
forbid(principal, action == Gateway::Action::"process_prompt", resource)
when { context.pii_kinds.contains("email") };
"#;

fn alice(config: &Config) -> &crate::config::PrincipalConfig {
    &config.keys[0].principal
}

fn bot(config: &Config) -> &crate::config::PrincipalConfig {
    &config.keys[1].principal
}

fn ask(
    config: &Config,
    principal: &crate::config::PrincipalConfig,
    action: Action,
    resource: Resource<'_>,
    signals: &Signals,
) -> Verdict {
    let policies = config.policies_for(Scope::Global).unwrap();
    policies.evaluate(&PolicyRequest { principal, action, resource, facts: Facts::default(), signals })
}

const MODEL: Resource<'static> = Resource::Model { name: "openai/gpt-4o", provider: "openai", route: Some("support") };

#[test]
fn the_cookbook_policies_validate_against_the_schema() {
    let config = config(&policies(&[("cookbook", COOKBOOK)]), "");
    validate(&config).unwrap();
    let schema = schema_text(&config).unwrap();
    assert!(schema.contains("allowed_tools?: Set<String>") && schema.contains("role?: String"));
    assert!(schema.contains("read_only?: Bool"));
}

#[test]
fn process_prompt_is_denied_by_an_injection_score_and_names_the_policy() {
    let config = config(&policies(&[("cookbook", COOKBOOK)]), "");
    let mut signals = Signals { injection: 85, ..Signals::default() };
    signals.kinds.insert("instruction_override".into());
    let verdict = ask(&config, alice(&config), Action::ProcessPrompt, MODEL, &signals);
    assert_eq!(verdict.denied_by.as_deref(), Some("block-injection"));
    let verdict =
        ask(&config, alice(&config), Action::ProcessPrompt, MODEL, &Signals { injection: 40, ..Signals::default() });
    assert_eq!(verdict, Verdict::default());
}

#[test]
fn process_prompt_with_an_email_is_allowed_with_an_alert() {
    let config = config(&policies(&[("cookbook", COOKBOOK)]), "");
    let mut signals = Signals { pii: 90, pii_count: 1, ..Signals::default() };
    signals.pii_kinds.insert("email".into());
    let verdict = ask(&config, alice(&config), Action::ProcessPrompt, MODEL, &signals);
    assert_eq!(verdict.denied_by, None);
    assert_eq!(verdict.alerts, vec!["alert-on-pii-prompt".to_owned()]);
}

#[test]
fn process_response_with_a_secret_is_denied() {
    let config = config(&policies(&[("cookbook", COOKBOOK)]), "");
    let signals = Signals { secret: 95, secret_count: 1, ..Signals::default() };
    let verdict = ask(&config, alice(&config), Action::ProcessResponse, MODEL, &signals);
    assert_eq!(verdict.denied_by.as_deref(), Some("no-secrets-out"));
}

#[test]
fn call_tool_allows_only_the_listed_tools_of_an_agent() {
    let config = config(&policies(&[("cookbook", COOKBOOK)]), "");
    let none = Signals::default();
    let tool = |name| Resource::Tool { name, server: Some("files") };
    assert_eq!(ask(&config, bot(&config), Action::CallTool, tool("search"), &none).denied_by, None);
    assert_eq!(
        ask(&config, bot(&config), Action::CallTool, tool("delete_file"), &none).denied_by.as_deref(),
        Some("agents-listed-tools")
    );
    // Users are not subject to the agent rule.
    assert_eq!(ask(&config, alice(&config), Action::CallTool, tool("delete_file"), &none).denied_by, None);
}

#[test]
fn process_tool_response_with_pii_is_redacted_not_denied() {
    let config = config(&policies(&[("cookbook", COOKBOOK)]), "");
    let signals = Signals { pii: 95, pii_count: 2, ..Signals::default() };
    let verdict = ask(
        &config,
        bot(&config),
        Action::ProcessToolResponse,
        Resource::Tool { name: "search", server: None },
        &signals,
    );
    assert_eq!(verdict.denied_by, None);
    assert_eq!(verdict.redact, vec![("redact-pii-in-tool-results".to_owned(), vec![Category::Pii])]);
    assert_eq!(verdict.redacted_families(), vec![Category::Pii]);
}

#[test]
fn mcp_actions_are_decided_on_the_server() {
    let config = config(&policies(&[("cookbook", COOKBOOK)]), "");
    let none = Signals::default();
    let server = Resource::Server { slug: "files" };
    for action in [Action::List, Action::GetPrompt, Action::ReadResource, Action::ConnectServer] {
        assert_eq!(ask(&config, alice(&config), action, server, &none).denied_by, None, "{action:?}");
        assert_eq!(
            ask(&config, bot(&config), action, server, &none).denied_by.as_deref(),
            Some("admins-only-list"),
            "{action:?}"
        );
    }
}

#[test]
fn a_default_of_deny_needs_a_permit() {
    let permit = r#"permit(principal == Gateway::User::"alice", action, resource);"#;
    let config = config(&policies(&[("only-alice", permit)]), r#", "guardrails": {"default_decision": "deny"}"#);
    validate(&config).unwrap();
    let none = Signals::default();
    assert_eq!(ask(&config, alice(&config), Action::ProcessPrompt, MODEL, &none).denied_by, None);
    assert_eq!(
        ask(&config, bot(&config), Action::ProcessPrompt, MODEL, &none).denied_by.as_deref(),
        Some(DEFAULT_DENY)
    );
}

#[test]
fn route_and_server_policies_apply_only_in_their_scope() {
    let mut config = config("[]", "");
    let route_policy = PolicyConfig { id: "no-prompts".into(), cedar: "forbid(principal, action, resource);".into() };
    config.routes.get_mut("support").unwrap().policies.push(route_policy);
    let none = Signals::default();
    let scoped = config.policies_for(Scope::Route("support")).unwrap();
    let request = PolicyRequest {
        principal: alice(&config),
        action: Action::ProcessPrompt,
        resource: MODEL,
        facts: Facts::default(),
        signals: &none,
    };
    assert_eq!(scoped.evaluate(&request).denied_by.as_deref(), Some("no-prompts"));
    assert!(!config.policies_for(Scope::Global).unwrap().applies(Action::ProcessPrompt));
    assert!(!config.policies_for(Scope::Server("files")).unwrap().applies(Action::ProcessPrompt));
}

#[test]
fn policies_record_which_actions_they_can_apply_to() {
    let config = config(&policies(&[("cookbook", COOKBOOK)]), "");
    let scoped = config.policies_for(Scope::Global).unwrap();
    assert!(Action::ALL.iter().all(|a| scoped.applies(*a)));
    let only = config_with_only_prompt();
    let scoped = only.policies_for(Scope::Global).unwrap();
    assert!(scoped.applies(Action::ProcessPrompt));
    assert!(!scoped.applies(Action::ProcessResponse) && !scoped.applies(Action::CallTool));
}

fn config_with_only_prompt() -> Config {
    config(
        &policies(&[(
            "p",
            r#"forbid(principal, action == Gateway::Action::"process_prompt", resource) when { context.max_score > 90 };"#,
        )]),
        "",
    )
}

#[test]
fn a_policy_that_does_not_validate_is_refused_with_its_id_and_line() {
    let bad = "@id(\"ok\")\nforbid(principal, action, resource);\n\n@id(\"typo\")\nforbid(principal, action, resource)\nwhen { context.scores.injektion > 50 };";
    let error = validate(&config(&policies(&[("mine", bad)]), "")).unwrap_err();
    assert_eq!(error.path, "policies[0].cedar");
    assert!(error.message.contains("policy `typo`") && error.message.contains("(line 6)"), "{}", error.message);
}

#[test]
fn a_policy_that_does_not_parse_is_refused_with_its_line() {
    let bad = "forbid(principal, action, resource);\nforbid(principal action, resource);";
    let error = validate(&config(&policies(&[("mine", bad)]), "")).unwrap_err();
    assert!(
        error.message.contains("policy set `mine` does not parse") && error.message.contains("(line 2)"),
        "{}",
        error.message
    );
}

#[test]
fn bad_outcomes_reserved_or_duplicate_ids_and_templates_are_refused() {
    let cases = [
        ("@outcome(\"quarantine\")\nforbid(principal, action, resource);", "@outcome(\"quarantine\")"),
        ("@outcome(\"redact\")\n@redact(\"faces\")\nforbid(principal, action, resource);", "@redact names `faces`"),
        ("@outcome(\"alert\")\npermit(principal, action, resource);", "for `forbid` policies"),
        ("@id(\"gateway.x\")\nforbid(principal, action, resource);", "reserved"),
        (
            "@id(\"x\")\nforbid(principal, action, resource);\n@id(\"x\")\nforbid(principal, action, resource);",
            "used twice",
        ),
        ("forbid(principal == ?principal, action, resource);", "template"),
    ];
    for (cedar, expected) in cases {
        let error = validate(&config(&policies(&[("mine", cedar)]), "")).unwrap_err();
        assert!(error.message.contains(expected), "{cedar}: {}", error.message);
    }
}

#[test]
fn principal_attributes_of_clashing_or_unsupported_types_are_refused() {
    let doc = format!(
        r#"{{"version": 1, "keys": [
            {{"sha256": "{}", "principal": {{"kind": "user", "id": "a", "attributes": {{"tier": "gold"}}}}}},
            {{"sha256": "{}", "principal": {{"kind": "user", "id": "b", "attributes": {{"tier": 3}}}}}}]}}"#,
        hash_key("a"),
        hash_key("b")
    );
    let error = validate(&Config::from_json(doc.as_bytes()).unwrap()).unwrap_err();
    assert_eq!(error.path, "keys[1].principal.attributes.tier");
    let doc = format!(
        r#"{{"version": 1, "keys": [{{"sha256": "{}", "principal": {{"kind": "user", "id": "a", "attributes": {{"limits": {{"x": 1}}}}}}}}]}}"#,
        hash_key("a")
    );
    assert!(validate(&Config::from_json(doc.as_bytes()).unwrap()).is_err());
}

#[test]
fn set_ids_name_policies_without_an_id_annotation() {
    let set = PolicyConfig {
        id: "base".into(),
        cedar: "forbid(principal, action, resource);\npermit(principal, action, resource);".into(),
    };
    let ids: Vec<String> = parse_set(&set).unwrap().iter().map(|p| p.id().to_string()).collect();
    assert_eq!(ids, vec!["base.0", "base.1"]);
    let single = PolicyConfig { id: "only".into(), cedar: "forbid(principal, action, resource);".into() };
    assert_eq!(parse_set(&single).unwrap()[0].id().to_string(), "only");
}

/// The JSON schema validation builds from is the checked-in text schema, converted: regenerate it
/// with `UPDATE_SCHEMA=1 cargo test -p gateway-core --lib policy` after editing the text.
#[test]
fn the_json_schema_is_the_text_schema_converted() {
    let text = super::SCHEMA_TEMPLATE.replace("/* principal attributes */", "");
    let (fragment, _) = cedar_policy::SchemaFragment::from_cedarschema_str(&text).unwrap();
    let converted = fragment.to_json_value().unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/policy/gateway.cedarschema.json");
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, serde_json::to_string_pretty(&converted).unwrap() + "\n").unwrap();
    }
    let checked_in: serde_json::Value = serde_json::from_str(super::SCHEMA_JSON_TEMPLATE).unwrap();
    assert_eq!(checked_in, converted, "core/policy/gateway.cedarschema.json is stale: regenerate it");
}

#[test]
fn both_schema_forms_accept_and_refuse_the_same_policies() {
    let config = config(&policies(&[("cookbook", COOKBOOK)]), "");
    let (from_text, _) = cedar_policy::Schema::from_cedarschema_str(&schema_text(&config).unwrap()).unwrap();
    let from_json = cedar_policy::Schema::from_json_value(super::schema_json(&config).unwrap()).unwrap();
    let typo =
        "forbid(principal, action == Gateway::Action::\"process_prompt\", resource) when { principal.read_only == 3 };";
    for (text, valid) in [(COOKBOOK, true), (typo, false)] {
        let set: cedar_policy::PolicySet = text.parse().unwrap();
        for schema in [&from_text, &from_json] {
            let result =
                cedar_policy::Validator::new(schema.clone()).validate(&set, cedar_policy::ValidationMode::Strict);
            assert_eq!(result.validation_passed(), valid, "{text}");
        }
    }
}

#[test]
fn warming_up_builds_the_parsers_without_a_configuration() {
    // The warm-up's policies must parse, or the snapshot would carry no lexer states.
    assert_eq!(super::parse_set(&super::warm_up_set()).unwrap().len(), 4);
    super::warm_up();
    let config = config(&policies(&[("cookbook", COOKBOOK)]), "");
    validate(&config).unwrap();
}

#[test]
fn only_the_detector_families_a_policy_can_observe_run_at_its_action() {
    let cookbook = config(&policies(&[("cookbook", COOKBOOK)]), "");
    let scoped = cookbook.policies_for(Scope::Global).unwrap();
    let only = |pii, secrets, injection, tool_args| Detectors { pii, secrets, injection, tool_args };
    // block-injection reads the injection score; alert-on-pii-prompt the PII kinds.
    assert_eq!(scoped.detectors(Action::ProcessPrompt, Detectors::ALL), only(true, false, true, false));
    assert_eq!(scoped.detectors(Action::ProcessResponse, Detectors::ALL), only(false, true, false, false));
    // The redacting policy needs the family it redacts; the tool allow-list reads no signal.
    assert_eq!(scoped.detectors(Action::ProcessToolResponse, Detectors::ALL), only(true, false, false, false));
    assert_eq!(scoped.detectors(Action::CallTool, Detectors::ALL), Detectors::NONE);
    // A family switched off in the configuration stays off.
    assert_eq!(scoped.detectors(Action::ProcessPrompt, only(true, true, false, true)), only(true, false, false, false));

    // `max_score` and `signals` carry every family; a redaction names its own.
    let every = config(
        &policies(&[(
            "every",
            r#"forbid(principal, action == Gateway::Action::"call_tool", resource) when { context.max_score > 90 };
               @outcome("redact") @redact("secret")
               forbid(principal, action == Gateway::Action::"process_response", resource) when { context.model == "x" };"#,
        )]),
        "",
    );
    let scoped = every.policies_for(Scope::Global).unwrap();
    assert_eq!(scoped.detectors(Action::CallTool, Detectors::ALL), Detectors::ALL);
    assert_eq!(scoped.detectors(Action::ProcessResponse, Detectors::ALL), only(false, true, false, false));
}

#[test]
fn keys_sharing_a_principal_id_are_decided_on_their_own_attributes() {
    // The parties of the last decision are reused only for the same principal, attributes
    // included, and the same resource.
    let admins_only =
        r#"forbid(principal, action, resource) unless { principal has role && principal.role == "admin" };"#;
    let admins = config(&policies(&[("admins-only", admins_only)]), "");
    let admin = alice(&admins).clone();
    let mut guest = admin.clone();
    guest.attributes.insert("role".into(), serde_json::json!("guest"));
    let none = Signals::default();
    for _ in 0..2 {
        assert_eq!(ask(&admins, &admin, Action::ProcessPrompt, MODEL, &none).denied_by, None);
        assert_eq!(ask(&admins, &guest, Action::ProcessPrompt, MODEL, &none).denied_by.as_deref(), Some("admins-only"));
    }
    let other_route = Resource::Model { name: "openai/gpt-4o", provider: "openai", route: None };
    let on_route = r#"forbid(principal, action, resource in Gateway::Route::"support");"#;
    let routed = config(&policies(&[("on-route", on_route)]), "");
    assert_eq!(ask(&routed, &admin, Action::ProcessPrompt, MODEL, &none).denied_by.as_deref(), Some("on-route"));
    assert_eq!(ask(&routed, &admin, Action::ProcessPrompt, other_route, &none).denied_by, None);
}

#[test]
fn the_context_holds_every_field_a_policy_names_however_it_is_written() {
    let by_index =
        r#"forbid(principal, action, resource) when { context["phase"] == "input" && context has streaming };"#;
    let config = config(&policies(&[("by-index", by_index)]), "");
    let policies = config.policies_for(Scope::Global).unwrap();
    let none = Signals::default();
    let decide = |phase| {
        let facts = Facts { phase, ..Facts::default() };
        let request = PolicyRequest {
            principal: alice(&config),
            action: Action::ProcessPrompt,
            resource: MODEL,
            facts,
            signals: &none,
        };
        policies.evaluate(&request)
    };
    assert_eq!(decide("input").denied_by.as_deref(), Some("by-index"));
    assert_eq!(decide("output"), Verdict::default());
    assert_eq!(reads::reads(by_index, &Outcome::Deny).fields, 1 << 8 | 1 << 9);
}

#[test]
fn a_policy_reads_the_fields_and_families_its_words_name() {
    let only = |pii, secrets, injection, tool_args| Detectors { pii, secrets, injection, tool_args };
    let of = |text: &str| reads::reads(text, &Outcome::Deny);
    let named =
        of(r#"forbid(principal, action, resource) when { context.scores.pii > 50 && context has secret_count };"#);
    assert_eq!(named.fields, 1 << 16 | 1 << 14);
    assert_eq!(named.families, only(true, true, false, false));
    // Words that only contain a name are not that name; a name in a comment or a string counts.
    let near = of(r#"// reads the model
        forbid(principal, action, resource) when { principal.modeller == "tool_args" && principal.spii == 1 };"#);
    assert_eq!(near.fields, 1 << 0);
    assert_eq!(near.families, only(false, false, false, true));
    // Used whole, the scores carry every family, and the context every field and family.
    let scores = of(r#"forbid(principal, action, resource) when { context.scores == principal.limits };"#);
    assert_eq!((scores.fields, scores.families), (1 << 16, Detectors::ALL));
    let whole = of(r#"forbid(principal, action, resource) when { context == principal.expected };"#);
    assert_eq!((whole.fields, whole.families), (u32::MAX, Detectors::ALL));
    let indexed =
        of(r#"forbid(principal, action, resource) when { context ["tool"] == "x" && context has  arguments };"#);
    assert_eq!((indexed.fields, indexed.families), (1 << 4 | 1 << 5, Detectors::NONE));
    // `has` on the scores names its family; on the whole scores record, any family may decide it.
    let has_path = of(r#"forbid(principal, action, resource) when { context has scores.pii };"#);
    assert_eq!((has_path.fields, has_path.families), (1 << 16, only(true, false, false, false)));
    let has_on_scores = of(r#"forbid(principal, action, resource) when { context.scores has pii };"#);
    assert_eq!(has_on_scores.families, Detectors::ALL);
    // A redacting policy needs the families it redacts.
    let redact = reads::reads("forbid(principal, action, resource);", &Outcome::Redact(vec![Category::Pii]));
    assert_eq!((redact.fields, redact.families), (0, only(true, false, false, false)));
}

#[test]
fn a_field_spelled_with_escapes_keeps_its_detector_and_its_context_field() {
    let escaped = r#"forbid(principal, action == Gateway::Action::"process_prompt", resource)
        when { context.scores["inj\x65ction"] > 70 && context has "s\x65cret_count" };"#;
    let config = config(&policies(&[("escaped", escaped)]), "");
    validate(&config).unwrap();
    let policies = config.policies_for(Scope::Global).unwrap();
    assert_eq!(policies.detectors(Action::ProcessPrompt, Detectors::ALL), Detectors::ALL);
    let signals = Signals { injection: 85, ..Signals::default() };
    assert_eq!(
        ask(&config, alice(&config), Action::ProcessPrompt, MODEL, &signals).denied_by.as_deref(),
        Some("escaped")
    );
}

/// Policies using every construct the compiled form encodes.
const EVERY_CONSTRUCT: &str = r#"
@id("scopes") @note("ünïcode ✓, \"quoted\"")
permit(principal == Gateway::User::"alice", action in [Gateway::Action::"list", Gateway::Action::"call_tool"],
       resource is Gateway::Tool in Gateway::McpServer::"files")
when { if context.max_score > -5 then resource.name like "re*d\*_*" else false }
unless { principal has team.name || {"a b": [1, -42, "x"], c: true}["a b"].contains(1) };
forbid(principal in Gateway::ApiKey::"k\"1", action == Gateway::Action::"process_prompt",
       resource == Gateway::Model::"openai/gpt-4o")
when { principal is Gateway::User in Gateway::Route::"support" && !context.streaming
       && context.scores.pii * 2 + 1 - 3 >= 4 && context.signals.containsAll(["a"])
       && context.signals.containsAny([]) && context.pii_kinds.isEmpty() == false && context has scores.pii
       && principal.hasTag("t") && principal.getTag("t") == 1 && context.model != "x" && context.pii_count <= 3
       && context.secret_count < 2 && (principal in Gateway::Route::"support" || principal is Gateway::Agent) };
forbid(principal is Gateway::Agent, action, resource is Gateway::Model)
when { context.tool_args == context.tool_args };
permit(principal, action, resource);
"#;

fn same_decisions(a: &ScopedPolicies, b: &ScopedPolicies, config: &Config) {
    let tool = Resource::Tool { name: "read_file", server: Some("files") };
    let server = Resource::Server { slug: "files" };
    let signals = [
        Signals::default(),
        Signals { injection: 90, pii: 10, pii_count: 2, ..Signals::default() },
        Signals { secret_count: 1, pii_kinds: ["email".to_owned()].into(), ..Signals::default() },
    ];
    for principal in [alice(config), bot(config)] {
        for action in Action::ALL {
            for resource in [MODEL, tool, server] {
                for signals in &signals {
                    let request = PolicyRequest { principal, action, resource, facts: Facts::default(), signals };
                    assert_eq!(a.evaluate(&request), b.evaluate(&request), "{action:?} {resource:?}");
                }
            }
        }
    }
}

#[test]
fn compiled_policies_load_as_their_text_does() {
    let config = config(&policies(&[("cookbook", COOKBOOK), ("every", EVERY_CONSTRUCT)]), "");
    let compiled = CompiledPolicies::new(compile(&config).into()).unwrap();
    let from_text = ScopedPolicies::load(&config, Scope::Global, None).unwrap();
    let from_compiled = ScopedPolicies::load(&config, Scope::Global, Some(&compiled)).unwrap();
    assert_eq!((from_text.compiled_sets(), from_compiled.compiled_sets()), (0, 2));
    for (text_set, compiled_set) in
        [(&from_text.enforce, &from_compiled.enforce), (&from_text.advice, &from_compiled.advice)]
    {
        let ids: Vec<String> = text_set.policies().map(|p| p.id().to_string()).collect();
        assert_eq!(ids, compiled_set.policies().map(|p| p.id().to_string()).collect::<Vec<_>>());
        for policy in text_set.policies() {
            let twin = compiled_set.policy(policy.id()).unwrap();
            assert_eq!(policy.to_pst().unwrap(), twin.to_pst().unwrap());
            assert_eq!(policy.annotations().collect::<Vec<_>>(), twin.annotations().collect::<Vec<_>>());
        }
    }
    assert_eq!(from_text.outcomes, from_compiled.outcomes);
    assert_eq!(from_text.observes, from_compiled.observes);
    assert_eq!((from_text.context_fields, from_text.actions), (from_compiled.context_fields, from_compiled.actions));
    same_decisions(&from_text, &from_compiled, &config);
}

#[test]
fn a_set_edited_after_compiling_is_parsed_from_its_new_text() {
    let before = config(&policies(&[("gate", r#"forbid(principal, action, resource);"#)]), "");
    let compiled = CompiledPolicies::new(compile(&before).into()).unwrap();
    let after = config(&policies(&[("gate", r#"forbid(principal is Gateway::Agent, action, resource);"#)]), "");
    let (loaded, _) = after.policies_compiled(Scope::Global, Some(&compiled)).unwrap();
    assert_eq!(loaded.compiled_sets(), 0);
    let none = Signals::default();
    let request = PolicyRequest {
        principal: alice(&after),
        action: Action::ProcessPrompt,
        resource: MODEL,
        facts: Facts::default(),
        signals: &none,
    };
    assert_eq!(loaded.evaluate(&request).denied_by, None);
    // The same text under another set id names its policy differently: not the same entry either.
    let renamed = config(&policies(&[("gate-2", r#"forbid(principal, action, resource);"#)]), "");
    assert_eq!(renamed.policies_compiled(Scope::Global, Some(&compiled)).unwrap().0.compiled_sets(), 0);
}

#[test]
fn a_damaged_compiled_form_is_parsed_instead_never_misread() {
    let config = config(&policies(&[("cookbook", COOKBOOK)]), "");
    let stored = compile(&config);
    assert_eq!(
        ScopedPolicies::load(&config, Scope::Global, Some(&CompiledPolicies::new(stored.clone().into()).unwrap()))
            .unwrap()
            .compiled_sets(),
        1
    );
    // A flipped bit or a truncation, at every third byte: the set is parsed from its text.
    for at in (4..stored.len()).step_by(3) {
        for damaged in [
            {
                let mut d = stored.clone();
                d[at] ^= 0x10;
                d
            },
            stored[..at].to_vec(),
        ] {
            let Some(compiled) = CompiledPolicies::new(damaged.into()) else { continue };
            let loaded = ScopedPolicies::load(&config, Scope::Global, Some(&compiled)).unwrap();
            assert_eq!(loaded.compiled_sets(), 0, "damage at byte {at} was loaded");
        }
    }
    assert!(CompiledPolicies::new(b"not compiled".to_vec().into()).is_none());
}
